"""The purge policy: which experiments may be removed for good, how much one invocation may do, and
the resumable walk that removes them.

An experiment is purgeable when its lifecycle is `deleted` and its `deleted_at` is older than the
retention period (`AGORA_RETENTION_DAYS`). That is checked when the experiment is picked up, again
before each of its runs and before its S3 objects, and a last time atomically when its item is
deleted (the condition of that delete). An experiment restored meanwhile is abandoned where the
purge stands: nothing more of it is touched.

One invocation does at most `max_deletes` deletions (DynamoDB items plus S3 objects) and stops
taking new work when less than its reserve of Lambda time is left. Where it stopped is saved in the
cursor (the experiment, the run, the metric key, the last S3 key deleted, the Scan position), and
the next invocation goes on from there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from chalicelib.domain.clock import iso, now_iso, now_ms
from chalicelib.domain.tracking.records import DELETED
from chalicelib.logs import module_logger

if TYPE_CHECKING:
    from chalicelib.store.purge import PurgeStore

logger = module_logger(__name__)

DAY_MS = 86_400_000
DEFAULT_MAX_DELETES = 100_000  # a safety bound; the Lambda's time is what normally ends an invocation
DEFAULT_RESERVE_MS = 10_000  # stop taking new work with this much time left (a third of it, if less)
SCAN_PAGE = 100  # experiments table items read per Scan request
DELETE_PAGE = 100  # items found (and then deleted) per Query
OBJECT_PAGE = 1_000  # S3 objects listed and deleted per request (DeleteObjects' own limit)


class CursorTaken(Exception):
    """Another purge invocation saved the cursor since this one read it."""


@dataclass(frozen=True)
class Candidate:
    tenant_id: str
    experiment_id: str
    deleted_at: str

    def to_values(self) -> dict[str, str]:
        return {"tenant_id": self.tenant_id, "experiment_id": self.experiment_id, "deleted_at": self.deleted_at}

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Candidate:
        return cls(values["tenant_id"], values["experiment_id"], values["deleted_at"])


@dataclass
class Removed:
    """What was deleted, per kind; `items` are DynamoDB items, `objects` S3 objects. Counts added
    to a tally are added to its `parent` too (one experiment's tally inside an invocation's)."""

    experiments: int = 0
    runs: int = 0
    metric_chunks: int = 0
    latest_values: int = 0
    params: int = 0
    tags: int = 0
    artifacts: int = 0
    owners: int = 0
    other: int = 0  # run items of a kind this code does not know (counted, deleted all the same)
    objects: int = 0
    parent: Optional[Removed] = field(default=None, repr=False, compare=False)

    KINDS = ("experiments", "runs", "metric_chunks", "latest_values", "params", "tags", "artifacts", "owners", "other",
             "objects")

    def add(self, kind: str, count: int = 1) -> None:
        setattr(self, kind, getattr(self, kind) + count)
        if self.parent is not None:
            self.parent.add(kind, count)

    @property
    def items(self) -> int:
        return sum(getattr(self, kind) for kind in self.KINDS if kind != "objects")

    def to_json(self) -> dict[str, int]:
        return {kind: getattr(self, kind) for kind in self.KINDS}

    @classmethod
    def from_json(cls, values: Optional[dict[str, Any]], parent: Optional[Removed] = None) -> Removed:
        return cls(**{kind: int((values or {}).get(kind, 0)) for kind in cls.KINDS}, parent=parent)


@dataclass(frozen=True)
class PurgePolicy:
    retention_days: int
    max_deletes: int = DEFAULT_MAX_DELETES
    reserve_ms: int = DEFAULT_RESERVE_MS
    scan_page: int = SCAN_PAGE

    def cutoff(self, at_ms: int) -> str:
        """Experiments deleted before this instant are purgeable (same ISO-8601 form as `deleted_at`)."""
        return iso(at_ms - self.retention_days * DAY_MS)

    @staticmethod
    def purgeable(state: Optional[dict[str, Any]], cutoff: str) -> bool:
        """Deleted, with a deletion time, older than the cutoff. Active, restored or undated: never."""
        return state is not None and state.get("lifecycle_stage") == DELETED and bool(state.get("deleted_at")) \
            and state["deleted_at"] < cutoff

    @classmethod
    def still_purgeable(cls, state: Optional[dict[str, Any]], cutoff: str, deleted_at: str) -> bool:
        """Purgeable and still the same deletion the purge started on (not restored and deleted again)."""
        return state is not None and cls.purgeable(state, cutoff) and state["deleted_at"] == deleted_at


class Budget:
    """Deletions and Lambda time one invocation may spend; `allowance` says how much may go next."""

    def __init__(self, max_deletes: int, spent: Removed, remaining_ms: Optional[Callable[[], int]] = None,
                 reserve_ms: int = DEFAULT_RESERVE_MS) -> None:
        self.max_deletes = max_deletes
        self.spent = spent
        self.remaining_ms = remaining_ms
        start = remaining_ms() if remaining_ms else None
        self.reserve_ms = min(reserve_ms, start // 3) if start is not None else 0
        self.stopped_by: Optional[str] = None

    @property
    def deletes(self) -> int:
        return self.spent.items + self.spent.objects

    def has_time(self) -> bool:
        if self.remaining_ms is not None and self.remaining_ms() < self.reserve_ms:
            self.stopped_by = self.stopped_by or "time"
            return False
        return True

    def allowance(self, wanted: int) -> int:
        """How many of `wanted` deletions may be done now; 0 means stop here."""
        if self.deletes >= self.max_deletes:
            self.stopped_by = self.stopped_by or "deletes"
            return 0
        if not self.has_time():
            return 0
        return min(wanted, self.max_deletes - self.deletes)


@dataclass
class _Invocation:
    """One invocation's state: the cursor as loaded (and its version), its budget, what it did."""

    state: dict[str, Any]
    version: int
    cutoff: str
    budget: Budget
    removed: Removed
    purged: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tally: Optional[Removed] = None  # what was removed of the experiment in the cursor, over all invocations


