"""The local stack (`python -m devstack`) end to end, over real HTTP, in a subprocess.

A subprocess keeps moto's server, its patched internals and the process environment away from the
rest of the suite (which runs moto in-process with `mock_aws`).
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from devstack import moto_bridge

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"tenant-a": "local-key-a", "tenant-b": "local-key-b"}
ADMIN_KEY = "local-admin-key"
STARTUP_TIMEOUT = 30


@pytest.fixture
def stack_url(tmp_path: Path) -> Iterator[str]:
    with running_stack({}, tmp_path / "data") as stack:
        yield stack.url


@pytest.fixture
def open_stack_url(tmp_path: Path) -> Iterator[str]:
    """The stack in open mode, as AgentSociety's open-source UI needs it."""
    with running_stack({"AGORA_OPEN_TENANT": "default"}, tmp_path / "data") as stack:
        yield stack.url


@dataclass
class RunningStack:
    url: str
    proc: subprocess.Popen
    banner: str
    lines: list[str]  # everything it printed so far (its JSON log lines among them)


@contextlib.contextmanager
def running_stack(extra_env: dict[str, str], data_dir: Path) -> Iterator[RunningStack]:
    """`python -m devstack` keeping its data in `data_dir`; stopped with Ctrl-C unless the test killed it."""
    env = {**os.environ, "PORT": "0", "MOTO_PORT": "0", "PYTHONUNBUFFERED": "1",
           "AGORA_LOCAL_TENANTS": ",".join(f"{t}:{k}" for t, k in KEYS.items()), "AGORA_ADMIN_KEY": ADMIN_KEY,
           "AGORA_DATA_DIR": str(data_dir), **extra_env}
    env.pop("AWS_ENDPOINT_URL", None)
    if "AGORA_OPEN_TENANT" not in extra_env:
        env.pop("AGORA_OPEN_TENANT", None)
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "devstack"], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=stderr)
        lines: list[str] = []
        ready = threading.Event()

        def read_stdout() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                lines.append(line)
                if line.startswith("Ctrl-C stops"):
                    ready.set()
            ready.set()

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        try:
            ready.wait(STARTUP_TIMEOUT)
            match = re.search(r"^\s*API\s+(http://\S+)", "".join(lines), re.MULTILINE)
            if not match:
                stderr.seek(0)
                pytest.fail(f"the local stack did not start:\n{''.join(lines)}\n{stderr.read()[-4000:]}")
            banner = "".join(lines)
            assert "tenant-a, tenant-b" in banner and KEYS["tenant-a"] not in banner and ADMIN_KEY not in banner
            yield RunningStack(match.group(1), proc, banner, lines)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # what Ctrl-C does
                assert proc.wait(timeout=30) == 0
                reader.join(timeout=5)
                assert "stopped" in "".join(lines)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_local_stack_over_http(stack_url: str) -> None:
    moto_bridge.check_moto()  # the installed moto is the one the bridge patches
    api = stack_url + "/api/v1/experiments"
    auth = {"Authorization": f"Bearer {KEYS['tenant-a']}"}

    assert requests.get(api, timeout=10).status_code == 401
    bad = requests.get(api, headers={"Authorization": "Bearer not-a-key"}, timeout=10)
    assert bad.status_code == 401 and "detail" in bad.json()

    exp = requests.post(api, json={"name": "local stack"}, headers=auth, timeout=10)
    assert exp.status_code == 201, exp.text
    run = requests.post(f"{api}/runs", json={"experiment_id": exp.json()["id"], "name": "r1"}, headers=auth,
                        timeout=10)
    assert run.status_code == 201, run.text
    runs = f"{api}/runs/{run.json()['id']}"

    batch = {"metrics": [{"key": "loss", "value": 0.5, "step": 1, "timestamp": 1_700_000_000_000},
                         {"key": "loss", "value": 0.25, "step": 2, "timestamp": 1_700_000_000_100}],
             "params": [{"key": "lr", "value": "0.01"}], "tags": [{"key": "stage", "value": "local"}]}
    logged = requests.post(f"{runs}/log-batch", json=batch, headers=auth, timeout=10)
    assert logged.status_code == 200, logged.text
    assert logged.json() == {"metrics": 2, "params": 1, "tags": 1}
    body = requests.get(runs, headers=auth, timeout=10).json()
    assert body["params"] == {"lr": "0.01"} and body["tags"] == {"stage": "local"} and "loss" in body["metrics"]

    direct = requests.post(f"{runs}/log-artifact", params={"artifact_path": "dir"}, headers=auth, timeout=10,
                           files={"file": ("notes.txt", b"hello artifacts", "text/plain")})
    assert direct.status_code == 200, direct.text
    assert direct.json()["path"] == "dir/notes.txt" and direct.json()["size"] == 15

    # straight to S3 with a presigned POST: registered only through S3 -> EventBridge -> Lambda
    form = requests.post(f"{runs}/artifact-uploads", json={"path": "big/model.bin"}, headers=auth, timeout=10)
    assert form.status_code == 201, form.text
    assert set(form.json()) >= {"url", "fields", "path", "expires_at"}
    landed = requests.post(form.json()["url"], data=form.json()["fields"], timeout=10,
                           files={"file": ("model.bin", b"\x00" * 2048, "application/octet-stream")})
    assert landed.status_code in (200, 201, 204), landed.text

    deadline = time.monotonic() + 5  # delivery is synchronous in moto; the wait only guards against change
    while True:
        listed = requests.get(f"{runs}/artifacts", headers=auth, timeout=10)
        assert listed.status_code == 200, listed.text
        sizes = {a["path"]: a["size"] for a in listed.json()["artifacts"]}
        if "big/model.bin" in sizes or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert sizes == {"dir/notes.txt": 15, "big/model.bin": 2048}


