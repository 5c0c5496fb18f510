"""The OpenAPI document: generated from the routes, valid 3.1, and complete both ways."""
from __future__ import annotations

from openapi_spec_validator import validate


def test_every_route_is_documented_and_every_documented_route_exists(client):
    from app import app

    response = client.http.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.json_body
    validate(doc)
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = {(path, method) for path, entries in app.routes.items() for method in entries}
    assert documented == served


def test_request_bodies_come_from_the_pydantic_models(client):
    doc = client.http.get("/api/openapi.json").json_body
    batch = doc["paths"]["/api/v1/experiments/runs/{run_id}/log-batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LogBatch"}
    assert doc["components"]["schemas"]["LogBatch"]["properties"]["metrics"]["maxItems"] == 1000
    launch = doc["paths"]["/api/run-experiments"]["post"]
    assert launch["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("LaunchRequest")
    export = doc["paths"]["/api/experiments/{experiment_id}/export"]["post"]
    assert {"formKey": []} in export["security"]
