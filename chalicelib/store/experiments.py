"""Experiments in DynamoDB: one item each under the tenant, plus a guard item per active name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.domain.errors import Conflict
from chalicelib.domain.tracking.records import Experiment
from chalicelib.store import keys
from chalicelib.store.dynamo import Condition, SortRange, Table, TransactionCancelled

if TYPE_CHECKING:
    from chalicelib.store.directory import Directory

_FIELDS = ("id", "name", "description", "artifact_location", "lifecycle_stage", "tags", "created_at",
           "updated_at", "deleted_at", "version")


def _to_values(exp: Experiment) -> dict[str, Any]:
    values = {name: getattr(exp, name) for name in _FIELDS}
    values["tags"] = dict(exp.tags)
    return {**keys.experiment_key(exp.tenant_id, exp.id), "tenant_id": exp.tenant_id, "kind": "experiment", **values}


def _from_values(item: dict[str, Any]) -> Experiment:
    return Experiment(
        tenant_id=item["tenant_id"], id=item["id"], name=item["name"], description=item.get("description", ""),
        artifact_location=item["artifact_location"], lifecycle_stage=item["lifecycle_stage"],
        tags=dict(item.get("tags", {})), created_at=item["created_at"], updated_at=item["updated_at"],
        deleted_at=item.get("deleted_at"), version=int(item.get("version", 0)),
    )


def _name_taken(name: str) -> Conflict:
    return Conflict(f"an active experiment named {name!r} already exists")


@dataclass
class ExperimentStore:
    table: Table
    directory: Directory

    def get(self, tenant_id: str, experiment_id: str) -> Optional[Experiment]:
        item = self.table.get(keys.experiment_key(tenant_id, experiment_id))
        return _from_values(item) if item else None

    def find_active_by_name(self, tenant_id: str, name: str) -> Optional[Experiment]:
        guard = self.table.get(keys.experiment_name_key(tenant_id, name))
        return self.get(tenant_id, guard["experiment_id"]) if guard else None

    def list_experiments(self, tenant_id: str) -> list[Experiment]:
        items = self.table.query(keys.tenant_pk(tenant_id), SortRange.prefix(keys.EXPERIMENT_SK))
        return [_from_values(item) for item in items]

    def create(self, exp: Experiment) -> None:
        actions = [
            self.table.put_action(_to_values(exp), condition=Condition.absent()),
            self._name_guard_put(exp),
            self.directory.owner_action(exp.id, exp.tenant_id, "experiment"),
        ]
        try:
            self.table.transact(actions)
        except TransactionCancelled as exc:
            if exc.failed(1):
                raise _name_taken(exp.name) from exc
            raise

    def replace(self, old: Experiment, new: Experiment) -> None:
        """Write `new` over `old` if nobody changed it meanwhile; keep the name guards in step.

        One transaction covers rename, soft delete and restore: the guard of the old name goes when
        the experiment stops being active under it, the guard of the new name is taken (or the write
        fails with 409) when it becomes active under it.
        """
        actions = [self.table.put_action(_to_values(new), condition=Condition.equals("version", old.version))]
        old_guard = old.name.casefold() if old.active else None
        new_guard = new.name.casefold() if new.active else None
        guard_index = None
        if old_guard is not None and old_guard != new_guard:
            actions.append(self.table.delete_action(keys.experiment_name_key(old.tenant_id, old.name),
                                                    condition=Condition.equals("experiment_id", old.id)))
        if new_guard is not None and new_guard != old_guard:
            guard_index = len(actions)
            actions.append(self._name_guard_put(new))
        try:
            self.table.transact(actions)
        except TransactionCancelled as exc:
            if guard_index is not None and exc.failed(guard_index):
                raise _name_taken(new.name) from exc
            if exc.failed(0):
                raise Conflict("the experiment was changed by another request; read it again and retry") from exc
            raise

    def _name_guard_put(self, exp: Experiment) -> dict[str, Any]:
        return self.table.put_action({**keys.experiment_name_key(exp.tenant_id, exp.name), "experiment_id": exp.id},
                                     condition=Condition.absent())
