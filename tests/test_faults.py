"""Faults at the AWS boundary: throttles, unprocessed batch writes, cancelled transactions, S3, KMS, a failing task.

Every fault is injected on the botocore client Agora itself uses (tests/faults.py), never by patching Agora. Each
test ends with the data complete and stored once, or with a clean 503 (with `Retry-After`) after which the
client's retry completes the operation with nothing lost and nothing duplicated.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import time
import zipfile
from decimal import Decimal
from typing import Any

import pytest

from tests import faults
from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, created, get_ok, new_experiment, ok, send

THROTTLING = ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded")


# --- helpers ------------------------------------------------------------------------------------------
def services() -> Any:
    from chalicelib import wiring

    return wiring.services()


def table(store: str) -> str:
    return services().settings.table(store)


def on_table(store: str):
    """A `when=` predicate: the call names this store's table (single-table calls and batch writes alike)."""
    name = table(store)

    def accepts(params: dict) -> bool:
        if params.get("TableName") == name or name in params.get("RequestItems", {}):
            return True
        return any(name == next(iter(action.values())).get("TableName") for action in params.get("TransactItems", []))

    return accepts


def assert_retry_later(response) -> None:
    """A clean refusal the client may retry: 429 or 503, a JSON detail, a Retry-After in whole seconds."""
    assert response.status_code in (429, 503), (response.status_code, response.body)
    assert json.loads(response.body)["detail"], response.body
    retry_after = {k.lower(): v for k, v in response.headers.items()}.get("retry-after")
    assert retry_after is not None and retry_after.isdigit(), response.headers


def reasons(count: int, conflict_at: int) -> list[dict]:
    """TransactionCanceledException's CancellationReasons: a TransactionConflict on one action, None elsewhere."""
    return [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"} if i == conflict_at
            else {"Code": "None"} for i in range(count)]


def new_run(client, experiment_id: str, **body) -> dict:
    return created(client, RUNS, {"experiment_id": experiment_id, **body})


def history(client, run_id: str, key: str) -> list[dict]:
    """Every point of a series, following page tokens."""
    points, token = [], None
    while True:
        query = "?limit=1000" + (f"&page_token={token}" if token else "")
        page = get_ok(client, f"{RUNS}/{run_id}/metrics/{key}{query}")
        points += page["points"]
        token = page.get("next_page_token")
        if not token:
            return points


def batch(keys: int, steps: int, *, timestamps: bool = True) -> list[dict]:
    metrics = []
    for k in range(keys):
        for step in range(steps):
            point = {"key": f"m{k:02d}", "value": k + step / 8, "step": step}
            if timestamps:
                point["timestamp"] = 1_700_000_000_000 + step
            metrics.append(point)
    return metrics


def assert_logged_once(client, run_id: str, metrics: list[dict], params: dict, tags: dict) -> None:
    """The run holds exactly these params, tags and points: each point once, the latest value of each key."""
    run = get_ok(client, f"{RUNS}/{run_id}")
    assert run["params"] == params
    assert run["tags"] == tags
    by_key: dict[str, list[dict]] = {}
    for m in metrics:
        by_key.setdefault(m["key"], []).append(m)
    assert sorted(run["metrics"]) == sorted(by_key)
    for key, sent in by_key.items():
        stored = history(client, run_id, key)
        assert [(p["step"], p["value"]) for p in stored] == [(m["step"], m["value"]) for m in sent], key
        if "timestamp" in sent[0]:
            assert [p["timestamp"] for p in stored] == [m["timestamp"] for m in sent]
        assert run["metrics"][key]["step"] == sent[-1]["step"] and run["metrics"][key]["value"] == sent[-1]["value"]


def metric_items(run_id: str) -> int:
    """How many chunks the metrics table holds for the run (a chunk written twice would show here): the
    entries of the series' catalogs (partitions ending #C), one per chunk."""
    pages = services().dynamodb.get_paginator("scan").paginate(
        TableName=table("metrics"), FilterExpression="contains(pk, :run)", ProjectionExpression="pk",
        ExpressionAttributeValues={":run": {"S": run_id}})
    return sum(1 for page in pages for item in page["Items"] if item["pk"]["S"].endswith("#C"))


