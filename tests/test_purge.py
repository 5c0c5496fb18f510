"""The daily purge of archived experiments, black-box: data made over HTTP, time made to pass by
moving an experiment's `deleted_at` into the past, the scheduled handler invoked as Lambda would,
and whole tables and the bucket compared before and after."""
from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends as moto_s3_backends

from chalicelib import wiring
from chalicelib.domain.errors import Unavailable
from chalicelib.store import keys
from tests import faults, tables
from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, artifact_key, ok, send

BOUNDARY = "----agora-purge-boundary"
TABLES = ("AGORA_EXPERIMENTS_TABLE", "AGORA_RUNS_TABLE", "AGORA_METRICS_TABLE", "AGORA_DIRECTORY_TABLE")
CURSOR = {"pk": "SYS#PURGE", "sk": "CURSOR"}


# --- helpers ------------------------------------------------------------------------------------

def new_experiment(client, name: str, tenant: str = "tenant-a") -> str:
    return ok(send(client, "post", EXPERIMENTS, {"name": name}, tenant), 201)["id"]


def new_run(client, experiment_id: str, tenant: str = "tenant-a", points: int = 0, keys_: int = 1,
            artifact: bool = False, params: bool = True) -> str:
    """A run with a tag at creation, `points` points over `keys_` metric keys, a tag, two params
    (unless `params` is false) and an uploaded artifact (if `artifact`) logged over HTTP."""
    run_id = ok(send(client, "post", RUNS, {"experiment_id": experiment_id, "tags": {"team": "x"}}, tenant), 201)["id"]
    metrics = [{"key": f"m{i % keys_}", "value": i * 0.5, "step": i, "timestamp": 1_000 + i} for i in range(points)]
    batch = {"metrics": metrics, "tags": [{"key": "stage", "value": "train"}]}
    if params:
        batch["params"] = [{"key": "lr", "value": "0.1"}, {"key": "seed", "value": "7"}]
    ok(send(client, "post", f"{RUNS}/{run_id}/log-batch", batch, tenant))
    if artifact:
        body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model.bin\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"weights" \
        + f"\r\n--{BOUNDARY}--\r\n".encode()
        headers = {**auth(tenant), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        response = client.http.post(f"{RUNS}/{run_id}/log-artifact?artifact_path=out", headers=headers, body=body)
        assert response.status_code == 200, response.body
    return run_id


def delete_experiment(client, experiment_id: str, tenant: str = "tenant-a", days_ago: float = 0) -> None:
    """Soft-delete over HTTP, then pretend it happened `days_ago` days ago."""
    ok(send(client, "delete", f"{EXPERIMENTS}/{experiment_id}", tenant=tenant))
    if days_ago:
        when = datetime.now(UTC) - timedelta(days=days_ago)
        tables.set_attribute("experiments", keys.experiment_key(tenant, experiment_id), "deleted_at",
                             when.isoformat(timespec="milliseconds"))


def scheduled_event(client, **extra: Any) -> dict:
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                            resources=["arn:aws:events:us-east-1:123456789012:rule/purge"],
                                            region="us-east-1")
    return {**event, "version": "0", **extra}


class LambdaClock:
    """A Lambda context whose remaining time is what the test says, not what the machine's speed left:
    a purge on a loaded machine then does the same work as on an idle one."""

    def __init__(self, remaining_ms: int = 15 * 60 * 1000) -> None:
        self.remaining_ms = remaining_ms
        self.function_name, self.aws_request_id = "agora-dev-purge_archived_experiments", "test"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def purge(client, **extra: Any) -> dict:
    """The scheduled purge's handler, as Lambda calls it, with a context whose time the test controls."""
    from app import app

    return app.handler_map["purge_archived_experiments"](scheduled_event(client, **extra), LambdaClock())


