"""Launching a simulation: resolve and check everything first, then create its records, then start it.

Each phase undoes its own writes when a later step of it fails, so a failed launch leaves nothing
behind but, when Step Functions refused to start, the experiment marked ERROR with the reason.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Protocol, Sequence

from chalicelib.domain.clock import new_id, now_iso
from chalicelib.domain.errors import Forbidden, InvalidInput, NotFound
from chalicelib.domain.principals import PLATFORM
from chalicelib.domain.simulation.maps import parse_map
from chalicelib.domain.simulation.records import RunControl, SimExperiment, SimStatus, StoredConfig
from chalicelib.domain.validation import validated
from chalicelib.sim import spec as sim_spec
from chalicelib.sim.steps import step_seconds

if TYPE_CHECKING:
    from chalicelib.domain.simulation.configs import ConfigService
    from chalicelib.domain.simulation.models import ConfigRef, LaunchRequest
    from chalicelib.domain.simulation.tracking import SimulationTracking
    from chalicelib.store.sim_objects import SimulationObjects
    from chalicelib.store.simulations import SimulationStore

KIND_LABELS = {"llm": "LLM", "agent": "Agent", "map": "Map", "workflow": "Workflow"}


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


@dataclass(frozen=True)
class LaunchPlan:
    """Everything a launch checked and resolved before writing anything."""

    tenant_id: str
    experiment_id: str
    request: LaunchRequest
    configs: dict[str, StoredConfig]  # kind -> the config the request names
    spec: sim_spec.SimulationSpec  # what the engine runs, without secrets

    @property
    def llm(self) -> StoredConfig:
        return self.configs["llm"]


@dataclass
class SimulationLauncher:
    store: SimulationStore
    objects: SimulationObjects
    configs: ConfigService
    tracking: SimulationTracking
    billing: Billing
    orchestrator: Orchestrator
    heartbeat_seconds: int
    pause_seconds: int = 0

    def launch(self, tenant_id: str, request: LaunchRequest, correlation_id: str = "") -> SimExperiment:
        plan = self.resolve(tenant_id, request)
        exp = self.create(plan)
        return self.start(exp, correlation_id)

    # 1. resolve: read and check, write nothing ---------------------------------------------------
    def resolve(self, tenant_id: str, request: LaunchRequest) -> LaunchPlan:
        refs = {"llm": request.llm, "agent": request.agents, "map": request.map, "workflow": request.workflow}
        for kind, ref in refs.items():
            if ref.tenant_id not in (tenant_id, PLATFORM):
                raise Forbidden(f"Permission denied: the {kind} config belongs to another tenant")
        loaded = {kind: self._config(tenant_id, kind, ref) for kind, ref in refs.items()}
        if not self.billing.can_launch(tenant_id):
            raise InvalidInput("Insufficient balance")
        # workflows stored before surveys were resolved on save still name them by id
        workflow = [self.configs.with_survey(tenant_id, step) for step in loaded["workflow"].config]
        map_cfg = loaded["map"]
        raw_map = self.objects.load_map(map_cfg.tenant_id, map_cfg.config["file_path"])
        if raw_map is None:
            raise InvalidInput(f"map file {map_cfg.config['file_path']!r} of config {map_cfg.id} does not exist")
        try:
            map_data = parse_map(raw_map, map_cfg.config["file_path"])
        except ValueError as exc:
            raise InvalidInput(f"map file of config {map_cfg.id} is not a valid map: {exc}") from exc
        experiment_id = new_id()
        spec = validated(sim_spec.SimulationSpec, {
            "experiment_id": experiment_id, "name": request.exp_name, "llm": loaded["llm"].config,
            "agents": self._with_profiles(loaded["agent"]), "map": map_data, "workflow": workflow,
            "seed": request.seed})
        from chalicelib.sim.engine import check_population  # the engine loads only for launches

        try:
            check_population(spec)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        return LaunchPlan(tenant_id, experiment_id, request, loaded, spec)

    def _with_profiles(self, agents: StoredConfig) -> dict:
        """The agent config with every `memory_from_file` read: the file's records become the group's
        people (`number`, if given, takes the first ones; more than the file holds is a 400)."""
        config = dict(agents.config)
        groups = []
        for index, group in enumerate(config["citizens"], start=1):
            path = group.get("memory_from_file")
            if path is None:
                groups.append(group)
                continue
            records = self.configs.memory_records(agents.tenant_id, path)
            number = group.get("number")
            if number is not None and number > len(records):
                raise InvalidInput(f"citizen group {index} asks for {number} agents but its memory_from_file "
                                   f"holds {len(records)} records")
            rest = {k: v for k, v in group.items() if k not in ("memory_from_file", "number")}
            groups.append({**rest, "profiles": records[:number] if number is not None else records})
        supervisor = config.get("supervisor")
        if supervisor and supervisor.get("memory_from_file"):  # checked, as a config's file must exist
            self.configs.memory_records(agents.tenant_id, supervisor["memory_from_file"])
        return {**config, "citizens": groups}

    def _config(self, tenant_id: str, kind: str, ref: ConfigRef) -> StoredConfig:
        try:
            return self.configs.get(tenant_id, kind, ref.id, owner=ref.tenant_id)
        except NotFound as exc:
            raise InvalidInput(f"{KIND_LABELS[kind]} config not found: {ref.id}") from exc

    # 2. create: the tracking run, the spec, the experiment with its control item ----------------
    def create(self, plan: LaunchPlan) -> SimExperiment:
        tenant_id, experiment_id, request = plan.tenant_id, plan.experiment_id, plan.request
        spec_json = plan.spec.model_dump(mode="json")
        run_id = self.tracking.open_run(tenant_id, experiment_id, request.exp_name)
        now = now_iso()
        exp = SimExperiment(
            tenant_id=tenant_id, id=experiment_id, name=request.exp_name, status=SimStatus.NOT_STARTED, cur_day=0,
            cur_t=float(plan.spec.start_t),
            # the agent config as written (its profile files by name: the resolved people are in the spec)
            config=json.dumps({"llm": plan.llm.config, "agents": plan.configs["agent"].config,
                               "map": plan.configs["map"].config, "workflow": spec_json["workflow"],
                               "exp": {"name": request.exp_name, "engine": request.engine, "seed": request.seed}}),
            error="", input_tokens=0, output_tokens=0, created_at=now, updated_at=now, engine=request.engine,
            tracking_run_id=run_id, llm_billed=plan.llm.tenant_id == PLATFORM,
            num_day=planned_days(plan.spec.workflow),
        )
        try:
            self.objects.save_spec(tenant_id, experiment_id, spec_json)
            try:
                self.store.create_experiment(exp, RunControl(llm_secret=plan.llm.secret, llm_owner=plan.llm.tenant_id))
            except BaseException:
                self.objects.delete_all(tenant_id, experiment_id)
                raise
        except BaseException:
            self.tracking.discard(tenant_id, run_id)
            raise
        return exp

    # 3. start: the execution, named after the experiment ------------------------------------------
    def start(self, exp: SimExperiment, correlation_id: str) -> SimExperiment:
        payload = {"tenant_id": exp.tenant_id, "experiment_id": exp.id, "engine": exp.engine,
                   "heartbeat_seconds": self.heartbeat_seconds, "pause_seconds": self.pause_seconds,
                   "correlation_id": correlation_id}
        try:
            arn = self.orchestrator.start(exp.id, payload)
        except Exception as exc:
            now = now_iso()
            self.store.update_experiment(exp.tenant_id, exp.id, {"status": SimStatus.ERROR, "ended_at": now,
                                                                 "updated_at": now, "error": f"could not start: {exc}"})
            self.tracking.end(exp.tenant_id, exp.tracking_run_id, "FAILED", exp.id)
            raise
        started = self.store.update_experiment(exp.tenant_id, exp.id, {"execution_arn": arn}, only_if_active=False)
        return started or exp


def planned_days(workflow: Sequence[Any]) -> int:
    """Whole simulated days the workflow's timed steps cover (AgentSociety's `num_day`)."""
    return math.ceil(sum(step_seconds(step) for step in workflow) / sim_spec.SECONDS_PER_DAY)
