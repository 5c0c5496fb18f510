"""Run artifacts over HTTP and S3 events: direct multipart upload, listing, download by redirect,
presigned POST uploads and their registration by the EventBridge "Object Created" handler."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlparse

import requests

from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, assert_error, data, new_experiment, send

BOUNDARY = "----agora-test-boundary"
MAX_DIRECT_UPLOAD = 4 * 1024 * 1024


def new_run(client, experiment_id: str | None = None, tenant: str = "tenant-a") -> str:
    experiment_id = experiment_id or new_experiment(client, tenant=tenant)
    response = send(client, "post", RUNS, {"experiment_id": experiment_id}, tenant)
    assert response.status_code == 201, response.body
    return data(response)["id"]


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    """A multipart/form-data body from (field name, file name or None, content) parts."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


def upload(client, run_id: str, filename: str, content: bytes, artifact_path: str | None = None,
           field: str = "file", tenant: str = "tenant-a"):
    query = f"?artifact_path={quote(artifact_path, safe='')}" if artifact_path is not None else ""
    headers = {**auth(tenant), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return client.http.post(f"{RUNS}/{run_id}/log-artifact{query}", headers=headers,
                            body=multipart([(field, filename, content)]))


def artifacts(client, run_id: str) -> dict[str, dict]:
    response = client.http.get(f"{RUNS}/{run_id}/artifacts", headers=auth())
    assert response.status_code == 200, response.body
    body = data(response)
    assert set(body) == {"artifacts"}
    return {a["path"]: a for a in body["artifacts"]}


def download(client, run_id: str, path: str | None, tenant: str = "tenant-a"):
    query = f"?path={quote(path, safe='')}" if path is not None else ""
    return client.http.get(f"{RUNS}/{run_id}/artifacts/download{query}", headers=auth(tenant))


def presign(client, run_id: str, path: str, tenant: str = "tenant-a"):
    return send(client, "post", f"{RUNS}/{run_id}/artifact-uploads", {"path": path}, tenant)


def object_created(client, key: str, bucket: str | None = None) -> dict:
    """The EventBridge event S3 sends when an object lands (detail as documented by S3)."""
    bucket = bucket or os.environ["AGORA_BUCKET"]
    event = client.events.generate_cw_event(
        source="aws.s3", detail_type="Object Created",
        detail={"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": 5, "etag": "x"},
                "request-id": "r", "requester": "123456789012", "reason": "PostObject"},
        resources=[f"arn:aws:s3:::{bucket}"], region="us-east-1")
    event["version"] = "0"  # EventBridge sends the envelope version as a string
    return event


def presigned_key(client, run_id: str, path: str) -> str:
    response = presign(client, run_id, path)
    assert response.status_code in (200, 201), response.body
    return data(response)["fields"]["key"]


# --- direct upload ------------------------------------------------------------------------------

def test_log_artifact_stores_the_file_under_the_artifact_path_and_lists_only_the_runs_files(client):
    exp_id = new_experiment(client)
    run_id = new_run(client, exp_id)

    response = upload(client, run_id, "model.pkl", b"weights", artifact_path="models/v1")
    plain = upload(client, run_id, "notes.txt", b"hello world")

    assert response.status_code == 200, response.body
    artifact = data(response)
    assert artifact["path"] == "models/v1/model.pkl" and artifact["size"] == 7
    assert artifact["last_modified"]
    assert plain.status_code == 200 and data(plain)["path"] == "notes.txt"
    listed = artifacts(client, run_id)
    assert set(listed) == {"models/v1/model.pkl", "notes.txt"}
    assert {k: listed["notes.txt"][k] for k in ("path", "size")} == {"path": "notes.txt", "size": 11}
    assert listed["notes.txt"]["last_modified"]
    assert artifacts(client, new_run(client, exp_id)) == {}, "a sibling run has none of them"


def test_uploading_the_same_path_again_replaces_the_file(client):
    run_id = new_run(client)
    upload(client, run_id, "a.txt", b"first version")

    upload(client, run_id, "a.txt", b"v2")

    listed = artifacts(client, run_id)
    assert list(listed) == ["a.txt"] and listed["a.txt"]["size"] == 2
    assert requests.get(download(client, run_id, "a.txt").headers["Location"]).content == b"v2"


def test_artifact_paths_that_escape_the_run_are_400(client, subtests):
    run_id = new_run(client)
    for artifact_path in ("..", "../other-run", "a/../../b", "a/./b", "a//b"):
        with subtests.test(f"artifact_path {artifact_path}"):
            assert_error(upload(client, run_id, "f.txt", b"x", artifact_path=artifact_path), 400)
    with subtests.test("file name .."):
        assert_error(upload(client, run_id, "..", b"x"), 400)
    with subtests.test("file name with directories is kept inside the run"):
        response = upload(client, run_id, "../../etc/passwd", b"x")
        assert response.status_code in (200, 400), response.body
        if response.status_code == 200:
            assert ".." not in data(response)["path"].split("/")
    assert all(".." not in path.split("/") for path in artifacts(client, run_id))