def purge_until_finished(client, max_deletes: int, limit: int = 200) -> list[dict]:
    reports = []
    for _ in range(limit):
        started = time.perf_counter()
        report = purge(client, max_deletes=max_deletes)
        report["seconds"] = time.perf_counter() - started
        reports.append(report)
        if report["finished"]:
            return reports
    raise AssertionError(f"the purge did not finish in {limit} invocations: {reports[-1]}")


def snapshot(aws) -> dict[str, set]:
    """Every item of the tracking tables (but the purge cursor) and every object of the bucket, hashable."""
    dynamodb, s3 = aws.client("dynamodb"), aws.client("s3")
    tables: dict[str, set] = {}
    for env in TABLES:
        items: set = set()
        for page in dynamodb.get_paginator("scan").paginate(TableName=os.environ[env]):
            items.update(json.dumps(item, sort_keys=True, default=bytes.hex) for item in page["Items"]
                         if item["pk"]["S"] != CURSOR["pk"])  # the purge's own bookkeeping
        tables[env] = items
    objects = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=os.environ["AGORA_BUCKET"]):
        objects.update((o["Key"], o["ETag"], o["Size"]) for o in page.get("Contents", []))
    tables["s3"] = objects
    return tables


def belongs_to(entry: Any, tenant: str, experiment_id: str, run_ids: list[str]) -> bool:
    """Whether a snapshot entry is data of that experiment (item keys, owner records, objects)."""
    if isinstance(entry, tuple):
        return entry[0].startswith(keys.experiment_prefix(tenant, experiment_id))
    item = json.loads(entry)
    pk, sk = item["pk"]["S"], item["sk"]["S"]
    if (pk, sk) == (keys.tenant_pk(tenant), f"EXP#{experiment_id}") or pk in (f"ID#{experiment_id}",
                                                                              *(f"ID#{r}" for r in run_ids)):
        return True
    return any(pk == keys.run_pk(tenant, r) or pk.startswith(keys.run_pk(tenant, r) + "#M#") for r in run_ids)


def without(snap: dict[str, set], tenant: str, experiment_id: str, run_ids: list[str]) -> dict[str, set]:
    return {name: {e for e in entries if not belongs_to(e, tenant, experiment_id, run_ids)}
            for name, entries in snap.items()}


def cursor_item() -> dict | None:
    return wiring.services().directory.table.get(CURSOR)


# --- the "done when" scenario -------------------------------------------------------------------

