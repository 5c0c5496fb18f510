"""Simulation configs, simulation experiments and their control items in DynamoDB, each under its tenant."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.domain.errors import Conflict
from chalicelib.domain.simulation.records import RunControl, SimExperiment, SimStatus, StoredConfig
from chalicelib.store import keys
from chalicelib.store.dynamo import ConditionFailed, Table, TransactionCancelled
from chalicelib.store.expressions import Condition, SortRange, Update

if TYPE_CHECKING:
    from chalicelib.store.directory import Directory

_ACTIVE = (int(SimStatus.NOT_STARTED), int(SimStatus.RUNNING))


def _config_values(cfg: StoredConfig) -> dict[str, Any]:
    return {**keys.config_key(cfg.tenant_id, cfg.kind, cfg.id), "tenant_id": cfg.tenant_id, "kind": cfg.kind,
            "id": cfg.id, "name": cfg.name, "description": cfg.description, "config": json.dumps(cfg.config),
            "created_at": cfg.created_at, "updated_at": cfg.updated_at, "secret": cfg.secret}


def _config(item: dict[str, Any]) -> StoredConfig:
    return StoredConfig(tenant_id=item["tenant_id"], kind=item["kind"], id=item["id"], name=item["name"],
                        description=item.get("description", ""), config=json.loads(item["config"]),
                        created_at=item["created_at"], updated_at=item["updated_at"], secret=item.get("secret"))


_SIM_FIELDS = ("id", "name", "num_day", "cur_day", "config", "error", "input_tokens", "output_tokens", "created_at",
               "updated_at", "engine", "tracking_run_id", "llm_billed", "stop_requested", "execution_arn",
               "started_at", "ended_at", "ticks_done")


def _stored_value(name: str, value: Any) -> Any:
    if name == "cur_t":
        return str(value)
    if isinstance(value, SimStatus):
        return int(value)
    return value


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


def _control_values(tenant_id: str, experiment_id: str, control: RunControl) -> dict[str, Any]:
    return {**keys.simulation_control_key(tenant_id, experiment_id), "llm_secret": control.llm_secret,
            "llm_owner": control.llm_owner, "callback_used": control.callback_used}


def _control(item: dict[str, Any]) -> RunControl:
    return RunControl(llm_secret=item.get("llm_secret"), llm_owner=item.get("llm_owner", ""),
                      callback_token_hash=item.get("callback_token_hash"),
                      callback_used=bool(item.get("callback_used", False)), task_token=item.get("task_token"))


@dataclass
class SimulationStore:
    table: Table
    directory: Directory

    # configs -----------------------------------------------------------------------------------
    def put_config(self, cfg: StoredConfig, new: bool) -> None:
        condition = Condition.absent() if new else Condition.exists()
        actions = [self.table.put_action(_config_values(cfg), condition=condition)]
        if new:
            actions.append(self.directory.owner_action(cfg.id, cfg.tenant_id, f"{cfg.kind} config"))
        self.table.transact(actions)

    def get_config(self, tenant_id: str, kind: str, config_id: str) -> Optional[StoredConfig]:
        item = self.table.get(keys.config_key(tenant_id, kind, config_id))
        return _config(item) if item else None

    def list_configs(self, tenant_id: str, kind: str) -> list[StoredConfig]:
        items = self.table.query(keys.tenant_pk(tenant_id), SortRange.prefix(keys.config_prefix(kind)))
        return [_config(i) for i in items]

    def delete_config(self, tenant_id: str, kind: str, config_id: str) -> None:
        self.table.delete(keys.config_key(tenant_id, kind, config_id))

    # simulation experiments and their control items ---------------------------------------------------
    def create_experiment(self, exp: SimExperiment, control: RunControl) -> None:
        """The experiment, its control item and its owner record: all three or none."""
        self.table.transact([
            self.table.put_action(_sim_values(exp), condition=Condition.absent()),
            self.table.put_action(_control_values(exp.tenant_id, exp.id, control), condition=Condition.absent()),
            self.directory.owner_action(exp.id, exp.tenant_id, "simulation"),
        ])

    def get_experiment(self, tenant_id: str, experiment_id: str) -> Optional[SimExperiment]:
        item = self.table.get(keys.simulation_key(tenant_id, experiment_id))
        return _sim(item) if item else None

    def list_experiments(self, tenant_id: str) -> list[SimExperiment]:
        items = self.table.query(keys.tenant_pk(tenant_id), SortRange.prefix(keys.SIMULATION_SK), forward=False)
        return [_sim(i) for i in items]

    def update_experiment(self, tenant_id: str, experiment_id: str, changes: dict[str, Any], *,
                          only_if_active: bool = True) -> Optional[SimExperiment]:
        """Set fields (None removes one), by default only while NOT_STARTED or RUNNING (an ended run is
        never rewritten). Returns the new experiment, or None when the condition did not hold."""
        update = Update().assign({name: _stored_value(name, value) for name, value in changes.items()})
        condition = Condition.exists()
        if only_if_active:
            condition = condition & Condition.one_of("status", _ACTIVE)
        try:
            return _sim(self.table.update(keys.simulation_key(tenant_id, experiment_id), update, condition=condition))
        except ConditionFailed:
            return None

    def delete_experiment(self, tenant_id: str, experiment_id: str) -> None:
        """The experiment (only once it has ended), its control item and its owner record."""
        try:
            self.table.transact([
                self.table.delete_action(keys.simulation_key(tenant_id, experiment_id),
                                         condition=~Condition.one_of("status", _ACTIVE)),
                self.table.delete_action(keys.simulation_control_key(tenant_id, experiment_id)),
                self.directory.forget_action(experiment_id, tenant_id),
            ])
        except TransactionCancelled as exc:
            if exc.failed(0):
                raise Conflict("the simulation is running; stop it first") from exc
            raise

    def get_control(self, tenant_id: str, experiment_id: str) -> Optional[RunControl]:
        item = self.table.get(keys.simulation_control_key(tenant_id, experiment_id))
        return _control(item) if item else None

    def park(self, tenant_id: str, experiment_id: str, task_token: str, callback_token_hash: str) -> None:
        """Record the Step Functions task token and the engine's callback token hash (a fresh launch only)."""
        self.table.update(keys.simulation_control_key(tenant_id, experiment_id),
                          Update().assign({"task_token": task_token, "callback_token_hash": callback_token_hash,
                                           "callback_used": False}))

    def use_callback(self, tenant_id: str, experiment_id: str, callback_token_hash: str) -> Optional[str]:
        """Spend the callback token once; returns the parked task token, or None if spent or wrong."""
        try:
            item = self.table.update(keys.simulation_control_key(tenant_id, experiment_id),
                                     Update().set("callback_used", True),
                                     condition=Condition.equals("callback_token_hash", callback_token_hash)
                                     & Condition.equals("callback_used", False))
        except ConditionFailed:
            return None
        return item.get("task_token")

    def revoke_callback(self, tenant_id: str, experiment_id: str) -> None:
        self.table.update(keys.simulation_control_key(tenant_id, experiment_id), Update().set("callback_used", True))
