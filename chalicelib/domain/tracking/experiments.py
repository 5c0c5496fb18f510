"""Experiment rules: unique active names per tenant, soft delete and restore, search and paging."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Protocol

from chalicelib.domain.clock import new_id, now_iso
from chalicelib.domain.errors import Conflict, InvalidInput, StaleRecord
from chalicelib.domain.ownership import Owners, not_found_or_forbidden
from chalicelib.domain.paging import check_page
from chalicelib.domain.tracking.records import ACTIVE, DELETED, LIFECYCLE_STAGES, Experiment

if TYPE_CHECKING:
    from chalicelib.domain.tracking.models import ExperimentCreate, ExperimentPatch
    from chalicelib.store.experiments import ExperimentStore

MAX_PAGE = 1_000
WRITE_ATTEMPTS = 8


class ArtifactLocations(Protocol):
    """Where artifacts go (implemented by chalicelib.store.artifacts.ArtifactLayout): the store owns the layout."""

    def experiment_location(self, tenant_id: str, experiment_id: str, requested: Optional[str]) -> str:
        """The experiment's location URI; a ValueError says why `requested` cannot be used."""

    def run_location(self, experiment_location: str, run_id: str) -> str: ...


@dataclass
class ExperimentService:
    store: ExperimentStore
    owners: Owners
    locations: ArtifactLocations

    def create(self, tenant_id: str, request: ExperimentCreate) -> Experiment:
        experiment_id = new_id()
        now = now_iso()
        try:
            location = self.locations.experiment_location(tenant_id, experiment_id, request.artifact_location)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        exp = Experiment(
            tenant_id=tenant_id, id=experiment_id, name=request.name, description=request.description,
            artifact_location=location,
            lifecycle_stage=ACTIVE, tags=dict(request.tags), created_at=now, updated_at=now,
        )
        self.store.create(exp)
        return exp

    def get(self, tenant_id: str, experiment_id: str) -> Experiment:
        exp = self.store.get(tenant_id, experiment_id)
        if exp is None:
            raise not_found_or_forbidden(self.owners, tenant_id, experiment_id, "experiment")
        return exp

    def find(self, tenant_id: str, experiment_id: str) -> Optional[Experiment]:
        """The tenant's experiment, or None (no 403/404 decision: for callers that tolerate a gap)."""
        return self.store.get(tenant_id, experiment_id)

    def require_active(self, tenant_id: str, experiment_id: str, what: str = "") -> Experiment:
        """The experiment, which must not be deleted: 409 otherwise (nothing is written to a deleted one)."""
        exp = self.get(tenant_id, experiment_id)
        if not exp.active:
            raise Conflict(f"experiment {experiment_id}{what} is deleted; restore it first")
        return exp

    def active_by_name(self, tenant_id: str, name: str) -> Optional[Experiment]:
        return self.store.find_active_by_name(tenant_id, name)

    def ensure(self, tenant_id: str, name: str, description: str) -> Experiment:
        """The tenant's active experiment of that name, created if there is none (concurrent callers agree)."""
        from chalicelib.domain.tracking.models import ExperimentCreate

        found = self.active_by_name(tenant_id, name)
        if found is not None:
            return found
        try:
            return self.create(tenant_id, ExperimentCreate(name=name, description=description))
        except Conflict:  # created concurrently by another request
            found = self.active_by_name(tenant_id, name)
            if found is None:
                raise
            return found

    def every_experiment(self, tenant_id: str) -> list[Experiment]:
        """All of the tenant's experiments, active and deleted (one Query; MLflow's searches filter them)."""
        return self.store.list_experiments(tenant_id)

    def search(self, tenant_id: str, search: Optional[str], lifecycle_stage: str, limit: int,
               offset: int) -> tuple[list[Experiment], int]:
        if lifecycle_stage not in LIFECYCLE_STAGES:
            raise InvalidInput(f"lifecycle_stage must be 'active' or 'deleted', got {lifecycle_stage!r}")
        check_page(limit, offset, max_limit=MAX_PAGE)
        needle = (search or "").casefold()
        matches = [e for e in self.store.list_experiments(tenant_id)
                   if e.lifecycle_stage == lifecycle_stage and needle in e.name.casefold()]
        matches.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        return matches[offset : offset + limit], len(matches)

    def update(self, tenant_id: str, experiment_id: str, patch: ExperimentPatch) -> Experiment:
        def patched(exp: Experiment) -> Experiment:
            if not exp.active:
                raise Conflict(f"experiment {experiment_id} is deleted; restore it before changing it")
            tags = dict(exp.tags)
            for key, value in (patch.tags or {}).items():
                if value is None:
                    tags.pop(key, None)
                else:
                    tags[key] = value
            return exp.changed(
                name=patch.name if patch.name is not None else exp.name,
                description=patch.description if patch.description is not None else exp.description,
                tags=tags, updated_at=now_iso(),
            )

        return self._change(tenant_id, experiment_id, patched)

    def delete(self, tenant_id: str, experiment_id: str) -> Experiment:
        """Soft delete; deleting a deleted experiment again (a retry, a concurrent twin) changes nothing."""
        def deleted(exp: Experiment) -> Optional[Experiment]:
            now = now_iso()
            return exp.changed(lifecycle_stage=DELETED, deleted_at=now, updated_at=now) if exp.active else None

        return self._change(tenant_id, experiment_id, deleted)

    def restore(self, tenant_id: str, experiment_id: str) -> Experiment:
        """Undo a soft delete; 409 if an active experiment took the name meanwhile."""
        def restored(exp: Experiment) -> Optional[Experiment]:
            return None if exp.active else exp.changed(lifecycle_stage=ACTIVE, deleted_at=None, updated_at=now_iso())

        return self._change(tenant_id, experiment_id, restored)

    def _change(self, tenant_id: str, experiment_id: str,
                change: Callable[[Experiment], Optional[Experiment]]) -> Experiment:
        """Read, decide, write if nobody wrote in between; else decide again on what they wrote.

        `change` returns the new experiment, or None when the current one is already what was asked
        (so a retried or concurrent identical request succeeds without writing)."""
        for _ in range(WRITE_ATTEMPTS):
            exp = self.get(tenant_id, experiment_id)
            new = change(exp)
            if new is None:
                return exp
            try:
                self.store.replace(exp, new)
                return new
            except StaleRecord:
                continue
        raise Conflict(f"experiment {experiment_id} is being changed by many requests at once; retry")
