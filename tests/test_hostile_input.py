"""What a careless or hostile client sends: each answer is a 4xx with `detail` that changes nothing, or,
for what the limits allow, a success; never a 500."""
from __future__ import annotations

import json

import pytest

from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, get_ok, ok, send

LONE_SURROGATE = '"bad \\ud800 text"'  # a JSON escape that decodes to a lone surrogate


def raw(client, method: str, path: str, text: str):
    return getattr(client.http, method)(path, headers=auth(), body=text.encode())


def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"deeper": value}
    return value


def assert_refused(response, *words: str) -> None:
    assert response.status_code == 400, (response.status_code, response.body[:300])
    detail = json.dumps(response.json_body["detail"])
    assert all(word in detail for word in words), detail


def test_a_lone_surrogate_anywhere_is_400_and_writes_nothing(client):
    exp = ok(send(client, "post", EXPERIMENTS, {"name": "clean"}), 201)
    run = ok(send(client, "post", RUNS, {"experiment_id": exp["id"]}), 201)
    bodies = {
        f"{RUNS}/{run['id']}/log-batch": ('{"params": [{"key": "p", "value": %s}]}',
                                          '{"tags": [{"key": "t", "value": %s}]}'),
        f"{RUNS}/{run['id']}/log-params": ('{"params": {"p": %s}}',),
        EXPERIMENTS: ('{"name": %s}', '{"name": "x", "tags": {"k": %s}}'),
        "/api/agent-configs": ('{"name": %s, "config": {"citizens": [{"number": 1}]}}',),
        "/api/surveys": ('{"name": "s", "data": {"pages": [{"elements": [{"name": "q", "title": %s}]}]}}',),
    }
    for path, templates in bodies.items():
        for template in templates:
            assert_refused(raw(client, "post", path, template % LONE_SURROGATE), "not valid Unicode")
    assert get_ok(client, f"{RUNS}/{run['id']}")["params"] == {} and get_ok(client, f"{RUNS}/{run['id']}")["tags"] == {}
    assert [e["name"] for e in get_ok(client, EXPERIMENTS)["experiments"]] == ["clean"]
    assert get_ok(client, "/api/agent-configs")["data"] == [] and get_ok(client, "/api/surveys")["data"] == []


def test_json_nested_too_deep_is_400_in_any_body(client):
    for path, body in (("/api/agent-configs", {"name": "deep", "config": {"citizens": [{"number": 1}],
                                                                          "firms": [nested(300)]}}),
                       ("/api/surveys", {"name": "deep", "data": {"pages": [{"elements": [nested(300)]}]}}),
                       (EXPERIMENTS, {"name": "deep", "tags": nested(40)})):
        assert_refused(send(client, "post", path, body), "nests more than 32 levels")
    shallow = send(client, "post", "/api/surveys", {"name": "ok", "data": {"pages": [{"elements": [
        {"name": "q", "type": "text", "extra": nested(20)}]}]}})
    assert shallow.status_code == 201, shallow.body


def test_llm_keys_beyond_what_kms_encrypts_are_400_and_stored_keys_stay(client):
    endpoints = [{"provider": "openai", "model": "m", "api_key": "k" * 4_000} for _ in range(3)]
    assert_refused(send(client, "post", "/api/llm-configs", {"name": "big", "config": endpoints}), "4,096 bytes")
    assert get_ok(client, "/api/llm-configs")["data"] == []
    fine = ok(send(client, "post", "/api/llm-configs", {"name": "fine", "config": endpoints[:1]}), 201)["data"]
    assert_refused(send(client, "put", f"/api/llm-configs/{fine['id']}", {"name": "fine", "config": endpoints}),
                   "4,096 bytes")
    assert get_ok(client, "/api/llm-configs")["data"][0]["updated_at"] == fine["updated_at"]


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("path", "a\x01b.txt", "control characters"),
    ("path", "logs/\nfake.txt", "control characters"),
    ("path", "tab\there.txt", "control characters"),
    ("content_type", "text/plain\r\nX-Injected: yes", "not a media type"),
    ("content_type", "text/plain\nX: y", "not a media type"),
    ("content_type", "nonsense", "not a media type"),
])
def test_a_presigned_upload_refuses_control_characters_and_header_breaking_types(client, field, value, reason):
    exp = ok(send(client, "post", EXPERIMENTS, {"name": "uploads"}), 201)
    run = ok(send(client, "post", RUNS, {"experiment_id": exp["id"]}), 201)
    body = {"path": "ok.txt", field: value}
    assert_refused(send(client, "post", f"{RUNS}/{run['id']}/artifact-uploads", body), reason)
    fine = send(client, "post", f"{RUNS}/{run['id']}/artifact-uploads",
                {"path": "ok.txt", "content_type": "text/plain; charset=utf-8"})
    assert fine.status_code == 201


