"""Runs in DynamoDB: a run's partition holds its run item, one item per param, tag and latest metric
value, and its artifacts; one Query reads a whole run. Every item but the artifacts also carries
the experiment index keys, so one index Query reads every run of an experiment."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Optional

from chalicelib.domain.errors import Conflict
from chalicelib.domain.metrics import MetricPoint
from chalicelib.domain.records import ACTIVE, Artifact, Run
from chalicelib.store import keys
from chalicelib.store.directory import Directory
from chalicelib.store.dynamo import ConditionFailed, Table, TransactionCancelled, transact

BY_EXPERIMENT = "by_experiment"
TRANSACTION_LIMIT = 100
_DYNAMO_MAX = Decimal("9.7e125")  # DynamoDB numbers stop short of 1e126; doubles go to 1.8e308


class RunChanged(Exception):
    """The run was written by another request since it was read; read it again and retry."""


def value_order(value: float) -> Decimal:
    """A DynamoDB number that orders metric values as the latest rule does (NaN lowest)."""
    if math.isnan(value):
        return -_DYNAMO_MAX - 2
    if math.isinf(value):
        return _DYNAMO_MAX + 1 if value > 0 else -_DYNAMO_MAX - 1
    return max(-_DYNAMO_MAX, min(_DYNAMO_MAX, Decimal(repr(value))))


def _index(run: Run, sk: str) -> dict[str, str]:
    return {"gsi1pk": keys.runs_of_experiment_pk(run.tenant_id, run.experiment_id), "gsi1sk": f"{run.id}#{sk}"}


def _run_values(run: Run) -> dict[str, Any]:
    return {
        **keys.run_key(run.tenant_id, run.id), **_index(run, "RUN"), "kind": "run", "tenant_id": run.tenant_id,
        "id": run.id, "experiment_id": run.experiment_id, "name": run.name, "description": run.description,
        "status": run.status, "start_time": run.start_time, "end_time": run.end_time,
        "artifact_uri": run.artifact_uri, "version": run.version,
    }


def _assemble(items: Iterable[dict[str, Any]]) -> list[Run]:
    """Runs from their items, in the order their run items come."""
    runs: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for item in items:
        run_id = item["pk"].rsplit("#R#", 1)[-1]
        parts = runs.setdefault(run_id, {"params": {}, "tags": {}, "latest": {}})
        sk = item["sk"]
        if sk == "RUN":
            parts["run"] = item
            order.append(run_id)
        elif sk.startswith("P#"):
            parts["params"][item["key"]] = item["value"]
        elif sk.startswith("T#"):
            parts["tags"][item["key"]] = item["value"]
        elif sk.startswith("L#"):
            parts["latest"][item["key"]] = MetricPoint.from_row([item["step"], item["ts"], json.loads(item["value"])])
    result = []
    for run_id in order:
        parts = runs[run_id]
        item = parts["run"]
        result.append(Run(
            tenant_id=item["tenant_id"], id=item["id"], experiment_id=item["experiment_id"], name=item["name"],
            description=item.get("description", ""), status=item["status"], start_time=item["start_time"],
            end_time=item.get("end_time"), artifact_uri=item["artifact_uri"], params=parts["params"],
            tags=parts["tags"], latest=parts["latest"], version=int(item.get("version", 0))))
    return result


@dataclass
class RunStore:
    Changed = RunChanged

    table: Table
    experiments: Table
    directory: Directory

    def get(self, tenant_id: str, run_id: str) -> Optional[Run]:
        """The run with its params, tags and latest values: one Query ('L#' < 'P#' < 'RUN' < 'T#'; artifacts excluded)."""
        items = self.table.query("pk = :pk AND sk >= :from", {}, {":pk": keys.run_pk(tenant_id, run_id), ":from": "L#"},
                                 consistent=True)
        runs = _assemble(items)
        return runs[0] if runs else None

    def list_for_experiment(self, tenant_id: str, experiment_id: str) -> list[Run]:
        """Newest first (run ids are ULIDs), with params, tags and latest values: one index Query."""
        items = self.table.query("gsi1pk = :pk", {}, {":pk": keys.runs_of_experiment_pk(tenant_id, experiment_id)},
                                 index=BY_EXPERIMENT, forward=False)
        return _assemble(items)

    def create(self, run: Run) -> None:
        """Write a new run, in one transaction with the check that its experiment is active."""
        actions = [
            self.experiments.check_action(keys.experiment_key(run.tenant_id, run.experiment_id),
                                          condition="lifecycle_stage = :active", params={":active": ACTIVE}),
            self.table.put_action(_run_values(run), condition="attribute_not_exists(pk)"),
            self.directory.owner_action(run.id, run.tenant_id, "run"),
        ]
        try:
            transact(self.table.client, actions)
        except TransactionCancelled as exc:
            if exc.reasons[0] == "ConditionalCheckFailed":
                raise Conflict(f"experiment {run.experiment_id} is deleted; restore it before adding runs") from exc
            raise
        self.put_tags(run, run.tags)

    def replace(self, old: Run, new: Run) -> None:
        """Write the run item of `new` only if the stored version is still `old`'s (optimistic locking)."""
        try:
            self.table.put(_run_values(new), condition="version = :v", params={":v": old.version})
        except ConditionFailed as exc:
            raise RunChanged(old.id) from exc

    def put_params(self, run: Run, params: dict[str, str]) -> None:
        """Write-once params in one transaction: a key already holding another value cancels them all (409)."""
        pairs = sorted(params.items())
        for start in range(0, len(pairs), TRANSACTION_LIMIT):
            batch = pairs[start : start + TRANSACTION_LIMIT]
            actions = [self.table.put_action(
                {"pk": keys.run_pk(run.tenant_id, run.id), "sk": f"P#{key}", **_index(run, f"P#{key}"),
                 "key": key, "value": value},
                condition="attribute_not_exists(pk) OR #v = :v", names={"#v": "value"}, params={":v": value})
                for key, value in batch]
            try:
                transact(self.table.client, actions)
            except TransactionCancelled as exc:
                clashes = [key for (key, _), reason in zip(batch, exc.reasons) if reason == "ConditionalCheckFailed"]
                if clashes:
                    raise Conflict(f"params {', '.join(map(repr, clashes))} already have other values; "
                                   "params are write-once") from exc
                raise

    def put_tags(self, run: Run, tags: dict[str, str]) -> None:
        self.table.batch_put([{"pk": keys.run_pk(run.tenant_id, run.id), "sk": f"T#{key}", **_index(run, f"T#{key}"),
                               "key": key, "value": value} for key, value in sorted(tags.items())])

    def raise_latest(self, run: Run, key: str, point: MetricPoint) -> bool:
        """Make `point` the key's latest value unless a later (step, timestamp, value) is stored."""
        order = value_order(point.value)
        try:
            self.table.update(
                {"pk": keys.run_pk(run.tenant_id, run.id), "sk": f"L#{key}"},
                "SET #k = :k, step = :s, ts = :t, #v = :v, vo = :o, gsi1pk = :gpk, gsi1sk = :gsk",
                condition="attribute_not_exists(pk) OR step < :s OR (step = :s AND ts < :t) "
                          "OR (step = :s AND ts = :t AND vo < :o)",
                names={"#k": "key", "#v": "value"},
                params={":k": key, ":s": point.step, ":t": point.timestamp, ":v": json.dumps(point.to_row()[2]), ":o": order,
                        ":gpk": keys.runs_of_experiment_pk(run.tenant_id, run.experiment_id),
                        ":gsk": f"{run.id}#L#{key}"})
        except ConditionFailed:
            return False
        return True

    def remove(self, tenant_id: str, run_id: str) -> list[str]:
        """Delete every item of the run (artifact records included) and its owner record.

        Returns the run's metric keys, so the caller can remove their chunks too.
        """
        items = list(self.table.query("pk = :pk", {}, {":pk": keys.run_pk(tenant_id, run_id)}, consistent=True))
        metric_keys = [i["key"] for i in items if i["sk"].startswith("L#")]
        self.table.batch_delete([{"pk": i["pk"], "sk": i["sk"]} for i in items])
        self.directory.forget(run_id)
        return metric_keys

    def put_artifact(self, tenant_id: str, run_id: str, artifact: Artifact) -> None:
        self.table.put({**keys.artifact_key(tenant_id, run_id, artifact.path), "kind": "artifact", "path": artifact.path,
                        "size": artifact.size, "last_modified": artifact.last_modified, "checksum": artifact.checksum})

    def get_artifact(self, tenant_id: str, run_id: str, path: str) -> Optional[Artifact]:
        item = self.table.get(keys.artifact_key(tenant_id, run_id, path))
        return _artifact(item) if item else None

    def list_artifacts(self, tenant_id: str, run_id: str) -> list[Artifact]:
        items = self.table.query("pk = :pk AND begins_with(sk, :prefix)", {},
                                 {":pk": keys.run_pk(tenant_id, run_id), ":prefix": "A#"})
        return [_artifact(item) for item in items]


def _artifact(item: dict[str, Any]) -> Artifact:
    return Artifact(path=item["path"], size=int(item["size"]), last_modified=item["last_modified"],
                    checksum=item.get("checksum"))
