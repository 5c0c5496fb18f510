"""Tracking API: experiments (`/api/v1/experiments`)."""
from __future__ import annotations

from chalicelib.api.http import Api, Query, Request, page_query
from chalicelib.domain.tracking.experiments import MAX_PAGE
from chalicelib.domain.tracking.models import ExperimentCreate, ExperimentPatch
from chalicelib.domain.tracking.records import ACTIVE, LIFECYCLE_STAGES
from chalicelib.wiring import services

api = Api(__name__)
experiments_bp = api.blueprint
PREFIX = "/api/v1/experiments"


@api.route(PREFIX, ("POST",), status=201, body=ExperimentCreate)
def create_experiment(request: Request) -> dict:
    return services().experiments.create(request.tenant_id, request.body()).to_json()


@api.route(PREFIX, ("GET",), query=(Query("search", description="a part of the name, in any case"),
                                    Query("lifecycle_stage", enum=LIFECYCLE_STAGES), *page_query(MAX_PAGE)))
def list_experiments(request: Request) -> dict:
    limit = request.param("limit", 100)
    offset = request.param("offset", 0)
    found, total = services().experiments.search(request.tenant_id, request.query("search"),
                                                 request.param("lifecycle_stage", ACTIVE), limit, offset)
    return {"experiments": [e.to_json() for e in found], "total": total, "limit": limit, "offset": offset}


@api.route(PREFIX + "/{experiment_id}", ("GET",))
def get_experiment(request: Request, experiment_id: str) -> dict:
    return services().experiments.get(request.tenant_id, experiment_id).to_json()


@api.route(PREFIX + "/{experiment_id}", ("PATCH",), body=ExperimentPatch)
def update_experiment(request: Request, experiment_id: str) -> dict:
    patch = request.body()
    return services().experiments.update(request.tenant_id, experiment_id, patch).to_json()


@api.route(PREFIX + "/{experiment_id}", ("DELETE",))
def delete_experiment(request: Request, experiment_id: str) -> dict:
    return services().experiments.delete(request.tenant_id, experiment_id).to_json()


@api.route(PREFIX + "/{experiment_id}/restore", ("POST",))
def restore_experiment(request: Request, experiment_id: str) -> dict:
    return services().experiments.restore(request.tenant_id, experiment_id).to_json()