# --- 1. throttling ------------------------------------------------------------------------------------
# (code, operation, store): where in a log-batch the capacity runs out. The run is read, then one transaction
# writes the params, tags and each key's latest value and span, then batches write the chunks and their
# summaries: each case fails later in the request, so the retry finds more of it already written.
LOG_BATCH_THROTTLES = [
    ("ThrottlingException", "Query", "runs"),  # reading the run, before anything is written
    ("RequestLimitExceeded", "TransactWriteItems", "runs"),  # params, tags and latest values refused
    ("ProvisionedThroughputExceededException", "BatchWriteItem", "metrics"),  # records written, chunks refused
]


@pytest.mark.parametrize(("code", "operation", "store"), LOG_BATCH_THROTTLES,
                         ids=[f"{op}-{code}" for code, op, _ in LOG_BATCH_THROTTLES])
def test_a_throttled_log_batch_answers_503_and_its_retry_logs_everything_once(client, code, operation, store):
    run = new_run(client, new_experiment(client))
    body = {"metrics": batch(4, 50), "params": [{"key": "lr", "value": "0.1"}, {"key": "depth", "value": "3"}],
            "tags": [{"key": "team", "value": "blue"}]}
    with faults.fail(services().dynamodb, operation, code=code, status=400, when=on_table(store)) as fault:
        refused = send(client, "post", f"{RUNS}/{run['id']}/log-batch", body)
    assert fault.injected == 1
    assert_retry_later(refused)

    for _ in range(2):  # the retry completes it; a further retry changes nothing
        assert ok(send(client, "post", f"{RUNS}/{run['id']}/log-batch", body)) == {"metrics": 200, "params": 2,
                                                                                   "tags": 1}
    assert_logged_once(client, run["id"], body["metrics"], {"lr": "0.1", "depth": "3"}, {"team": "blue"})
    assert metric_items(run["id"]) == 4


def test_a_retried_log_batch_without_timestamps_logs_each_point_once(client):
    """The first batch of chunks lands, the second is throttled: the retry stamps its points with a later
    time, yet lands on the same chunk keys (made of the points as the client sent them)."""
    run = new_run(client, new_experiment(client))
    body = {"metrics": batch(40, 25, timestamps=False)}  # 40 small chunks: two batch writes
    with faults.fail(services().dynamodb, "BatchWriteItem", code="ThrottlingException", status=400, after=1,
                     when=on_table("metrics")) as fault:
        refused = send(client, "post", f"{RUNS}/{run['id']}/log-batch", body)
    assert fault.injected == 1
    assert_retry_later(refused)
    # a well-behaved client waits as long as Retry-After says before it retries
    wait_until_clock_passes(int({k.lower(): v for k, v in refused.headers.items()}["retry-after"]))
    assert ok(send(client, "post", f"{RUNS}/{run['id']}/log-batch", body))["metrics"] == 1000
    assert_logged_once(client, run["id"], body["metrics"], {}, {})
    assert metric_items(run["id"]) == 40


def wait_until_clock_passes(seconds: float) -> None:
    """Wait for the wall clock to move on by `seconds` (the client honouring Retry-After, not a synchronization)."""
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(min(0.05, max(0.0, end - time.time())))


@pytest.mark.parametrize("code", THROTTLING)
def test_a_throttled_experiment_create_answers_503_and_its_retry_creates_it_once(client, code):
    with faults.fail(services().dynamodb, "TransactWriteItems", code=code, status=400) as fault:
        refused = send(client, "post", EXPERIMENTS, {"name": "busy", "tags": {"k": "v"}})
    assert fault.injected == 1
    assert_retry_later(refused)

    exp = created(client, EXPERIMENTS, {"name": "busy", "tags": {"k": "v"}})
    listed = get_ok(client, f"{EXPERIMENTS}?search=busy")["experiments"]
    assert [(e["id"], e["name"], e["tags"]) for e in listed] == [(exp["id"], "busy", {"k": "v"})]
    assert get_ok(client, f"{EXPERIMENTS}/{exp['id']}")["name"] == "busy"


