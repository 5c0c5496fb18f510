"""Observability: JSON log lines with tenant, request id and route, EMF metrics, and no secrets in either."""
from __future__ import annotations

import io
import json
import logging

import pytest

from tests.conftest import KEYS, auth


@pytest.fixture
def log_lines():
    """The JSON lines Agora's logger writes, exactly as formatted for CloudWatch."""
    from chalicelib.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger._logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    logger._logger.removeHandler(handler)


def _json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def test_requests_log_tenant_request_and_route_and_emit_metrics(client, capsys, monkeypatch, log_lines):
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    exp = client.http.post("/api/v1/experiments", headers=auth(), body=json.dumps({"name": "observed"})).json_body
    run = client.http.post("/api/v1/experiments/runs", headers=auth(),
                           body=json.dumps({"experiment_id": exp["id"]})).json_body
    capsys.readouterr()
    before = len(log_lines())
    client.http.post(f"/api/v1/experiments/runs/{run['id']}/log-batch", headers=auth(),
                     body=json.dumps({"metrics": [{"key": "loss", "value": 1.0, "step": i} for i in range(7)]}))
    client.http.get("/api/v1/experiments/01unknown", headers=auth())
    out = capsys.readouterr()
    lines = _json_lines(out.out)

    handled = [line for line in log_lines()[before:] if line.get("message") == "handled"]
    assert {line["route"] for line in handled} == {"POST /api/v1/experiments/runs/{run_id}/log-batch",
                                                   "GET /api/v1/experiments/{experiment_id}"}
    assert all(line["tenant_id"] == "tenant-a" and line["service"] == "agora" and "request_id" in line
               for line in handled)
    assert sorted(line["status"] for line in handled) == [200, 404]
    emf = [line for line in lines if "_aws" in line]
    assert any(line.get("PointsIngested") in (7.0, [7.0]) for line in emf)
    assert any(line.get("ClientErrors") in (1.0, [1.0]) for line in emf)
    assert KEYS["tenant-a"] not in out.out + json.dumps(log_lines())


def test_workflow_functions_log_the_correlation_id(sim_client, log_lines):
    from tests.sim_helpers import make_configs
    from tests.test_sim_runs import launch, wait_for_end

    refs = make_configs(sim_client, agents=3, workflow=[{"type": "step", "steps": 2}])
    exp_id = launch(sim_client, refs).json_body["data"]["id"]
    wait_for_end(sim_client, exp_id)
    lines = log_lines()
    tasks = [line for line in lines if line.get("function") and line.get("experiment_id") == exp_id]
    assert {"agora-dev-prepare_simulation", "agora-dev-advance_simulation", "agora-dev-bill_simulation"} \
        <= {line["function"] for line in tasks}
    launch_line = next(line for line in lines if line.get("route") == "POST /api/run-experiments")
    assert launch_line["correlation_id"]
    assert all(line.get("correlation_id") == launch_line["correlation_id"] for line in tasks)
