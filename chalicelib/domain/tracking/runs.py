"""Run rules: creation, logging (write-once params, mutable tags, metric points), ending, comparing."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Optional

from chalicelib.domain.clock import iso, new_id, now_iso, now_ms
from chalicelib.domain.errors import Conflict, InvalidInput, NotFound, StaleRecord
from chalicelib.domain.ownership import Owners, not_found_or_forbidden
from chalicelib.domain.paging import check_page
from chalicelib.domain.tracking import metrics as series
from chalicelib.domain.tracking.metrics import MetricPoint
from chalicelib.domain.tracking.records import ACTIVE, DELETED, Run
from chalicelib.domain.validation import metric_value_to_json

if TYPE_CHECKING:
    from chalicelib.domain.tracking.experiments import ExperimentService
    from chalicelib.domain.tracking.models import MetricIn, RunCreate
    from chalicelib.store.metric_chunks import MetricChunkStore
    from chalicelib.store.runs import RunStore

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
EXPERIMENT_REQUIRED = "experiment_id is required: runs are listed per experiment"
MAX_PAGE = 1_000
WRITE_ATTEMPTS = 8
SUMMARY_THREADS = 8


@dataclass(frozen=True)
class Logged:
    metrics: int
    params: int
    tags: int


@dataclass
class RunService:
    store: RunStore
    experiments: ExperimentService
    chunks: MetricChunkStore
    owners: Owners

    def create(self, tenant_id: str, request: RunCreate, start_time_ms: Optional[int] = None) -> Run:
        """A RUNNING run; it started now, or at `start_time_ms` (MLflow's client says when)."""
        exp = self.experiments.require_active(tenant_id, request.experiment_id)
        run_id = new_id()
        run = Run(
            tenant_id=tenant_id, id=run_id, experiment_id=exp.id, name=request.name or f"run-{run_id[-8:]}",
            description=request.description, status="RUNNING",
            start_time=iso(start_time_ms) if start_time_ms is not None else now_iso(), end_time=None,
            artifact_uri=self.experiments.locations.run_location(exp.artifact_location, run_id),
            tags=dict(request.tags),
        )
        self.store.create(run)
        return run

    def get(self, tenant_id: str, run_id: str) -> Run:
        run = self.store.get(tenant_id, run_id)
        if run is None:
            raise not_found_or_forbidden(self.owners, tenant_id, run_id, "run")
        return run

    def find(self, tenant_id: str, run_id: str) -> Optional[Run]:
        """The tenant's run, or None (for callers that tolerate a missing run)."""
        return self.store.get(tenant_id, run_id)

    def require_writable(self, tenant_id: str, run_id: str) -> Run:
        """The run, whose experiment must be active: nothing is added to a deleted experiment (409)."""
        return self.check_writable(self.get(tenant_id, run_id))

    def check_writable(self, run: Run) -> Run:
        """`run`, if its experiment is active (else 409)."""
        if not self.writable(run):
            raise Conflict(f"experiment {run.experiment_id} of run {run.id} is deleted; restore it first")
        return run

    def writable(self, run: Run) -> bool:
        """Whether the run's experiment is active (runs of a deleted experiment take no writes)."""
        exp = self.experiments.find(run.tenant_id, run.experiment_id)
        return exp is not None and exp.active

    def search(self, tenant_id: str, experiment_id: Optional[str], status: Optional[str], limit: int,
               offset: int) -> tuple[list[Run], int]:
        if not experiment_id:
            raise InvalidInput(EXPERIMENT_REQUIRED)
        if status is not None and status not in RUN_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
        check_page(limit, offset, max_limit=MAX_PAGE)
        self.experiments.get(tenant_id, experiment_id)
        return self.store.page_for_experiment(tenant_id, experiment_id, status, limit, offset)

    def every_run(self, tenant_id: str, experiment_id: str) -> list[Run]:
        """Every run of one of the tenant's experiments (MLflow's searches filter them)."""
        return self.store.every_run_of_experiment(tenant_id, experiment_id)

    def log(self, tenant_id: str, run_id: str, metrics: Iterable[MetricIn] = (),
            params: Optional[dict[str, str]] = None,
            tags: Optional[dict[str, str]] = None) -> Logged:
        """Log points, params and tags; a retried request changes nothing a second time.

        First, in transactions guarded by the experiment being active: the new params (write-once:
        a clash, found in the run as read or by the transaction's conditions, is a 409 that leaves no
        trace), the changed tags, and each key's latest point and span. Then the points, as
        content-addressed chunks with their summaries (idempotent). Requests: the run's Query, one
        transaction per 99 records, one BatchWriteItem per 25 chunk items.
        """
        params, tags = params or {}, tags or {}
        received_at = now_ms()
        by_key: dict[str, list[MetricPoint]] = {}
        for m in metrics:
            by_key.setdefault(m.key, []).append(
                MetricPoint(m.step, m.timestamp if m.timestamp is not None else received_at, m.value))
        run = self.get(tenant_id, run_id)
        if run.lifecycle_stage != ACTIVE:
            raise Conflict(f"run {run_id} is deleted; restore it before logging to it")
        clashes = [k for k, v in params.items() if k in run.params and run.params[k] != v]
        if clashes:
            raise Conflict(f"params {', '.join(map(repr, clashes))} already have other values; params are write-once")
        chunks = {key: series.chunk(pts, server_time=received_at) for key, pts in by_key.items()}
        self.store.write_log(run, {k: v for k, v in params.items() if k not in run.params},
                             {k: v for k, v in tags.items() if run.tags.get(k) != v},
                             {key: (max(pts, key=lambda p: p.order), max(c.max_step - c.min_step for c in chunks[key]))
                              for key, pts in by_key.items()})
        self.chunks.write(tenant_id, run_id, ((key, c) for key, cs in chunks.items() for c in cs))
        return Logged(sum(len(v) for v in by_key.values()), len(params), len(tags))

    def end(self, tenant_id: str, run_id: str, status: str) -> Run:
        """RUNNING -> FINISHED|FAILED|KILLED once; repeating the same end is a harmless retry."""
        def ended(run: Run) -> Optional[Run]:
            if run.status == status:
                return None
            if run.status != "RUNNING":
                raise Conflict(f"run {run_id} already ended as {run.status}")
            return run.changed(status=status, end_time=now_iso())

        return self._change(tenant_id, run_id, ended)

    def update(self, tenant_id: str, run_id: str, *, name: Optional[str] = None, status: Optional[str] = None,
               end_time_ms: Optional[int] = None) -> Run:
        """MLflow's runs/update: a new name and any status (a run may be set RUNNING again, as MLflow allows);
        an ended status sets the end time (now, or `end_time_ms`)."""
        if status is not None and status not in RUN_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")

        def updated(run: Run) -> Optional[Run]:
            changes: dict = {}
            if name is not None and name != run.name:
                changes["name"] = name
            if status is not None and status != run.status:
                changes["status"] = status
                changes["end_time"] = None if status == "RUNNING" else \
                    iso(end_time_ms) if end_time_ms is not None else now_iso()
            elif end_time_ms is not None and status != "RUNNING":
                changes["end_time"] = iso(end_time_ms)
            return run.changed(**changes) if changes else None

        return self._change(tenant_id, run_id, updated, writes=True)

    def delete(self, tenant_id: str, run_id: str) -> Run:
        """MLflow's soft delete: the run stays, marked deleted, until restored (its data is kept)."""
        return self._change(tenant_id, run_id, lambda run: run.changed(lifecycle_stage=DELETED)
                            if run.lifecycle_stage == ACTIVE else None)

    def restore(self, tenant_id: str, run_id: str) -> Run:
        return self._change(tenant_id, run_id, lambda run: run.changed(lifecycle_stage=ACTIVE)
                            if run.lifecycle_stage != ACTIVE else None)

    def delete_tag(self, tenant_id: str, run_id: str, key: str) -> None:
        run = self.get(tenant_id, run_id)
        if run.lifecycle_stage != ACTIVE:
            raise Conflict(f"run {run_id} is deleted; restore it first")
        if not self.store.delete_tag(run, key):
            raise NotFound(f"no tag {key!r} on run {run_id}")

    def _change(self, tenant_id: str, run_id: str, change: Callable[[Run], Optional[Run]], *,
                writes: bool = False) -> Run:
        """Apply `change` (None: nothing to do) under optimistic locking, retried on a concurrent write."""
        for _ in range(WRITE_ATTEMPTS):
            run = self.get(tenant_id, run_id)
            if writes and run.lifecycle_stage != ACTIVE:
                raise Conflict(f"run {run_id} is deleted; restore it first")
            new = change(run)
            if new is None:
                return run
            if not self.writable(run):
                raise Conflict(f"experiment {run.experiment_id} of run {run_id} is deleted; restore it first")
            try:
                self.store.replace(run, new)
                return new
            except StaleRecord:
                continue
        raise Conflict(f"run {run_id} is being written by many requests at once; retry")

    def compare(self, tenant_id: str, run_ids: list[str], metric_keys: Optional[list[str]]) -> dict:
        """Each run read once (one Query, all at once) and each series' count, min and max from its chunks'
        coarse summaries (one Query per series, all at once)."""
        with ThreadPoolExecutor(max_workers=SUMMARY_THREADS) as pool:
            runs = list(pool.map(lambda run_id: self.get(tenant_id, run_id), run_ids))
            keys = metric_keys if metric_keys is not None else sorted({k for r in runs for k in r.latest})
            wanted = [(r, k) for r in runs for k in keys if k in r.latest]
            found = pool.map(lambda rk: self.chunks.summary(tenant_id, rk[0].id, rk[1]), wanted)
            summaries = dict(zip(((r.id, k) for r, k in wanted), found, strict=True))
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
            "metrics": keys,
            "params_differing": differing,
        }

    def history(self, tenant_id: str, run_id: str) -> dict[str, list[MetricPoint]]:
        """Every point of every metric of the run, by key (a simulation's metrics are a few thousand points)."""
        run = self.find(tenant_id, run_id)
        if run is None:
            return {}
        return {key: self.chunks.read(tenant_id, run_id, key)[0] for key in sorted(run.latest)}

    def remove(self, tenant_id: str, run_id: str) -> int:
        """Delete the run for good, with its metric chunks; returns the items removed."""
        removed = 0
        for key in self.store.remove(tenant_id, run_id):
            removed += self.chunks.remove(tenant_id, run_id, key)
        return removed


def _number(value: Optional[float]) -> Optional[float | str]:
    return None if value is None else metric_value_to_json(value)