@pytest.mark.parametrize("code", THROTTLING)
def test_a_throttled_run_create_answers_503_and_its_retry_creates_one_run(client, code):
    experiment_id = new_experiment(client)
    with faults.fail(services().dynamodb, "TransactWriteItems", code=code, status=400) as fault:
        refused = send(client, "post", RUNS, {"experiment_id": experiment_id, "name": "r1"})
    assert fault.injected == 1
    assert_retry_later(refused)

    run = new_run(client, experiment_id, name="r1")
    listed = get_ok(client, f"{RUNS}?experiment_id={experiment_id}")
    assert listed["total"] == 1 and [r["id"] for r in listed["runs"]] == [run["id"]]


def test_a_run_create_throttled_leaves_no_run_and_its_retry_makes_one_with_its_tags(client):
    """The run and its tags are one transaction: a throttled create leaves nothing behind."""
    experiment_id = new_experiment(client)
    body = {"experiment_id": experiment_id, "name": "tagged", "tags": {"team": "blue"}}
    with faults.fail(services().dynamodb, "TransactWriteItems", code="ProvisionedThroughputExceededException",
                     status=400) as fault:
        refused = send(client, "post", RUNS, body)
    assert fault.injected == 1
    assert_retry_later(refused)
    assert get_ok(client, f"{RUNS}?experiment_id={experiment_id}")["runs"] == []

    run = created(client, RUNS, body)
    listed = get_ok(client, f"{RUNS}?experiment_id={experiment_id}")
    assert [(r["id"], r["tags"]) for r in listed["runs"]] == [(run["id"], {"team": "blue"})]


READ_THROTTLES = [
    ("GetItem", "experiments", lambda run: f"{EXPERIMENTS}/{run['experiment_id']}"),
    ("Query", "runs", lambda run: f"{RUNS}/{run['id']}"),
    ("Query", "metrics", lambda run: f"{RUNS}/{run['id']}/metrics/m00?limit=1000"),
    ("Query", "runs", lambda run: f"{RUNS}?experiment_id={run['experiment_id']}"),
]


@pytest.mark.parametrize(("operation", "store", "path"), READ_THROTTLES,
                         ids=["get-experiment", "get-run", "metric-history", "list-runs"])
@pytest.mark.parametrize("code", THROTTLING)
def test_a_throttled_read_answers_503_and_its_retry_reads_the_same(client, code, operation, store, path):
    run = new_run(client, new_experiment(client))
    ok(send(client, "post", f"{RUNS}/{run['id']}/log-batch", {"metrics": batch(1, 30)}))
    expected = get_ok(client, path(run))
    with faults.fail(services().dynamodb, operation, code=code, status=400, when=on_table(store)) as fault:
        refused = client.http.get(path(run), headers=auth())
    assert fault.injected == 1
    assert_retry_later(refused)
    assert get_ok(client, path(run)) == expected


# --- 2. UnprocessedItems ------------------------------------------------------------------------------
# 1,000 points over 40 keys are 40 chunk items: two BatchWriteItem calls, of 25 (DynamoDB's limit) and 15
UNPROCESSED = [
    pytest.param(10, 3, id="part-processed-three-times"),
    pytest.param(0, 2, id="nothing-processed-twice"),
    pytest.param(24, None, id="one-left-every-time"),
]


@pytest.mark.parametrize(("keep", "times"), UNPROCESSED)
def test_unprocessed_items_are_written_again_until_every_point_is_stored_once(client, keep, times):
    run = new_run(client, new_experiment(client))
    body = {"metrics": batch(40, 25)}
    with faults.unprocessed(services().dynamodb, keep=keep, times=times, when=on_table("metrics")) as partial:
        answer = send(client, "post", f"{RUNS}/{run['id']}/log-batch", body)
    assert partial.left_out > 0
    assert ok(answer)["metrics"] == 1_000
    assert_logged_once(client, run["id"], body["metrics"], {}, {})
    assert metric_items(run["id"]) == 40


