"""Simulation configs: CRUD, validation, the platform's read-only configs, LLM keys never returned."""
from __future__ import annotations

import pytest

from tests.conftest import auth
from tests.sim_helpers import admin, call, upload_map

LLM = [{"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-secret-123", "base_url": "http://127.0.0.1:9/v1"}]


def test_llm_config_round_trip_never_returns_or_stores_the_api_key(client, aws):
    created = call(client, "post", "/api/llm-configs", {"name": "mine", "description": "d", "config": LLM})
    assert created.status_code == 201, created.body
    body = created.json_body["data"]
    assert body["config"][0]["api_key"] == "********"
    assert body["tenant_id"] == "tenant-a"

    listed = call(client, "get", "/api/llm-configs").json_body["data"]
    assert [c["id"] for c in listed] == [body["id"]]
    assert "sk-secret-123" not in call(client, "get", f"/api/llm-configs/{body['id']}").body.decode()

    table = aws.resource("dynamodb").Table("agora-simulations")
    assert "sk-secret-123" not in repr(table.scan()["Items"])


def test_updating_an_llm_config_with_the_masked_key_keeps_the_stored_key(client):
    from chalicelib import wiring

    config_id = call(client, "post", "/api/llm-configs", {"name": "mine", "config": LLM}).json_body["data"]["id"]
    masked = [{**LLM[0], "api_key": "********", "model": "gpt-4o"}]
    updated = call(client, "put", f"/api/llm-configs/{config_id}", {"name": "renamed", "config": masked})
    assert updated.status_code == 200, updated.body
    assert updated.json_body["data"]["config"][0]["model"] == "gpt-4o"

    stored = wiring.services().configs.get("tenant-a", "llm", config_id)
    assert wiring.services().configs.open_llm_keys(stored.tenant_id, stored.secret) == ["sk-secret-123"]


@pytest.mark.parametrize("path, body", [
    ("/api/llm-configs", {"name": "x", "config": [{"provider": "nope", "model": "m"}]}),
    ("/api/llm-configs", {"name": "x", "config": [{"provider": "vllm", "model": "m"}]}),  # vllm needs base_url
    ("/api/llm-configs", {"name": "x", "config": []}),
    ("/api/llm-configs", {"name": "", "config": LLM}),
    ("/api/agent-configs", {"name": "x", "config": {"citizens": [{"number": 0}]}}),
    ("/api/agent-configs", {"name": "x", "config": {"citizens": [{"number": 5, "memory_distributions": {
        "age": {"dist": "uniform_int", "min": 9, "max": 1}}}]}}),
    ("/api/map-configs", {"name": "x", "config": {"file_path": "maps/tenant-a/missing.json"}}),
    ("/api/map-configs", {"name": "x", "config": {"file_path": "maps/tenant-b/theirs.json"}}),
    ("/api/workflow-configs", {"name": "x", "config": [{"type": "dance"}]}),
    ("/api/workflow-configs", {"name": "x", "config": []}),
    ("/api/workflow-configs", {"name": "x", "config": [{"type": "intervene"}]}),
    ("/api/surveys", {"name": "x", "data": {"pages": [{"elements": []}]}}),
    ("/api/surveys", {"name": "x"}),
])
def test_invalid_configs_are_400_with_a_detail(client, path, body):
    response = call(client, "post", path, body)
    assert response.status_code == 400, response.body
    assert response.json_body["detail"]
    assert call(client, "get", path).json_body["data"] == []


def test_platform_configs_are_readable_by_every_tenant_and_writable_only_by_the_admin(client):
    created = call(client, "post", "/api/workflow-configs", {"name": "shared", "config": [{"type": "run", "days": 1}]},
                   admin())
    assert created.status_code == 201, created.body
    config = created.json_body["data"]
    assert config["tenant_id"] == ""

    for tenant in ("tenant-a", "tenant-b"):
        listed = call(client, "get", "/api/workflow-configs", headers=auth(tenant)).json_body["data"]
        assert [c["id"] for c in listed] == [config["id"]]
        assert call(client, "get", f"/api/workflow-configs/{config['id']}", headers=auth(tenant)).status_code == 200
        assert call(client, "put", f"/api/workflow-configs/{config['id']}", {"name": "mine", "config": [
            {"type": "run", "days": 2}]}, headers=auth(tenant)).status_code == 403
        assert call(client, "delete", f"/api/workflow-configs/{config['id']}", headers=auth(tenant)).status_code == 403

    assert call(client, "put", f"/api/workflow-configs/{config['id']}", {"name": "shared", "config": [
        {"type": "run", "days": 2}]}, admin()).status_code == 200
    assert call(client, "delete", f"/api/workflow-configs/{config['id']}", headers=admin()).status_code == 200
    assert call(client, "get", f"/api/workflow-configs/{config['id']}").status_code == 404


def test_another_tenants_config_is_403_and_an_unknown_one_404(client):
    config_id = call(client, "post", "/api/agent-configs", {"name": "a", "config": {"citizens": [{"number": 3}]}}
                     ).json_body["data"]["id"]
    for method, body in (("get", None), ("put", {"name": "b", "config": {"citizens": [{"number": 4}]}}),
                         ("delete", None)):
        assert call(client, method, f"/api/agent-configs/{config_id}", body, auth("tenant-b")).status_code == 403
        assert call(client, method, "/api/agent-configs/01unknown", body).status_code == 404
    assert call(client, "get", "/api/agent-configs", headers=auth("tenant-b")).json_body["data"] == []
    stored = call(client, "get", f"/api/agent-configs/{config_id}").json_body["data"]
    assert stored["config"]["citizens"][0]["number"] == 3


def test_map_upload_stores_the_file_under_the_tenants_folder_and_rejects_a_bad_map(client):
    path = upload_map(client)
    assert path.startswith("maps/tenant-a/")
    created = call(client, "post", "/api/map-configs", {"name": "city", "config": {"file_path": path}})
    assert created.status_code == 201, created.body
    # tenant b cannot point a config at tenant a's file
    assert call(client, "post", "/api/map-configs", {"name": "city", "config": {"file_path": path}},
                auth("tenant-b")).status_code == 400

    boundary = "b"
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.json\"\r\n\r\n"
            b"{\"aois\": []}\r\n--b--\r\n")
    bad = client.http.post("/api/map-configs/-/upload", body=body,
                           headers={**auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert bad.status_code == 400 and bad.json_body["detail"]


def test_config_routes_need_a_key(client):
    for path in ("/api/llm-configs", "/api/agent-configs", "/api/map-configs", "/api/workflow-configs", "/api/surveys"):
        assert client.http.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_surveys_crud(client):
    created = call(client, "post", "/api/surveys", {"name": "s", "data": {"pages": [{"elements": [
        {"name": "q1", "type": "rating", "title": "How?"}]}]}})
    assert created.status_code == 201, created.body
    survey = created.json_body["data"]
    assert survey["data"]["pages"][0]["elements"][0]["name"] == "q1"
    assert call(client, "put", f"/api/surveys/{survey['id']}", {"name": "s2", "data": survey["data"]}
                ).json_body["data"]["name"] == "s2"
    assert call(client, "delete", f"/api/surveys/{survey['id']}").status_code == 200
    assert call(client, "get", "/api/surveys").json_body["data"] == []
