"""Simulation configs and simulation experiments in DynamoDB, each under its tenant."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from chalicelib.domain.errors import Conflict
from chalicelib.domain.sim_records import RunControl, SimExperiment, SimStatus, StoredConfig
from chalicelib.store import keys
from chalicelib.store.directory import Directory
from chalicelib.store.dynamo import ConditionFailed, Table, TransactionCancelled, transact

_ACTIVE = (int(SimStatus.NOT_STARTED), int(SimStatus.RUNNING))


def _config_values(cfg: StoredConfig) -> dict[str, Any]:
    return {**keys.config_key(cfg.tenant_id, cfg.kind, cfg.id), "tenant_id": cfg.tenant_id, "kind": cfg.kind,
            "id": cfg.id, "name": cfg.name, "description": cfg.description, "config": json.dumps(cfg.config),
            "created_at": cfg.created_at, "updated_at": cfg.updated_at, "secret": cfg.secret}


def _config(item: dict[str, Any]) -> StoredConfig:
    secret = item.get("secret")
    return StoredConfig(tenant_id=item["tenant_id"], kind=item["kind"], id=item["id"], name=item["name"],
                        description=item.get("description", ""), config=json.loads(item["config"]),
                        created_at=item["created_at"], updated_at=item["updated_at"],
                        secret=bytes(secret) if secret is not None else None)


_SIM_FIELDS = ("id", "name", "num_day", "cur_day", "config", "error", "input_tokens", "output_tokens", "created_at",
               "updated_at", "engine", "tracking_run_id", "llm_billed", "stop_requested", "execution_arn",
               "started_at", "ended_at", "ticks_done")


def _sim_values(exp: SimExperiment) -> dict[str, Any]:
    values = {name: getattr(exp, name) for name in _SIM_FIELDS}
    return {**keys.simulation_key(exp.tenant_id, exp.id), "tenant_id": exp.tenant_id, "kind": "simulation",
            "status": int(exp.status), "cur_t": str(exp.cur_t), **values}


def _sim(item: dict[str, Any]) -> SimExperiment:
    return SimExperiment(
        tenant_id=item["tenant_id"], id=item["id"], name=item["name"], status=SimStatus(int(item["status"])),
        cur_day=int(item["cur_day"]), cur_t=float(item["cur_t"]), config=item["config"], error=item.get("error", ""),
        input_tokens=int(item.get("input_tokens", 0)), output_tokens=int(item.get("output_tokens", 0)),
        created_at=item["created_at"], updated_at=item["updated_at"], engine=item["engine"],
        tracking_run_id=item["tracking_run_id"], llm_billed=bool(item.get("llm_billed", False)),
        num_day=int(item.get("num_day", 0)), stop_requested=bool(item.get("stop_requested", False)),
        execution_arn=item.get("execution_arn"), started_at=item.get("started_at"), ended_at=item.get("ended_at"),
        ticks_done=int(item.get("ticks_done", 0)),
    )


@dataclass
class SimulationStore:
    table: Table
    directory: Directory

    # configs -----------------------------------------------------------------------------------
    def put_config(self, cfg: StoredConfig, new: bool) -> None:
        condition = "attribute_not_exists(pk)" if new else "attribute_exists(pk)"
        actions = [self.table.put_action(_config_values(cfg), condition=condition)]
        if new:
            actions.append(self.directory.owner_action(cfg.id, cfg.tenant_id, f"{cfg.kind} config"))
        transact(self.table.client, actions)

    def get_config(self, tenant_id: str, kind: str, config_id: str) -> Optional[StoredConfig]:
        item = self.table.get(keys.config_key(tenant_id, kind, config_id))
        return _config(item) if item else None

    def list_configs(self, tenant_id: str, kind: str) -> list[StoredConfig]:
        items = self.table.query("pk = :pk AND begins_with(sk, :prefix)", {},
                                 {":pk": keys.tenant_pk(tenant_id), ":prefix": f"CFG#{kind}#"})
        return [_config(i) for i in items]

    def delete_config(self, tenant_id: str, kind: str, config_id: str) -> None:
        self.table.delete(keys.config_key(tenant_id, kind, config_id))

    # simulation experiments ----------------------------------------------------------------------
    def create_experiment(self, exp: SimExperiment) -> None:
        transact(self.table.client, [
            self.table.put_action(_sim_values(exp), condition="attribute_not_exists(pk)"),
            self.directory.owner_action(exp.id, exp.tenant_id, "simulation"),
        ])

    def get_experiment(self, tenant_id: str, experiment_id: str) -> Optional[SimExperiment]:
        item = self.table.get(keys.simulation_key(tenant_id, experiment_id))
        return _sim(item) if item else None

    def list_experiments(self, tenant_id: str) -> list[SimExperiment]:
        items = self.table.query("pk = :pk AND begins_with(sk, :prefix)", {},
                                 {":pk": keys.tenant_pk(tenant_id), ":prefix": "SIM#"}, forward=False)
        return [_sim(i) for i in items]

    def update_experiment(self, tenant_id: str, experiment_id: str, changes: dict[str, Any], *,
                          only_if_active: bool = True) -> Optional[SimExperiment]:
        """Set fields, by default only while NOT_STARTED or RUNNING (an ended run is never rewritten).

        Returns the new experiment, or None when the condition did not hold.
        """
        names = {f"#f{i}": name for i, name in enumerate(changes)}
        params = {f":v{i}": (str(v) if name == "cur_t" else int(v) if isinstance(v, SimStatus) else v)
                  for i, (name, v) in enumerate(changes.items())}
        sets = [f"#f{i} = :v{i}" for i, (name, v) in enumerate(changes.items()) if v is not None]
        removes = [f"#f{i}" for i, (name, v) in enumerate(changes.items()) if v is None]
        params = {k: v for k, v in params.items() if v is not None}
        expression = ("SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        condition = "attribute_exists(pk)"
        if only_if_active:
            condition += " AND #status IN (:s0, :s1)"
            names["#status"] = "status"
            params[":s0"], params[":s1"] = _ACTIVE
        try:
            return _sim(self.table.update(keys.simulation_key(tenant_id, experiment_id), expression.strip(),
                                          condition=condition, names=names, params=params))
        except ConditionFailed:
            return None

    def add_progress(self, tenant_id: str, experiment_id: str, *, cur_day: int, cur_t: float, input_tokens: int,
                     output_tokens: int, ticks: int, updated_at: str) -> Optional[SimExperiment]:
        """Move progress forward and add tokens atomically; only while the run is RUNNING and not stopped."""
        try:
            return _sim(self.table.update(
                keys.simulation_key(tenant_id, experiment_id),
                "SET cur_day = :day, cur_t = :t, updated_at = :now ADD input_tokens :in, output_tokens :out, ticks_done :ticks",
                condition="#status = :running", names={"#status": "status"},
                params={":day": cur_day, ":t": str(cur_t), ":now": updated_at, ":in": input_tokens, ":out": output_tokens,
                        ":ticks": ticks, ":running": int(SimStatus.RUNNING)}))
        except ConditionFailed:
            return None

    def delete_experiment(self, tenant_id: str, experiment_id: str) -> None:
        try:
            transact(self.table.client, [
                self.table.delete_action(keys.simulation_key(tenant_id, experiment_id),
                                         condition="NOT #status IN (:s0, :s1)", names={"#status": "status"},
                                         params={":s0": _ACTIVE[0], ":s1": _ACTIVE[1]}),
            ])
        except TransactionCancelled as exc:
            raise Conflict("the simulation is running; stop it first") from exc
        self.directory.forget(experiment_id)


class ControlStore:
    """The control item of each simulation (one per experiment, beside it in the same table)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def put(self, tenant_id: str, experiment_id: str, control: RunControl) -> None:
        self.table.put({**keys.simulation_control_key(tenant_id, experiment_id), "llm_secret": control.llm_secret,
                        "llm_owner": control.llm_owner, "callback_used": control.callback_used})

    def get(self, tenant_id: str, experiment_id: str) -> Optional[RunControl]:
        item = self.table.get(keys.simulation_control_key(tenant_id, experiment_id))
        if item is None:
            return None
        secret = item.get("llm_secret")
        return RunControl(llm_secret=bytes(secret) if secret is not None else None, llm_owner=item.get("llm_owner", ""),
                          callback_token_hash=item.get("callback_token_hash"),
                          callback_used=bool(item.get("callback_used", False)), task_token=item.get("task_token"))

    def park(self, tenant_id: str, experiment_id: str, task_token: str, callback_token_hash: str) -> None:
        """Record the Step Functions task token and the engine's callback token hash (a fresh launch only)."""
        self.table.update(keys.simulation_control_key(tenant_id, experiment_id),
                          "SET task_token = :task, callback_token_hash = :hash, callback_used = :no",
                          params={":task": task_token, ":hash": callback_token_hash, ":no": False})

    def use_callback(self, tenant_id: str, experiment_id: str, callback_token_hash: str) -> Optional[str]:
        """Spend the callback token once; returns the parked task token, or None if spent or wrong."""
        try:
            item = self.table.update(keys.simulation_control_key(tenant_id, experiment_id),
                                     "SET callback_used = :yes",
                                     condition="callback_token_hash = :hash AND callback_used = :no",
                                     params={":hash": callback_token_hash, ":yes": True, ":no": False})
        except ConditionFailed:
            return None
        return item.get("task_token")

    def revoke(self, tenant_id: str, experiment_id: str) -> None:
        self.table.update(keys.simulation_control_key(tenant_id, experiment_id), "SET callback_used = :yes",
                          params={":yes": True})

    def delete(self, tenant_id: str, experiment_id: str) -> None:
        self.table.delete(keys.simulation_control_key(tenant_id, experiment_id))