def test_writes_left_unprocessed_every_time_answer_503_and_the_retry_stores_them_once(client):
    run = new_run(client, new_experiment(client))
    body = {"metrics": batch(40, 25)}
    with faults.unprocessed(services().dynamodb, keep=0, times=None, when=on_table("metrics")) as partial:
        refused = send(client, "post", f"{RUNS}/{run['id']}/log-batch", body)
    assert partial.calls > 1  # the store did try again before it gave up
    assert_retry_later(refused)

    assert ok(send(client, "post", f"{RUNS}/{run['id']}/log-batch", body))["metrics"] == 1_000
    assert_logged_once(client, run["id"], body["metrics"], {}, {})
    assert metric_items(run["id"]) == 40


# --- 3. cancelled transactions -----------------------------------------------------------------------
def conflict(count: int, at: int = 0, times=1):
    return faults.fail(services().dynamodb, "TransactWriteItems", code="TransactionCanceledException", status=400,
                       times=times, CancellationReasons=reasons(count, at))


def test_a_param_write_in_a_conflict_is_retried_and_a_lasting_one_answers_503_then_the_retry_writes(client):
    run = new_run(client, new_experiment(client))
    params = {"params": [{"key": "lr", "value": "0.1"}, {"key": "depth", "value": "3"}]}
    with conflict(2, at=1) as fault:  # one conflict: the store tries again, the client sees nothing
        assert ok(send(client, "post", f"{RUNS}/{run['id']}/log-batch", params))["params"] == 2
    assert fault.injected == 1
    other = new_run(client, new_experiment(client, "second"))
    with conflict(2, at=1, times=None) as fault:
        refused = send(client, "post", f"{RUNS}/{other['id']}/log-batch", params)
    assert fault.injected > 1
    assert_retry_later(refused)
    assert get_ok(client, f"{RUNS}/{other['id']}")["params"] == {}
    assert ok(send(client, "post", f"{RUNS}/{other['id']}/log-batch", params))["params"] == 2
    for run_id in (run["id"], other["id"]):
        assert get_ok(client, f"{RUNS}/{run_id}")["params"] == {"lr": "0.1", "depth": "3"}


def test_an_experiment_create_in_a_lasting_conflict_answers_503_and_its_retry_creates_it_once(client):
    with conflict(3, at=1, times=None) as fault:  # the experiment, its name guard, its owner record
        refused = send(client, "post", EXPERIMENTS, {"name": "contended"})
    assert fault.injected > 1
    assert_retry_later(refused)
    exp = created(client, EXPERIMENTS, {"name": "contended"})
    assert [e["id"] for e in get_ok(client, f"{EXPERIMENTS}?search=contended")["experiments"]] == [exp["id"]]


def test_a_run_create_in_a_lasting_conflict_answers_503_and_its_retry_creates_one_run(client):
    experiment_id = new_experiment(client)
    with conflict(3, at=2, times=None) as fault:
        refused = send(client, "post", RUNS, {"experiment_id": experiment_id})
    assert fault.injected > 1
    assert_retry_later(refused)
    run = new_run(client, experiment_id)
    assert [r["id"] for r in get_ok(client, f"{RUNS}?experiment_id={experiment_id}")["runs"]] == [run["id"]]


def recharge(client, amount: str, request_id: str):
    from tests.sim_helpers import admin

    return client.http.post("/api/admin/accounts/tenant-a/recharge", headers=admin(),
                            body=json.dumps({"amount": amount, "request_id": request_id}))


def balance_and_bills(client) -> tuple[Decimal, list[dict]]:
    account = get_ok(client, "/api/account")["data"]
    return Decimal(account["balance"]), get_ok(client, "/api/bills?item=recharge")["data"]


def test_a_recharge_whose_transaction_conflicts_is_retried_by_the_store_and_credited_once(client):
    with conflict(3, at=1, times=3) as fault:  # guard, balance, bill line: the balance was being written
        answer = recharge(client, "12.50", "req-1")
    assert fault.injected == 3
    assert Decimal(ok(answer)["data"]["account"]["balance"]) == Decimal("12.5")
    replay = recharge(client, "12.50", "req-1")
    assert Decimal(ok(replay)["data"]["account"]["balance"]) == Decimal("12.5")
    assert replay.headers.get("Idempotent-Replayed") == "true"
    balance, bills = balance_and_bills(client)
    assert balance == Decimal("12.5") and [Decimal(b["amount"]) for b in bills] == [Decimal("12.5")]


