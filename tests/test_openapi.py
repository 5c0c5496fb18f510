"""The OpenAPI document: generated from the routes, valid 3.1, complete both ways, and saying what routes answer.

What the routes really answer is checked against the running stack by tests/test_fuzz.py (schemathesis);
these tests pin how the document is derived from the declarations.
"""
from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from chalicelib.api.http import FORM, JSON, MULTIPART, OTHER_APIS, ROUTES

REDIRECTS = {("/api/experiments/{experiment_id}/export", "post"), ("/api/map-configs/{config_id}/export", "post"),
             ("/api/map-configs/{config_id}/temp-link", "get"),
             ("/api/v1/experiments/runs/{run_id}/artifacts/download", "get")}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture
def doc(client) -> dict:
    response = client.http.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json_body


def operations(doc: dict):
    for path, ops in doc["paths"].items():
        for method, operation in ops.items():
            yield path, method, operation


def test_every_route_is_documented_and_every_documented_route_exists(doc):
    from app import app

    validate(doc)
    documented = {(path, method.upper()) for path, method, _ in operations(doc)}
    mlflow = {(r.path, r.method) for r in OTHER_APIS}
    served = {(path, method) for path, entries in app.routes.items() for method in entries}
    assert documented == served - mlflow and not documented & mlflow
    assert all(path.startswith(("/api/2.0/mlflow", "/ajax-api/", "/api/3.0/mlflow", "/static-files/", "/graphql"))
               or path == "/" for path, _ in mlflow)


def test_request_bodies_come_from_the_pydantic_models(doc):
    batch = doc["paths"]["/api/v1/experiments/runs/{run_id}/log-batch"]["post"]
    assert batch["requestBody"] == {"required": True, "content": {
        JSON: {"schema": {"$ref": "#/components/schemas/LogBatch"}}}}
    assert doc["components"]["schemas"]["LogBatch"]["properties"]["metrics"]["maxItems"] == 1000
    launch = doc["paths"]["/api/run-experiments"]["post"]
    assert launch["requestBody"]["content"][JSON]["schema"]["$ref"].endswith("LaunchRequest")


def test_multipart_and_form_bodies_are_described(doc):
    upload = doc["paths"]["/api/v1/experiments/runs/{run_id}/log-artifact"]["post"]
    schema = upload["requestBody"]["content"][MULTIPART]["schema"]
    assert upload["requestBody"]["required"] and list(upload["requestBody"]["content"]) == [MULTIPART]
    assert schema["required"] == ["file"] and schema["properties"]["file"]["format"] == "binary"
    # a browser download posts the key as a form field; a client with the header sends no body at all
    export = doc["paths"]["/api/experiments/{experiment_id}/export"]["post"]
    assert export["requestBody"]["required"] is False
    assert "authorization" in export["requestBody"]["content"][FORM]["schema"]["properties"]
    assert export["requestBody"]["content"][JSON] == {"schema": {}}  # taken, and ignored
    assert export["security"] == [{"bearer": []}] and "form field" in export["description"]
    assert set(doc["components"]["securitySchemes"]) == {"bearer"}


def test_query_parameters_are_listed(doc):
    listing = doc["paths"]["/api/v1/experiments"]["get"]
    query = {p["name"] for p in listing["parameters"] if p["in"] == "query"}
    assert query == {"search", "lifecycle_stage", "limit", "offset"}
    history = doc["paths"]["/api/v1/experiments/runs/{run_id}/metrics/{key}"]["get"]
    assert [p["name"] for p in history["parameters"] if p["in"] == "path"] == ["run_id", "key"]


def test_downloads_answer_303_with_a_location(doc):
    redirects = {(path, method) for path, method, op in operations(doc) if "303" in op["responses"]}
    assert redirects == REDIRECTS
    for path, method in REDIRECTS:
        responses = doc["paths"][path][method]["responses"]
        assert not any(code.startswith("2") for code in responses), (path, method)
        assert responses["303"]["headers"]["Location"]["required"] is True
        assert "content" not in responses["303"]


def test_success_is_the_declared_status_with_json_unless_the_view_answers_itself(doc):
    for route in ROUTES:
        responses = doc["paths"][route.path][route.method.lower()]["responses"]
        if (route.path, route.method.lower()) in REDIRECTS:
            continue
        success = responses[str(route.status)]
        if route.view.__name__ in ("simulation_log", "simulation_artifacts"):  # their own Response
            assert "content" not in success, route.path
        else:
            assert success["content"] == {JSON: {"schema": {"type": "object"}}}, route.path
    assert "201" in doc["paths"]["/api/v1/experiments"]["post"]["responses"]
    assert "201" in doc["paths"]["/api/llm-configs"]["post"]["responses"]


def test_every_operation_documents_the_errors_with_the_detail_schema(doc):
    assert doc["components"]["schemas"]["Error"]["required"] == ["detail"]
    access = {(r.path, r.method.lower()): r.access for r in ROUTES}
    for path, method, operation in operations(doc):
        responses = operation["responses"]
        expected = {"400", "403", "404", "409", "413", "415", "503"}
        if access[(path, method)] != "public":
            expected.add("401")
        assert expected == {code for code in responses if code[0] in "45"}, (path, method)
        for code in expected:
            assert responses[code]["content"] == {JSON: {"schema": ERROR_REF}}, (path, method, code)
        assert responses["503"]["headers"]["Retry-After"]["required"] is True
    public = doc["paths"]["/api/agent-blocks"]["get"]
    assert public["security"] == [] and "401" not in public["responses"]
