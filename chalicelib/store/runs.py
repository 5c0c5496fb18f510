"""Runs in DynamoDB: one item per run (params, tags and latest metrics inside), artifacts beside it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from chalicelib.domain.errors import Conflict
from chalicelib.domain.metrics import MetricPoint
from chalicelib.domain.records import ACTIVE, Artifact, Run
from chalicelib.store import keys
from chalicelib.store.directory import Directory
from chalicelib.store.dynamo import ConditionFailed, Table, TransactionCancelled, transact

BY_EXPERIMENT = "by_experiment"


class RunChanged(Exception):
    """The run was written by another request since it was read; read it again and retry."""


def _to_values(run: Run) -> dict[str, Any]:
    return {
        **keys.run_key(run.tenant_id, run.id),
        # sparse index: only run items carry it, so listing an experiment's runs reads runs only
        "gsi1pk": keys.runs_of_experiment_pk(run.tenant_id, run.experiment_id),
        "gsi1sk": run.id,
        "kind": "run",
        "tenant_id": run.tenant_id,
        "id": run.id,
        "experiment_id": run.experiment_id,
        "name": run.name,
        "description": run.description,
        "status": run.status,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "artifact_uri": run.artifact_uri,
        "params": dict(run.params),
        "tags": dict(run.tags),
        # JSON text, not a number map: NaN and Infinity are not DynamoDB numbers
        "latest": json.dumps({k: p.to_row() for k, p in run.latest.items()}, separators=(",", ":")),
        "version": run.version,
    }


def _from_values(item: dict[str, Any]) -> Run:
    return Run(
        tenant_id=item["tenant_id"], id=item["id"], experiment_id=item["experiment_id"], name=item["name"],
        description=item.get("description", ""), status=item["status"], start_time=item["start_time"],
        end_time=item.get("end_time"), artifact_uri=item["artifact_uri"], params=dict(item.get("params", {})),
        tags=dict(item.get("tags", {})),
        latest={k: MetricPoint.from_row(row) for k, row in json.loads(item.get("latest", "{}")).items()},
        version=int(item.get("version", 0)),
    )


@dataclass
class RunStore:
    Changed = RunChanged

    table: Table
    experiments: Table
    directory: Directory

    def get(self, tenant_id: str, run_id: str) -> Optional[Run]:
        item = self.table.get(keys.run_key(tenant_id, run_id))
        return _from_values(item) if item else None

    def list_for_experiment(self, tenant_id: str, experiment_id: str) -> list[Run]:
        """Newest first: run ids are ULIDs, so the index's sort key is the creation order."""
        items = self.table.query("gsi1pk = :pk", {}, {":pk": keys.runs_of_experiment_pk(tenant_id, experiment_id)},
                                 index=BY_EXPERIMENT, forward=False)
        return [_from_values(item) for item in items]

    def create(self, run: Run) -> None:
        """Write a new run, in one transaction with the check that its experiment is active."""
        actions = [
            self.experiments.check_action(keys.experiment_key(run.tenant_id, run.experiment_id),
                                          condition="lifecycle_stage = :active", params={":active": ACTIVE}),
            self.table.put_action(_to_values(run), condition="attribute_not_exists(pk)"),
            self.directory.owner_action(run.id, run.tenant_id, "run"),
        ]
        try:
            transact(self.table.client, actions)
        except TransactionCancelled as exc:
            if exc.reasons[0] == "ConditionalCheckFailed":
                raise Conflict(f"experiment {run.experiment_id} is deleted; restore it before adding runs") from exc
            raise

    def replace(self, old: Run, new: Run) -> None:
        """Write `new` over `old` only if the stored version is still `old`'s (optimistic locking)."""
        try:
            self.table.put(_to_values(new), condition="version = :v", params={":v": old.version})
        except ConditionFailed as exc:
            raise RunChanged(old.id) from exc

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