def test_a_10000_point_50_run_archived_experiment_is_removed_over_several_bounded_invocations(client, aws):
    archived = new_experiment(client, "archived")
    archived_runs = [new_run(client, archived, points=200, keys_=2, artifact=(i % 5 == 0), params=(i % 5 == 1))
                     for i in range(50)]
    s3 = aws.client("s3")
    bucket = os.environ["AGORA_BUCKET"]
    stray = artifact_key("tenant-a", archived, archived_runs[0], "presigned/never-registered.bin")
    s3.put_object(Bucket=bucket, Key=stray, Body=b"x")  # an upload never registered goes too
    # what must survive: the tenant's active, restored and recently deleted experiments, another tenant's data
    active = new_experiment(client, "active")
    active_runs = [new_run(client, active, points=50, artifact=True) for _ in range(2)]
    restored = new_experiment(client, "restored")
    new_run(client, restored, points=20, artifact=True)
    delete_experiment(client, restored, days_ago=90)
    ok(send(client, "post", f"{EXPERIMENTS}/{restored}/restore"))
    recent = new_experiment(client, "recently deleted")
    new_run(client, recent, points=20)
    delete_experiment(client, recent, days_ago=29)
    other = new_experiment(client, "archived", tenant="tenant-b")
    new_run(client, other, tenant="tenant-b", points=30, artifact=True)
    delete_experiment(client, archived, days_ago=31)
    before = snapshot(aws)
    # 100 chunks of 100 points, each with its coarse and its fine summary
    assert len([e for e in before["AGORA_METRICS_TABLE"] if belongs_to(e, "tenant-a", archived, archived_runs)]) == 300
    doomed = {name: entries - without(before, "tenant-a", archived, archived_runs)[name]
              for name, entries in before.items()}

    reports = purge_until_finished(client, max_deletes=100)

    assert len(reports) > 1, "a bounded purge needs several invocations for this experiment"
    assert all(r["deletes"] <= 100 for r in reports), [r["deletes"] for r in reports]
    assert all(r["stopped_by"] == "deletes" for r in reports[:-1])
    assert reports[0]["cursor"]["experiment_id"] == archived and reports[0]["cursor"]["run_id"] in archived_runs
    assert all(r["resumed"] for r in reports[1:])
    total = {kind: sum(r["removed"][kind] for r in reports) for kind in reports[0]["removed"]}
    assert total == {"experiments": 1, "runs": 50, "metric_chunks": 300, "latest_values": 100, "params": 20,
                     "tags": 100, "artifacts": 10, "owners": 51, "other": 0, "objects": 11}
    assert sum(len(doomed[t]) for t in TABLES) == sum(r["items_deleted"] for r in reports)
    assert [n for r in reports for n in r["experiments_purged"]] == [f"tenant-a/{archived}"]
    after = snapshot(aws)
    assert after == without(before, "tenant-a", archived, archived_runs), "only the archived experiment went"
    assert cursor_item() is None, "a finished sweep leaves no cursor behind"
    assert send(client, "get", f"{EXPERIMENTS}/{archived}").status_code == 404
    assert send(client, "get", f"{RUNS}/{archived_runs[7]}").status_code == 404
    assert ok(send(client, "get", f"{EXPERIMENTS}/{restored}"))["lifecycle_stage"] == "active"
    history = ok(client.http.get(f"{RUNS}/{active_runs[0]}/metrics/m0?limit=1000", headers=auth()))
    assert len(history["points"]) == 50
    print("purge invocations:", len(reports), "deletes:", [r["deletes"] for r in reports],
          "seconds:", [round(r["seconds"], 3) for r in reports])

    assert purge(client)["removed"]["experiments"] == 0, "a second sweep finds nothing more"
    assert snapshot(aws) == after


def test_with_the_default_budget_one_invocation_purges_everything_due_and_s3_in_pages_of_1000(client, aws):
    exp_a = new_experiment(client, "old a")
    runs_a = [new_run(client, exp_a, points=10) for _ in range(2)]
    exp_b = new_experiment(client, "old b", tenant="tenant-b")
    runs_b = [new_run(client, exp_b, tenant="tenant-b", points=10, artifact=True)]
    bucket = moto_s3_backends[DEFAULT_ACCOUNT_ID]["aws"]  # 1,005 objects through the API would take seconds
    for i in range(1_005):
        bucket.put_object(os.environ["AGORA_BUCKET"], artifact_key("tenant-a", exp_a, runs_a[0], f"f/{i:04d}"),
                          b"")
    keep = new_experiment(client, "keep")
    new_run(client, keep, points=10, artifact=True)
    delete_experiment(client, exp_a, days_ago=45)
    delete_experiment(client, exp_b, tenant="tenant-b", days_ago=31)
    before = snapshot(aws)

    report = purge(client)

    assert report["finished"] and report["stopped_by"] is None
    assert sorted(report["experiments_purged"]) == sorted([f"tenant-a/{exp_a}", f"tenant-b/{exp_b}"])
    assert report["removed"]["objects"] == 1_006
    expected = without(without(before, "tenant-a", exp_a, runs_a), "tenant-b", exp_b, runs_b)
    assert snapshot(aws) == expected


# --- never an active or restored experiment -----------------------------------------------------

