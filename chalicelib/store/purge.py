"""Permanent removal of archived experiments: the storage side of the daily purge.

Every method does a bounded amount of work (at most `limit` deletions) and counts what it deleted
in the `tally` it is given, so the domain (`chalicelib.domain.purge`) decides how much to do per
invocation and when to stop.
Everything is found again from the tables themselves (consistent reads, items deleted as they are
found), so a step repeated after a crash deletes nothing twice and misses nothing.

Where the data is, for one experiment `E` of tenant `T`:
- experiments table: `T#T / EXP#E` (deleted last of all, together with its owner record);
- runs table: each run `R` of `E` is found through the `by_experiment` index (`T#T#E#E`); its
  partition `T#T#R#R` holds `LATEST#<key>` (latest value per metric key), `PARAM#`, `TAG#`,
  `ARTIFACT#` items and the `RUN` item, which goes last so an interrupted run is still found
  through the index;
- metrics table: chunks under `T#T#R#R#M#<key>` for every key named by a `LATEST#` item;
- directory table: owner records `ID#R` and `ID#E`;
- S3: each run's artifacts (under its experiment's artifact location), then everything under
  `tenants/T/experiments/E/`, the experiment's default location.

The purge cursor is a system item of the directory table, the one table whose keys are not led by
a tenant (it already holds API keys and owner records): `keys.PURGE_CURSOR_KEY`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.domain.purge import Candidate, CursorTaken, Removed
from chalicelib.domain.tracking.records import DELETED
from chalicelib.store import keys
from chalicelib.store.directory import owned_by
from chalicelib.store.dynamo import ConditionFailed, Table, TransactionCancelled
from chalicelib.store.expressions import Condition, SortRange
from chalicelib.store.runs import BY_EXPERIMENT

if TYPE_CHECKING:
    from chalicelib.store.artifacts import ArtifactLayout
    from chalicelib.store.objects import ObjectStore

S3_DELETE_LIMIT = 1_000  # DeleteObjects takes at most 1,000 keys
RUN_INDEX_PAGE = 500  # index items read per Query when looking for the next runs
# what an item of a run partition is, for the report
_REPORT_KIND = {"latest": "latest_values", "param": "params", "tag": "tags", "artifact": "artifacts"}


@dataclass
class PurgeStore:
    experiments: Table
    runs: Table
    metrics: Table
    directory: Table
    objects: ObjectStore
    layout: ArtifactLayout

    # --- cursor -------------------------------------------------------------------------------------
    def load_cursor(self) -> tuple[dict[str, Any], int]:
        """The saved state (empty when no purge is under way) and its version for the next save."""
        item = self.directory.get(keys.PURGE_CURSOR_KEY)
        if not item:
            return {}, 0
        return dict(item.get("state") or {}), int(item["version"])

    def save_cursor(self, state: dict[str, Any], version: int, updated_at: str) -> int:
        """Write the state if nobody saved since `version` was read; returns the new version."""
        try:
            self.directory.put({**keys.PURGE_CURSOR_KEY, "kind": "purge-cursor", "state": state,
                                "version": version + 1, "updated_at": updated_at},
                               condition=Condition.absent() if version == 0 else Condition.equals("version", version))
        except ConditionFailed as exc:
            raise CursorTaken() from exc
        return version + 1

    def drop_cursor(self, version: int) -> None:
        if version == 0:
            return
        try:
            self.directory.delete(keys.PURGE_CURSOR_KEY, condition=Condition.equals("version", version))
        except ConditionFailed as exc:
            raise CursorTaken() from exc

    # --- candidates ---------------------------------------------------------------------------------
    def scan_candidates(self, cutoff: str, start: Optional[dict[str, Any]],
                        page_size: int) -> tuple[list[Candidate], Optional[dict[str, Any]]]:
        """One Scan page of the experiments table: deleted experiments whose deletion is older than
        `cutoff` (ISO-8601 UTC strings of one format compare as times). Returns the next page's start."""
        found, following = self.experiments.scan_page(
            filter=Condition.begins_with("sk", keys.EXPERIMENT_SK) & Condition.equals("lifecycle_stage", DELETED)
            & Condition.less_than("deleted_at", cutoff),
            attributes=("tenant_id", "id", "deleted_at"), limit=page_size, start=start)
        return [Candidate(i["tenant_id"], i["id"], i["deleted_at"]) for i in found], following

    def experiment_state(self, tenant_id: str, experiment_id: str) -> Optional[dict[str, Any]]:
        """`lifecycle_stage` and `deleted_at` as stored now (strongly consistent), None if it is gone."""
        return self.experiments.get(keys.experiment_key(tenant_id, experiment_id),
                                    attributes=("lifecycle_stage", "deleted_at"))

    # --- runs ---------------------------------------------------------------------------------------
    def runs_after(self, tenant_id: str, experiment_id: str, after: Optional[str]) -> list[str]:
        """Run ids of the experiment after run `after` (ids sort), from the index: the ids found
        in the first index page that holds any RUN item; empty when no run is left."""
        partition = keys.runs_of_experiment_pk(tenant_id, experiment_id)
        sort = SortRange.after(keys.runs_after_index_sk(after)) if after else None
        start: Optional[dict[str, Any]] = None
        while True:
            items, start = self.runs.query_page(partition, sort, index=BY_EXPERIMENT,
                                                filter=Condition.equals("sk", keys.RUN_SK), attributes=("gsi1sk",),
                                                limit=RUN_INDEX_PAGE, start=start)
            found = [keys.run_of_index_sk(i["gsi1sk"]) for i in items]
            if found or start is None:
                return found

    def run_items(self, tenant_id: str, run_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` items of the run's partition in key order (artifacts, latest values, params,
        the run item, tags): each its `sk`, its `kind` ("run", "latest", ...) and, for latest
        values, the metric `key`."""
        items = self.runs.query(keys.run_pk(tenant_id, run_id), attributes=("sk", "key"), consistent=True,
                                limit=limit)
        return [{**item, "kind": keys.run_item_kind(item["sk"])} for item in items]

    def delete_chunks(self, tenant_id: str, run_id: str, key: str, limit: int, tally: Removed) -> int:
        """Delete up to `limit` items of one series (its chunks, then their summaries); fewer than `limit`
        means none are left."""
        found: list[dict[str, Any]] = []
        for pk in keys.metric_partitions(tenant_id, run_id, key):
            if len(found) < limit:
                found += self.metrics.query(pk, attributes=("pk", "sk"), consistent=True, limit=limit - len(found))
        self.metrics.batch_delete([{"pk": i["pk"], "sk": i["sk"]} for i in found])
        tally.add("metric_chunks", len(found))
        return len(found)

    def delete_run_items(self, tenant_id: str, run_id: str, sort_keys: list[str], tally: Removed) -> None:
        """Delete these items of the run (params, tags, artifact records, latest values whose
        chunks are gone); never the RUN item, which has its own step."""
        if keys.RUN_SK in sort_keys:
            raise ValueError("the RUN item is deleted last, by delete_run_item")
        pk = keys.run_pk(tenant_id, run_id)
        self.runs.batch_delete([{"pk": pk, "sk": sk} for sk in sort_keys])
        for sk in sort_keys:
            tally.add(_REPORT_KIND.get(keys.run_item_kind(sk), "other"))

    def delete_run_owner(self, tenant_id: str, run_id: str, tally: Removed) -> None:
        """The run's owner record, only if it is this tenant's."""
        try:
            removed = self.directory.delete(keys.owner_key(run_id), condition=owned_by(tenant_id))
        except ConditionFailed:
            return
        if removed is not None:
            tally.add("owners")

    def delete_run_item(self, tenant_id: str, run_id: str, tally: Removed) -> None:
        """The RUN item, last of the run: until it goes, the index still lists the run."""
        if self.runs.delete(keys.run_key(tenant_id, run_id)) is not None:
            tally.add("runs")

    # --- S3 -----------------------------------------------------------------------------------------
    def run_objects_prefix(self, tenant_id: str, run_id: str) -> Optional[str]:
        """Where the run's artifacts are (under its experiment's artifact location); None once it is gone."""
        item = self.runs.get(keys.run_key(tenant_id, run_id), attributes=("artifact_uri",))
        return self.layout.key_prefix(item["artifact_uri"]) if item else None

    @staticmethod
    def experiment_objects_prefix(tenant_id: str, experiment_id: str) -> str:
        """The experiment's own default prefix (a location chosen by the client may be shared: never swept)."""
        return keys.experiment_prefix(tenant_id, experiment_id)

    def delete_objects(self, prefix: str, start_after: Optional[str], limit: int,
                       tally: Removed) -> tuple[int, Optional[str]]:
        """Delete up to `limit` (at most 1,000) objects under a prefix, listing from `start_after`;
        returns how many and the last key deleted (None when there were none)."""
        listed = self.objects.list_keys(prefix, start_after, max(1, min(limit, S3_DELETE_LIMIT)))
        if not listed:
            return 0, None
        self.objects.delete_keys(listed)
        tally.add("objects", len(listed))
        return len(listed), listed[-1]

    # --- the experiment itself ----------------------------------------------------------------------
    def delete_experiment(self, tenant_id: str, experiment_id: str, deleted_at: str, tally: Removed) -> bool:
        """Delete the experiment item, its tag pages and its owner record, only if it is still the same
        deleted experiment (not restored, not deleted again since); False if it was not."""
        owner = self.directory.delete_action(keys.owner_key(experiment_id),
                                             condition=owned_by(tenant_id))
        experiment = self.experiments.delete_action(
            keys.experiment_key(tenant_id, experiment_id),
            condition=Condition.equals("lifecycle_stage", DELETED) & Condition.equals("deleted_at", deleted_at))
        stored = self.experiments.get(keys.experiment_key(tenant_id, experiment_id), attributes=("tag_pages",))
        pages = [self.experiments.delete_action(keys.experiment_tags_key(tenant_id, experiment_id, n))
                 for n in range(int((stored or {}).get("tag_pages", 0)))]
        try:
            self.experiments.transact([experiment, owner, *pages])
        except TransactionCancelled as exc:
            if exc.failed(0) or exc.failed(1):
                return False
            raise
        tally.add("experiments")
        tally.add("owners")
        return True
