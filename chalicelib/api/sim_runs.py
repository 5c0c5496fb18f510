"""Simulation runs (AgentSociety's `/api/run-experiments`): launch, stop, status, log, and the engine's side."""
from __future__ import annotations

from chalice import Response

from chalicelib.api.http import Api, Request
from chalicelib.domain.simulation.models import FinishReport, LaunchRequest, ProgressReport
from chalicelib.observability import correlation_id, count
from chalicelib.wiring import services

api = Api(__name__)
sim_runs_bp = api.blueprint
BASE = "/api/run-experiments"
MAX_PROGRESS_BYTES = 5_000_000


@api.route(BASE, ("POST",), body=LaunchRequest)
def launch_simulation(request: Request) -> dict:
    exp = services().launcher.launch(request.tenant_id, request.body(), correlation_id())
    count("RunsLaunched")
    return {"data": {"id": exp.id}}


@api.route(BASE + "/{experiment_id}", ("DELETE",))
def stop_simulation(request: Request, experiment_id: str) -> dict:
    services().control.stop(request.tenant_id, experiment_id)
    return {"data": {"message": "stop requested"}}


@api.route(BASE + "/{experiment_id}/status", ("GET",))
def simulation_status(request: Request, experiment_id: str) -> dict:
    return {"data": services().control.status_words(request.tenant_id, experiment_id)}


@api.route(BASE + "/{experiment_id}/log", ("GET",))
def simulation_log(request: Request, experiment_id: str) -> Response:
    text = services().control.log_text(request.tenant_id, experiment_id)
    return Response(body=text, status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})


# the engine's side: authenticated by the run's callback token -------------------------------------
@api.route(BASE + "/{experiment_id}/finish", ("POST",), access="public", body=FinishReport,
           query=("callback_auth_token",))
def finish_simulation(request: Request, experiment_id: str) -> dict:
    body = request.body()
    services().control.finish(experiment_id, request.query("callback_auth_token"), body.status, body.error)
    return {"data": {"message": "finish accepted"}}


@api.route(BASE + "/{experiment_id}/engine/spec", ("GET",), access="public", query=("callback_auth_token",))
def engine_spec(request: Request, experiment_id: str) -> dict:
    exp, _ = services().control.engine_experiment(experiment_id, request.query("callback_auth_token"))
    return {"data": services().runtime.spec(exp.tenant_id, exp.id).model_dump(mode="json")}


@api.route(BASE + "/{experiment_id}/engine/progress", ("POST",), access="public", body=ProgressReport,
           body_limit=MAX_PROGRESS_BYTES, query=("callback_auth_token",))
def engine_progress(request: Request, experiment_id: str) -> dict:
    exp, control = services().control.engine_experiment(experiment_id, request.query("callback_auth_token"))
    return {"data": services().runtime.report(exp, control, request.body())}
