"""Tenant isolation on every tracking route: another tenant's id is 403, an unknown id 404, a bad or
missing key 401, and no listing ever shows another tenant's data."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, data

BOUNDARY = "----agora-isolation"
MULTIPART_BODY = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n'
                  f"Content-Type: text/plain\r\n\r\nhello\r\n--{BOUNDARY}--\r\n").encode()


@dataclass(frozen=True)
class Route:
    """One tracking route; `{exp}`, `{run}` and `{other_run}` are filled in per scenario."""

    method: str
    path: str
    body: Optional[Any] = None
    multipart: bool = False

    def call(self, client, headers: dict[str, str], **ids: str):
        path = self.path.format(**ids)
        body = self.body
        if self.multipart:
            headers = {**headers, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
            body = MULTIPART_BODY
        elif body is not None:
            body = json.dumps(body).replace("{exp}", ids.get("exp", "")).replace(
                "{run}", ids.get("run", "")).replace("{other_run}", ids.get("other_run", ""))
        return getattr(client.http, self.method)(path, headers=headers, body=body)


# Every route that names an experiment or a run (DESIGN.md section 4 and the routes beyond the table).
ROUTES_WITH_IDS = {
    "get experiment": Route("get", EXPERIMENTS + "/{exp}"),
    "patch experiment": Route("patch", EXPERIMENTS + "/{exp}", {"description": "hijacked"}),
    "delete experiment": Route("delete", EXPERIMENTS + "/{exp}"),
    "restore experiment": Route("post", EXPERIMENTS + "/{exp}/restore"),
    "create run": Route("post", RUNS, {"experiment_id": "{exp}"}),
    "list runs": Route("get", RUNS + "?experiment_id={exp}"),
    "get run": Route("get", RUNS + "/{run}"),
    "log-metrics": Route("post", RUNS + "/{run}/log-metrics", {"metrics": {"m": 9}, "step": 9}),
    "log-params": Route("post", RUNS + "/{run}/log-params", {"params": {"p": "hijacked"}}),
    "log-batch": Route("post", RUNS + "/{run}/log-batch", {"tags": [{"key": "t", "value": "hijacked"}]}),
    "log-artifact": Route("post", RUNS + "/{run}/log-artifact?artifact_path=x", multipart=True),
    "end run": Route("post", RUNS + "/{run}/end", {"status": "KILLED"}),
    "compare": Route("post", RUNS + "/compare", {"run_ids": ["{other_run}", "{run}"]}),
    "metric history": Route("get", RUNS + "/{run}/metrics/loss"),
    "list artifacts": Route("get", RUNS + "/{run}/artifacts"),
    "download artifact": Route("get", RUNS + "/{run}/artifacts/download?path=a.txt"),
    "presigned upload": Route("post", RUNS + "/{run}/artifact-uploads", {"path": "big.bin"}),
}
ROUTES_WITHOUT_IDS = {
    "create experiment": Route("post", EXPERIMENTS, {"name": "intruder"}),
    "list experiments": Route("get", EXPERIMENTS),
}
ALL_ROUTES = {**ROUTES_WITHOUT_IDS, **ROUTES_WITH_IDS}


def post(client, path: str, body: Any, tenant: str = "tenant-a") -> dict:
    response = client.http.post(path, headers=auth(tenant), body=json.dumps(body))
    assert response.status_code in (200, 201), response.body
    return data(response)


@pytest.fixture
def tenant_a(client) -> dict[str, str]:
    """tenant-a's experiment and run with a metric, a param, a tag and an artifact."""
    exp = post(client, EXPERIMENTS, {"name": "secret project", "tags": {"owner": "a"}})["id"]
    run = post(client, RUNS, {"experiment_id": exp, "name": "secret run"})["id"]
    post(client, f"{RUNS}/{run}/log-batch", {"metrics": [{"key": "loss", "value": 0.5, "step": 1, "timestamp": 1}],
                                             "params": [{"key": "p", "value": "original"}],
                                             "tags": [{"key": "t", "value": "original"}]})
    Route("post", RUNS + "/{run}/log-artifact?artifact_path=", multipart=True).call(client, auth(), run=run)
    return {"exp": exp, "run": run}


def snapshot(client, ids: dict[str, str]) -> tuple[dict, dict, dict]:
    exp = data(client.http.get(f"{EXPERIMENTS}/{ids['exp']}", headers=auth()))
    run = data(client.http.get(f"{RUNS}/{ids['run']}", headers=auth()))
    arts = data(client.http.get(f"{RUNS}/{ids['run']}/artifacts", headers=auth()))
    return exp, run, arts


