"""The experiments API reference's own request bodies (DESIGN.md section 4), sent byte for byte.

Only the ids the reference leaves as placeholders ("...", "id1") are replaced by real ones; every
other byte, whitespace included, is the reference's. Each answer is checked for what the reference
promises (status and shape), then read back.
"""
from __future__ import annotations

import json

from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, ok

CREATE_EXPERIMENT = '{"name": "1-255 chars", "description": "max 1000", "artifact_location": "s3://...", ' \
                    '"tags": {"k": "v"}}'
CREATE_RUN = '{"experiment_id": "%s", "tags": {"k": "v"}}'
LOG_METRICS = '{"metrics": {"metric_name": 0.95}, "step": 10, "timestamp": 1707723600000}'
LOG_METRICS_ISSUE = '{"metrics": {"acc": 0.95}, "step": 10, "timestamp": 1707723600000}'
LOG_PARAMS = '{"params": {"k": "v"}}'
LOG_BATCH = '{"metrics": [{"key": "loss", "value": 0.34, "step": 1}], "params": [{"key": "lr", "value": "0.01"}], ' \
            '"tags": [{"key": "type", "value": "baseline"}]}'
END_RUN = '{"status": "FINISHED"}'
COMPARE = '{"run_ids": ["%s", "%s"], "metrics": ["val_accuracy", "val_loss"]}'
PATCH = '{"name": "renamed", "description": "max 1000", "tags": {"k": "v2"}}'


def post(client, path: str, raw: str):
    return client.http.post(path, headers=auth(), body=raw)


def test_create_experiment_with_the_reference_body(client):
    placeholder = post(client, EXPERIMENTS, CREATE_EXPERIMENT)
    # "s3://..." is no place in this tenant's artifact space: a 400 that says where artifacts may go
    assert placeholder.status_code == 400, placeholder.body
    detail = json.loads(placeholder.body)["detail"]
    assert "artifact_location" in detail and "tenants/tenant-a/" in detail

    bucket_root = ok(post(client, EXPERIMENTS, '{"name": "probe"}'), 201)["artifact_location"].split("tenants/")[0]
    honoured = CREATE_EXPERIMENT.replace("s3://...", f"{bucket_root}tenants/tenant-a/projects/demo")
    created = ok(post(client, EXPERIMENTS, honoured), 201)
    assert set(created) == {"id", "name", "description", "artifact_location", "lifecycle_stage", "tags",
                            "created_at", "updated_at"}
    assert (created["name"], created["description"], created["tags"], created["lifecycle_stage"]) == (
        "1-255 chars", "max 1000", {"k": "v"}, "active")
    assert created["artifact_location"] == f"{bucket_root}tenants/tenant-a/projects/demo/"
    assert ok(client.http.get(f"{EXPERIMENTS}/{created['id']}", headers=auth())) == created

    patched = ok(client.http.patch(f"{EXPERIMENTS}/{created['id']}", headers=auth(), body=PATCH))
    assert (patched["name"], patched["tags"]) == ("renamed", {"k": "v2"})


def test_the_run_examples_create_log_end_and_compare(client):
    exp_id = ok(post(client, EXPERIMENTS, '{"name": "reference"}'), 201)["id"]
    run = ok(post(client, RUNS, CREATE_RUN % exp_id), 201)
    other = ok(post(client, RUNS, CREATE_RUN % exp_id), 201)
    assert run["status"] == "RUNNING" and run["tags"] == {"k": "v"} and run["experiment_id"] == exp_id
    runs = f"{RUNS}/{run['id']}"

    assert ok(post(client, f"{runs}/log-metrics", LOG_METRICS)) == {"logged": 1}
    assert ok(post(client, f"{runs}/log-metrics", LOG_METRICS_ISSUE)) == {"logged": 1}
    assert ok(post(client, f"{runs}/log-params", LOG_PARAMS)) == {"logged": 1}
    assert ok(post(client, f"{runs}/log-batch", LOG_BATCH)) == {"metrics": 1, "params": 1, "tags": 1}
    ended = ok(post(client, f"{runs}/end", END_RUN))
    assert ended["status"] == "FINISHED" and ended["end_time"]

    stored = ok(client.http.get(runs, headers=auth()))
    assert stored["params"] == {"k": "v", "lr": "0.01"} and stored["tags"] == {"k": "v", "type": "baseline"}
    assert {k: (m["value"], m["step"], m["timestamp"]) for k, m in stored["metrics"].items() if k != "loss"} == {
        "metric_name": (0.95, 10, 1707723600000), "acc": (0.95, 10, 1707723600000)}
    assert (stored["metrics"]["loss"]["value"], stored["metrics"]["loss"]["step"]) == (0.34, 1)

    for key in ("val_accuracy", "val_loss"):
        ok(post(client, f"{RUNS}/{other['id']}/log-metrics", json.dumps({"metrics": {key: 0.5}, "step": 1})))
    compared = ok(post(client, f"{RUNS}/compare", COMPARE % (run["id"], other["id"])))
    assert [r["id"] for r in compared["runs"]] == [run["id"], other["id"]]
    assert compared["runs"][0]["metrics"] == {"val_accuracy": None, "val_loss": None}
    assert compared["runs"][1]["metrics"]["val_loss"] == {"latest": 0.5, "min": 0.5, "max": 0.5, "count": 1}
    assert compared["params_differing"] == ["k", "lr"]


def test_the_list_examples_with_their_query_parameters(client):
    exp_id = ok(post(client, EXPERIMENTS, '{"name": "listed"}'), 201)["id"]
    ok(post(client, RUNS, CREATE_RUN % exp_id), 201)
    experiments = ok(client.http.get(f"{EXPERIMENTS}?search=&lifecycle_stage=active&limit=100&offset=0",
                                     headers=auth()))
    assert set(experiments) == {"experiments", "total", "limit", "offset"} and experiments["total"] == 1
    runs = ok(client.http.get(f"{RUNS}?experiment_id={exp_id}&status=&limit=100&offset=0", headers=auth()))
    assert set(runs) == {"runs", "total", "limit", "offset"} and runs["total"] == 1
