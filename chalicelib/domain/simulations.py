"""Launching and controlling simulations: validate synchronously, then hand over to Step Functions."""
from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, Protocol

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from chalicelib.domain.clock import new_id, now_iso
from chalicelib.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from chalicelib.domain.experiments import missing
from chalicelib.domain.sim_records import PLATFORM, RunControl, SimExperiment, SimStatus
from chalicelib.domain.tracking_models import ExperimentCreate, RunCreate
from chalicelib.sim import spec as sim_spec

if TYPE_CHECKING:
    from chalicelib.domain.experiments import ExperimentService
    from chalicelib.domain.runs import RunService
    from chalicelib.domain.sim_configs import ConfigService
    from chalicelib.store.agent_data import AgentDataStore
    from chalicelib.store.simulations import ControlStore, SimulationStore

SIMULATIONS_EXPERIMENT = "simulations"  # the tracking experiment that holds every simulation's metrics


class ConfigRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: StrictStr = ""
    id: StrictStr = Field(min_length=1, max_length=64)


class LaunchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    llm: ConfigRef
    agents: ConfigRef
    map: ConfigRef
    workflow: ConfigRef
    exp_name: StrictStr = Field(min_length=1, max_length=255)
    engine: Literal["builtin", "external"] = "builtin"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Orchestrator(Protocol):
    """The Step Functions calls the domain needs (implemented by chalicelib.store.orchestration)."""

    def start(self, name: str, payload: dict) -> str: ...
    def describe(self, execution_arn: str) -> Optional[str]: ...
    def succeed(self, task_token: str, output: dict) -> None: ...
    def fail(self, task_token: str, error: str, cause: str) -> None: ...
    def heartbeat(self, task_token: str) -> None: ...


class Billing(Protocol):
    """What a launch asks of billing (implemented by chalicelib.domain.billing.BillingService)."""

    def can_launch(self, tenant_id: str) -> bool: ...


