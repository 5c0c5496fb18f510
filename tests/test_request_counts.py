"""DynamoDB requests per API call, counted with a botocore event hook on the app's own client.

The hook only observes (it returns nothing, so botocore proceeds as usual). The authorizer's API-key
lookup is counted apart: deployed, the authorizer is its own Lambda and API Gateway caches its answer
(300 s), so it is not part of a route's cost; under the test client it runs on every request.
"""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.store.items import from_item, item_size
from tests.conftest import auth

EXPERIMENTS = "/api/v1/experiments"
RUNS = "/api/v1/experiments/runs"


@dataclass
class DynamoCounter:
    """Records (operation, table) of every DynamoDB call made through the app's client, and the bytes of
    the items the reads brought back (DynamoDB's own sizes: names and values)."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    key_lookups: int = 0
    read_bytes: int = 0

    def read(self, model: Any, parsed: dict, **_: Any) -> None:
        items = list(parsed.get("Items", [])) + ([parsed["Item"]] if "Item" in parsed else [])
        items += [i for found in parsed.get("Responses", {}).values() for i in found]
        self.read_bytes += sum(item_size(from_item(i)) for i in items)

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
        self.read_bytes = 0


@pytest.fixture
def dynamo_requests(client):
    counter = DynamoCounter()
    events = wiring.services().dynamodb.meta.events
    events.register("before-call.dynamodb", counter, unique_id="agora-request-counter")
    events.register("after-call.dynamodb", counter.read, unique_id="agora-read-counter")
    yield counter
    events.unregister("before-call.dynamodb", unique_id="agora-request-counter")
    events.unregister("after-call.dynamodb", unique_id="agora-read-counter")


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


def log_series(client, run_id: str, points: int, key: str = "loss") -> None:
    for start in range(0, points, 1000):
        post(client, f"{RUNS}/{run_id}/log-batch", {"metrics": [
            {"key": key, "value": (i % 97) / 7, "step": i, "timestamp": 1_700_000_000_000 + i}
            for i in range(start, min(points, start + 1000))]})


def get(client, path: str) -> tuple[dict, int]:
    response = client.http.get(path, headers=auth())
    assert response.status_code == 200, response.body
    return json.loads(response.body), len(response.body)


def test_a_log_batch_over_100_keys_costs_at_most_10_requests(client, dynamo_requests):
    """MLflow's autologging sends many keys a step: the latest values of all of them are one transaction."""
    run_id = new_run(client)
    batch = {"metrics": [{"key": f"metric_{k:03d}", "value": float(s), "step": s, "timestamp": 1_000 + s}
                         for k in range(100) for s in range(10)]}
    dynamo_requests.reset()
    assert post(client, f"{RUNS}/{run_id}/log-batch", batch)["metrics"] == 1000
    assert len(dynamo_requests.calls) <= 10, dynamo_requests.calls
    run, _ = get(client, f"{RUNS}/{run_id}")
    assert {k: m["step"] for k, m in run["metrics"].items()} == {f"metric_{k:03d}": 9 for k in range(100)}


def test_creating_a_run_costs_at_most_2_requests(client, dynamo_requests):
    exp = post(client, EXPERIMENTS, {"name": "cheap runs"})["id"]
    dynamo_requests.reset()
    post(client, RUNS, {"experiment_id": exp, "tags": {"team": "blue"}})
    assert len(dynamo_requests.calls) <= 2, dynamo_requests.calls


def test_a_history_page_reads_about_what_it_returns_wherever_it_is_in_the_series(client, dynamo_requests):
    run_id = new_run(client)
    log_series(client, run_id, 30_000)
    token, costs = None, []
    while True:  # the whole walk in pages of 1,000: each page reads what it returns, plus one chunk at most
        dynamo_requests.reset()
        page, size = get(client, f"{RUNS}/{run_id}/metrics/loss?limit=1000"
                                 + (f"&page_token={token}" if token else ""))
        costs.append((dynamo_requests.read_bytes, size, len(dynamo_requests.calls)))
        token = page["next_page_token"]
        if not token:
            break
    assert len(costs) == 30
    chunk_bytes = 2_000 * 12  # a full chunk: 2,000 points of about 10 bytes
    assert all(read <= 2 * returned + chunk_bytes for read, returned, _ in costs), costs
    # a page from the start reads one chunk, one from a cursor inside a chunk two: no page reads more as the walk
    # goes on, so a whole walk costs what its pages return (linear), not the square of the series
    typical = statistics.median(read for read, _, _ in costs)
    assert max(read for read, _, _ in costs) <= 1.1 * typical, f"a page deep in the series reads more: {costs}"


def test_a_downsampled_read_reads_summaries_not_points(client, dynamo_requests):
    run_id = new_run(client)
    log_series(client, run_id, 100_000)
    dynamo_requests.reset()
    body, _ = get(client, f"{RUNS}/{run_id}/metrics/loss?max_points=1000")
    assert 500 <= len(body["points"]) <= 1000
    assert dynamo_requests.read_bytes <= 200_000, dynamo_requests.read_bytes
    assert [p["step"] for p in body["points"]] == sorted(p["step"] for p in body["points"])


def test_a_runs_page_reads_that_pages_runs(client, dynamo_requests):
    exp = post(client, EXPERIMENTS, {"name": "many runs"})["id"]
    for n in range(250):
        run = post(client, RUNS, {"experiment_id": exp, "tags": {"n": str(n)}})["id"]
        if n == 0:
            post(client, f"{RUNS}/{run}/log-batch", {"params": [{"key": "lr", "value": "0.1"}]})
    dynamo_requests.reset()
    one, _ = get(client, f"{RUNS}?experiment_id={exp}&limit=10&offset=0")
    small = dynamo_requests.read_bytes
    dynamo_requests.reset()
    page, _ = get(client, f"{RUNS}?experiment_id={exp}&limit=100&offset=100")
    assert page["total"] == 250 and len(page["runs"]) == 100
    assert [r["tags"]["n"] for r in page["runs"]] == [str(n) for n in range(149, 49, -1)]  # newest first
    run_bytes = (small - 250 * 60) / 10  # the index entries of all runs, then the page's run items
    assert dynamo_requests.read_bytes <= 250 * 60 + 110 * run_bytes, (dynamo_requests.read_bytes, run_bytes)
    assert len(dynamo_requests.calls) <= 4, dynamo_requests.calls


def test_compare_reads_each_run_once(client, dynamo_requests):
    exp = post(client, EXPERIMENTS, {"name": "compared"})["id"]
    runs = [post(client, RUNS, {"experiment_id": exp})["id"] for _ in range(10)]
    for run in runs:
        log_series(client, run, 200, "a")
        log_series(client, run, 200, "b")
    dynamo_requests.reset()
    post(client, f"{RUNS}/compare", {"run_ids": runs, "metrics": ["a", "b"]})
    reads = [op for op, _ in dynamo_requests.calls]
    runs_table = os.environ["AGORA_RUNS_TABLE"]
    assert sum(1 for op, table in dynamo_requests.calls if table == runs_table) == 10, dynamo_requests.calls
    assert len(reads) <= 10 + 20, dynamo_requests.calls