def test_a_recharge_that_keeps_conflicting_answers_cleanly_and_its_retry_credits_once(client):
    with conflict(3, at=1, times=None) as fault:
        refused = recharge(client, "7", "req-2")
    assert fault.injected > 1
    assert_retry_later(refused)
    assert Decimal(ok(recharge(client, "7", "req-2"))["data"]["account"]["balance"]) == 7
    balance, bills = balance_and_bills(client)
    assert balance == 7 and [Decimal(b["amount"]) for b in bills] == [7]


# --- 4. S3 failing in the middle of a multipart export -------------------------------------------------
PART_BYTES = 5 * 1024 * 1024  # S3's (and AGORA_EXPORT_PART_BYTES's) minimum


@pytest.fixture
def export_client(client, monkeypatch):
    """The chalice client with exports streamed in 5 MiB parts."""
    from chalicelib import settings, wiring

    monkeypatch.setenv(settings.EXPORT_PART_BYTES, str(PART_BYTES))
    wiring.reset()
    assert wiring.services().settings.export_part_bytes == PART_BYTES
    return client


def exported_simulation(*, artifact_bytes: int):
    """An ended simulation (20 agents, 24 instants) whose artifacts hold `artifact_bytes` of incompressible text,
    so that its export spans several parts."""
    import base64
    import random

    from tests.test_sim_export_helpers import synthetic_simulation

    container = services()
    exp = synthetic_simulation(container, agents=20, ticks=24)
    noise = random.Random(7).randbytes(artifact_bytes * 3 // 4)
    artifacts = {"end": {"note": "a large save_context", "blob": base64.b64encode(noise).decode()}}
    container.sim_objects.save_artifacts(exp.tenant_id, exp.id, artifacts)
    return exp, artifacts


def s3_state(exp) -> tuple[list, list]:
    """(multipart uploads in progress, export objects) of the bucket."""
    from chalicelib.store import keys

    container = services()
    bucket = container.settings.bucket
    uploads = container.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    objects = container.s3.list_objects_v2(Bucket=bucket, Prefix=keys.export_prefix(exp.tenant_id, exp.id))
    return uploads, objects.get("Contents", [])


def export(client, exp):
    return client.http.post(f"/api/experiments/{exp.id}/export", headers=auth())


def assert_valid_export(client, exp, artifacts) -> int:
    """The export answers 303 to a complete archive: every file, every row; returns its size."""
    from tests.sim_helpers import download

    response = export(client, exp)
    assert response.status_code == 303, response.body
    blob = download(response.headers["Location"])
    archive = zipfile.ZipFile(io.BytesIO(blob))
    assert archive.testzip() is None
    assert archive.namelist() == ["experiment.yaml", "artifacts.json", "agent_profile.csv", "agent_status.csv",
                                  "global_prompt.csv"]
    assert json.loads(archive.read("artifacts.json")) == artifacts
    with archive.open("agent_status.csv") as raw:
        statuses = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))
    assert len(statuses) == 20 * 24 and len({(r["id"], r["t"]) for r in statuses}) == 20 * 24
    assert len(archive.read("global_prompt.csv").decode().splitlines()) == 24 + 1
    return len(blob)


EXPORT_FAULTS = [
    pytest.param("UploadPart", 1, id="second-part"),  # a part in the middle of the stream, after the first
    pytest.param("UploadPart", 2, id="last-part"),  # the remainder, uploaded when the archive is complete
    pytest.param("CompleteMultipartUpload", 0, id="completion"),
]


@pytest.mark.parametrize(("operation", "after"), EXPORT_FAULTS)
def test_an_export_whose_upload_fails_leaves_no_upload_behind_and_a_later_export_is_complete(
        export_client, operation, after):
    exp, artifacts = exported_simulation(artifact_bytes=15 * 1024 * 1024)  # ~11.5 MB zipped: 5 + 5 MiB + the rest
    with faults.fail(services().s3, operation, code="InternalError", status=500, after=after) as fault:
        failed = export(export_client, exp)
    assert fault.injected == 1 and fault.calls > after
    assert failed.status_code >= 500 and "Location" not in failed.headers
    assert s3_state(exp) == ([], [])  # aborted: no parts kept, no archive

    size = assert_valid_export(export_client, exp, artifacts)
    assert size > 2 * PART_BYTES
    uploads, objects = s3_state(exp)
    assert uploads == [] and [o["Size"] for o in objects] == [size]


