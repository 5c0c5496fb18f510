"""What a researcher reads of a simulation: experiments, timeline, metrics, agents, prompt; and talking to agents."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from chalicelib.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from chalicelib.domain.paging import check_page
from chalicelib.domain.principals import PLATFORM
from chalicelib.domain.simulation.control import readable_experiment
from chalicelib.domain.simulation.records import SimExperiment, SimStatus
from chalicelib.domain.validation import metric_value_to_json

if TYPE_CHECKING:
    from chalicelib.domain.ownership import Owners
    from chalicelib.domain.principals import Principal
    from chalicelib.domain.simulation.configs import ConfigService
    from chalicelib.domain.simulation.models import DialogRequest, SurveyRequest
    from chalicelib.domain.simulation.tracking import SimulationTracking
    from chalicelib.store.agent_data import AgentDataStore
    from chalicelib.store.sim_objects import SimulationObjects
    from chalicelib.store.simulations import SimulationStore

MAX_PAGE = 1_000


def agent_number(agent_id: str) -> int:
    try:
        return int(agent_id)
    except ValueError as exc:
        raise InvalidInput(f"agent id must be a whole number, got {agent_id!r}") from exc


@dataclass
class SimulationViews:
    store: SimulationStore
    owners: Owners
    agent_data: AgentDataStore
    tracking: SimulationTracking
    configs: ConfigService
    objects: SimulationObjects

    # experiments ------------------------------------------------------------------------------
    def list_experiments(self, tenant_id: str, skip: int, limit: int) -> tuple[list[SimExperiment], int]:
        check_page(limit, skip, max_limit=MAX_PAGE, offset_name="skip")
        owners = [tenant_id] if tenant_id == PLATFORM else [tenant_id, PLATFORM]
        found = [e for owner in owners for e in self.store.list_experiments(owner)]
        found.sort(key=lambda e: (e.created_at, e.id), reverse=True)
        return found[skip : skip + limit], len(found)

    def get(self, tenant_id: str, experiment_id: str) -> SimExperiment:
        """The tenant's experiment, or the platform's (readable by everyone)."""
        return readable_experiment(self.store, self.owners, tenant_id, experiment_id)

    def owned(self, principal: Principal, experiment_id: str) -> SimExperiment:
        """An experiment the caller may change: its own (the admin: the platform's)."""
        exp = self.get(principal.tenant_id, experiment_id)
        if exp.tenant_id != principal.tenant_id:
            raise Forbidden(f"experiment {experiment_id} is the platform's; it can be read, not changed")
        return exp

    def started(self, tenant_id: str, experiment_id: str) -> SimExperiment:
        exp = self.get(tenant_id, experiment_id)
        if exp.status == SimStatus.NOT_STARTED:
            raise InvalidInput("Experiment has not started yet")
        return exp

    def timeline(self, tenant_id: str, experiment_id: str) -> list[dict]:
        exp = self.started(tenant_id, experiment_id)
        return self.agent_data.timeline(exp.tenant_id, exp.id)

    def metrics(self, tenant_id: str, experiment_id: str) -> dict[str, list[dict]]:
        """{key: [{key, value, step}]} ordered by step, read from the simulation's tracking run."""
        exp = self.started(tenant_id, experiment_id)
        return {key: [{"key": key, "value": metric_value_to_json(p.value), "step": p.step} for p in points]
                for key, points in self.tracking.series(exp.tenant_id, exp.tracking_run_id).items()}

    # agents -------------------------------------------------------------------------------------
    def profiles(self, tenant_id: str, experiment_id: str) -> list[dict]:
        exp = self.started(tenant_id, experiment_id)
        return self.agent_data.profiles(exp.tenant_id, exp.id)

    def profile(self, tenant_id: str, experiment_id: str, agent_id: str) -> dict:
        exp = self.started(tenant_id, experiment_id)
        found = self.agent_data.profile(exp.tenant_id, exp.id, agent_number(agent_id))
        if found is None:
            raise NotFound("Agent profile not found")
        return found

    def statuses(self, tenant_id: str, experiment_id: str, day: Optional[int], t: Optional[float]) -> list[dict]:
        """Every agent at one instant (the latest recorded one when day and t are not given): one request."""
        instant = self._instant(tenant_id, experiment_id, day, t, with_agents=True)
        if instant is None:
            return []
        return [{**s, "created_at": instant["created_at"]} for s in instant["statuses"]]

    def agent_statuses(self, tenant_id: str, experiment_id: str, agent_id: str) -> list[dict]:
        exp = self.started(tenant_id, experiment_id)
        return self.agent_data.agent_statuses(exp.tenant_id, exp.id, agent_number(agent_id))

    def dialogs(self, tenant_id: str, experiment_id: str, agent_id: str) -> list[dict]:
        exp = self.started(tenant_id, experiment_id)
        return self.agent_data.agent_dialogs(exp.tenant_id, exp.id, agent_number(agent_id))

    def surveys(self, tenant_id: str, experiment_id: str, agent_id: str) -> list[dict]:
        """Answered surveys, then the ones still queued for the agent (result null)."""
        exp = self.started(tenant_id, experiment_id)
        number = agent_number(agent_id)
        answered = self.agent_data.agent_surveys(exp.tenant_id, exp.id, number)
        queued = [{"id": number, "day": m["day"], "t": m["t"], "survey_id": m["survey_id"], "result": None}
                  for m in self.agent_data.pending(exp.tenant_id, exp.id)
                  if m["kind"] == "survey" and m["agent_id"] == number]
        return answered + queued

    def prompt(self, tenant_id: str, experiment_id: str, day: Optional[int], t: Optional[float]) -> Optional[dict]:
        """The global prompt at one instant; the agents' states are not read."""
        return self._instant(tenant_id, experiment_id, day, t, with_agents=False)

    def _instant(self, tenant_id: str, experiment_id: str, day: Optional[int], t: Optional[float], *,
                 with_agents: bool) -> Optional[dict]:
        if (day is None) != (t is None):
            raise InvalidInput("give both day and t, or neither for the latest instant")
        exp = self.started(tenant_id, experiment_id)
        return self.agent_data.instant(exp.tenant_id, exp.id, day, t, with_agents=with_agents)

    def send_dialog(self, principal: Principal, experiment_id: str, agent_id: str, request: DialogRequest) -> dict:
        exp, number = self._running_agent(principal, experiment_id, agent_id)
        body = {"agent_id": number, "day": request.day, "t": request.t, "content": request.content}
        return {"id": self.agent_data.enqueue(exp.tenant_id, exp.id, "dialog", body), **body}

    def send_survey(self, principal: Principal, experiment_id: str, agent_id: str, request: SurveyRequest) -> dict:
        exp, number = self._running_agent(principal, experiment_id, agent_id)
        try:
            survey = self.configs.get(principal.tenant_id, "survey", request.survey_id)
        except NotFound as exc:
            raise InvalidInput(f"Survey with ID {request.survey_id} not found") from exc
        body = {"agent_id": number, "day": request.day, "t": request.t, "survey_id": survey.id,
                "survey": {"id": survey.id, **survey.config}}
        message_id = self.agent_data.enqueue(exp.tenant_id, exp.id, "survey", body)
        return {"id": message_id, "agent_id": number, "day": request.day, "t": request.t, "survey_id": survey.id}

    def _running_agent(self, principal: Principal, experiment_id: str, agent_id: str) -> tuple[SimExperiment, int]:
        exp = self.owned(principal, experiment_id)
        if exp.status != SimStatus.RUNNING or exp.stop_requested:
            raise InvalidInput("Experiment not running")
        number = agent_number(agent_id)
        if self.agent_data.profile(exp.tenant_id, exp.id, number) is None:
            raise NotFound("Agent profile not found")
        return exp, number

    def artifacts(self, tenant_id: str, experiment_id: str) -> tuple[SimExperiment, dict]:
        """The save_context artifacts of a simulation (404 when it saved none)."""
        exp = self.get(tenant_id, experiment_id)
        found = self.objects.load_artifacts(exp.tenant_id, exp.id)
        if found is None:
            raise NotFound("Artifacts not found")
        return exp, found

    def require_deletable(self, principal: Principal, experiment_id: str) -> SimExperiment:
        exp = self.owned(principal, experiment_id)
        if not exp.status.ended:
            raise Conflict(f"experiment {experiment_id} is running (status {int(exp.status)}); stop it first")
        return exp

