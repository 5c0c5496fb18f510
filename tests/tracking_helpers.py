"""Shared helpers of the tracking API tests: requests as a tenant, error checks, new experiments."""
from __future__ import annotations

import json
from typing import Any

from tests.conftest import auth

EXPERIMENTS = "/api/v1/experiments"
RUNS = "/api/v1/experiments/runs"


def artifact_key(tenant: str, experiment_id: str, run_id: str, path: str = "") -> str:
    """The S3 key of a run artifact in Agora's default layout (README: artifact_location)."""
    return f"tenants/{tenant}/experiments/{experiment_id}/runs/{run_id}/artifacts/{path}"


def send(client, method: str, path: str, body: Any = None, tenant: str = "tenant-a"):
    payload = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    return getattr(client.http, method)(path, headers=auth(tenant), body=payload)


def data(response) -> Any:
    return json.loads(response.body)


def assert_error(response, status: int) -> None:
    assert response.status_code == status, response.body
    assert "detail" in data(response), response.body


def new_experiment(client, name: str = "exp", tenant: str = "tenant-a") -> str:
    response = send(client, "post", EXPERIMENTS, {"name": name}, tenant)
    assert response.status_code == 201, response.body
    return data(response)["id"]


def get_ok(client, path: str, tenant: str = "tenant-a") -> Any:
    """GET as the tenant; the answer must be 200. Returns its JSON body."""
    return ok(client.http.get(path, headers=auth(tenant)))


def created(client, path: str, body: Any, tenant: str = "tenant-a") -> Any:
    """POST as the tenant; the answer must be 201. Returns its JSON body."""
    return ok(send(client, "post", path, body, tenant), 201)


def ok(response, status: int = 200) -> Any:
    """The JSON body of a response that must have `status`."""
    assert response.status_code == status, response.body
    return json.loads(response.body)