def test_an_experiment_holds_its_documented_tag_limits(client):
    """100 tags of 8,000 characters (MLflow's limits) are more than one DynamoDB item holds: they still fit."""
    tags = {f"tag-{n:03d}": chr(ord("a") + n % 26) * 8_000 for n in range(100)}  # 800 KB: two items' worth
    created = send(client, "post", EXPERIMENTS, {"name": "heavy", "tags": tags})
    assert created.status_code == 201, created.body[:300]
    exp_id = created.json_body["id"]
    assert get_ok(client, f"{EXPERIMENTS}/{exp_id}")["tags"] == tags
    listed = get_ok(client, f"{EXPERIMENTS}?search=heavy")["experiments"]
    assert [e["tags"] for e in listed] == [tags]
    renamed = ok(send(client, "patch", f"{EXPERIMENTS}/{exp_id}", {"name": "heavier", "tags": {"tag-000": None}}))
    assert renamed["name"] == "heavier" and len(renamed["tags"]) == 99
    assert get_ok(client, f"{EXPERIMENTS}/{exp_id}")["tags"] == {k: v for k, v in tags.items() if k != "tag-000"}
    ok(send(client, "delete", f"{EXPERIMENTS}/{exp_id}"))
    ok(send(client, "post", f"{EXPERIMENTS}/{exp_id}/restore"))
    assert len(get_ok(client, f"{EXPERIMENTS}/{exp_id}")["tags"]) == 99


def test_doubles_beyond_dynamodb_numbers_are_kept_exactly(client):
    """A double nearer zero than DynamoDB's numbers reach (1e-130), or beyond 9.9e125, is a valid metric value:
    it is stored and read back exactly (it once made the latest value's sort number underflow: a 500)."""
    exp = ok(send(client, "post", EXPERIMENTS, {"name": "extreme doubles"}), 201)["id"]
    run = ok(send(client, "post", RUNS, {"experiment_id": exp}), 201)["id"]
    values = {"tiny": 7.673050986421811e-214, "negative tiny": -3.528352362863064e-186, "subnormal": 5e-324,
              "huge": 1.7e308, "negative huge": -3.5e186}
    for step, (name, value) in enumerate(values.items()):
        ok(send(client, "post", f"{RUNS}/{run}/log-metrics", {"metrics": {name.replace(" ", "_"): value},
                                                               "step": step}))
        ok(send(client, "post", f"{RUNS}/{run}/log-batch",
                {"metrics": [{"key": "all", "value": value, "step": step}]}))
    latest = get_ok(client, f"{RUNS}/{run}")["metrics"]
    assert {k: m["value"] for k, m in latest.items() if k != "all"} == \
        {name.replace(" ", "_"): value for name, value in values.items()}
    points = get_ok(client, f"{RUNS}/{run}/metrics/all")["points"]
    assert [p["value"] for p in points] == list(values.values())


def test_an_empty_number_in_the_query_is_400(client):
    for path in ("/api/v1/experiments?limit=", "/api/experiments?skip=", "/api/bills?limit="):
        response = client.http.get(path, headers=auth())
        assert response.status_code == 400 and "empty" in json.loads(response.body)["detail"], path
    assert client.http.get("/api/v1/experiments?search=", headers=auth()).status_code == 200  # a string may be