def test_another_tenants_experiment_or_run_is_403_on_every_route_and_nothing_changes(client, tenant_a, subtests):
    before = snapshot(client, tenant_a)
    b_exp = post(client, EXPERIMENTS, {"name": "b's own"}, tenant="tenant-b")["id"]
    b_run = post(client, RUNS, {"experiment_id": b_exp}, tenant="tenant-b")["id"]

    for name, route in ROUTES_WITH_IDS.items():
        with subtests.test(name):
            response = route.call(client, auth("tenant-b"), other_run=b_run, **tenant_a)
            assert response.status_code == 403, response.body
            assert "detail" in data(response)
            assert "secret" not in response.body.decode(), "no leak of the other tenant's data"

    assert snapshot(client, tenant_a) == before
    b_runs = data(client.http.get(f"{RUNS}?experiment_id={b_exp}", headers=auth("tenant-b")))
    assert [r["id"] for r in b_runs["runs"]] == [b_run], "no run was created in the other tenant's experiment"


def test_unknown_ids_are_404_on_every_route(client, subtests):
    own_exp = post(client, EXPERIMENTS, {"name": "own"})["id"]
    own_run = post(client, RUNS, {"experiment_id": own_exp})["id"]
    post(client, f"{RUNS}/{own_run}/log-metrics", {"metrics": {"loss": 1}})

    for name, route in ROUTES_WITH_IDS.items():
        with subtests.test(name):
            response = route.call(client, auth(), exp="no-such-experiment", run="no-such-run", other_run=own_run)
            assert response.status_code == 404, response.body
            assert "detail" in data(response)


def test_an_unknown_key_is_401_with_detail_on_every_route(client, tenant_a, subtests):
    before = snapshot(client, tenant_a)
    bad_headers = {
        "unknown key": {"Authorization": "Bearer not-a-key"},
        "another scheme": {"Authorization": "Basic key-a"},
        "empty bearer": {"Authorization": "Bearer "},
    }
    for name, route in ALL_ROUTES.items():
        for case, headers in bad_headers.items():
            with subtests.test(f"{name}, {case}"):
                response = route.call(client, {**headers, "Content-Type": "application/json"},
                                      other_run=tenant_a["run"], **tenant_a)
                assert response.status_code == 401, response.body
                if case == "unknown key":
                    assert "detail" in data(response)

    assert snapshot(client, tenant_a) == before


def test_no_key_is_401_on_every_route(client, tenant_a, subtests):
    before = snapshot(client, tenant_a)

    for name, route in ALL_ROUTES.items():
        with subtests.test(name):
            response = route.call(client, {"Content-Type": "application/json"}, other_run=tenant_a["run"], **tenant_a)
            assert response.status_code == 401, response.body

    assert snapshot(client, tenant_a) == before


def test_lists_and_searches_never_show_another_tenants_data(client, tenant_a):
    deleted = post(client, EXPERIMENTS, {"name": "secret archive"})["id"]
    client.http.delete(f"{EXPERIMENTS}/{deleted}", headers=auth())
    b_exp = post(client, EXPERIMENTS, {"name": "b's project"}, tenant="tenant-b")["id"]
    b_run = post(client, RUNS, {"experiment_id": b_exp}, tenant="tenant-b")["id"]

    def b_get(path: str) -> dict:
        response = client.http.get(path, headers=auth("tenant-b"))
        assert response.status_code == 200, response.body
        return data(response)

    for query in ("", "?search=secret", "?lifecycle_stage=deleted", "?lifecycle_stage=deleted&search=secret",
                  "?limit=1000"):
        listed = b_get(f"{EXPERIMENTS}{query}")
        assert {e["id"] for e in listed["experiments"]} <= {b_exp}, query
        assert "secret" not in json.dumps(listed)
    assert b_get(f"{EXPERIMENTS}")["total"] == 1
    assert [r["id"] for r in b_get(f"{RUNS}?experiment_id={b_exp}")["runs"]] == [b_run]
    assert b_get(f"{RUNS}/{b_run}/artifacts") == {"artifacts": []}
    assert b_get(f"{RUNS}/{b_run}")["metrics"] == {}
    a_total = data(client.http.get(EXPERIMENTS, headers=auth()))["total"]
    assert a_total == 1, "tenant-a sees its own active experiment only"
