"""The EventBridge "Object Created" trigger that registers presigned uploads, black-box: objects put
into the bucket, the event S3 sends invoked as Lambda would, the artifacts read back over HTTP."""
from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import requests

from chalicelib.store import keys
from tests import tables
from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, artifact_key, ok, send


def new_experiment(client, name: str = "uploads", tenant: str = "tenant-a") -> str:
    return ok(send(client, "post", EXPERIMENTS, {"name": name}, tenant), 201)["id"]


def new_run(client, experiment_id: str, tenant: str = "tenant-a") -> str:
    return ok(send(client, "post", RUNS, {"experiment_id": experiment_id}, tenant), 201)["id"]


def artifacts(client, run_id: str, tenant: str = "tenant-a") -> dict[str, dict]:
    return {a["path"]: a for a in ok(client.http.get(f"{RUNS}/{run_id}/artifacts", headers=auth(tenant)))["artifacts"]}


def presigned_upload(client, run_id: str, path: str, content: bytes) -> str:
    """Upload through the presigned POST the API hands out; returns the object key."""
    form = ok(send(client, "post", f"{RUNS}/{run_id}/artifact-uploads", {"path": path}), 201)
    posted = requests.post(form["url"], data=form["fields"], files={"file": (path.rsplit("/", 1)[-1], content)})
    assert posted.status_code in (200, 201, 204), posted.text
    return form["fields"]["key"]


def object_created(client, key: str, bucket: str | None = None, encode: bool = True) -> dict:
    """The event S3 sends to EventBridge; S3 URL-encodes the key (a space becomes '+')."""
    bucket = bucket or os.environ["AGORA_BUCKET"]
    event = client.events.generate_cw_event(
        source="aws.s3", detail_type="Object Created",
        detail={"version": "0", "bucket": {"name": bucket},
                "object": {"key": quote_plus(key, safe="/") if encode else key, "size": 1, "etag": "x"},
                "request-id": "r", "requester": "123456789012", "reason": "PostObject"},
        resources=[f"arn:aws:s3:::{bucket}"], region="us-east-1")
    event["version"] = "0"
    return event


def notify(client, key: str, **kwargs: Any) -> str:
    return client.lambda_.invoke("register_artifact_upload", object_created(client, key, **kwargs)).payload["outcome"]


def expect(client, run_id: str, path: str, tenant: str = "tenant-a") -> str:
    """Ask the API for a presigned upload of `path` (so the run expects it); returns the object key."""
    return ok(send(client, "post", f"{RUNS}/{run_id}/artifact-uploads", {"path": path}, tenant), 201)["fields"]["key"]


def put(aws, key: str, body: bytes = b"x") -> None:
    aws.client("s3").put_object(Bucket=os.environ["AGORA_BUCKET"], Key=key, Body=body)


def artifact_items() -> list[dict]:
    """Every artifact record of every tenant, straight from the runs table."""
    return tables.scan_sort_prefix("runs", keys.ARTIFACT_SK)


# --- registered --------------------------------------------------------------------------------

def test_a_presigned_upload_is_registered_with_the_size_and_checksum_s3_reports(client, aws):
    run_id = new_run(client, new_experiment(client))
    key = presigned_upload(client, run_id, "data/train set.parquet", b"PAR1" * 1000)

    assert notify(client, key) == "registered"

    listed = artifacts(client, run_id)
    assert list(listed) == ["data/train set.parquet"]
    head = aws.client("s3").head_object(Bucket=os.environ["AGORA_BUCKET"], Key=key, ChecksumMode="ENABLED")
    assert listed["data/train set.parquet"]["size"] == 4000 == head["ContentLength"]
    assert listed["data/train set.parquet"]["checksum"] in (head.get("ChecksumSHA256"), head["ETag"].strip('"'))
    assert listed["data/train set.parquet"]["last_modified"]


def test_duplicate_events_are_harmless_and_a_new_upload_of_the_path_is_registered_again(client, aws):
    run_id = new_run(client, new_experiment(client))
    key = presigned_upload(client, run_id, "model.bin", b"first")
    assert notify(client, key) == "registered"
    recorded = artifact_items()

    assert notify(client, key) == "already registered"  # EventBridge delivers at least once
    assert notify(client, key) == "already registered"
    assert artifact_items() == recorded

    put(aws, key, b"second, longer")
    assert notify(client, key) == "registered"
    assert artifacts(client, run_id)["model.bin"]["size"] == len(b"second, longer")
    assert len(artifact_items()) == 1


