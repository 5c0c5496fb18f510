"""Races over HTTP against the local stack as it ships (`python -m devstack`, no lock of the tests' own):
concurrent writers of one param, log-batches into one series, same-name creates, deletes racing
restores and the purge, a stop racing an engine's finish. Each ends in one consistent state."""
from __future__ import annotations

import json
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import pytest
import requests

from tests.test_local_stack import KEYS, ROOT, _wait, running_stack

A = {"Authorization": f"Bearer {KEYS['tenant-a']}"}
B = {"Authorization": f"Bearer {KEYS['tenant-b']}"}
EXPERIMENTS = "/api/v1/experiments"
RUNS = EXPERIMENTS + "/runs"
PURGE_FUNCTION = "agora-dev-purge_archived_experiments"  # as the local stack names it (stage dev)
SCHEDULE = {"version": "0", "id": "race", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("races")
    env = {"AGORA_RETENTION_DAYS": "0", "AGORA_SIM_STEP_PAUSE_SECONDS": "0",
           "AGORA_ENGINE_COMMAND": f"{sys.executable} {ROOT / 'tests' / 'fake_engine.py'} {tmp / 'token'}"}
    with running_stack(env, tmp / "data") as running:
        running.token_file = tmp / "token"
        yield running


def at_once(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Start every call at the same moment (a barrier), each on its own connection."""
    barrier = threading.Barrier(len(calls))

    def go(call: Callable[[], requests.Response]) -> requests.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(go, calls))


def post(url: str, body: Any, headers: dict[str, str] = A) -> Callable[[], requests.Response]:
    return lambda: requests.post(url, json=body, headers=headers, timeout=60)


def new_run(api: str) -> str:
    exp = requests.post(api + EXPERIMENTS, json={"name": f"race {uuid.uuid4().hex}"}, headers=A, timeout=10).json()
    return requests.post(api + RUNS, json={"experiment_id": exp["id"]}, headers=A, timeout=10).json()["id"]


def test_writers_of_one_param_one_wins_and_its_value_stays(stack) -> None:
    api = stack.url
    for trial in range(25):
        run = new_run(api)
        answers = at_once([post(f"{api}{RUNS}/{run}/log-params", {"params": {"lr": f"value-{n}"}})
                           for n in range(6)])
        codes = sorted(a.status_code for a in answers)
        assert codes == [200] + [409] * 5, (trial, codes)
        winner = next(a for a in answers if a.status_code == 200).request.body
        stored = requests.get(f"{api}{RUNS}/{run}", headers=A, timeout=10).json()["params"]["lr"]
        assert json.loads(winner)["params"]["lr"] == stored, trial


def test_concurrent_log_batches_into_one_series_keep_every_point_once(stack) -> None:
    api = stack.url
    run = new_run(api)
    batches = [[{"key": "loss", "value": float(step), "step": step, "timestamp": 1_700_000_000_000 + step}
                for step in range(start, start + 250)] for start in range(0, 8 * 1000, 250)]
    answers = at_once([post(f"{api}{RUNS}/{run}/log-batch", {"metrics": batch}) for batch in batches])
    assert {a.status_code for a in answers} == {200}
    points = requests.get(f"{api}{RUNS}/{run}/metrics/loss?limit=10000", headers=A, timeout=30).json()["points"]
    assert [p["step"] for p in points] == list(range(8000))
    latest = requests.get(f"{api}{RUNS}/{run}", headers=A, timeout=10).json()["metrics"]["loss"]
    assert latest["step"] == 7999 and latest["value"] == 7999.0


def test_same_name_creates_one_wins_and_other_tenants_creates_all_stay(stack) -> None:
    api = stack.url
    duplicates = [post(api + EXPERIMENTS, {"name": "the one"}, B) for _ in range(8)]
    distinct = [post(api + EXPERIMENTS, {"name": f"mine {n}"}) for n in range(24)]
    answers = at_once(duplicates + distinct)
    assert sorted(a.status_code for a in answers[:8]) == [201] + [409] * 7
    assert {a.status_code for a in answers[8:]} == {201}
    created = {a.json()["id"] for a in answers[8:]}
    for exp_id in created:  # every acknowledged create is there
        assert requests.get(f"{api}{EXPERIMENTS}/{exp_id}", headers=A, timeout=10).status_code == 200
    listed = requests.get(f"{api}{EXPERIMENTS}?search=the+one", headers=B, timeout=10).json()
    assert [e["name"] for e in listed["experiments"]] == ["the one"]


def test_identical_deletes_all_succeed_and_leave_it_deleted_once(stack) -> None:
    api = stack.url
    exp = requests.post(api + EXPERIMENTS, json={"name": "deleted eight times"}, headers=A, timeout=10).json()
    answers = at_once([lambda: requests.delete(f"{api}{EXPERIMENTS}/{exp['id']}", headers=A, timeout=30)
                       for _ in range(8)])
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers if a.status_code != 200]
    assert len({a.json()["updated_at"] for a in answers}) == 1  # one deletion, seen by all
    assert requests.get(f"{api}{EXPERIMENTS}/{exp['id']}", headers=A, timeout=10).json()["lifecycle_stage"] == \
        "deleted"


def test_delete_restore_and_purge_racing_leave_it_whole_or_gone(stack) -> None:
    api = stack.url
    lambda_client = _lambda_client(stack)  # the scheduled purge, invoked as EventBridge would (AGORA_RETENTION_DAYS=0)
    for trial in range(6):
        exp = requests.post(api + EXPERIMENTS, json={"name": f"contested {trial}"}, headers=A, timeout=10).json()
        run = requests.post(api + RUNS, json={"experiment_id": exp["id"]}, headers=A, timeout=10).json()["id"]
        requests.post(f"{api}{RUNS}/{run}/log-batch", headers=A, timeout=10, json={
            "metrics": [{"key": "m", "value": 1.0, "step": s, "timestamp": s} for s in range(100)]})
        requests.delete(f"{api}{EXPERIMENTS}/{exp['id']}", headers=A, timeout=10)

        def purge() -> requests.Response:
            answer = lambda_client.invoke(FunctionName=PURGE_FUNCTION, Payload=json.dumps(SCHEDULE))
            response = requests.Response()
            response.status_code = answer["StatusCode"]
            response._content = answer["Payload"].read()
            return response

        answers = at_once([lambda: requests.post(f"{api}{EXPERIMENTS}/{exp['id']}/restore", headers=A, timeout=30),
                           purge,
                           lambda: requests.delete(f"{api}{EXPERIMENTS}/{exp['id']}", headers=A, timeout=30)])
        assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
        now = requests.get(f"{api}{EXPERIMENTS}/{exp['id']}", headers=A, timeout=10)
        run_now = requests.get(f"{api}{RUNS}/{run}", headers=A, timeout=10)
        if now.status_code == 404:  # purged: nothing of it is left
            assert run_now.status_code == 404
            assert requests.get(f"{api}{RUNS}/{run}/metrics/m", headers=A, timeout=10).status_code == 404
        else:  # kept (restored, or deleted again after the restore): whole
            assert now.status_code == 200 and run_now.status_code == 200
            points = requests.get(f"{api}{RUNS}/{run}/metrics/m?limit=1000", headers=A, timeout=10).json()["points"]
            assert len(points) == 100, trial


def _lambda_client(stack: Any) -> Any:
    import boto3

    moto_url = next(line.split()[1] for line in stack.banner.splitlines() if line.strip().startswith("moto"))
    return boto3.client("lambda", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def test_a_stop_racing_the_engines_finish_ends_once_with_one_bill(stack) -> None:
    api = stack.url
    platform = {kind: requests.get(f"{api}/api/{kind}-configs", headers=A, timeout=10).json()["data"]
                for kind in ("llm", "agent", "map", "workflow")}
    refs = {name: {"tenant_id": "", "id": next(c for c in platform[kind] if c["tenant_id"] == "")["id"]}
            for name, kind in (("llm", "llm"), ("agents", "agent"), ("map", "map"), ("workflow", "workflow"))}
    for trial in range(4):
        stack.token_file.unlink(missing_ok=True)
        exp_id = requests.post(f"{api}/api/run-experiments", headers=A, timeout=30, json={
            "exp_name": f"raced {trial}", "engine": "external", **refs}).json()["data"]["id"]
        token = _wait(lambda: stack.token_file.exists() and stack.token_file.read_text().split("\n")[0], 60)
        answers = at_once([
            lambda: requests.post(f"{api}/api/run-experiments/{exp_id}/finish?callback_auth_token={token}",
                                  json={"status": "finished"}, timeout=30),
            lambda: requests.delete(f"{api}/api/run-experiments/{exp_id}", headers=A, timeout=30)])
        assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
        exp = _wait(lambda: (e := requests.get(f"{api}/api/experiments/{exp_id}", headers=A, timeout=10)
                             .json()["data"])["status"] in (2, 3, 4) and e, 60)
        assert exp["status"] in (2, 4), exp
        bills = _wait(lambda: [b for b in requests.get(f"{api}/api/bills?limit=100", headers=A, timeout=10)
                               .json()["data"] if b["related_exp_id"] == exp_id] or None, 60)
        # one line per item (the platform's LLM bills its tokens too, here zero), whichever end won
        assert sorted(b["item"] for b in bills) == ["llm_input_token", "llm_output_token", "run_time"], bills
        again = requests.post(f"{api}/api/run-experiments/{exp_id}/finish?callback_auth_token={token}",
                              json={"status": "finished"}, timeout=30)
        assert again.status_code in (403, 409)


def test_concurrent_requests_log_their_own_tenant_and_route(stack) -> None:
    api = stack.url
    calls = [(lambda: requests.get(f"{api}/api/agent-templates", headers=A, timeout=30)) if n % 2 else
             (lambda: requests.get(f"{api}{EXPERIMENTS}", headers=B, timeout=30)) for n in range(40)]
    assert {a.status_code for a in at_once(calls)} == {200}
    expected = {"tenant-a": "GET /api/agent-templates", "tenant-b": f"GET {EXPERIMENTS}"}

    def handled() -> list[dict[str, Any]]:
        found = []
        for line in list(stack.lines):
            if line.startswith("{") and '"handled"' in line:
                record = json.loads(line)
                if record.get("route") in expected.values():
                    found.append(record)
        return found

    records = _wait(lambda: (found := handled()) and len(found) >= 40 and found, 30)
    assert all(expected[r["tenant_id"]] == r["route"] for r in records), \
        [(r["tenant_id"], r["route"]) for r in records if expected[r["tenant_id"]] != r["route"]][:5]
