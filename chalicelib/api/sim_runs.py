"""Simulation runs (AgentSociety's `/api/run-experiments`): launch, stop, status, log, and the engine's side."""
from __future__ import annotations

from typing import Any, Literal, Optional

from chalice import Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from chalicelib.api.http import Api, Request
from chalicelib.domain.errors import Conflict
from chalicelib.domain.simulations import LaunchRequest
from chalicelib.observability import correlation_id, count
from chalicelib.wiring import services

api = Api(__name__)
sim_runs_bp = api.blueprint
BASE = "/api/run-experiments"
MAX_PROGRESS_BYTES = 5_000_000


@api.route(BASE, ("POST",), body=LaunchRequest)
def launch_simulation(request: Request) -> dict:
    exp = services().simulations.launch(request.tenant_id, request.body(), correlation_id())
    count("RunsLaunched")
    return {"data": {"id": exp.id}}


@api.route(BASE + "/{experiment_id}", ("DELETE",))
def stop_simulation(request: Request, experiment_id: str) -> dict:
    services().simulations.stop(request.tenant_id, experiment_id)
    return {"data": {"message": "stop requested"}}


@api.route(BASE + "/{experiment_id}/status", ("GET",))
def simulation_status(request: Request, experiment_id: str) -> dict:
    return {"data": services().simulations.status_words(request.tenant_id, experiment_id)}


@api.route(BASE + "/{experiment_id}/log", ("GET",))
def simulation_log(request: Request, experiment_id: str) -> Response:
    text = services().simulations.log_text(request.tenant_id, experiment_id)
    return Response(body=text, status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"})


# the engine's side: authenticated by the run's callback token -------------------------------------
class FinishReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["finished", "stopped", "error"] = "finished"
    error: StrictStr = Field(default="", max_length=10_000)


class TickReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: Optional[StrictInt] = None  # the engine's tick index; the API keys instants by (day, t)
    day: StrictInt
    t: float
    statuses: list[dict[str, Any]] = Field(max_length=10_000)
    prompt: StrictStr = ""
    metrics: dict[StrictStr, float] = Field(default_factory=dict)


class ProgressReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cur_day: StrictInt
    cur_t: float
    input_tokens: StrictInt = Field(ge=0)
    output_tokens: StrictInt = Field(ge=0)
    ticks_done: StrictInt = Field(ge=0)
    ticks: list[TickReport] = Field(default_factory=list, max_length=500)
    dialogs: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    surveys: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    artifacts: Optional[dict[str, Any]] = None
    log_lines: list[StrictStr] = Field(default_factory=list, max_length=1_000)
    processed_inbox_ids: list[StrictStr] = Field(default_factory=list)
    profiles: Optional[list[dict[str, Any]]] = None


@api.route(BASE + "/{experiment_id}/finish", ("POST",), access="public", body=FinishReport,
           query=("callback_auth_token",))
def finish_simulation(request: Request, experiment_id: str) -> dict:
    body = request.body()
    services().simulations.finish(experiment_id, request.query("callback_auth_token"), body.status, body.error)
    return {"data": {"message": "finish accepted"}}


@api.route(BASE + "/{experiment_id}/engine/spec", ("GET",), access="public", query=("callback_auth_token",))
def engine_spec(request: Request, experiment_id: str) -> dict:
    wired = services()
    exp, _ = wired.simulations.engine_experiment(experiment_id, request.query("callback_auth_token"))
    return {"data": wired.runtime.spec(exp.tenant_id, exp.id).model_dump(mode="json")}


@api.route(BASE + "/{experiment_id}/engine/progress", ("POST",), access="public", body=ProgressReport,
           body_limit=MAX_PROGRESS_BYTES, query=("callback_auth_token",))
def engine_progress(request: Request, experiment_id: str) -> dict:
    wired = services()
    exp, control = wired.simulations.engine_experiment(experiment_id, request.query("callback_auth_token"))
    report = request.body()
    if exp.stop_requested or exp.status.ended:
        return {"data": {"stop": True, "inbox": []}}
    updated = wired.runtime.record(
        exp, cur_day=report.cur_day, cur_t=report.cur_t,
        counters=(report.input_tokens, report.output_tokens, report.ticks_done),
        ticks=[t.model_dump(exclude={"step"}) for t in report.ticks], dialogs=report.dialogs, surveys=report.surveys,
        artifacts=report.artifacts, log_lines=report.log_lines, processed=report.processed_inbox_ids,
        profiles=report.profiles)
    if updated is None:
        raise Conflict("the run is not running any more")
    if control.task_token:
        wired.step_functions.heartbeat(control.task_token)
    return {"data": {"stop": updated.stop_requested, "inbox": wired.agent_data.pending(exp.tenant_id, exp.id)}}