def test_keys_are_url_decoded_and_a_literal_plus_is_still_found(client, aws, subtests):
    run_id = new_run(client, new_experiment(client))
    prefix = artifact_key("tenant-a", *_ids(client, run_id))
    for name, event_key, encode in [
        ("a space arrives as '+'", "notes and more.txt", True),
        ("a literal '+' arrives as %2B", "c++ build.log", True),
        ("a literal '%' arrives as %25", "100% done.txt", True),
        ("an unencoded key with a literal '+'", "a+b.txt", False),
    ]:
        with subtests.test(name):
            assert expect(client, run_id, event_key) == prefix + event_key
            put(aws, prefix + event_key)
            assert notify(client, prefix + event_key, encode=encode) == "registered"
            assert event_key in artifacts(client, run_id)
    assert set(artifacts(client, run_id)) == {"notes and more.txt", "c++ build.log", "100% done.txt", "a+b.txt"}


# --- ignored -----------------------------------------------------------------------------------

def test_objects_outside_the_layout_or_with_path_tricks_are_ignored_and_logged(client, aws, caplog, subtests):
    run_id = new_run(client, new_experiment(client))
    prefix = artifact_key("tenant-a", *_ids(client, run_id))
    strays = {
        "outside tenants/": "random/file.bin",
        "tenant folder only": "tenants/tenant-a/loose.bin",
        "the artifacts folder itself": prefix,
        "another folder than artifacts": prefix.replace("/artifacts/", "/elsewhere/") + "x.bin",
        "dot-dot": prefix + "../../escape.bin",
        "dot": prefix + "./x.bin",
        "empty segment": prefix + "a//b.bin",
        "encoded slashes and dot-dots": prefix + "a%2F..%2F..%2Fb.bin",
        "a control character": prefix + "bad\nname.bin",
        "a malformed run id": prefix.replace(run_id, run_id + "#M#loss") + "x.bin",
        "an upper-case tenant": prefix.replace("tenant-a", "TENANT-A", 1) + "x.bin",
    }
    caplog.set_level(logging.INFO, logger="chalicelib.events.artifact_uploads")
    for case, key in strays.items():
        with subtests.test(case):
            put(aws, unquote_plus(key))  # the object S3 holds; the event carries its key encoded
            outcome = notify(client, key, encode=False)
            assert outcome.startswith("ignored"), outcome
            assert any(outcome in record.getMessage() for record in caplog.records)
    with subtests.test("a path over 1,024 characters"):  # S3 itself refuses such keys; the event is still checked
        assert notify(client, prefix + "x" * 1025) == "ignored: not a valid artifact path"
    assert artifacts(client, run_id) == {} and artifact_items() == []
    assert all("\n" not in record.getMessage() for record in caplog.records), "keys are logged escaped"


def test_objects_for_unknown_runs_another_tenants_run_or_another_experiment_are_ignored(client, aws, subtests):
    exp_a = new_experiment(client)
    run_a = new_run(client, exp_a)
    other_exp = new_experiment(client, "other")
    exp_b = new_experiment(client, tenant="tenant-b")
    run_b = new_run(client, exp_b, tenant="tenant-b")
    cases = {
        "an unknown run": artifact_key("tenant-a", exp_a, "01aaaaaaaaaaaaaaaaaaaaaaaa", "x.bin"),
        "tenant-a's run under tenant-b's prefix": artifact_key("tenant-b", exp_a, run_a, "x.bin"),
        "tenant-b's run under tenant-a's prefix": artifact_key("tenant-a", exp_b, run_b, "x.bin"),
        "tenant-b's run with tenant-a's experiment": artifact_key("tenant-b", exp_a, run_b, "x.bin"),
        "the run under another experiment of its tenant": artifact_key("tenant-a", other_exp, run_a, "x.bin"),
        "an unknown tenant": artifact_key("tenant-z", exp_a, run_a, "x.bin"),
    }
    for case, key in cases.items():
        with subtests.test(case):
            put(aws, key)
            assert notify(client, key) == "ignored: no such run for that tenant and experiment"
    assert notify(client, artifact_key("tenant-a", exp_a, run_a, "gone.bin")) == "ignored: object is gone"
    put(aws, artifact_key("tenant-a", exp_a, run_a, "elsewhere.bin"))
    assert notify(client, artifact_key("tenant-a", exp_a, run_a, "elsewhere.bin"),
                  bucket="someone-elses-bucket") == "ignored: another bucket"
    assert artifact_items() == []
    assert artifacts(client, run_a) == {} and artifacts(client, run_b, tenant="tenant-b") == {}


