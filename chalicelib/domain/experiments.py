"""Experiment rules: unique active names per tenant, soft delete and restore, search and paging."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from chalicelib.domain.clock import new_id, now_iso
from chalicelib.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from chalicelib.domain.records import ACTIVE, DELETED, Experiment

if TYPE_CHECKING:
    from chalicelib.domain.tracking_models import ExperimentCreate, ExperimentPatch
    from chalicelib.store.directory import Directory
    from chalicelib.store.experiments import ExperimentStore

MAX_PAGE = 1_000


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must not be negative, got {offset}")


def missing(directory: Directory, tenant_id: str, resource_id: str, kind: str) -> Exception:
    """403 when the id is another tenant's, 404 when it is nobody's."""
    owner = directory.owner_of(resource_id)
    if owner is not None and owner != tenant_id:
        return Forbidden(f"{kind} {resource_id} belongs to another tenant")
    return NotFound(f"{kind} {resource_id} does not exist")


@dataclass
class ExperimentService:
    store: ExperimentStore
    directory: Directory
    artifact_location: Callable[[str, str], str]  # (tenant, experiment id) -> URI; the store owns the layout

    def create(self, tenant_id: str, request: ExperimentCreate) -> Experiment:
        experiment_id = new_id()
        now = now_iso()
        exp = Experiment(
            tenant_id=tenant_id, id=experiment_id, name=request.name, description=request.description,
            artifact_location=self.artifact_location(tenant_id, experiment_id),
            lifecycle_stage=ACTIVE, tags=dict(request.tags), created_at=now, updated_at=now,
        )
        self.store.create(exp)
        return exp

    def get(self, tenant_id: str, experiment_id: str) -> Experiment:
        exp = self.store.get(tenant_id, experiment_id)
        if exp is None:
            raise missing(self.directory, tenant_id, experiment_id, "experiment")
        return exp

    def search(self, tenant_id: str, search: Optional[str], lifecycle_stage: str, limit: int,
               offset: int) -> tuple[list[Experiment], int]:
        if lifecycle_stage not in (ACTIVE, DELETED):
            raise InvalidInput(f"lifecycle_stage must be 'active' or 'deleted', got {lifecycle_stage!r}")
        check_page(limit, offset)
        needle = (search or "").casefold()
        matches = [e for e in self.store.list(tenant_id)
                   if e.lifecycle_stage == lifecycle_stage and needle in e.name.casefold()]
        matches.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        return matches[offset : offset + limit], len(matches)

    def update(self, tenant_id: str, experiment_id: str, patch: ExperimentPatch) -> Experiment:
        exp = self.get(tenant_id, experiment_id)
        if not exp.active:
            raise Conflict(f"experiment {experiment_id} is deleted; restore it before changing it")
        tags = dict(exp.tags)
        for key, value in (patch.tags or {}).items():
            if value is None:
                tags.pop(key, None)
            else:
                tags[key] = value
        new = exp.changed(
            name=patch.name if patch.name is not None else exp.name,
            description=patch.description if patch.description is not None else exp.description,
            tags=tags, updated_at=now_iso(),
        )
        self.store.replace(exp, new)
        return new

    def delete(self, tenant_id: str, experiment_id: str) -> Experiment:
        """Soft delete; deleting a deleted experiment again is a harmless retry."""
        exp = self.get(tenant_id, experiment_id)
        if not exp.active:
            return exp
        now = now_iso()
        new = exp.changed(lifecycle_stage=DELETED, deleted_at=now, updated_at=now)
        self.store.replace(exp, new)
        return new

    def restore(self, tenant_id: str, experiment_id: str) -> Experiment:
        """Undo a soft delete; 409 if an active experiment took the name meanwhile."""
        exp = self.get(tenant_id, experiment_id)
        if exp.active:
            return exp
        new = exp.changed(lifecycle_stage=ACTIVE, deleted_at=None, updated_at=now_iso())
        self.store.replace(exp, new)
        return new
