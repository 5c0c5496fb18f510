"""DynamoDB requests per API call, counted with a botocore event hook on the app's own client.

The hook only observes (it returns nothing, so botocore proceeds as usual). The authorizer's API-key
lookup is counted apart: deployed, the authorizer is its own Lambda and API Gateway caches its answer
(300 s), so it is not part of a route's cost; under the test client it runs on every request.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib import wiring
from tests.conftest import auth

EXPERIMENTS = "/api/v1/experiments"
RUNS = "/api/v1/experiments/runs"


@dataclass
class DynamoCounter:
    """Records (operation, table) of every DynamoDB call made through the app's client."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    key_lookups: int = 0

    def __call__(self, model: Any, params: dict, **_: Any) -> None:
        body = json.loads(params.get("body") or b"{}")
        table = body.get("TableName", "")
        key = body.get("Key", {}).get("pk", {}).get("S", "")
        if model.name == "GetItem" and table == os.environ["AGORA_DIRECTORY_TABLE"] and key.startswith("KEY#"):
            self.key_lookups += 1  # the authorizer resolving the API key
        else:
            self.calls.append((model.name, table))

    def reset(self) -> None:
        self.calls.clear()
        self.key_lookups = 0


@pytest.fixture
def dynamo_requests(client):
    counter = DynamoCounter()
    events = wiring.services().dynamodb.meta.events
    events.register("before-call.dynamodb", counter, unique_id="agora-request-counter")
    yield counter
    events.unregister("before-call.dynamodb", unique_id="agora-request-counter")


def post(client, path: str, body: Any) -> Any:
    response = client.http.post(path, headers=auth(), body=json.dumps(body))
    assert response.status_code in (200, 201), response.body
    return json.loads(response.body)


def new_run(client) -> str:
    exp = post(client, EXPERIMENTS, {"name": "counted"})["id"]
    return post(client, RUNS, {"experiment_id": exp})["id"]


def test_a_log_batch_of_1000_points_of_one_metric_costs_at_most_5_dynamodb_requests(client, dynamo_requests):
    run_id = new_run(client)
    batch = {"metrics": [{"key": "loss", "value": 1.0 / (i + 1), "step": i, "timestamp": 1_000 + i}
                         for i in range(1000)]}
    dynamo_requests.reset()

    result = post(client, f"{RUNS}/{run_id}/log-batch", batch)

    assert result["metrics"] == 1000
    assert dynamo_requests.key_lookups <= 1
    assert 1 <= len(dynamo_requests.calls) <= 5, dynamo_requests.calls
    history = client.http.get(f"{RUNS}/{run_id}/metrics/loss?limit=1000", headers=auth())
    assert len(json.loads(history.body)["points"]) == 1000, "the cheap write stored every point"


def test_the_same_log_batch_retried_costs_no_more_than_the_first(client, dynamo_requests):
    run_id = new_run(client)
    batch = {"metrics": [{"key": "loss", "value": float(i), "step": i, "timestamp": i} for i in range(1000)]}
    dynamo_requests.reset()
    post(client, f"{RUNS}/{run_id}/log-batch", batch)
    first = len(dynamo_requests.calls)
    dynamo_requests.reset()

    post(client, f"{RUNS}/{run_id}/log-batch", batch)

    assert first >= 1
    assert len(dynamo_requests.calls) <= first, dynamo_requests.calls


def test_get_run_costs_one_dynamodb_request(client, dynamo_requests):
    run_id = new_run(client)
    post(client, f"{RUNS}/{run_id}/log-batch", {
        "metrics": [{"key": f"m{i}", "value": 1.0, "step": 0, "timestamp": 1} for i in range(20)],
        "params": [{"key": "p", "value": "v"}]})
    dynamo_requests.reset()

    response = client.http.get(f"{RUNS}/{run_id}", headers=auth())

    assert response.status_code == 200
    assert len(json.loads(response.body)["metrics"]) == 20, "latest values come with the run item"
    assert len(dynamo_requests.calls) == 1, dynamo_requests.calls
    assert dynamo_requests.calls[0][1] == os.environ["AGORA_RUNS_TABLE"]
    assert dynamo_requests.key_lookups == 1