def test_malformed_events_are_ignored_without_failing(client):
    for detail in ({}, {"bucket": {"name": os.environ["AGORA_BUCKET"]}},
                   {"bucket": {"name": os.environ["AGORA_BUCKET"]}, "object": {"key": 5}}):
        event = client.events.generate_cw_event(source="aws.s3", detail_type="Object Created", detail=detail,
                                                resources=[], region="us-east-1")
        outcome = client.lambda_.invoke("register_artifact_upload", event).payload["outcome"]
        assert outcome.startswith("ignored"), outcome


def test_uploads_landing_for_a_deleted_experiment_are_ignored_and_for_a_purged_run_leave_nothing(client, aws):
    exp_id = new_experiment(client)
    run_id = new_run(client, exp_id)
    key = presigned_upload(client, run_id, "late.bin", b"late")
    ok(send(client, "delete", f"{EXPERIMENTS}/{exp_id}"))

    assert notify(client, key) == "ignored: the run's experiment is deleted"
    assert artifact_items() == []
    ok(send(client, "post", f"{EXPERIMENTS}/{exp_id}/restore"))
    assert notify(client, key) == "registered", "a redelivered event after a restore registers it"

    ok(send(client, "delete", f"{EXPERIMENTS}/{exp_id}"))
    long_ago = (datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="milliseconds")
    tables.set_attribute("experiments", keys.experiment_key("tenant-a", exp_id), "deleted_at", long_ago)
    schedule = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                               resources=[], region="us-east-1")
    report = client.lambda_.invoke("purge_archived_experiments", schedule).payload
    assert report["experiments_purged"] == [f"tenant-a/{exp_id}"]
    put(aws, key, b"very late")  # e.g. an upload form used after the purge

    assert notify(client, key) == "ignored: no such run for that tenant and experiment"
    assert artifact_items() == []
    assert tables.partition("runs", keys.run_pk("tenant-a", run_id)) == []


def _ids(client, run_id: str) -> tuple[str, str]:
    return ok(client.http.get(f"{RUNS}/{run_id}", headers=auth()))["experiment_id"], run_id


def test_an_object_no_presigned_upload_was_given_for_is_not_registered_whatever_its_key_says(client, aws):
    """S3's POST policy binds each form to its key, but the handler does not rely on S3 having enforced it
    (moto, for one, does not): a key edited in tenant-a's form to point into tenant-b's run registers nothing."""
    exp_a, exp_b = new_experiment(client), new_experiment(client, tenant="tenant-b")
    run_a, run_b = new_run(client, exp_a), new_run(client, exp_b, tenant="tenant-b")
    mine = expect(client, run_a, "model.bin")
    theirs = mine.replace(f"tenants/tenant-a/experiments/{exp_a}/runs/{run_a}/",
                          f"tenants/tenant-b/experiments/{exp_b}/runs/{run_b}/")
    put(aws, theirs, b"planted")
    assert notify(client, theirs) == "ignored: no presigned upload was given for this run and path"
    assert artifacts(client, run_b, tenant="tenant-b") == {}
    put(aws, artifact_key("tenant-a", exp_a, run_a, "other.bin"), b"never asked for")
    assert notify(client, artifact_key("tenant-a", exp_a, run_a, "other.bin")).startswith("ignored: no presigned")
    put(aws, mine, b"mine")
    assert notify(client, mine) == "registered" and list(artifacts(client, run_a)) == ["model.bin"]


def test_s3_here_holds_a_presigned_post_to_its_policy_as_aws_does(client):
    run_id = new_run(client, new_experiment(client))
    form = ok(send(client, "post", f"{RUNS}/{run_id}/artifact-uploads",
                   {"path": "a.txt", "content_type": "text/plain"}), 201)
    cases = {"another key": {**form["fields"], "key": form["fields"]["key"].replace("a.txt", "b.txt")},
             "another content type": {**form["fields"], "Content-Type": "text/html"},
             "no policy": {k: v for k, v in form["fields"].items() if k != "policy"}}
    for case, fields in cases.items():
        posted = requests.post(form["url"], data=fields, files={"file": ("a.txt", b"hello")})
        assert posted.status_code == 403, case
    assert requests.post(form["url"], data=form["fields"], files={"file": ("a.txt", b"")}).status_code == 403
    assert requests.post(form["url"], data=form["fields"], files={"file": ("a.txt", b"hello")}).status_code == 204
