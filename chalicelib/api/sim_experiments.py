"""Simulation experiments (AgentSociety's `/api/experiments`): views, agents, talking to agents, delete, exports."""
from __future__ import annotations

import json
from typing import Optional

from chalice import Response

from chalicelib.api.http import FORM, JSON, Api, Query, QueryGroup, Request, page_query, redirect
from chalicelib.domain.simulation.models import DialogRequest, SurveyRequest
from chalicelib.domain.simulation.views import MAX_PAGE
from chalicelib.wiring import services

api = Api(__name__)
sim_experiments_bp = api.blueprint
BASE = "/api/experiments"
AGENT = BASE + "/{experiment_id}/agents/{agent_id}"
AGENT_ID = (Query("agent_id", "integer", description="the agent's number in the simulation"),)
PAGE = page_query(MAX_PAGE, "skip")
# a simulated instant: its day and second of the day, both or neither (the latest instant)
INSTANT = (QueryGroup("instant", (Query("day", "integer"), Query("t", "number")),
                      rule={"dependentRequired": {"day": ["t"], "t": ["day"]}},
                      description="day and t together, or neither for the latest recorded instant"),)


def _instant(request: Request) -> tuple[Optional[int], Optional[float]]:
    return request.param("day"), request.param("t")


@api.route(BASE, ("GET",), query=PAGE)
def list_simulations(request: Request) -> dict:
    found, total = services().sim_views.list_experiments(request.tenant_id, request.param("skip", 0),
                                             request.param("limit", 100))
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


@api.route(BASE + "/{experiment_id}/prompt", ("GET",), query=INSTANT)
def simulation_prompt(request: Request, experiment_id: str) -> dict:
    return {"data": services().sim_views.prompt(request.tenant_id, experiment_id, *_instant(request))}


@api.route(BASE + "/{experiment_id}/agents/-/profile", ("GET",))
def agent_profiles(request: Request, experiment_id: str) -> dict:
    return {"data": services().sim_views.profiles(request.tenant_id, experiment_id)}


@api.route(BASE + "/{experiment_id}/agents/-/status", ("GET",), query=INSTANT)
def agents_status(request: Request, experiment_id: str) -> dict:
    return {"data": services().sim_views.statuses(request.tenant_id, experiment_id, *_instant(request))}


@api.route(AGENT + "/profile", ("GET",), path_params=AGENT_ID)
def agent_profile(request: Request, experiment_id: str, agent_id: str) -> dict:
    return {"data": services().sim_views.profile(request.tenant_id, experiment_id, agent_id)}


@api.route(AGENT + "/status", ("GET",), path_params=AGENT_ID)
def agent_status(request: Request, experiment_id: str, agent_id: str) -> dict:
    return {"data": services().sim_views.agent_statuses(request.tenant_id, experiment_id, agent_id)}


@api.route(AGENT + "/dialog", ("GET",), path_params=AGENT_ID)
def agent_dialogs(request: Request, experiment_id: str, agent_id: str) -> dict:
    return {"data": services().sim_views.dialogs(request.tenant_id, experiment_id, agent_id)}


@api.route(AGENT + "/survey", ("GET",), path_params=AGENT_ID)
def agent_surveys(request: Request, experiment_id: str, agent_id: str) -> dict:
    return {"data": services().sim_views.surveys(request.tenant_id, experiment_id, agent_id)}


@api.route(AGENT + "/dialog", ("POST",), path_params=AGENT_ID, body=DialogRequest)
def send_agent_dialog(request: Request, experiment_id: str, agent_id: str) -> dict:
    """Queued for the agent's next tick; 200 exactly, as AgentSociety's UI expects."""
    body = request.body()
    return {"data": services().sim_views.send_dialog(request.principal, experiment_id, agent_id, body)}


@api.route(AGENT + "/survey", ("POST",), path_params=AGENT_ID, body=SurveyRequest)
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
