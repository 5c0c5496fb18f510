"""Permanent removal of archived experiments: the storage side of the daily purge.

Every method does a bounded amount of work (at most `limit` deletions) and counts what it deleted
in the `tally` it is given, so the domain (`chalicelib.domain.purge`) decides how much to do per
invocation and when to stop.
Everything is found again from the tables themselves (consistent reads, items deleted as they are
found), so a step repeated after a crash deletes nothing twice and misses nothing.

Where the data is, for one experiment `E` of tenant `T`:
- experiments table: `T#T / EXP#E` (deleted last of all, together with its owner record);
- runs table: each run `R` of `E` is found through the `by_experiment` index (`T#T#E#E`); its
  partition `T#T#R#R` holds `L#<key>` (latest value per metric key), `P#`, `T#`, `A#` items and
  the `RUN` item, which goes last so an interrupted run is still found through the index;
- metrics table: chunks under `T#T#R#R#M#<key>` for every key named by an `L#` item;
- directory table: owner records `ID#R` and `ID#E`;
- S3: everything under `tenants/T/experiments/E/`.

The purge cursor is a system item of the directory table, the one table whose keys are not led by
a tenant (it already holds API keys and owner records): `pk=SYS#PURGE, sk=CURSOR`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.domain.purge import Candidate, CursorTaken, Removed
from chalicelib.domain.records import DELETED
from chalicelib.store import keys
from chalicelib.store.dynamo import ConditionFailed, Table, TransactionCancelled, from_item, to_item, transact
from chalicelib.store.runs import BY_EXPERIMENT

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CURSOR_KEY = {"pk": "SYS#PURGE", "sk": "CURSOR"}
S3_DELETE_LIMIT = 1_000  # DeleteObjects takes at most 1,000 keys
_AFTER_RUN = "$"  # sorts right after '#': `<run>$` is past every `<run>#...` index key of that run
RUN_INDEX_PAGE = 500  # index items read per Query when looking for the next runs

# run partition sort-key prefix -> what the item is, for the report
_RUN_ITEM_KINDS = {"L#": "latest_values", "P#": "params", "T#": "tags", "A#": "artifacts"}


@dataclass
class PurgeStore:
    experiments: Table
    runs: Table
    metrics: Table
    directory: Table
    s3: S3Client
    bucket: str

    # --- cursor -------------------------------------------------------------------------------------
    def load_cursor(self) -> tuple[dict[str, Any], int]:
        """The saved state (empty when no purge is under way) and its version for the next save."""
        item = self.directory.get(CURSOR_KEY)
        if not item:
            return {}, 0
        return dict(item.get("state") or {}), int(item["version"])

    def save_cursor(self, state: dict[str, Any], version: int, updated_at: str) -> int:
        """Write the state if nobody saved since `version` was read; returns the new version."""
        condition, params = ("attribute_not_exists(pk)", None) if version == 0 else ("version = :v", {":v": version})
        try:
            self.directory.put({**CURSOR_KEY, "kind": "purge-cursor", "state": state, "version": version + 1,
                                "updated_at": updated_at}, condition=condition, params=params)
        except ConditionFailed as exc:
            raise CursorTaken() from exc
        return version + 1

    def drop_cursor(self, version: int) -> None:
        if version == 0:
            return
        try:
            self.directory.client.delete_item(TableName=self.directory.name, Key=to_item(CURSOR_KEY),
                                              ConditionExpression="version = :v",
                                              ExpressionAttributeValues=to_item({":v": version}))
        except self.directory.client.exceptions.ConditionalCheckFailedException as exc:
            raise CursorTaken() from exc

    # --- candidates ---------------------------------------------------------------------------------
    def scan_candidates(self, cutoff: str, start: Optional[dict[str, Any]],
                        page_size: int) -> tuple[list[Candidate], Optional[dict[str, Any]]]:
        """One Scan page of the experiments table: deleted experiments whose deletion is older than
        `cutoff` (ISO-8601 UTC strings of one format compare as times). Returns the next page's start."""
        kwargs: dict[str, Any] = {
            "TableName": self.experiments.name,
            "Limit": page_size,
            "FilterExpression": "begins_with(sk, :exp) AND lifecycle_stage = :deleted AND deleted_at < :cutoff",
            "ProjectionExpression": "tenant_id, #id, deleted_at",
            "ExpressionAttributeNames": {"#id": "id"},
            "ExpressionAttributeValues": to_item({":exp": "EXP#", ":deleted": DELETED, ":cutoff": cutoff}),
        }
        if start:
            kwargs["ExclusiveStartKey"] = to_item(start)
        page = self.experiments.client.scan(**kwargs)
        found = [from_item(i) for i in page.get("Items", [])]
        following = from_item(page["LastEvaluatedKey"]) if "LastEvaluatedKey" in page else None
        return [Candidate(i["tenant_id"], i["id"], i["deleted_at"]) for i in found], following

    def experiment_state(self, tenant_id: str, experiment_id: str) -> Optional[dict[str, Any]]:
        """`lifecycle_stage` and `deleted_at` as stored now (strongly consistent), None if it is gone."""
        return self.experiments.get(keys.experiment_key(tenant_id, experiment_id),
                                    projection="lifecycle_stage, deleted_at")

    # --- runs ---------------------------------------------------------------------------------------
    def runs_after(self, tenant_id: str, experiment_id: str, after: Optional[str]) -> list[str]:
        """Run ids of the experiment after run `after` (ids sort), from the index: the ids found
        in the first index page that holds any RUN item; empty when no run is left."""
        kwargs: dict[str, Any] = {
            "TableName": self.runs.name, "IndexName": BY_EXPERIMENT, "Limit": RUN_INDEX_PAGE,
            "KeyConditionExpression": "gsi1pk = :pk", "FilterExpression": "sk = :run",
            "ProjectionExpression": "gsi1sk",
        }
        params: dict[str, Any] = {":pk": keys.runs_of_experiment_pk(tenant_id, experiment_id), ":run": "RUN"}
        if after:
            kwargs["KeyConditionExpression"] += " AND gsi1sk > :after"
            params[":after"] = after + _AFTER_RUN
        kwargs["ExpressionAttributeValues"] = to_item(params)
        while True:
            page = self.runs.client.query(**kwargs)
            found = [from_item(i)["gsi1sk"].split("#", 1)[0] for i in page.get("Items", [])]
            if found or "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def run_items(self, tenant_id: str, run_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` items of the run's partition (`sk`, and `key` for latest values), in key
        order: 'A#' < 'L#' < 'P#' < 'RUN' < 'T#'."""
        return list(self.runs.query("pk = :pk", {"#k": "key"}, {":pk": keys.run_pk(tenant_id, run_id)},
                                    projection="sk, #k", consistent=True, limit=limit))

    def delete_chunks(self, tenant_id: str, run_id: str, key: str, limit: int, tally: Removed) -> int:
        """Delete up to `limit` chunks of one series; fewer than `limit` means none are left."""
        found = list(self.metrics.query("pk = :pk", {}, {":pk": keys.metric_pk(tenant_id, run_id, key)},
                                        projection="pk, sk", consistent=True, limit=limit))
        self.metrics.batch_delete([{"pk": i["pk"], "sk": i["sk"]} for i in found])
        tally.add("metric_chunks", len(found))
        return len(found)

    def delete_run_items(self, tenant_id: str, run_id: str, sort_keys: list[str], tally: Removed) -> None:
        """Delete these items of the run (params, tags, artifact records, latest values whose
        chunks are gone); never the RUN item, which has its own step."""
        if "RUN" in sort_keys:
            raise ValueError("the RUN item is deleted last, by delete_run_item")
        pk = keys.run_pk(tenant_id, run_id)
        self.runs.batch_delete([{"pk": pk, "sk": sk} for sk in sort_keys])
        for sk in sort_keys:
            tally.add(_RUN_ITEM_KINDS.get(sk[:2], "other"))

    def delete_run_owner(self, tenant_id: str, run_id: str, tally: Removed) -> None:
        if self._delete_existing(self.directory, keys.owner_key(run_id), tenant_id):
            tally.add("owners")

    def delete_run_item(self, tenant_id: str, run_id: str, tally: Removed) -> None:
        """The RUN item, last of the run: until it goes, the index still lists the run."""
        if self._delete_existing(self.runs, keys.run_key(tenant_id, run_id)):
            tally.add("runs")

    # --- S3 -----------------------------------------------------------------------------------------
    def delete_objects(self, tenant_id: str, experiment_id: str, start_after: Optional[str], limit: int,
                       tally: Removed) -> tuple[int, Optional[str]]:
        """Delete up to `limit` (at most 1,000) objects under the experiment's prefix, listing from
        `start_after`; returns how many and the last key deleted (None when there were none)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": keys.experiment_prefix(tenant_id, experiment_id),
                                  "MaxKeys": max(1, min(limit, S3_DELETE_LIMIT))}
        if start_after:
            kwargs["StartAfter"] = start_after
        listed = [o["Key"] for o in self.s3.list_objects_v2(**kwargs).get("Contents", [])]
        if not listed:
            return 0, None
        result = self.s3.delete_objects(Bucket=self.bucket,
                                        Delete={"Objects": [{"Key": k} for k in listed], "Quiet": True})
        errors = result.get("Errors", [])
        if errors:
            raise RuntimeError(f"S3 refused to delete {len(errors)} objects, e.g. {errors[0].get('Key')!r}: "
                               f"{errors[0].get('Code')}")
        tally.add("objects", len(listed))
        return len(listed), listed[-1]

    # --- the experiment itself ----------------------------------------------------------------------
    def delete_experiment(self, tenant_id: str, experiment_id: str, deleted_at: str, tally: Removed) -> bool:
        """Delete the experiment item and its owner record, only if it is still the same deleted
        experiment (not restored, not deleted again since); False if it was not."""
        owner = self.directory.delete_action(keys.owner_key(experiment_id),
                                             condition="attribute_not_exists(pk) OR tenant_id = :t",
                                             params={":t": tenant_id})
        experiment = self.experiments.delete_action(
            keys.experiment_key(tenant_id, experiment_id),
            condition="lifecycle_stage = :deleted AND deleted_at = :at",
            params={":deleted": DELETED, ":at": deleted_at})
        try:
            transact(self.experiments.client, [experiment, owner])
        except TransactionCancelled as exc:
            if "ConditionalCheckFailed" in exc.reasons:
                return False
            raise
        tally.add("experiments")
        tally.add("owners")
        return True

    def _delete_existing(self, table: Table, key: dict[str, Any], tenant_id: Optional[str] = None) -> bool:
        """Delete one item; True if it was there. With `tenant_id`, only an owner record of that tenant."""
        kwargs: dict[str, Any] = {"TableName": table.name, "Key": to_item(key), "ReturnValues": "ALL_OLD"}
        if tenant_id is not None:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk) OR tenant_id = :t"
            kwargs["ExpressionAttributeValues"] = to_item({":t": tenant_id})
        try:
            return "Attributes" in table.client.delete_item(**kwargs)
        except table.client.exceptions.ConditionalCheckFailedException:
            return False
