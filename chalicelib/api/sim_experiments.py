"""Simulation experiments (AgentSociety's `/api/experiments`): views, agents, talking to agents, delete, exports."""
from __future__ import annotations

import json
from typing import Optional

from chalice import Response

from chalicelib.api.http import FORM, JSON, Api, Request, redirect
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.simulation.models import DialogRequest, SurveyRequest
from chalicelib.wiring import services

api = Api(__name__)
sim_experiments_bp = api.blueprint
BASE = "/api/experiments"
AGENT = BASE + "/{experiment_id}/agents/{agent_id}"


def _instant(request: Request) -> tuple[Optional[int], Optional[float]]:
    day = request.int_query("day")
    t_text = request.query("t")
    try:
        t = float(t_text) if t_text not in (None, "") else None
    except ValueError as exc:
        raise InvalidInput(f"t must be a number, got {t_text!r}") from exc
    return day, t


@api.route(BASE, ("GET",), query=("skip", "limit"))
def list_simulations(request: Request) -> dict:
    found, total = services().sim_views.list_experiments(request.tenant_id, request.int_query("skip", 0),
                                             request.int_query("limit", 100))
    return {"total": total, "data": [e.to_json() for e in found]}


@api.route(BASE + "/{experiment_id}", ("GET",))
def get_simulation(request: Request, experiment_id: str) -> dict:
    return {"data": services().sim_views.get(request.tenant_id, experiment_id).to_json()}


@api.route(BASE + "/{experiment_id}", ("DELETE",))
def delete_simulation(request: Request, experiment_id: str) -> dict:
    services().sim_deletion.delete(request.principal, experiment_id)
    return {"data": {"message": "Experiment deleted successfully"}}


@api.route(BASE + "/{experiment_id}/timeline", ("GET",))
def simulation_timeline(request: Request, experiment_id: str) -> dict:
    return {"data": services().sim_views.timeline(request.tenant_id, experiment_id)}


@api.route(BASE + "/{experiment_id}/metrics", ("GET",))
def simulation_metrics(request: Request, experiment_id: str) -> dict:
    return {"data": services().sim_views.metrics(request.tenant_id, experiment_id)}


@api.route(BASE + "/{experiment_id}/prompt", ("GET",), query=("day", "t"))
def simulation_prompt(request: Request, experiment_id: str) -> dict:
    return {"data": services().sim_views.prompt(request.tenant_id, experiment_id, *_instant(request))}


@api.route(BASE + "/{experiment_id}/agents/-/profile", ("GET",))
def agent_profiles(request: Request, experiment_id: str) -> dict:
    return {"data": services().sim_views.profiles(request.tenant_id, experiment_id)}


@api.route(BASE + "/{experiment_id}/agents/-/status", ("GET",), query=("day", "t"))
def agents_status(request: Request, experiment_id: str) -> dict:
    return {"data": services().sim_views.statuses(request.tenant_id, experiment_id, *_instant(request))}


@api.route(AGENT + "/profile", ("GET",))
def agent_profile(request: Request, experiment_id: str, agent_id: str) -> dict:
    return {"data": services().sim_views.profile(request.tenant_id, experiment_id, agent_id)}


@api.route(AGENT + "/status", ("GET",))
def agent_status(request: Request, experiment_id: str, agent_id: str) -> dict:
    return {"data": services().sim_views.agent_statuses(request.tenant_id, experiment_id, agent_id)}


@api.route(AGENT + "/dialog", ("GET",))
def agent_dialogs(request: Request, experiment_id: str, agent_id: str) -> dict:
    return {"data": services().sim_views.dialogs(request.tenant_id, experiment_id, agent_id)}


@api.route(AGENT + "/survey", ("GET",))
def agent_surveys(request: Request, experiment_id: str, agent_id: str) -> dict:
    return {"data": services().sim_views.surveys(request.tenant_id, experiment_id, agent_id)}


@api.route(AGENT + "/dialog", ("POST",), body=DialogRequest)
def send_agent_dialog(request: Request, experiment_id: str, agent_id: str) -> dict:
    """Queued for the agent's next tick; 200 exactly, as AgentSociety's UI expects."""
    body = request.body()
    return {"data": services().sim_views.send_dialog(request.principal, experiment_id, agent_id, body)}


@api.route(AGENT + "/survey", ("POST",), body=SurveyRequest)
def send_agent_survey(request: Request, experiment_id: str, agent_id: str) -> dict:
    body = request.body()
    return {"data": services().sim_views.send_survey(request.principal, experiment_id, agent_id, body)}


# downloads: browsers post a form carrying the key as a field, so these routes authenticate themselves
@api.route(BASE + "/{experiment_id}/export", ("POST",), access="form", content_types=(JSON, FORM))
def export_simulation(request: Request, experiment_id: str) -> Response:
    return redirect(services().sim_exports.export(request.tenant_id, experiment_id))


@api.route(BASE + "/{experiment_id}/artifacts", ("POST",), access="form", content_types=(JSON, FORM))
def simulation_artifacts(request: Request, experiment_id: str) -> Response:
    exp, artifacts = services().sim_views.artifacts(request.tenant_id, experiment_id)
    return Response(body=json.dumps(artifacts, indent=2, ensure_ascii=False), status_code=200, headers={
        "Content-Type": "application/json",
        "Content-Disposition": f'attachment; filename="experiment_{exp.id}_artifacts.json"'})
