"""Run rules: creation, logging (write-once params, mutable tags, metric points), ending, comparing."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from chalicelib.domain import metrics as series
from chalicelib.domain.clock import new_id, now_iso, now_ms
from chalicelib.domain.errors import Conflict, InvalidInput
from chalicelib.domain.experiments import check_page, missing
from chalicelib.domain.metrics import MetricPoint
from chalicelib.domain.records import Run
from chalicelib.domain.validation import metric_value_to_json

if TYPE_CHECKING:
    from chalicelib.domain.experiments import ExperimentService
    from chalicelib.domain.tracking_models import MetricIn, RunCreate
    from chalicelib.store.directory import Directory
    from chalicelib.store.metric_chunks import MetricChunkStore
    from chalicelib.store.runs import RunStore

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
WRITE_ATTEMPTS = 8
SUMMARY_THREADS = 8


@dataclass(frozen=True)
class Logged:
    metrics: int
    params: int
    tags: int


@dataclass
class RunService:
    runs: RunStore
    experiments: ExperimentService
    chunks: MetricChunkStore
    directory: Directory
    artifact_uri: Callable[[str, str, str], str]  # (tenant, experiment id, run id) -> URI

    def create(self, tenant_id: str, request: RunCreate) -> Run:
        exp = self.experiments.get(tenant_id, request.experiment_id)
        if not exp.active:
            raise Conflict(f"experiment {exp.id} is deleted; restore it before adding runs")
        run_id = new_id()
        run = Run(
            tenant_id=tenant_id, id=run_id, experiment_id=exp.id, name=request.name or f"run-{run_id[-8:]}",
            description=request.description, status="RUNNING", start_time=now_iso(), end_time=None,
            artifact_uri=self.artifact_uri(tenant_id, exp.id, run_id), tags=dict(request.tags),
        )
        self.runs.create(run)
        return run

    def get(self, tenant_id: str, run_id: str) -> Run:
        run = self.runs.get(tenant_id, run_id)
        if run is None:
            raise missing(self.directory, tenant_id, run_id, "run")
        return run

    def search(self, tenant_id: str, experiment_id: Optional[str], status: Optional[str], limit: int,
               offset: int) -> tuple[list[Run], int]:
        if not experiment_id:
            raise InvalidInput("experiment_id is required: runs are listed per experiment")
        if status is not None and status not in RUN_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
        check_page(limit, offset)
        self.experiments.get(tenant_id, experiment_id)
        runs = [r for r in self.runs.list_for_experiment(tenant_id, experiment_id) if status in (None, r.status)]
        return runs[offset : offset + limit], len(runs)

    def log(self, tenant_id: str, run_id: str, metrics: Iterable[MetricIn] = (), params: Optional[dict[str, str]] = None,
            tags: Optional[dict[str, str]] = None) -> Logged:
        """Log points, params and tags; a retried request changes nothing a second time.

        Param conflicts are found before anything is written (from the run as read, then again
        atomically by the params transaction), so a rejected request leaves no trace. Points land as
        content-addressed chunks (idempotent), then each key's latest value is raised conditionally.
        """
        params, tags = params or {}, tags or {}
        received_at = now_ms()
        by_key: dict[str, list[MetricPoint]] = {}
        for m in metrics:
            by_key.setdefault(m.key, []).append(
                MetricPoint(m.step, m.timestamp if m.timestamp is not None else received_at, m.value))
        run = self.get(tenant_id, run_id)
        self._require_active_experiment(run)
        clashes = [k for k, v in params.items() if k in run.params and run.params[k] != v]
        if clashes:
            raise Conflict(f"params {', '.join(map(repr, clashes))} already have other values; params are write-once")
        new_params = {k: v for k, v in params.items() if k not in run.params}
        if new_params:
            self.runs.put_params(run, new_params)
        self.chunks.write(tenant_id, run_id, ((key, c) for key, pts in by_key.items() for c in series.chunk(pts)))
        changed_tags = {k: v for k, v in tags.items() if run.tags.get(k) != v}
        if changed_tags:
            self.runs.put_tags(run, changed_tags)
        for key, pts in by_key.items():
            newest = series.latest(pts)
            if key not in run.latest or newest.order > run.latest[key].order:
                self.runs.raise_latest(run, key, newest)
        return Logged(sum(len(v) for v in by_key.values()), len(params), len(tags))

    def end(self, tenant_id: str, run_id: str, status: str) -> Run:
        """RUNNING -> FINISHED|FAILED|KILLED once; repeating the same end is a harmless retry."""
        for _ in range(WRITE_ATTEMPTS):
            run = self.get(tenant_id, run_id)
            if run.status == status:
                return run
            if run.status != "RUNNING":
                raise Conflict(f"run {run_id} already ended as {run.status}")
            self._require_active_experiment(run)
            new = run.changed(status=status, end_time=now_iso())
            try:
                self.runs.replace(run, new)
                return new
            except self.runs.Changed:
                continue
        raise Conflict(f"run {run_id} is being written by many requests at once; retry")

    def compare(self, tenant_id: str, run_ids: list[str], metric_keys: Optional[list[str]]) -> dict:
        runs = [self.get(tenant_id, run_id) for run_id in run_ids]
        keys = metric_keys if metric_keys is not None else sorted({k for r in runs for k in r.latest})
        wanted = [(r, k) for r in runs for k in keys if k in r.latest]
        with ThreadPoolExecutor(max_workers=SUMMARY_THREADS) as pool:
            summaries = dict(zip(((r.id, k) for r, k in wanted),
                                 pool.map(lambda rk: self.chunks.summary(tenant_id, rk[0].id, rk[1]), wanted)))
        param_keys = sorted({k for r in runs for k in r.params})
        differing = [k for k in param_keys if len({r.params.get(k) for r in runs}) > 1]
        return {
            "runs": [
                {
                    "id": r.id, "name": r.name, "experiment_id": r.experiment_id, "status": r.status,
                    "params": dict(r.params),
                    "metrics": {
                        k: {
                            "latest": r.latest[k].to_json()["value"],
                            "min": _number(summaries[(r.id, k)].min),
                            "max": _number(summaries[(r.id, k)].max),
                            "count": summaries[(r.id, k)].count,
                        } if k in r.latest else None
                        for k in keys
                    },
                }
                for r in runs
            ],
            "metric_keys": keys,
            "params_differing": differing,
        }

    def _require_active_experiment(self, run: Run) -> None:
        exp = self.experiments.store.get(run.tenant_id, run.experiment_id)
        if exp is None or not exp.active:
            raise Conflict(f"experiment {run.experiment_id} of run {run.id} is deleted; restore it first")


def _number(value: Optional[float]) -> Optional[float | str]:
    return None if value is None else metric_value_to_json(value)
