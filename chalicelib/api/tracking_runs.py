"""Tracking API: runs, logging, history and comparison (`/api/v1/experiments/runs`)."""
from __future__ import annotations

from urllib.parse import unquote

from chalicelib.api.http import Api, Query, Request, page_query
from chalicelib.domain.tracking.history import MAX_PAGE as MAX_HISTORY_PAGE
from chalicelib.domain.tracking.history import MAX_POINTS
from chalicelib.domain.tracking.models import CompareRuns, LogBatch, LogMetrics, LogParams, RunCreate, RunEnd
from chalicelib.domain.tracking.runs import EXPERIMENT_REQUIRED, RUN_STATUSES
from chalicelib.domain.tracking.runs import MAX_PAGE as MAX_RUNS_PAGE
from chalicelib.observability import count
from chalicelib.wiring import services

api = Api(__name__)
runs_bp = api.blueprint
RUNS = "/api/v1/experiments/runs"


@api.route(RUNS, ("POST",), status=201, body=RunCreate)
def create_run(request: Request) -> dict:
    return services().runs.create(request.tenant_id, request.body()).to_json()


@api.route(RUNS, ("GET",), query=(Query("experiment_id", required=True, missing=EXPERIMENT_REQUIRED),
                                  Query("status", enum=RUN_STATUSES), *page_query(MAX_RUNS_PAGE)))
def list_runs(request: Request) -> dict:
    limit = request.param("limit", 100)
    offset = request.param("offset", 0)
    found, total = services().runs.search(request.tenant_id, request.param("experiment_id"),
                                          request.param("status"), limit, offset)
    return {"runs": [r.to_json() for r in found], "total": total, "limit": limit, "offset": offset}


@api.route(RUNS + "/compare", ("POST",), body=CompareRuns)
def compare_runs(request: Request) -> dict:
    body = request.body()
    return services().runs.compare(request.tenant_id, body.run_ids, body.metrics)


@api.route(RUNS + "/{run_id}", ("GET",))
def get_run(request: Request, run_id: str) -> dict:
    return services().runs.get(request.tenant_id, run_id).to_json()


@api.route(RUNS + "/{run_id}/log-metrics", ("POST",), body=LogMetrics)
def log_metrics(request: Request, run_id: str) -> dict:
    body = request.body()
    logged = services().runs.log(request.tenant_id, run_id, metrics=body.points())
    count("PointsIngested", logged.metrics)
    return {"logged": logged.metrics}


@api.route(RUNS + "/{run_id}/log-params", ("POST",), body=LogParams)
def log_params(request: Request, run_id: str) -> dict:
    body = request.body()
    return {"logged": services().runs.log(request.tenant_id, run_id, params=body.params).params}


@api.route(RUNS + "/{run_id}/log-batch", ("POST",), body=LogBatch)
def log_batch(request: Request, run_id: str) -> dict:
    body = request.body()
    logged = services().runs.log(request.tenant_id, run_id, metrics=body.metrics,
                                 params={p.key: p.value for p in body.params},
                                 tags={t.key: t.value for t in body.tags})
    count("PointsIngested", logged.metrics)
    return {"metrics": logged.metrics, "params": logged.params, "tags": logged.tags}


@api.route(RUNS + "/{run_id}/end", ("POST",), body=RunEnd)
def end_run(request: Request, run_id: str) -> dict:
    return services().runs.end(request.tenant_id, run_id, request.body().status).to_json()


@api.route(RUNS + "/{run_id}/metrics/{key}", ("GET",),
           query=(Query("start_step", "integer", minimum=-(2**63), maximum=2**63 - 1),
                  Query("end_step", "integer", minimum=-(2**63), maximum=2**63 - 1),
                  Query("page_token", description="next_page_token of the previous page (not with max_points)"),
                  Query("limit", "integer", minimum=1, maximum=MAX_HISTORY_PAGE),
                  Query("max_points", "integer", minimum=2, maximum=MAX_POINTS,
                        description="downsample to at most this many points, the extremes kept (one page)")))
def metric_history(request: Request, run_id: str, key: str) -> dict:
    # a key with '/' travels percent-encoded (%2F) in its path segment
    return services().history.read(
        request.tenant_id, run_id, unquote(key),
        start_step=request.param("start_step"), end_step=request.param("end_step"),
        page_token=request.query("page_token"), limit=request.param("limit", 1_000),
        max_points=request.param("max_points"),
    )