def test_an_experiment_restored_while_its_purge_is_under_way_is_abandoned_where_it_stands(client, aws):
    archived = new_experiment(client, "archived")
    run_ids = [new_run(client, archived, points=30, artifact=True) for _ in range(6)]
    delete_experiment(client, archived, days_ago=40)

    first = purge(client, max_deletes=12)

    assert not first["finished"] and first["cursor"]["experiment_id"] == archived
    ok(send(client, "post", f"{EXPERIMENTS}/{archived}/restore"))
    during = snapshot(aws)

    second = purge(client, max_deletes=1_000)

    assert second["experiments_abandoned"] == [f"tenant-a/{archived}"] and second["experiments_purged"] == []
    assert second["deletes"] == 0
    assert snapshot(aws) == during, "nothing more of a restored experiment is touched"
    assert ok(send(client, "get", f"{EXPERIMENTS}/{archived}"))["lifecycle_stage"] == "active"
    survivors = [r for r in run_ids if send(client, "get", f"{RUNS}/{r}").status_code == 200]
    assert len(survivors) >= 4, "the purge stopped within its first runs"
    assert cursor_item() is None
    assert purge(client)["deletes"] == 0


def test_an_experiment_restored_and_deleted_again_is_not_purged_until_its_new_deletion_is_old(client, aws):
    first_exp = new_experiment(client, "first")
    second_exp = new_experiment(client, "second")
    run_ids = {first_exp: [new_run(client, first_exp, points=30)], second_exp: [new_run(client, second_exp, points=30)]}
    delete_experiment(client, first_exp, days_ago=40)
    delete_experiment(client, second_exp, days_ago=40)
    stopped = purge(client, max_deletes=2)  # picks one up, the other waits in the cursor
    working_on = stopped["cursor"]["experiment_id"]
    waiting = second_exp if working_on == first_exp else first_exp
    ok(send(client, "post", f"{EXPERIMENTS}/{waiting}/restore"))
    ok(send(client, "delete", f"{EXPERIMENTS}/{waiting}"))  # deleted again: a fresh deletion time
    untouched = {name: {e for e in entries if belongs_to(e, "tenant-a", waiting, run_ids[waiting])}
                 for name, entries in snapshot(aws).items()}
    assert untouched["AGORA_METRICS_TABLE"] and untouched["AGORA_RUNS_TABLE"]

    reports = purge_until_finished(client, max_deletes=1_000)

    assert [n for r in reports for n in r["experiments_purged"]] == [f"tenant-a/{working_on}"]
    assert f"tenant-a/{waiting}" in [n for r in reports for n in r["experiments_skipped"]]
    assert ok(send(client, "get", f"{EXPERIMENTS}/{waiting}"))["lifecycle_stage"] == "deleted"
    after = snapshot(aws)
    for name, entries in untouched.items():
        assert entries <= after[name]


def test_active_experiments_and_experiments_deleted_within_retention_are_never_touched(client, aws):
    active = new_experiment(client, "active")
    new_run(client, active, points=40, artifact=True)
    recent = new_experiment(client, "recent")
    new_run(client, recent, points=40, artifact=True)
    delete_experiment(client, recent, days_ago=29.9)
    undated = new_experiment(client, "undated")
    new_run(client, undated, points=5)
    delete_experiment(client, undated)
    tables.remove_attribute("experiments", keys.experiment_key("tenant-a", undated), "deleted_at")
    before = snapshot(aws)

    report = purge(client)

    assert report["finished"] and report["deletes"] == 0 and report["experiments_purged"] == []
    assert snapshot(aws) == before


# --- resumable ----------------------------------------------------------------------------------

