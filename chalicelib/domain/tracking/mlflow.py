"""MLflow's tracking semantics over Agora's experiments and runs (DESIGN.md section 8.2).

The same records as /api/v1: an experiment or run made through MLflow's API is one of /api/v1 and the
other way round. What MLflow has and /api/v1 does not is decided here: the "Default" experiment the
client calls "0", searches in MLflow's filter language with page tokens, soft-deleted runs, artifact
folders listed one level at a time. The HTTP shapes are the API layer's (chalicelib/api/mlflow_views.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from chalicelib.domain.clock import parse_iso
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.tracking.models import ExperimentCreate, ExperimentPatch, LogBatch, RunCreate
from chalicelib.domain.tracking.records import ACTIVE, Experiment, Run
from chalicelib.domain.validation import validated

if TYPE_CHECKING:
    from chalicelib.domain.tokens import PageTokens
    from chalicelib.domain.tracking import mlflow_search
    from chalicelib.domain.tracking.artifacts import ArtifactService
    from chalicelib.domain.tracking.experiments import ExperimentService
    from chalicelib.domain.tracking.history import HistoryService
    from chalicelib.domain.tracking.runs import RunService

DEFAULT_EXPERIMENT_ID = "0"  # what MLflow's client sends when no experiment was set
DEFAULT_EXPERIMENT_NAME = "Default"
NOTE_TAG = "mlflow.note.content"  # MLflow keeps an experiment's or run's description in this tag
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
# ViewType
ACTIVE_ONLY, DELETED_ONLY, ALL = "ACTIVE_ONLY", "DELETED_ONLY", "ALL"
VIEW_TYPES = (ACTIVE_ONLY, DELETED_ONLY, ALL)
# MLflow's limits on searches
MAX_RUNS_PAGE = 50_000
DEFAULT_RUNS_PAGE = 1_000
MAX_EXPERIMENTS_PAGE = 50_000
DEFAULT_EXPERIMENTS_PAGE = 1_000
MAX_HISTORY_PAGE = 25_000  # Agora's history page (HistoryService.MAX_PAGE)
MAX_BULK_RUNS = 100
DEFAULT_BULK_POINTS = 320  # get-history-bulk-interval's default, as MLflow's


def epoch_ms(text: Optional[str]) -> Optional[int]:
    """An ISO time of Agora's records as MLflow's epoch milliseconds."""
    return None if text is None else int(parse_iso(text).timestamp() * 1000)


# mlflow_search (the filter language) is imported by the searches that use it: a function that serves other
# routes does not load it on its cold start

def run_searchable(run: Run) -> mlflow_search.Searchable:
    from chalicelib.domain.tracking import mlflow_search

    return mlflow_search.Searchable(
        attributes={"run_id": run.id, "run_name": run.name, "status": run.status,
                    "start_time": epoch_ms(run.start_time), "end_time": epoch_ms(run.end_time),
                    "artifact_uri": run.artifact_uri, "user_id": run.tags.get(USER_TAG, ""),
                    "lifecycle_stage": run.lifecycle_stage},
        metrics={key: point.value for key, point in run.latest.items()}, params=run.params, tags=run.tags)


def experiment_searchable(exp: Experiment) -> mlflow_search.SearchableExperiment:
    from chalicelib.domain.tracking import mlflow_search

    return mlflow_search.SearchableExperiment(
        attributes={"experiment_id": exp.id, "name": exp.name, "creation_time": epoch_ms(exp.created_at),
                    "last_update_time": epoch_ms(exp.updated_at), "lifecycle_stage": exp.lifecycle_stage},
        tags=exp.tags)


def _in_view(lifecycle_stage: str, view_type: str) -> bool:
    return view_type == ALL or (lifecycle_stage == ACTIVE) == (view_type == ACTIVE_ONLY)


def _view_type(view_type: Optional[str]) -> str:
    view = view_type or ACTIVE_ONLY
    if view not in VIEW_TYPES:
        raise InvalidInput(f"Invalid view type {view_type!r}; must be one of {', '.join(VIEW_TYPES)}")
    return view


def _page_size(max_results: Optional[int], default: int, maximum: int) -> int:
    size = default if max_results is None else max_results
    if not 1 <= size <= maximum:
        raise InvalidInput(f"Invalid value {size} for parameter 'max_results' supplied. It must be at most {maximum}"
                           " and at least 1.")
    return size


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_page_token: Optional[str]


@dataclass(frozen=True)
class ArtifactEntry:
    """One entry of an artifact folder listing: a file with its size, or a folder."""

    path: str
    is_dir: bool
    size: Optional[int] = None


@dataclass
class MlflowTracking:
    experiments: ExperimentService
    runs: RunService
    history: HistoryService
    artifacts: ArtifactService
    tokens: PageTokens

    # experiments ------------------------------------------------------------------------------
    def experiment_id(self, tenant_id: str, experiment_id: str) -> str:
        """Agora's id of an experiment MLflow names; "0" is the tenant's "Default", made on first use."""
        if experiment_id == DEFAULT_EXPERIMENT_ID:
            return self.experiments.ensure(tenant_id, DEFAULT_EXPERIMENT_NAME, "").id
        return experiment_id

    def create_experiment(self, tenant_id: str, name: str, artifact_location: Optional[str],
                          tags: dict[str, str]) -> Experiment:
        description = tags.pop(NOTE_TAG, "")
        request = validated(ExperimentCreate, {"name": name, "artifact_location": artifact_location or None,
                                               "description": description, "tags": tags})
        return self.experiments.create(tenant_id, request)

    def get_experiment(self, tenant_id: str, experiment_id: str) -> Experiment:
        return self.experiments.get(tenant_id, self.experiment_id(tenant_id, experiment_id))

    def experiment_by_name(self, tenant_id: str, name: str) -> Experiment:
        """The active experiment of that name, else the latest deleted one (MLflow finds deleted ones too)."""
        if name == DEFAULT_EXPERIMENT_NAME:
            return self.experiments.ensure(tenant_id, name, "")
        found = self.experiments.active_by_name(tenant_id, name)
        if found is None:
            deleted = [e for e in self.experiments.every_experiment(tenant_id) if not e.active and e.name == name]
            found = max(deleted, key=lambda e: (e.created_at, e.id), default=None)
        if found is None:
            raise NotFound(f"Could not find experiment with name '{name}'")
        return found

    def search_experiments(self, tenant_id: str, *, view_type: Optional[str], filter_string: Optional[str],
                           order_by: Sequence[str], max_results: Optional[int], page_token: Optional[str]) -> Page:
        view = _view_type(view_type)
        size = _page_size(max_results, DEFAULT_EXPERIMENTS_PAGE, MAX_EXPERIMENTS_PAGE)
        from chalicelib.domain.tracking import mlflow_search

        matches = mlflow_search.parse_experiment_filter(filter_string).matches
        sort_key = mlflow_search.experiment_sort_key(list(order_by))
        scope = f"mlflow-experiments|{tenant_id}|{view}|{filter_string}|{list(order_by)}"
        offset = self._offset(scope, page_token)
        every = self.experiments.every_experiment(tenant_id)
        if not any(e.active and e.name == DEFAULT_EXPERIMENT_NAME for e in every):  # as MLflow's, the list has it
            default = self.experiments.ensure(tenant_id, DEFAULT_EXPERIMENT_NAME, "")
            every += [default] if all(e.id != default.id for e in every) else []
        found = [e for e in every if _in_view(e.lifecycle_stage, view)]
        ordered = sorted((e for e in found if matches(experiment_searchable(e))),
                         key=lambda e: sort_key(experiment_searchable(e)))
        return self._page(scope, ordered, offset, size)

    def rename_experiment(self, tenant_id: str, experiment_id: str, new_name: str) -> Experiment:
        return self.experiments.update(tenant_id, self.experiment_id(tenant_id, experiment_id),
                                       validated(ExperimentPatch, {"name": new_name}))

    def set_experiment_tag(self, tenant_id: str, experiment_id: str, key: str, value: str) -> Experiment:
        patch = {"description": value} if key == NOTE_TAG else {"tags": {key: value}}
        return self.experiments.update(tenant_id, self.experiment_id(tenant_id, experiment_id),
                                       validated(ExperimentPatch, patch))

    def delete_experiment_tag(self, tenant_id: str, experiment_id: str, key: str) -> Experiment:
        exp = self.get_experiment(tenant_id, experiment_id)
        if key == NOTE_TAG:
            return self.experiments.update(tenant_id, exp.id, validated(ExperimentPatch, {"description": ""}))
        if key not in exp.tags:
            raise NotFound(f"No tag with name: {key} in experiment {experiment_id}")
        return self.experiments.update(tenant_id, exp.id, validated(ExperimentPatch, {"tags": {key: None}}))

    def delete_experiment(self, tenant_id: str, experiment_id: str) -> Experiment:
        return self.experiments.delete(tenant_id, self.experiment_id(tenant_id, experiment_id))

    def restore_experiment(self, tenant_id: str, experiment_id: str) -> Experiment:
        return self.experiments.restore(tenant_id, self.experiment_id(tenant_id, experiment_id))

    # runs -------------------------------------------------------------------------------------
    def create_run(self, tenant_id: str, experiment_id: str, run_name: Optional[str], start_time: Optional[int],
                   tags: dict[str, str]) -> Run:
        name = run_name or tags.get(RUN_NAME_TAG) or None
        description = tags.pop(NOTE_TAG, "")
        if name is not None:
            tags[RUN_NAME_TAG] = name
        request = validated(RunCreate, {"experiment_id": self.experiment_id(tenant_id, experiment_id),
                                        "name": name, "description": description, "tags": tags})
        return self.runs.create(tenant_id, request, start_time_ms=start_time)

    def get_run(self, tenant_id: str, run_id: str) -> Run:
        return self.runs.get(tenant_id, run_id)

    def update_run(self, tenant_id: str, run_id: str, *, status: Optional[str], end_time: Optional[int],
                   run_name: Optional[str]) -> Run:
        run = self.runs.update(tenant_id, run_id, name=run_name or None, status=status, end_time_ms=end_time)
        if run_name and run.tags.get(RUN_NAME_TAG) != run_name:
            self.runs.log(tenant_id, run_id, tags={RUN_NAME_TAG: run_name})
        return run

    def log(self, tenant_id: str, run_id: str, *, metrics: Iterable[dict[str, Any]] = (),
            params: Iterable[dict[str, Any]] = (), tags: Iterable[dict[str, Any]] = ()) -> None:
        """Metrics, params and tags as MLflow's log-batch carries them, checked as /api/v1's log-batch is (MLflow's
        key rules and limits; a param twice in one batch is refused); a run name tag renames the run."""
        batch = validated(LogBatch, {"metrics": list(metrics), "params": list(params), "tags": list(tags)})
        tag_values = {t.key: t.value for t in batch.tags}
        self.runs.log(tenant_id, run_id, metrics=batch.metrics, params={p.key: p.value for p in batch.params},
                      tags=tag_values)
        if RUN_NAME_TAG in tag_values:
            self.runs.update(tenant_id, run_id, name=tag_values[RUN_NAME_TAG])

    def delete_run_tag(self, tenant_id: str, run_id: str, key: str) -> None:
        self.runs.delete_tag(tenant_id, run_id, key)

    def delete_run(self, tenant_id: str, run_id: str) -> Run:
        return self.runs.delete(tenant_id, run_id)

    def restore_run(self, tenant_id: str, run_id: str) -> Run:
        return self.runs.restore(tenant_id, run_id)

    def search_runs(self, tenant_id: str, *, experiment_ids: Sequence[str], filter_string: Optional[str],
                    view_type: Optional[str], max_results: Optional[int], order_by: Sequence[str],
                    page_token: Optional[str]) -> Page:
        """Runs of these experiments matching the filter, in MLflow's order, a page at a time.

        The runs of each experiment are read once (one index Query each) and filtered here: the filter
        language reaches any metric, param or tag, which no index holds.
        """
        view = _view_type(view_type)
        size = _page_size(max_results, DEFAULT_RUNS_PAGE, MAX_RUNS_PAGE)
        from chalicelib.domain.tracking import mlflow_search

        matches = mlflow_search.parse_run_filter(filter_string).matches
        sort_key = mlflow_search.run_sort_key(list(order_by))
        ids = [self.experiment_id(tenant_id, e) for e in experiment_ids]
        scope = f"mlflow-runs|{tenant_id}|{sorted(ids)}|{view}|{filter_string}|{list(order_by)}"
        offset = self._offset(scope, page_token)
        found = [r for experiment_id in dict.fromkeys(ids) for r in self._runs_of(tenant_id, experiment_id)
                 if _in_view(r.lifecycle_stage, view)]
        ordered = sorted((r for r in found if matches(run_searchable(r))), key=lambda r: sort_key(run_searchable(r)))
        return self._page(scope, ordered, offset, size)

    def _runs_of(self, tenant_id: str, experiment_id: str) -> list[Run]:
        """Every run of one of the tenant's experiments; none for an unknown or another tenant's id (as
        MLflow's search, which names no experiment it cannot see)."""
        if self.experiments.find(tenant_id, experiment_id) is None:
            return []
        return self.runs.every_run(tenant_id, experiment_id)

    # metrics ----------------------------------------------------------------------------------
    def metric_history(self, tenant_id: str, run_id: str, key: str, max_results: Optional[int],
                       page_token: Optional[str]) -> tuple[list[dict], Optional[str]]:
        limit = _page_size(max_results, MAX_HISTORY_PAGE, MAX_HISTORY_PAGE)
        run = self.runs.get(tenant_id, run_id)
        if key not in run.latest:
            return [], None  # MLflow answers an unknown key with no points
        page = self.history.read_of(run, key, page_token=page_token, limit=limit)
        return page["points"], page["next_page_token"]

    def history_bulk_interval(self, tenant_id: str, run_ids: Sequence[str], key: str, start_step: Optional[int],
                              end_step: Optional[int], max_results: Optional[int]) -> list[tuple[str, dict]]:
        """Each run's points of `key` in [start_step, end_step], downsampled to `max_results` points with the
        extremes kept (what MLflow's charts ask for): (run id, point) pairs, by run then step."""
        if not run_ids:
            raise InvalidInput("GetMetricHistoryBulkInterval request must specify at least one run_id.")
        if len(run_ids) > MAX_BULK_RUNS:
            raise InvalidInput(f"GetMetricHistoryBulkInterval request cannot specify more than {MAX_BULK_RUNS} "
                               f"run_ids. Received {len(run_ids)} run_ids.")
        points = _page_size(max_results, DEFAULT_BULK_POINTS, MAX_HISTORY_PAGE // 2)
        found: list[tuple[str, dict]] = []
        for run_id in dict.fromkeys(run_ids):
            run = self.runs.get(tenant_id, run_id)
            if key not in run.latest:
                continue
            page = self.history.read_of(run, key, start_step=start_step, end_step=end_step, max_points=max(2, points))
            found += [(run_id, p) for p in page["points"]]
        return found

    # artifacts --------------------------------------------------------------------------------
    def artifact_folder(self, run: Run, folder: Optional[str]) -> list[ArtifactEntry]:
        """The files and folders directly inside `folder` of the run's artifacts (the root when empty)."""
        prefix = (folder or "").strip("/")
        prefix = f"{prefix}/" if prefix else ""
        entries: dict[str, ArtifactEntry] = {}
        for artifact in self.artifacts.artifacts_of(run):
            if not artifact.path.startswith(prefix):
                continue
            head, slash, _ = artifact.path[len(prefix):].partition("/")
            path = prefix + head
            entries[path] = ArtifactEntry(path, True) if slash else ArtifactEntry(path, False, artifact.size)
        return [entries[p] for p in sorted(entries)]

    # paging -----------------------------------------------------------------------------------
    def _offset(self, scope: str, page_token: Optional[str]) -> int:
        if not page_token:
            return 0
        offset = self.tokens.decode(scope, page_token).get("offset")
        if not isinstance(offset, int) or offset < 0:
            raise InvalidInput("page_token is malformed")
        return offset

    def _page(self, scope: str, ordered: list[Any], offset: int, size: int) -> Page:
        end = offset + size
        token = self.tokens.encode(scope, {"offset": end}) if end < len(ordered) else None
        return Page(ordered[offset:end], token)
