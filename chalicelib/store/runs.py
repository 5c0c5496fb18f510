"""Runs in DynamoDB: a run's partition holds its run item, one item per param, tag and latest metric
value, and its artifacts; one Query reads a whole run. Every item but the artifacts also carries
the experiment index keys, so one index Query reads every run of an experiment."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterable, Optional

from chalicelib.domain.errors import Conflict, StaleRecord, Throttled
from chalicelib.domain.tracking.metrics import MetricPoint, SeriesState, advanced
from chalicelib.domain.tracking.records import ACTIVE, Run
from chalicelib.store import keys
from chalicelib.store.dynamo import TRANSACTION_LIMIT, ConditionFailed, Table, TransactionCancelled
from chalicelib.store.expressions import Condition, Index, SortRange

if TYPE_CHECKING:
    from chalicelib.store.directory import Directory

BY_EXPERIMENT = Index(keys.BY_EXPERIMENT, "gsi1pk", "gsi1sk")
RUNS_OF_EXPERIMENT = Index(keys.RUNS_OF_EXPERIMENT, "gsi2pk", "gsi2sk")
SERIES_ATTEMPTS = 8  # rounds of re-reading series records other requests wrote meanwhile
_DYNAMO_MAX = Decimal("9.7e125")  # DynamoDB numbers stop short of 1e126; doubles go to 1.8e308
_DYNAMO_MIN = Decimal("1e-130")  # and the smallest magnitude they hold; doubles go to 5e-324


def value_order(value: float) -> Decimal:
    """A DynamoDB number that orders metric values as the latest rule does (NaN lowest)."""
    if math.isnan(value):
        return -_DYNAMO_MAX - 2
    if math.isinf(value):
        return _DYNAMO_MAX + 1 if value > 0 else -_DYNAMO_MAX - 1
    number = Decimal(repr(value))
    if number and abs(number) < _DYNAMO_MIN:  # nearer zero than DynamoDB's numbers go: the nearest of them
        return _DYNAMO_MIN.copy_sign(number)
    return max(-_DYNAMO_MAX, min(_DYNAMO_MAX, number))


def _index(run: Run, sk: str) -> dict[str, str]:
    return keys.run_index_keys(run.tenant_id, run.experiment_id, run.id, sk)


def _run_values(run: Run) -> dict[str, Any]:
    return {
        **keys.run_key(run.tenant_id, run.id), **_index(run, keys.RUN_SK),
        **keys.run_only_index_keys(run.tenant_id, run.experiment_id, run.id), "kind": "run", "tenant_id": run.tenant_id,
        "id": run.id, "experiment_id": run.experiment_id, "name": run.name, "description": run.description,
        "status": run.status, "start_time": run.start_time, "end_time": run.end_time,
        "artifact_uri": run.artifact_uri, "lifecycle_stage": run.lifecycle_stage, "version": run.version,
    }


def _assemble(items: Iterable[dict[str, Any]]) -> list[Run]:
    """Runs from their items, in the order their run items come."""
    runs: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for item in items:
        run_id = keys.run_id_of(item["pk"])
        parts = runs.setdefault(run_id, {"params": {}, "tags": {}, "latest": {}})
        kind = keys.run_item_kind(item["sk"])
        if kind == "run":
            parts["run"] = item
            order.append(run_id)
        elif kind == "param":
            parts["params"][item["key"]] = item["value"]
        elif kind == "tag":
            parts["tags"][item["key"]] = item["value"]
        elif kind == "latest":
            state = _series(item)
            parts["latest"][item["key"]] = state.latest
            parts.setdefault("series", {})[item["key"]] = state
    result = []
    for run_id in order:
        parts = runs[run_id]
        item = parts["run"]
        result.append(Run(
            tenant_id=item["tenant_id"], id=item["id"], experiment_id=item["experiment_id"], name=item["name"],
            description=item.get("description", ""), status=item["status"], start_time=item["start_time"],
            end_time=item.get("end_time"), artifact_uri=item["artifact_uri"],
            lifecycle_stage=item.get("lifecycle_stage", ACTIVE), params=parts["params"],
            tags=parts["tags"], latest=parts["latest"], version=int(item.get("version", 0)),
            series=parts.get("series", {})))
    return result


def _series(item: dict[str, Any]) -> SeriesState:
    point = MetricPoint.from_row([item["step"], item["ts"], json.loads(item["value"])])
    return SeriesState(point, int(item["span"]) if item.get("span") is not None else None, int(item.get("v", 0)))


def _series_values(run: Run, key: str, state: SeriesState) -> dict[str, Any]:
    point = state.latest
    return {**keys.latest_key(run.tenant_id, run.id, key), **_index(run, keys.LATEST_SK + key), "key": key,
            "step": point.step, "ts": point.timestamp, "value": json.dumps(point.to_row()[2]),
            "vo": value_order(point.value), "span": state.span, "v": state.version}


@dataclass
class RunStore:
    table: Table
    experiments: Table
    directory: Directory

    def get(self, tenant_id: str, run_id: str) -> Optional[Run]:
        """The run with its params, tags and latest values: one Query (artifacts excluded)."""
        items = self.table.query(keys.run_pk(tenant_id, run_id), SortRange.starting_at(keys.RUN_ITEMS_FROM),
                                 consistent=True)
        runs = _assemble(items)
        return runs[0] if runs else None

    def page_for_experiment(self, tenant_id: str, experiment_id: str, status: Optional[str], limit: int,
                            offset: int) -> tuple[list[Run], int]:
        """Newest first: the page's runs whole, and how many match. The run-only index (ids and status,
        a few dozen bytes a run) finds the page; one index range then reads that page's runs."""
        ids = [i["gsi2sk"] for i in self.table.query(keys.runs_of_experiment_pk(tenant_id, experiment_id),
                                                      index=RUNS_OF_EXPERIMENT, forward=False)
               if status is None or i.get("status") == status]
        page = ids[offset:offset + limit]
        if not page:
            return [], len(ids)
        items = self.table.query(keys.runs_of_experiment_pk(tenant_id, experiment_id),
                                 SortRange.between(page[-1], keys.runs_after_index_sk(page[0])), index=BY_EXPERIMENT,
                                 forward=False)
        wanted = set(page)
        return [r for r in _assemble(items) if r.id in wanted], len(ids)

    def every_run_of_experiment(self, tenant_id: str, experiment_id: str) -> list[Run]:
        """Every run of the experiment whole, with params, tags and latest values: one index Query (pages of
        1 MB). For searches whose filter or order reaches any param, tag or metric."""
        return _assemble(self.table.query(keys.runs_of_experiment_pk(tenant_id, experiment_id), index=BY_EXPERIMENT))

    def create(self, run: Run) -> None:
        """Write a new run with its tags, in one transaction with the check that its experiment is active:
        a create that fails leaves nothing, so the client's retry makes exactly one run."""
        actions = [
            self.experiments.check_action(keys.experiment_key(run.tenant_id, run.experiment_id),
                                          condition=Condition.equals("lifecycle_stage", ACTIVE)),
            self.table.put_action(_run_values(run), condition=Condition.absent()),
            self.directory.owner_action(run.id, run.tenant_id, "run"),
        ]
        tags = self._tag_values(run, run.tags)
        room = TRANSACTION_LIMIT - len(actions)
        actions += [self.table.put_action(values) for values in tags[:room]]
        early = tags[room:]
        if early:  # beyond one transaction: written first, taken back if the run is not created
            self.table.batch_put(early)
        try:
            self.table.transact(actions)
        except BaseException as exc:
            if early:
                self.table.batch_delete([{"pk": v["pk"], "sk": v["sk"]} for v in early])
            if isinstance(exc, TransactionCancelled) and exc.failed(0):
                raise Conflict(f"experiment {run.experiment_id} is deleted; restore it before adding runs") from exc
            raise

    def delete_tag(self, run: Run, key: str) -> bool:
        """Remove one tag, guarded by the experiment being active; whether the run had it."""
        if key not in run.tags:
            return False
        try:
            self.table.transact([self._active_check(run),
                                 self.table.delete_action(keys.tag_key(run.tenant_id, run.id, key))])
        except TransactionCancelled as exc:
            raise Conflict(f"experiment {run.experiment_id} is deleted; restore it first") from exc
        return True

    def replace(self, old: Run, new: Run) -> None:
        """Write the run item of `new` only if the stored version is still `old`'s (optimistic locking)."""
        try:
            self.table.put(_run_values(new), condition=Condition.equals("version", old.version))
        except ConditionFailed as exc:
            raise StaleRecord(old.id) from exc

    def write_log(self, run: Run, params: dict[str, str], tags: dict[str, str],
                  series: dict[str, tuple[MetricPoint, int]]) -> None:
        """Params (write-once), tags and each series' latest point and span, in transactions guarded by the
        experiment being active: a deleted experiment or a param clash (409) leaves nothing written.

        A series record another request wrote since `run` was read is read again and merged
        (`advanced`): latest values and spans never go back, whatever the interleaving.
        """
        states = dict(run.series)
        actions = [("param", k) for k in sorted(params)] + [("tag", k) for k in sorted(tags)] + \
            [("series", k) for k in sorted(series)]
        room = TRANSACTION_LIMIT - 1  # the experiment's check opens every transaction
        for start in range(0, max(1, len(actions)), room):
            part = actions[start:start + room]
            for attempt in range(SERIES_ATTEMPTS):
                built, keys_in = self._log_actions(run, part, params, tags, series, states)
                try:
                    self.table.transact([self._active_check(run), *built])
                    break
                except TransactionCancelled as exc:
                    if exc.failed(0):
                        raise Conflict(f"experiment {run.experiment_id} is deleted; restore it first") from exc
                    clashes = [k for i, (kind, k) in enumerate(keys_in) if kind == "param" and exc.failed(i + 1)]
                    if clashes:
                        raise Conflict(f"params {', '.join(map(repr, clashes))} already have other values; "
                                       "params are write-once") from exc
                    stale = [k for i, (kind, k) in enumerate(keys_in) if kind == "series" and exc.failed(i + 1)]
                    if not stale or attempt == SERIES_ATTEMPTS - 1:
                        raise Throttled("the run is being written by many requests at once; retry") from exc
                    states.update(self._read_series(run, stale))

    def _log_actions(self, run: Run, part: list[tuple[str, str]], params: dict[str, str],
                     tags: dict[str, str], series: dict[str, tuple[MetricPoint, int]],
                     states: dict[str, SeriesState]) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        built, keys_in = [], []
        for kind, key in part:
            if kind == "param":
                built.append(self.table.put_action(
                    {**keys.param_key(run.tenant_id, run.id, key), **_index(run, keys.PARAM_SK + key), "key": key,
                     "value": params[key]}, condition=Condition.absent() | Condition.equals("value", params[key])))
            elif kind == "tag":
                built.append(self.table.put_action({**keys.tag_key(run.tenant_id, run.id, key),
                                                    **_index(run, keys.TAG_SK + key), "key": key, "value": tags[key]}))
            else:
                stored = states.get(key)
                new = advanced(stored, *series[key])
                if new is None:
                    continue
                # the record as read, or none at all (a record from before versions has no "v")
                condition = Condition.absent() if stored is None else Condition.equals("v", stored.version) \
                    if stored.version else Condition.absent("v")
                built.append(self.table.put_action(_series_values(run, key, new), condition=condition))
            keys_in.append((kind, key))
        return built, keys_in

    def _active_check(self, run: Run) -> dict[str, Any]:
        return self.experiments.check_action(keys.experiment_key(run.tenant_id, run.experiment_id),
                                             condition=Condition.equals("lifecycle_stage", ACTIVE))

    def _read_series(self, run: Run, metric_keys: list[str]) -> dict[str, SeriesState]:
        items = self.table.batch_get([keys.latest_key(run.tenant_id, run.id, k) for k in metric_keys])
        return {item["key"]: _series(item) for item in items}

    @staticmethod
    def _tag_values(run: Run, tags: dict[str, str]) -> list[dict[str, Any]]:
        return [{**keys.tag_key(run.tenant_id, run.id, key), **_index(run, keys.TAG_SK + key), "key": key,
                 "value": value} for key, value in sorted(tags.items())]

    def remove(self, tenant_id: str, run_id: str) -> list[str]:
        """Delete every item of the run (artifact records included) and its owner record.

        Returns the run's metric keys, so the caller can remove their chunks too.
        """
        items = list(self.table.query(keys.run_pk(tenant_id, run_id), consistent=True, attributes=("pk", "sk", "key")))
        metric_keys = [i["key"] for i in items if keys.run_item_kind(i["sk"]) == "latest"]
        self.table.batch_delete([{"pk": i["pk"], "sk": i["sk"]} for i in items])
        self.directory.forget(run_id)
        return metric_keys