def test_an_export_whose_upload_fails_answers_503_with_retry_after(export_client):
    exp, artifacts = exported_simulation(artifact_bytes=1024)  # one part, sent when the archive is complete
    with faults.fail(services().s3, "UploadPart", code="InternalError", status=500) as fault:
        failed = export(export_client, exp)
    assert fault.injected == 1
    assert_retry_later(failed)
    assert_valid_export(export_client, exp, artifacts)


# --- 5. KMS failing: saving an LLM key, and opening it when a simulation is prepared ----------------------
SECRET = "sk-live-do-not-leak-4242"
LLM_WITH_KEY = [{"provider": "openai", "model": "gpt-4o-mini", "api_key": SECRET, "base_url": "http://127.0.0.1:9/v1"}]
KMS_FAULTS = [("KMSInternalException", 500), ("DependencyTimeoutException", 503)]


@pytest.fixture
def agora_log():
    """Everything Agora's logger writes, as formatted for CloudWatch (it writes to the real stdout)."""
    from chalicelib.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger._logger.addHandler(handler)
    yield stream.getvalue
    logger._logger.removeHandler(handler)


def kms():
    return services().configs.secrets.client


def stored_anywhere(text: str) -> list[str]:
    """Where `text` appears in a table item or an S3 object of the stack (none of it should hold a plain key)."""
    container = services()
    found = []
    for store, name in container.settings.tables.items():
        for page in container.dynamodb.get_paginator("scan").paginate(TableName=name):
            found += [f"{store}: {item['pk']}" for item in page["Items"] if text in json.dumps(item, default=str)]
    bucket = container.settings.bucket
    for page in container.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            if text.encode() in container.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read():
                found.append(f"s3: {obj['Key']}")
    return found


def assert_not_leaked(capsys, caplog, agora_log, *responses) -> None:
    captured = capsys.readouterr()
    places = [("stdout", captured.out), ("stderr", captured.err), ("log records", caplog.text),
              ("agora log", agora_log())]
    places += [(f"response {r.status_code}", r.body.decode()) for r in responses]
    for where, text in places:
        assert SECRET not in text, where
    assert stored_anywhere(SECRET) == []


def llm_configs(client) -> list[dict]:
    return get_ok(client, "/api/llm-configs")["data"]


@pytest.mark.parametrize(("code", "status"), KMS_FAULTS)
def test_a_kms_failure_saving_an_llm_key_stores_nothing_leaks_nothing_and_the_retry_saves_it(
        client, capsys, caplog, agora_log, code, status):
    caplog.set_level(logging.DEBUG)
    body = {"name": "gpt", "config": LLM_WITH_KEY}
    with faults.fail(kms(), "Encrypt", code=code, status=status) as fault:
        failed = send(client, "post", "/api/llm-configs", body)
    assert fault.injected == 1
    assert failed.status_code >= 500 and llm_configs(client) == []

    saved = ok(send(client, "post", "/api/llm-configs", body), 201)["data"]
    assert saved["config"][0]["api_key"] == "********"
    assert [c["id"] for c in llm_configs(client)] == [saved["id"]]
    assert services().configs.open_llm_keys("tenant-a", services().configs.get("tenant-a", "llm", saved["id"]).secret) \
        == [SECRET]
    assert_not_leaked(capsys, caplog, agora_log, failed)