def test_a_body_without_a_multipart_file_field_is_refused(client, subtests):
    run_id = new_run(client)
    headers = {**auth(), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    cases = {
        "other field name": multipart([("upload", "f.txt", b"x")]),
        "field without a file name": multipart([("file", None, b"x")]),
        "no parts at all": f"--{BOUNDARY}--\r\n".encode(),
        "empty body": b"",
    }
    for case, body in cases.items():
        with subtests.test(case):
            assert_error(client.http.post(f"{RUNS}/{run_id}/log-artifact", headers=headers, body=body), 400)
    with subtests.test("a JSON body instead of multipart"):
        response = send(client, "post", f"{RUNS}/{run_id}/log-artifact", {"file": "x"})
        assert response.status_code in (400, 415), response.body
        assert "detail" in data(response)
    assert artifacts(client, run_id) == {}


def test_a_direct_upload_above_4_mib_is_413_pointing_to_presigned_upload(client):
    run_id = new_run(client)

    response = upload(client, run_id, "big.bin", b"\0" * (MAX_DIRECT_UPLOAD + 1))

    assert_error(response, 413)
    assert "artifact-uploads" in str(data(response)["detail"])
    assert artifacts(client, run_id) == {}


def test_log_artifact_to_a_run_of_a_deleted_experiment_is_409(client):
    exp_id = new_experiment(client)
    run_id = new_run(client, exp_id)
    send(client, "delete", f"{EXPERIMENTS}/{exp_id}")

    assert_error(upload(client, run_id, "late.txt", b"x"), 409)
    assert_error(presign(client, run_id, "late.bin"), 409)


# --- download -----------------------------------------------------------------------------------

def test_download_redirects_303_to_a_presigned_url_404_for_an_unknown_path_400_without_one(client):
    run_id = new_run(client)
    upload(client, run_id, "report.csv", b"a,b\n1,2\n", artifact_path="out")

    response = download(client, run_id, "out/report.csv")

    assert response.status_code == 303
    location = response.headers["Location"]
    url = urlparse(location)
    query = parse_qs(url.query)
    assert url.scheme == "https" and url.path.endswith("/out/report.csv")
    assert "X-Amz-Signature" in query and int(query["X-Amz-Expires"][0]) <= 3600, "short-lived and signed"
    assert requests.get(location).content == b"a,b\n1,2\n"

    assert_error(download(client, run_id, "missing.txt"), 404)
    assert_error(download(client, run_id, "OUT/REPORT.CSV"), 404)
    assert_error(download(client, run_id, None), 400)
    assert_error(download(client, run_id, ""), 400)
    assert_error(download(client, "no-such-run", "out/report.csv"), 404)


# --- presigned upload and its registration --------------------------------------------------------

def test_presigned_upload_returns_url_fields_path_and_expiry_and_the_form_works(client):
    run_id = new_run(client)

    response = presign(client, run_id, "data/big.parquet")

    assert response.status_code in (200, 201), response.body  # the contract fixes the shape, not the code
    form = data(response)
    assert set(form) == {"url", "fields", "path", "expires_at"}
    assert form["path"] == "data/big.parquet"
    assert form["fields"]["key"].endswith("/data/big.parquet") and run_id in form["fields"]["key"]
    assert datetime.fromisoformat(form["expires_at"]) > datetime.now(UTC)
    posted = requests.post(form["url"], data=form["fields"], files={"file": ("big.parquet", b"PAR1...")})
    assert posted.status_code in (200, 201, 204), posted.text
    assert "data/big.parquet" not in artifacts(client, run_id), "registered only when S3 reports the object"


def test_presigned_upload_errors(client, subtests):
    run_id = new_run(client)
    cases = [
        ("path escaping the run", {"path": "../x"}, 400),
        ("absolute path", {"path": "/etc/passwd"}, 400),
        ("dot-dot inside", {"path": "a/../../b"}, 400),
        ("empty path", {"path": ""}, 400),
        ("missing path", {}, 400),
        ("unknown field", {"path": "a", "bucket": "other"}, 400),
    ]
    for case, body, status in cases:
        with subtests.test(case):
            assert_error(send(client, "post", f"{RUNS}/{run_id}/artifact-uploads", body), status)
    assert_error(presign(client, "no-such-run", "a.bin"), 404)


def test_an_object_created_event_registers_the_uploaded_file_once(client, aws):
    run_id = new_run(client)
    key = presigned_key(client, run_id, "checkpoints/epoch-3.pt")
    aws.client("s3").put_object(Bucket=os.environ["AGORA_BUCKET"], Key=key, Body=b"12345678")

    client.lambda_.invoke("register_artifact_upload", object_created(client, key))
    client.lambda_.invoke("register_artifact_upload", object_created(client, key))  # EventBridge delivers at least once

    listed = artifacts(client, run_id)
    assert list(listed) == ["checkpoints/epoch-3.pt"]
    assert listed["checkpoints/epoch-3.pt"]["size"] == 8
    redirect = download(client, run_id, "checkpoints/epoch-3.pt")
    assert redirect.status_code == 303 and requests.get(redirect.headers["Location"]).content == b"12345678"


def test_object_created_events_outside_the_layout_or_for_another_tenant_are_ignored(client, aws):
    s3 = aws.client("s3")
    bucket = os.environ["AGORA_BUCKET"]
    run_id = new_run(client)
    key = presigned_key(client, run_id, "ok.bin")
    prefix = key[: -len("ok.bin")]
    other_tenant_key = key.replace("tenant-a", "tenant-b", 1).replace("ok.bin", "smuggled.bin")
    assert other_tenant_key != key.replace("ok.bin", "smuggled.bin")
    strays = [
        "random/file.bin",
        "tenants/tenant-a/loose.bin",
        prefix.rstrip("/"),  # the artifacts folder itself
        prefix.replace("/artifacts/", "/elsewhere/") + "x.bin",
        prefix + "../../escape.bin",
        prefix.replace(run_id, "no-such-run") + "ghost.bin",
        other_tenant_key,  # tenant-b's prefix, tenant-a's run
    ]
    for stray in strays:
        s3.put_object(Bucket=bucket, Key=stray, Body=b"x")
        client.lambda_.invoke("register_artifact_upload", object_created(client, stray))
    s3.put_object(Bucket=bucket, Key=prefix + "never-uploaded.bin", Body=b"x")
    s3.delete_object(Bucket=bucket, Key=prefix + "never-uploaded.bin")
    client.lambda_.invoke("register_artifact_upload", object_created(client, prefix + "never-uploaded.bin"))
    s3.put_object(Bucket=bucket, Key=prefix + "other-bucket.bin", Body=b"x")
    client.lambda_.invoke("register_artifact_upload", object_created(client, prefix + "other-bucket.bin",
                                                                    bucket="someone-elses-bucket"))

    assert artifacts(client, run_id) == {}
    tenant_b_run = new_run(client, tenant="tenant-b")
    response = client.http.get(f"{RUNS}/{tenant_b_run}/artifacts", headers=auth("tenant-b"))
    assert data(response)["artifacts"] == []


def test_an_experiment_may_keep_its_artifacts_in_another_folder_of_its_tenants_space(client, aws, subtests):
    bucket = os.environ["AGORA_BUCKET"]
    location = f"s3://{bucket}/tenants/tenant-a/projects/shared"
    response = send(client, "post", EXPERIMENTS, {"name": "elsewhere", "artifact_location": location})
    assert response.status_code == 201, response.body
    assert data(response)["artifact_location"] == location + "/"
    exp_id = data(response)["id"]
    run_id = new_run(client, exp_id)
    run = data(client.http.get(f"{RUNS}/{run_id}", headers=auth()))
    assert run["artifact_uri"] == f"{location}/runs/{run_id}/artifacts/"

    assert upload(client, run_id, "notes.txt", b"hello").status_code == 200
    s3 = aws.client("s3")
    key = f"tenants/tenant-a/projects/shared/runs/{run_id}/artifacts/notes.txt"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"hello"
    assert download(client, run_id, "notes.txt").status_code == 303

    # a presigned upload lands under the location and is registered from there
    form = data(presign(client, run_id, "big/model.bin"))
    assert form["fields"]["key"] == f"tenants/tenant-a/projects/shared/runs/{run_id}/artifacts/big/model.bin"
    s3.put_object(Bucket=bucket, Key=form["fields"]["key"], Body=b"\0" * 10)
    registered = client.lambda_.invoke("register_artifact_upload", object_created(client, form["fields"]["key"]))
    assert registered.payload["outcome"] == "registered"
    assert set(artifacts(client, run_id)) == {"notes.txt", "big/model.bin"}

    for case, bad in {
        "another tenant's space": f"s3://{bucket}/tenants/tenant-b/x",
        "another bucket": "s3://elsewhere/tenants/tenant-a/x",
        "not s3": "file:///tmp/artifacts",
        "the tenant's root itself": f"s3://{bucket}/tenants/tenant-a/",
        "a path that climbs out": f"s3://{bucket}/tenants/tenant-a/a/../../tenant-b",
        "an empty segment": f"s3://{bucket}/tenants/tenant-a/a//b",
        "a control character": f"s3://{bucket}/tenants/tenant-a/a\nb",
    }.items():
        with subtests.test(case):
            assert_error(send(client, "post", EXPERIMENTS, {"name": f"bad {case}", "artifact_location": bad}), 400)
    listed = data(client.http.get(f"{EXPERIMENTS}?search=bad", headers=auth()))
    assert listed["total"] == 0, "a refused location creates nothing"