@dataclass
class SimulationService:
    store: SimulationStore
    controls: ControlStore
    agent_data: AgentDataStore
    configs: ConfigService
    experiments: ExperimentService
    runs: RunService
    orchestrator: Orchestrator
    billing: Billing
    load_map: Callable[[str, str], Any]  # (owner tenant, file_path) -> map JSON
    save_spec: Callable[[str, str, dict], None]  # (tenant, experiment, spec JSON without secrets)
    heartbeat_seconds: int
    pause_seconds: int = 0

    # launch ------------------------------------------------------------------------------------
    def launch(self, tenant_id: str, request: LaunchRequest, correlation_id: str = "") -> SimExperiment:
        refs = {"llm": request.llm, "agent": request.agents, "map": request.map, "workflow": request.workflow}
        for kind, ref in refs.items():
            if ref.tenant_id not in (tenant_id, PLATFORM):
                raise Forbidden(f"Permission denied: the {kind} config belongs to another tenant")
        loaded = {}
        for kind, ref in refs.items():
            try:
                loaded[kind] = self.configs.get(tenant_id, kind, ref.id, owner=ref.tenant_id)
            except NotFound as exc:
                label = {"llm": "LLM", "agent": "Agent", "map": "Map", "workflow": "Workflow"}[kind]
                raise InvalidInput(f"{label} config not found: {ref.id}") from exc
        if not self.billing.can_launch(tenant_id):
            raise InvalidInput("Insufficient balance")
        workflow = [self._resolve_survey(tenant_id, step) for step in loaded["workflow"].config]
        map_cfg = loaded["map"]
        try:
            map_data = sim_spec.MapData.model_validate(self.load_map(map_cfg.tenant_id, map_cfg.config["file_path"]))
        except (ValueError, KeyError) as exc:
            raise InvalidInput(f"map file of config {map_cfg.id} is not a valid map: {exc}") from exc
        experiment_id = new_id()
        spec = sim_spec.SimulationSpec(
            experiment_id=experiment_id, name=request.exp_name, llm=loaded["llm"].config,
            agents=loaded["agent"].config, map=map_data, workflow=workflow, seed=request.seed)
        spec_json = spec.model_dump(mode="json")
        run = self._tracking_run(tenant_id, experiment_id, request.exp_name)
        now = now_iso()
        exp = SimExperiment(
            tenant_id=tenant_id, id=experiment_id, name=request.exp_name, status=SimStatus.NOT_STARTED, cur_day=0,
            cur_t=float(spec.start_t),
            config=json.dumps({"llm": loaded["llm"].config, "agents": spec_json["agents"],
                               "map": map_cfg.config, "workflow": spec_json["workflow"],
                               "exp": {"name": request.exp_name, "engine": request.engine, "seed": request.seed}}),
            error="", input_tokens=0, output_tokens=0, created_at=now, updated_at=now, engine=request.engine,
            tracking_run_id=run.id, llm_billed=loaded["llm"].tenant_id == PLATFORM, num_day=planned_days(workflow),
        )
        self.save_spec(tenant_id, experiment_id, spec_json)
        self.controls.put(tenant_id, experiment_id, RunControl(llm_secret=loaded["llm"].secret,
                                                               llm_owner=loaded["llm"].tenant_id))
        self.store.create_experiment(exp)
        payload = {"tenant_id": tenant_id, "experiment_id": experiment_id, "engine": request.engine,
                   "heartbeat_seconds": self.heartbeat_seconds, "pause_seconds": self.pause_seconds,
                   "correlation_id": correlation_id}
        try:
            arn = self.orchestrator.start(experiment_id, payload)
        except Exception as exc:
            self.store.update_experiment(tenant_id, experiment_id, {"status": SimStatus.ERROR,
                                                                    "error": f"could not start: {exc}"})
            raise
        return self.store.update_experiment(tenant_id, experiment_id, {"execution_arn": arn}, only_if_active=False) or exp

    def _resolve_survey(self, tenant_id: str, step: dict) -> dict:
        if step.get("type") != "survey" or not isinstance(step.get("survey"), str):
            return step
        try:
            survey = self.configs.get(tenant_id, "survey", step["survey"])
        except (NotFound, Forbidden) as exc:
            raise InvalidInput(f"Survey with ID {step['survey']} not found") from exc
        return {**step, "survey": {"id": survey.id, **survey.config}}

    def _tracking_run(self, tenant_id: str, experiment_id: str, name: str):
        exp = self.experiments.store.find_active_by_name(tenant_id, SIMULATIONS_EXPERIMENT)
        if exp is None:
            try:
                exp = self.experiments.create(tenant_id, ExperimentCreate(
                    name=SIMULATIONS_EXPERIMENT, description="Environment metrics of agent-society simulations"))
            except Conflict:  # created concurrently by another launch
                exp = self.experiments.store.find_active_by_name(tenant_id, SIMULATIONS_EXPERIMENT)
        return self.runs.create(tenant_id, RunCreate(experiment_id=exp.id, name=name[:255],
                                                     tags={"agora.simulation_id": experiment_id}))

    # reading and control ------------------------------------------------------------------------
    def get(self, tenant_id: str, experiment_id: str) -> SimExperiment:
        """The caller's own simulation (runs are controlled only by their tenant)."""
        exp = self.store.get_experiment(tenant_id, experiment_id)
        if exp is None:
            raise missing(self.store.directory, tenant_id, experiment_id, "experiment")
        return exp

    def stop(self, tenant_id: str, experiment_id: str) -> SimExperiment:
        exp = self.get(tenant_id, experiment_id)
        stopped = self.store.update_experiment(tenant_id, experiment_id, {"stop_requested": True,
                                                                          "updated_at": now_iso()})
        if stopped is None:
            raise Conflict(f"experiment {experiment_id} is not running (status {int(exp.status)}); nothing to stop")
        control = self.controls.get(tenant_id, experiment_id)
        if control and control.task_token and not control.callback_used:
            # an external engine is parked on its task token: end the wait now rather than at its next
            # report, and revoke its callback token so it can neither report nor finish any more
            self.controls.revoke(tenant_id, experiment_id)
            self.orchestrator.fail(control.task_token, "Agora.Stopped", "stopped by user")
        return stopped

    def status_words(self, tenant_id: str, experiment_id: str) -> str:
        """AgentSociety's UI vocabulary: "Running" while under way, "Failed" on error, "Terminated" after."""
        exp = self.get(tenant_id, experiment_id)
        if exp.status == SimStatus.ERROR:
            return "Failed"
        if exp.status.ended:
            return "Terminated"
        state = self.orchestrator.describe(exp.execution_arn) if exp.execution_arn else "RUNNING"
        return {"RUNNING": "Running", "SUCCEEDED": "Terminated"}.get(state or "", "Failed")

    def log_text(self, tenant_id: str, experiment_id: str) -> str:
        self.get(tenant_id, experiment_id)
        return "\n".join(self.agent_data.log(tenant_id, experiment_id))

    # the engine's side: authenticated by its callback token, never by a tenant key ----------------
    def engine_experiment(self, experiment_id: str, token: Optional[str]) -> tuple[SimExperiment, Any]:
        tenant_id = self.store.directory.owner_of(experiment_id)
        exp = self.store.get_experiment(tenant_id, experiment_id) if tenant_id is not None else None
        control = self.controls.get(tenant_id, experiment_id) if exp is not None else None
        if not token or control is None or control.callback_token_hash is None or control.callback_used \
                or not hmac.compare_digest(hash_token(token), control.callback_token_hash):
            raise Forbidden("invalid, used or missing callback_auth_token")
        return exp, control

    def finish(self, experiment_id: str, token: Optional[str], outcome: str, error: str) -> None:
        exp, _ = self.engine_experiment(experiment_id, token)
        if exp.status.ended:  # e.g. its heartbeat timed out: there is no waiting task left to resume
            raise Conflict(f"experiment {experiment_id} already ended (status {int(exp.status)})")
        task_token = self.controls.use_callback(exp.tenant_id, experiment_id, hash_token(token or ""))
        if task_token is None:
            raise Forbidden("invalid, used or missing callback_auth_token")
        if outcome == "error":
            message = error or "the engine reported an error"
            self.store.update_experiment(exp.tenant_id, experiment_id, {"error": message[:10_000]})
            self.orchestrator.fail(task_token, "Agora.EngineError", message)
        else:
            self.orchestrator.succeed(task_token, {"done": True, "outcome": outcome})


def planned_days(workflow: list[dict]) -> int:
    seconds = 0.0
    for step in workflow:
        if step.get("type") == "run":
            seconds += float(step.get("days", 1)) * sim_spec.SECONDS_PER_DAY
        elif step.get("type") == "step":
            seconds += int(step.get("steps", 1)) * int(step.get("ticks_per_step", sim_spec.DEFAULT_TICK_SECONDS))
    return math.ceil(seconds / sim_spec.SECONDS_PER_DAY)