@pytest.mark.parametrize(("code", "status"), KMS_FAULTS)
def test_a_kms_failure_updating_an_llm_config_keeps_the_stored_key(client, capsys, caplog, agora_log, code, status):
    caplog.set_level(logging.DEBUG)
    saved = ok(send(client, "post", "/api/llm-configs", {"name": "gpt", "config": LLM_WITH_KEY}), 201)["data"]
    # the UI sends the masked key back: the stored key must be opened (Decrypt) and sealed again (Encrypt)
    update = {"name": "gpt-4o", "config": [{**LLM_WITH_KEY[0], "api_key": "********", "model": "gpt-4o"}]}
    for operation in ("Decrypt", "Encrypt"):
        with faults.fail(kms(), operation, code=code, status=status) as fault:
            failed = send(client, "put", f"/api/llm-configs/{saved['id']}", update)
        assert fault.injected == 1
        assert failed.status_code >= 500
        assert get_ok(client, f"/api/llm-configs/{saved['id']}")["data"]["name"] == "gpt"

    assert ok(send(client, "put", f"/api/llm-configs/{saved['id']}", update))["data"]["name"] == "gpt-4o"
    stored = services().configs.get("tenant-a", "llm", saved["id"])
    assert services().configs.open_llm_keys("tenant-a", stored.secret) == [SECRET]
    assert_not_leaked(capsys, caplog, agora_log, failed)


@pytest.mark.parametrize(("code", "status"), KMS_FAULTS)
def test_a_kms_failure_saving_an_llm_key_answers_503_with_retry_after(client, code, status):
    with faults.fail(kms(), "Encrypt", code=code, status=status):
        failed = send(client, "post", "/api/llm-configs", {"name": "gpt", "config": LLM_WITH_KEY})
    assert_retry_later(failed)


def test_a_kms_failure_opening_the_key_at_prepare_ends_the_run_in_error_with_a_reason(
        sim_client, capsys, caplog, agora_log):
    from tests.sim_helpers import make_configs
    from tests.test_sim_runs import execution_status, launch, wait_for_end, wait_until

    caplog.set_level(logging.DEBUG)
    refs = make_configs(sim_client, agents=3, workflow=[{"type": "step", "steps": 4}], llm=LLM_WITH_KEY)
    with faults.fail(kms(), "Decrypt", code="KMSInternalException", status=500, times=None) as fault:
        launched = launch(sim_client, refs)
        assert launched.status_code == 200, launched.body
        exp = wait_for_end(sim_client, launched.json_body["data"]["id"], timeout=60)
    assert fault.injected >= 1
    assert exp.status == 3 and "KMSInternalException" in exp.error, exp.error
    assert exp.ticks_done == 0
    wait_until(lambda: execution_status(exp) == "SUCCEEDED", timeout=60)  # Bill and Finalize ran: no hang
    shown = get_ok(sim_client, f"/api/experiments/{exp.id}")
    assert shown["data"]["status"] == 3 and shown["data"]["error"] == exp.error
    run = get_ok(sim_client, f"{RUNS}/{exp.tracking_run_id}")
    assert run["status"] == "FAILED"

    log = sim_client.http.get(f"/api/run-experiments/{exp.id}/log", headers=auth())
    events = services().client("stepfunctions").get_execution_history(executionArn=exp.execution_arn)["events"]
    assert SECRET not in json.dumps(events, default=str)
    assert_not_leaked(capsys, caplog, agora_log, log, sim_client.http.get(f"/api/experiments/{exp.id}", headers=auth()))


# --- 6. a Lambda task failing once inside the state machine ------------------------------------------
def run_record(client, exp_id: str) -> dict:
    """What a finished run left: its progress, its timeline, its agents' statuses and every metric point."""
    from tests.test_sim_runs import experiment

    exp = experiment(client, exp_id)
    container = services()
    agents = container.agent_data.profiles("tenant-a", exp_id)
    run = get_ok(client, f"{RUNS}/{exp.tracking_run_id}")
    return {
        "status": exp.status, "error": exp.error, "ticks": exp.ticks_done, "at": (exp.cur_day, exp.cur_t),
        "timeline": container.agent_data.timeline("tenant-a", exp_id),
        "statuses": {a["id"]: len(container.agent_data.agent_statuses("tenant-a", exp_id, a["id"])) for a in agents},
        "metrics": {key: [(p["step"], p["value"], p["timestamp"]) for p in history(client, run["id"], key)]
                    for key in sorted(run["metrics"])},
        "run_status": run["status"],
    }