def _wait(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_simulations_on_the_local_stack(stack_url: str) -> None:
    """The seeded platform configs launch with one call; a built-in run finishes, a second is stopped
    half way, and an external engine (a separate process) finishes through its callback."""
    auth = {"Authorization": f"Bearer {KEYS['tenant-a']}"}
    refs = {}
    for kind, path in (("llm", "llm-configs"), ("agents", "agent-configs"), ("map", "map-configs"),
                       ("workflow", "workflow-configs")):
        listed = requests.get(f"{stack_url}/api/{path}", headers=auth, timeout=10).json()["data"]
        assert listed and listed[0]["tenant_id"] == ""
        refs[kind] = {"tenant_id": "", "id": listed[0]["id"]}

    def launch(name: str, **extra: str) -> str:
        answer = requests.post(f"{stack_url}/api/run-experiments", json={"exp_name": name, **refs, **extra},
                               headers=auth, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["id"]

    def experiment(exp_id: str) -> dict:
        return requests.get(f"{stack_url}/api/run-experiments/{exp_id}/status", headers=auth, timeout=10).json()

    first = launch("seeded run")
    second = launch("run to stop")
    external = launch("external run", engine="external")
    assert experiment(first)["data"] == "Running"

    # stop the second one once it has made progress, half way through its day
    _wait(lambda: "step" in requests.get(f"{stack_url}/api/run-experiments/{second}/log", headers=auth,
                                         timeout=10).text or None, 30)
    stop = requests.delete(f"{stack_url}/api/run-experiments/{second}", headers=auth, timeout=10)
    assert stop.status_code == 200, stop.text
    for exp_id in (first, second, external):
        assert _wait(lambda: experiment(exp_id)["data"] != "Running" and experiment(exp_id)["data"], 90) \
            == "Terminated", requests.get(f"{stack_url}/api/run-experiments/{exp_id}/log", headers=auth).text
    again = requests.delete(f"{stack_url}/api/run-experiments/{second}", headers=auth, timeout=10)
    assert again.status_code == 409
    log = requests.get(f"{stack_url}/api/run-experiments/{external}/log", headers=auth, timeout=10).text
    assert "external engine" in log


def test_without_open_mode_a_request_without_a_key_is_401_detail_and_an_unknown_route_404(stack_url: str) -> None:
    for method, path in (("get", "/api/agent-templates"), ("get", "/api/v1/experiments/search"),
                         ("post", "/api/run-experiments")):
        response = getattr(requests, method)(stack_url + path, timeout=10)
        message = "missing or unknown API key: send 'Authorization: Bearer <key>'"
        assert response.status_code == 401 and response.json() == {  # MLflow's client reads error_code
            "detail": message, "error_code": "UNAUTHENTICATED", "message": message}, path
        assert response.headers["WWW-Authenticate"].startswith("Basic "), path  # a browser asks for the key
    unknown = requests.get(f"{stack_url}/api/no-such-route", timeout=10)
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found"}
    keyed = requests.get(f"{stack_url}/api/no-such-route", headers={"Authorization": "Bearer x"}, timeout=10)
    assert keyed.status_code == 404 and keyed.json() == {"detail": "Not Found"}
    public = requests.get(f"{stack_url}/api/agent-param?agent_type=citizen&agent_class=SocietyAgent", timeout=10)
    assert public.status_code == 200  # AgentSociety's UI asks this one without a key in every build


def test_open_mode_serves_requests_without_a_key_as_its_tenant_and_keys_as_theirs(open_stack_url: str) -> None:
    url = open_stack_url
    created = requests.post(f"{url}/api/agent-templates", timeout=10, json={
        "name": "open", "agent_type": "citizen", "agent_class": "SocietyAgent", "memory_distributions": {}})
    assert created.status_code == 200, created.text
    assert created.json()["data"]["tenant_id"] == "default"
    keyed = {"Authorization": f"Bearer {KEYS['tenant-a']}"}
    assert requests.get(f"{url}/api/agent-templates", headers=keyed, timeout=10).json()["data"] == []
    mine = requests.get(f"{url}/api/agent-templates", timeout=10).json()["data"]
    assert [t["id"] for t in mine] == [created.json()["data"]["id"]]
    bad = requests.get(f"{url}/api/agent-templates", headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert bad.status_code == 401 and "detail" in bad.json()  # a key of its own is never replaced
    assert requests.get(f"{url}/api/account", timeout=10).json()["data"]["balance"]  # credited like local tenants
    # a download form with its own authorization field acts as that key's tenant, one without as open mode's
    listed = requests.get(f"{url}/api/map-configs", timeout=10).json()["data"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    anonymous = requests.post(f"{url}/api/map-configs/{listed[0]['id']}/export", headers=form, data="",
                              allow_redirects=False, timeout=10)
    assert anonymous.status_code == 303
    wrong = requests.post(f"{url}/api/map-configs/{listed[0]['id']}/export", headers=form,
                          data="authorization=Bearer+wrong", allow_redirects=False, timeout=10)
    assert wrong.status_code == 401


def _journal_holds(data_dir: Path, text: str) -> bool:
    journal = data_dir / "journal.jsonl"
    return journal.exists() and text in journal.read_text()


def test_data_survives_a_restart_and_a_crash_and_a_running_simulation_goes_on(tmp_path: Path) -> None:
    """What `make run` holds (DESIGN.md section 2): a restart loses nothing, a crash only the last moment,
    stored secrets still decrypt, and a simulation that was running finishes after the restart."""
    data = tmp_path / "data"
    auth = {"Authorization": f"Bearer {KEYS['tenant-a']}"}
    with running_stack({"AGORA_SIM_STEP_PAUSE_SECONDS": "3"}, data) as stack:
        api = stack.url
        exp = requests.post(f"{api}/api/v1/experiments", json={"name": "kept"}, headers=auth, timeout=10).json()
        run = requests.post(f"{api}/api/v1/experiments/runs", json={"experiment_id": exp["id"]}, headers=auth,
                            timeout=10).json()
        for step in range(0, 3000, 1000):
            batch = [{"key": "loss", "value": 1 / (i + 1), "step": i, "timestamp": 1_700_000_000_000 + i}
                     for i in range(step, step + 1000)]
            assert requests.post(f"{api}/api/v1/experiments/runs/{run['id']}/log-batch", json={"metrics": batch},
                                 headers=auth, timeout=30).status_code == 200
        requests.post(f"{api}/api/v1/experiments/runs/{run['id']}/log-params", json={"params": {"lr": "0.1"}},
                      headers=auth, timeout=10)
        llm = requests.post(f"{api}/api/llm-configs", headers=auth, timeout=10, json={
            "name": "secret", "config": [{"provider": "builtin", "model": "builtin", "api_key": "sk-keep-me"}]}).json()
        platform = {kind: requests.get(f"{api}/api/{kind}-configs", headers=auth, timeout=10).json()["data"]
                    for kind in ("llm", "agent", "map", "workflow")}
        workflow = requests.post(f"{api}/api/workflow-configs", headers=auth, timeout=10, json={
            "name": "short", "config": [{"type": "step", "steps": 36}]}).json()["data"]
        refs = {kind: {"tenant_id": "", "id": platform[plural][-1]["id"]}
                for kind, plural in (("llm", "llm"), ("agents", "agent"), ("map", "map"))}
        sim = requests.post(f"{api}/api/run-experiments", headers=auth, timeout=30, json={
            "exp_name": "across a restart", "workflow": {"tenant_id": "tenant-a", "id": workflow["id"]},
            **refs}).json()["data"]["id"]
        _wait(lambda: requests.get(f"{api}/api/experiments/{sim}", headers=auth, timeout=10).json()
              .get("data", {}).get("status") == 1, 60)
        before = requests.get(f"{api}/api/v1/experiments/runs/{run['id']}", headers=auth, timeout=10).json()
    # Ctrl-C stopped it half way through the simulation (a 3 s pause after each of its 3 steps)

    with running_stack({"AGORA_SIM_STEP_PAUSE_SECONDS": "0"}, data) as stack:
        api = stack.url
        assert "restored" in stack.banner and "resumed    1 simulation" in stack.banner
        assert requests.get(f"{api}/api/v1/experiments/runs/{run['id']}", headers=auth, timeout=10).json() == before
        history = requests.get(f"{api}/api/v1/experiments/runs/{run['id']}/metrics/loss?limit=5000", headers=auth,
                               timeout=30).json()
        assert [p["step"] for p in history["points"]] == list(range(3000))
        # the platform configs were not seeded twice
        assert [c["id"] for c in requests.get(f"{api}/api/llm-configs", headers=auth, timeout=10).json()["data"]
                if c["tenant_id"] == ""] == [c["id"] for c in platform["llm"] if c["tenant_id"] == ""]
        # the LLM key still opens: an update sending the masked key back keeps the stored one
        kept = requests.put(f"{api}/api/llm-configs/{llm['data']['id']}", headers=auth, timeout=10, json={
            "name": "secret", "config": llm["data"]["config"]})
        assert kept.status_code == 200, kept.text
        done = _wait(lambda: (e := requests.get(f"{api}/api/experiments/{sim}", headers=auth, timeout=10)
                              .json()["data"])["status"] != 1 and e, 120)
        assert done["status"] == 2, done["error"]
        timeline = requests.get(f"{api}/api/experiments/{sim}/timeline", headers=auth, timeout=10).json()["data"]
        assert len(timeline) == 36 and len({(i["day"], i["t"]) for i in timeline}) == 36  # no gap, no repeat
        log = requests.get(f"{api}/api/run-experiments/{sim}/log", headers=auth, timeout=10).text
        assert "resuming from its checkpoint" in log

        late = requests.post(f"{api}/api/v1/experiments", json={"name": "just before a crash"}, headers=auth,
                             timeout=10).json()
        _wait(lambda: _journal_holds(data, late["id"]), 30)  # written down within a flush interval
        stack.proc.send_signal(signal.SIGKILL)
        stack.proc.wait(timeout=10)

    with running_stack({}, data) as stack:
        found = requests.get(f"{stack.url}/api/v1/experiments/{late['id']}", headers=auth, timeout=10)
        assert found.status_code == 200 and found.json()["name"] == "just before a crash"


def test_the_stack_takes_64_connections_at_once_and_one_data_dir_serves_one_stack(tmp_path: Path) -> None:
    with running_stack({}, tmp_path / "data") as stack:
        host, port = stack.url.removeprefix("http://").split(":")
        sockets = [socket.create_connection((host, int(port)), timeout=30) for _ in range(80)]
        try:
            for s in sockets:  # all connected before any is served: the backlog holds them
                s.sendall(b"GET /api/agent-blocks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answers = [s.recv(64) for s in sockets]
        finally:
            for s in sockets:
                s.close()
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers[:3]
        env = {**os.environ, "PORT": "0", "MOTO_PORT": "0", "AGORA_DATA_DIR": str(tmp_path / "data")}
        second = subprocess.run([sys.executable, "-m", "devstack"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode != 0 and "in use by another local stack" in second.stderr