def test_a_purge_that_crashes_half_way_resumes_where_it_stopped_on_the_next_invocation(client, aws):
    archived = new_experiment(client, "archived")
    run_ids = [new_run(client, archived, points=50, keys_=2, artifact=True) for _ in range(4)]
    keep = new_experiment(client, "keep")
    new_run(client, keep, points=10, artifact=True)
    delete_experiment(client, archived, days_ago=31)
    before = snapshot(aws)

    tiny = purge(client, max_deletes=3)  # interrupted inside the first run
    saved = cursor_item()["state"]["current"]
    assert tiny["deletes"] == 3 and saved["experiment_id"] == archived
    assert saved["run_id"] == run_ids[0] and saved["metric_key"] == "m0" and saved["phase"] == "runs"

    # from the third DeleteObjects on, S3 answers 500: the invocation dies in the third run's artifacts
    with faults.fail(wiring.services().s3, "DeleteObjects", after=2, times=None), \
            pytest.raises(Unavailable, match="InternalError"):
        purge(client)
    saved = cursor_item()["state"]["current"]
    assert saved["phase"] == "runs" and saved["run_id"] == run_ids[2] and saved["removed"]["runs"] == 2
    assert send(client, "get", f"{EXPERIMENTS}/{archived}").status_code == 200, "the experiment item goes last"

    resumed = purge(client)

    assert resumed["resumed"] and resumed["finished"]
    assert resumed["experiments_purged"] == [f"tenant-a/{archived}"]
    assert resumed["removed"]["objects"] == 2 and resumed["removed"]["runs"] == 2
    assert snapshot(aws) == without(before, "tenant-a", archived, run_ids)


def test_each_invocation_stops_taking_work_when_its_lambda_time_runs_low(client, aws):
    from app import app

    archived = new_experiment(client, "archived")
    run_ids = [new_run(client, archived, points=10) for _ in range(8)]
    delete_experiment(client, archived, days_ago=31)
    before = snapshot(aws)

    class ShrinkingContext(LambdaClock):
        """A Lambda context whose remaining time falls by a second at every look."""

        def __init__(self) -> None:
            super().__init__(30_000)

        def get_remaining_time_in_millis(self) -> int:
            self.remaining_ms -= 1_000
            return self.remaining_ms

    reports = []
    for _ in range(50):
        reports.append(app.handler_map["purge_archived_experiments"](scheduled_event(client), ShrinkingContext()))
        if reports[-1]["finished"]:
            break

    assert len(reports) > 1 and all(r["stopped_by"] == "time" for r in reports[:-1])
    assert all(0 < r["deletes"] < 100_000 for r in reports[:-1]), "each did some work, then stopped in time"
    assert snapshot(aws) == without(before, "tenant-a", archived, run_ids)


def test_a_manual_invocation_with_a_bad_budget_fails_without_deleting(client, aws):
    exp = new_experiment(client, "old")
    new_run(client, exp, points=5)
    delete_experiment(client, exp, days_ago=31)
    before = snapshot(aws)

    for bad in (0, -5, "10", 2.5, True):
        with pytest.raises(ValueError):
            purge(client, max_deletes=bad)

    assert snapshot(aws) == before


def test_a_purge_removes_the_runs_artifacts_from_a_chosen_location_and_spares_its_neighbours(client, aws):
    bucket = os.environ["AGORA_BUCKET"]
    shared = f"s3://{bucket}/tenants/tenant-a/projects/shared"
    archived = ok(send(client, "post", EXPERIMENTS, {"name": "archived", "artifact_location": shared}), 201)["id"]
    neighbour = ok(send(client, "post", EXPERIMENTS, {"name": "neighbour", "artifact_location": shared}), 201)["id"]
    archived_runs = [new_run(client, archived, points=5, artifact=True) for _ in range(2)]
    new_run(client, neighbour, points=5, artifact=True)
    delete_experiment(client, archived, days_ago=31)
    objects = {o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert {k for k in objects if any(r in k for r in archived_runs)} == {
        f"tenants/tenant-a/projects/shared/runs/{r}/artifacts/out/model.bin" for r in archived_runs}

    report = purge(client)

    assert report["finished"] and report["experiments_purged"] == [f"tenant-a/{archived}"]
    assert report["removed"]["objects"] == 2
    left = {o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert left == objects - {f"tenants/tenant-a/projects/shared/runs/{r}/artifacts/out/model.bin"
                              for r in archived_runs}, "only the archived runs' own objects went"
    assert send(client, "get", f"{EXPERIMENTS}/{neighbour}").status_code == 200
