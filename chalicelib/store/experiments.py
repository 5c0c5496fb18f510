"""Experiments in DynamoDB: one item each under the tenant, plus a guard item per active name.

Tags live in the experiment's item while they are small; past `INLINE_TAG_BYTES` they move to tag
pages beside it (`EXP#<id>#TAGS#<n>`, each under `TAG_PAGE_BYTES`), so that MLflow's limits (tags of
8,000 characters, 100 of them at a time) fit although one DynamoDB item holds 400 KB. The item, its
pages and its name guard are always written in one transaction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.domain.errors import Conflict, PayloadTooLarge, StaleRecord
from chalicelib.domain.tracking.records import Experiment
from chalicelib.store import keys
from chalicelib.store.dynamo import Table, TransactionCancelled
from chalicelib.store.expressions import Condition, SortRange

if TYPE_CHECKING:
    from chalicelib.store.directory import Directory

_FIELDS = ("id", "name", "description", "artifact_location", "lifecycle_stage", "tags", "created_at",
           "updated_at", "deleted_at", "version")


INLINE_TAG_BYTES = 100_000
TAG_PAGE_BYTES = 300_000
MAX_TAG_BYTES = 3_000_000  # what one transaction carries (DynamoDB: 4 MB for all its items)


def _tag_pages(tags: dict[str, str]) -> list[dict[str, str]]:
    """The tags in pages of at most TAG_PAGE_BYTES of JSON; none while they fit in the item itself."""
    sizes = {k: len(json.dumps({k: v}).encode()) for k, v in tags.items()}
    if sum(sizes.values()) <= INLINE_TAG_BYTES:
        return []
    if sum(sizes.values()) > MAX_TAG_BYTES:
        raise PayloadTooLarge(f"an experiment's tags hold at most {MAX_TAG_BYTES:,} bytes together")
    pages: list[dict[str, str]] = [{}]
    used = 0
    for key in sorted(tags):
        if used + sizes[key] > TAG_PAGE_BYTES and pages[-1]:
            pages.append({})
            used = 0
        pages[-1][key] = tags[key]
        used += sizes[key]
    return pages


def _to_values(exp: Experiment, pages: list[dict[str, str]]) -> dict[str, Any]:
    values = {name: getattr(exp, name) for name in _FIELDS}
    values["tags"] = {} if pages else dict(exp.tags)
    return {**keys.experiment_key(exp.tenant_id, exp.id), "tenant_id": exp.tenant_id, "kind": "experiment",
            "tag_pages": len(pages), **values}


def _page_values(exp: Experiment, number: int, tags: dict[str, str]) -> dict[str, Any]:
    return {**keys.experiment_tags_key(exp.tenant_id, exp.id, number), "kind": "experiment_tags", "tags": tags}


def _from_values(item: dict[str, Any], paged_tags: Optional[dict[str, str]] = None) -> Experiment:
    return Experiment(
        tenant_id=item["tenant_id"], id=item["id"], name=item["name"], description=item.get("description", ""),
        artifact_location=item["artifact_location"], lifecycle_stage=item["lifecycle_stage"],
        tags=dict(item.get("tags", {})) | (paged_tags or {}), created_at=item["created_at"],
        updated_at=item["updated_at"], deleted_at=item.get("deleted_at"), version=int(item.get("version", 0)),
    )


def _name_taken(name: str) -> Conflict:
    return Conflict(f"an active experiment named {name!r} already exists")


@dataclass
class ExperimentStore:
    table: Table
    directory: Directory

    def get(self, tenant_id: str, experiment_id: str) -> Optional[Experiment]:
        """One GetItem; one Query more when the experiment's tags are paged."""
        item = self.table.get(keys.experiment_key(tenant_id, experiment_id))
        if not item:
            return None
        paged: dict[str, str] = {}
        if int(item.get("tag_pages", 0)):
            for page in self.table.query(keys.tenant_pk(tenant_id),
                                         SortRange.prefix(keys.experiment_tags_prefix(experiment_id))):
                paged |= page["tags"]
        return _from_values(item, paged)

    def find_active_by_name(self, tenant_id: str, name: str) -> Optional[Experiment]:
        guard = self.table.get(keys.experiment_name_key(tenant_id, name))
        return self.get(tenant_id, guard["experiment_id"]) if guard else None

    def list_experiments(self, tenant_id: str) -> list[Experiment]:
        items = list(self.table.query(keys.tenant_pk(tenant_id), SortRange.prefix(keys.EXPERIMENT_SK)))
        paged: dict[str, dict[str, str]] = {}
        for item in items:  # a page sorts right after its experiment
            if item.get("kind") == "experiment_tags":
                paged.setdefault(keys.experiment_of_tags_sk(item["sk"]), {}).update(item["tags"])
        return [_from_values(item, paged.get(item["id"])) for item in items if item.get("kind") != "experiment_tags"]

    def create(self, exp: Experiment) -> None:
        pages = _tag_pages(exp.tags)
        actions = [
            self.table.put_action(_to_values(exp, pages), condition=Condition.absent()),
            self._name_guard_put(exp),
            self.directory.owner_action(exp.id, exp.tenant_id, "experiment"),
            *[self.table.put_action(_page_values(exp, n, tags)) for n, tags in enumerate(pages)],
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
        pages, old_pages = _tag_pages(new.tags), _tag_pages(old.tags)
        actions = [self.table.put_action(_to_values(new, pages), condition=Condition.equals("version", old.version))]
        if pages != old_pages:
            actions += [self.table.put_action(_page_values(new, n, tags)) for n, tags in enumerate(pages)]
            actions += [self.table.delete_action(keys.experiment_tags_key(old.tenant_id, old.id, n))
                        for n in range(len(pages), len(old_pages))]
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
                raise StaleRecord(old.id) from exc
            raise

    def _name_guard_put(self, exp: Experiment) -> dict[str, Any]:
        return self.table.put_action({**keys.experiment_name_key(exp.tenant_id, exp.name), "experiment_id": exp.id},
                                     condition=Condition.absent())