@dataclass
class PurgeService:
    store: PurgeStore
    policy: PurgePolicy

    def run(self, remaining_ms: Optional[Callable[[], int]] = None,
            max_deletes: Optional[int] = None) -> dict[str, Any]:
        """Purge what is due, within the budget; returns the report (also what the handler logs)."""
        limit = self.policy.max_deletes if max_deletes is None else max_deletes
        if limit < 1:
            raise ValueError(f"max_deletes must be at least 1, got {limit}")
        removed = Removed()
        state, version = self.store.load_cursor()
        run = _Invocation(state, version, self.policy.cutoff(now_ms()),
                          Budget(limit, removed, remaining_ms, self.policy.reserve_ms), removed)
        resumed = bool(state)
        state.setdefault("scan", {"next": None, "done": False})
        state.setdefault("pending", [])
        state.setdefault("current", None)
        state.setdefault("sweep_started_at", now_iso())
        try:
            finished = self._walk(run)
            if finished:
                self.store.drop_cursor(run.version)
            else:
                self._checkpoint(run)
        except CursorTaken:
            logger.warning("purge: another invocation saved the cursor meanwhile; leaving the work to it")
            run.budget.stopped_by = "another purge is running"
            finished = False
        except Exception:
            try:  # keep the place for the next invocation; the deletions done so far need no undo
                self._checkpoint(run)
            except Exception:
                logger.exception("purge: could not save the cursor after a failure")
            raise
        return self._report(run, finished, resumed)

    # --- the walk -----------------------------------------------------------------------------------
    def _walk(self, run: _Invocation) -> bool:
        """Work until the sweep is done (True) or the budget is spent (False)."""
        state = run.state
        while True:
            current = state["current"]
            if current is not None:
                if not self._purge_experiment(run, current):
                    return False
                state["current"] = None
                self._checkpoint(run)
            elif state["pending"]:
                self._pick_up(run, Candidate.from_values(state["pending"].pop(0)))
            elif state["scan"]["done"]:
                return True
            elif not run.budget.has_time():
                return False
            else:
                found, following = self.store.scan_candidates(run.cutoff, state["scan"]["next"], self.policy.scan_page)
                state["pending"] = [c.to_values() for c in found]
                state["scan"] = {"next": following, "done": following is None}

    def _pick_up(self, run: _Invocation, candidate: Candidate) -> None:
        """Start on a candidate found by the Scan, if it is (still) purgeable."""
        stored = self.store.experiment_state(candidate.tenant_id, candidate.experiment_id)
        if stored is None or not self.policy.purgeable(stored, run.cutoff):
            run.skipped.append(_name(candidate.tenant_id, candidate.experiment_id))
            logger.info("purge: skipping experiment %s of tenant %s: no longer purgeable",
                        candidate.experiment_id, candidate.tenant_id)
            return
        run.state["current"] = {"tenant_id": candidate.tenant_id, "experiment_id": candidate.experiment_id,
                                "deleted_at": stored["deleted_at"], "phase": "runs", "after_run": None,
                                "run_id": None, "metric_key": None, "s3_after": None, "removed": {}}

    def _purge_experiment(self, run: _Invocation, current: dict[str, Any]) -> bool:
        """Go on with the experiment in the cursor; True when it is gone (or abandoned), False when
        the budget ran out first."""
        run.tally = tally = Removed.from_json(current.get("removed"), parent=run.removed)
        try:
            return self._purge_experiment_steps(run, current, tally)
        finally:
            current["removed"] = tally.to_json()
            run.tally = None

    def _purge_experiment_steps(self, run: _Invocation, current: dict[str, Any], tally: Removed) -> bool:
        tenant_id, experiment_id = current["tenant_id"], current["experiment_id"]
        if not self._still_purgeable(run, current):
            return True
        queue: list[str] = []
        while current["phase"] == "runs":
            if current["run_id"] is None:
                queue = queue or self.store.runs_after(tenant_id, experiment_id, current["after_run"])
                if not queue:
                    current["phase"] = "objects"
                    break
                current["run_id"] = queue.pop(0)
            run_id = current["run_id"]
            if not self._purge_run(run, current, tally):
                return False
            current.update(after_run=run_id, run_id=None, metric_key=None, run_s3_after=None)
            self._checkpoint(run)
            if not self._still_purgeable(run, current):
                return True
        if current["phase"] == "objects":
            while True:
                allowance = run.budget.allowance(OBJECT_PAGE)
                if not allowance:
                    return False
                count, last = self.store.delete_objects(self.store.experiment_objects_prefix(tenant_id, experiment_id),
                                                        current["s3_after"], allowance, tally)
                if last:
                    current["s3_after"] = last
                if count < allowance:
                    break
            current["phase"] = "experiment"
            if not self._still_purgeable(run, current):
                return True
        if run.budget.allowance(2) < 2:  # the experiment item and its owner record, in one transaction
            return False
        name = _name(tenant_id, experiment_id)
        if self.store.delete_experiment(tenant_id, experiment_id, current["deleted_at"], tally):
            run.purged.append(name)
            logger.info("purge: removed experiment %s of tenant %s (deleted %s): %s", experiment_id, tenant_id,
                        current["deleted_at"], tally.to_json())
        else:
            self._abandon(run, current)
        return True

    def _purge_run(self, run: _Invocation, current: dict[str, Any], tally: Removed) -> bool:
        """Every item of one run, its metric chunks and its owner record; the RUN item last. True
        when the run is gone, False when the budget ran out first."""
        tenant_id, run_id = current["tenant_id"], current["run_id"]
        budget = run.budget
        while True:
            items = self.store.run_items(tenant_id, run_id, DELETE_PAGE)
            doomed = [item for item in items if item["kind"] != "run"]
            if not doomed:
                break
            for item in doomed:  # a series' chunks first: its latest-value item is how the key is found
                if item["kind"] == "latest":
                    current["metric_key"] = key = item["key"]
                    while True:
                        allowance = budget.allowance(DELETE_PAGE)
                        if not allowance:
                            return False
                        if self.store.delete_chunks(tenant_id, run_id, key, allowance, tally) < allowance:
                            break
            current["metric_key"] = None
            batch = [item["sk"] for item in doomed][: budget.allowance(len(doomed))]
            if not batch:
                return False
            self.store.delete_run_items(tenant_id, run_id, batch, tally)
            if len(items) < DELETE_PAGE and len(batch) == len(doomed):
                break
        prefix = self.store.run_objects_prefix(tenant_id, run_id)
        while prefix is not None:  # the run's artifacts, before the run item that says where they are
            allowance = budget.allowance(OBJECT_PAGE)
            if not allowance:
                return False
            count, last = self.store.delete_objects(prefix, current.get("run_s3_after"), allowance, tally)
            if last:
                current["run_s3_after"] = last
            if count < allowance:
                break
        if not budget.allowance(1):
            return False
        self.store.delete_run_owner(tenant_id, run_id, tally)
        if not budget.allowance(1):
            return False
        self.store.delete_run_item(tenant_id, run_id, tally)
        return True

    def _still_purgeable(self, run: _Invocation, current: dict[str, Any]) -> bool:
        stored = self.store.experiment_state(current["tenant_id"], current["experiment_id"])
        if stored is None:  # removed by an earlier (or a concurrent) invocation whose cursor was lost
            logger.info("purge: experiment %s of tenant %s is already gone", current["experiment_id"],
                        current["tenant_id"])
            return False
        if self.policy.still_purgeable(stored, run.cutoff, current["deleted_at"]):
            return True
        self._abandon(run, current)
        return False

    def _abandon(self, run: _Invocation, current: dict[str, Any]) -> None:
        run.abandoned.append(_name(current["tenant_id"], current["experiment_id"]))
        logger.warning("purge: experiment %s of tenant %s was restored (or deleted again) during its purge; "
                       "abandoned after removing %s", current["experiment_id"], current["tenant_id"],
                       run.tally.to_json() if run.tally else current.get("removed"))

    def _checkpoint(self, run: _Invocation) -> None:
        if run.tally is not None and run.state["current"] is not None:
            run.state["current"]["removed"] = run.tally.to_json()
        run.version = self.store.save_cursor(run.state, run.version, now_iso())

    def _report(self, run: _Invocation, finished: bool, resumed: bool) -> dict[str, Any]:
        current = run.state.get("current")
        return {
            "cutoff": run.cutoff,
            "retention_days": self.policy.retention_days,
            "resumed": resumed,
            "finished": finished,
            "stopped_by": None if finished else run.budget.stopped_by,
            "max_deletes": run.budget.max_deletes,
            "deletes": run.budget.deletes,
            "items_deleted": run.removed.items,
            "objects_deleted": run.removed.objects,
            "removed": run.removed.to_json(),
            "experiments_purged": run.purged,
            "experiments_abandoned": run.abandoned,
            "experiments_skipped": run.skipped,
            "cursor": None if finished or current is None else {
                k: current.get(k) for k in ("tenant_id", "experiment_id", "phase", "run_id", "metric_key", "s3_after")},
        }


def _name(tenant_id: str, experiment_id: str) -> str:
    return f"{tenant_id}/{experiment_id}"