def finished_run(client, refs, name: str) -> str:
    from tests.test_sim_runs import launch, wait_for_end

    launched = launch(client, refs, name=name)
    assert launched.status_code == 200, launched.body
    exp_id = launched.json_body["data"]["id"]
    wait_for_end(client, exp_id, timeout=90)
    return exp_id


def run_bills(client, exp_id: str) -> list[dict]:
    return [b for b in get_ok(client, "/api/bills?item=run_time&limit=100")["data"] if b["related_exp_id"] == exp_id]


WORKFLOW = [{"type": "step", "steps": 30}]  # 5 agents: 12 ticks an advance, three advances


def advance_writes(params: dict) -> bool:
    """A batch of agent data without profiles: an advance's instants (prepare writes the profiles with its own)."""
    requests = params.get("RequestItems", {}).get(table("agent_data"), [])
    return bool(requests) and not any("body" in r["PutRequest"]["Item"] for r in requests if "PutRequest" in r)


def test_unprocessed_agent_data_inside_an_advance_is_written_again_and_the_run_matches_one_without_faults(
        sim_client):
    from tests.sim_helpers import make_configs

    refs = make_configs(sim_client, agents=5, workflow=WORKFLOW)
    baseline = run_record(sim_client, finished_run(sim_client, refs, "calm"))
    assert baseline["status"] == 2 and baseline["ticks"] == 30 and len(baseline["timeline"]) == 30

    with faults.unprocessed(services().dynamodb, keep=4, times=3, when=advance_writes) as partial:
        faulted_id = finished_run(sim_client, refs, "short of capacity")
    assert partial.injected == 3 and partial.left_out > 0
    assert run_record(sim_client, faulted_id) == baseline


def test_an_advance_failing_once_on_a_throttle_is_retried_and_the_run_matches_one_without_faults(sim_client):
    from tests.sim_helpers import make_configs

    refs = make_configs(sim_client, agents=5, workflow=WORKFLOW)
    baseline = run_record(sim_client, finished_run(sim_client, refs, "calm"))
    assert baseline["status"] == 2 and baseline["ticks"] == 30

    # the first write of the first advance (its instants) is refused: the advance must run again
    with faults.fail(services().dynamodb, "BatchWriteItem", code="ProvisionedThroughputExceededException",
                     status=400, when=advance_writes) as fault:
        faulted_id = finished_run(sim_client, refs, "throttled")
    assert fault.injected == 1
    assert run_record(sim_client, faulted_id) == baseline


def test_a_throttle_on_a_simulations_metric_points_loses_none_of_them(sim_client):
    from tests.sim_helpers import make_configs

    refs = make_configs(sim_client, agents=5, workflow=WORKFLOW)
    baseline = run_record(sim_client, finished_run(sim_client, refs, "calm"))
    # the first advance stores its instants, then its metric points are refused
    with faults.fail(services().dynamodb, "BatchWriteItem", code="ProvisionedThroughputExceededException",
                     status=400, when=on_table("metrics")) as fault:
        faulted_id = finished_run(sim_client, refs, "throttled")
    assert fault.injected == 1
    assert run_record(sim_client, faulted_id) == baseline


def test_a_bill_step_failing_once_on_a_throttle_still_bills_the_run_once(sim_client):
    from tests.sim_helpers import make_configs

    refs = make_configs(sim_client, agents=3, workflow=[{"type": "step", "steps": 4}])
    before = Decimal(get_ok(sim_client, "/api/account")["data"]["balance"])
    billed = lambda params: any("BILLED#" in json.dumps(a) for a in params.get("TransactItems", []))  # noqa: E731
    with faults.fail(services().dynamodb, "TransactWriteItems", code="ThrottlingException", status=400,
                     when=billed) as fault:
        exp_id = finished_run(sim_client, refs, "billed")
    assert fault.injected == 1
    exp = run_record(sim_client, exp_id)
    assert exp["status"] == 2 and exp["error"] == ""
    bills = run_bills(sim_client, exp_id)
    assert len(bills) == 1
    after = Decimal(get_ok(sim_client, "/api/account")["data"]["balance"])
    assert after - before == Decimal(bills[0]["amount"]) < 0  # a charge is a negative amount
