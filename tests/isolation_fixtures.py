"""The world the isolation matrix (tests/test_isolation.py) attacks: one of each kind of resource for
tenant-a, tenant-b and the platform, built once through the API.

Every resource is chosen not to move while the matrix runs: the builtin simulations (tenant-a's and
the platform's) have finished, their executions and bills done; the "running" simulations (one per
tenant) are external ones parked on their task token after one progress report, so nothing changes
until their engine (the test, with `tests/fake_engine.py`'s token) reports again.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tests.conftest import auth
from tests.sim_helpers import DEFAULT_CITY, admin, call, multipart_file, upload_map
from tests.test_sim_agents import TEMPLATE
from tests.test_sim_runs import STATUS, execution_status, experiment, launch, report, wait_for_end, wait_until
from tests.tracking_helpers import EXPERIMENTS, RUNS

TENANTS = ("tenant-a", "tenant-b")
PLATFORM = "platform"  # the owner name the matrix uses for tenant "" (the admin key)
NOBODY = "nobody"  # the owner of ids that do not exist
MARKERS = {"tenant-a": "alpha-secret", "tenant-b": "bravo-own", PLATFORM: "platform-shared"}
CONFIG_PATHS = {"llm": "/api/llm-configs", "agent": "/api/agent-configs", "map": "/api/map-configs",
                "workflow": "/api/workflow-configs", "survey": "/api/surveys"}
ARTIFACT = "a.txt"  # the artifact every tenant's run holds
METRIC = "loss"  # the metric every tenant's run logged
DEADLINE_SECONDS = 60.0  # generous: the machine may be loaded; polling stops as soon as the condition holds


def headers_of(owner: str) -> dict[str, str]:
    return admin() if owner == PLATFORM else auth(owner)


def ok(response, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200, 201)), response.body
    return response.json_body


@dataclass
class World:
    """What the matrix fills requests with. `ids[owner][kind]` lists (label, id), the first one primary."""

    client: Any
    ids: dict[str, dict[str, list[tuple[str, str]]]] = field(default_factory=dict)
    agents: dict[str, str] = field(default_factory=dict)  # simulation id -> the id of one of its agents
    map_paths: dict[str, str] = field(default_factory=dict)  # owner -> a map file of its own
    profile_paths: dict[str, str] = field(default_factory=dict)  # owner -> an agent profile file of its own
    tokens: dict[str, str] = field(default_factory=dict)  # running simulation id -> its engine's callback token
    link_tokens: dict[str, str] = field(default_factory=dict)  # map config id -> a temp-link token of its owner
    page_tokens: dict[str, str] = field(default_factory=dict)  # owner -> a page token of its run's metric history
    artifact_locations: dict[str, str] = field(default_factory=dict)  # owner -> its experiment's artifact_location
    unknown: dict[str, str] = field(default_factory=dict)  # kind -> an id nobody owns (fixed for the run)

    def add(self, owner: str, kind: str, label: str, value: str) -> str:
        self.ids.setdefault(owner, {}).setdefault(kind, []).append((label, value))
        return value

    def all(self, owner: str, kind: str) -> list[tuple[str, str]]:
        return self.ids.get(owner, {}).get(kind, [])

    def one(self, owner: str, kind: str) -> str:
        """The owner's primary id of a kind (for NOBODY: an id that does not exist)."""
        if owner == NOBODY:
            from chalicelib.domain.clock import new_id

            return self.unknown.setdefault(kind, new_id())
        return self.ids[owner][kind][0][1]

    def tenant_id(self, owner: str) -> str:
        return "" if owner == PLATFORM else owner

    def running(self, owner: str) -> str:
        return dict(self.all(owner, "simulation"))["running"]


def engine_token(token_file: Path, experiment_id: str) -> str:
    """The callback token `tests/fake_engine.py` was launched with for this experiment (then forgets the file)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if token_file.exists():
            token, launched_for = token_file.read_text().split("\n")[:2]
            if launched_for == experiment_id:
                token_file.unlink()
                return token
        time.sleep(0.05)
    raise AssertionError(f"the external engine of {experiment_id} was not launched within {DEADLINE_SECONDS} s")


def _tracking(w: World, owner: str) -> None:
    """An experiment with two runs (each with a metric of two points, a param, a tag and an artifact) and a
    deleted experiment."""
    marker, h = MARKERS[owner], auth(owner)
    created = ok(call(w.client, "post", EXPERIMENTS, {"name": f"{marker} project", "tags": {"owner": marker}}, h))
    exp = w.add(owner, "tracking_experiment", "active", created["id"])
    w.artifact_locations[owner] = created["artifact_location"]
    for label in ("first", "second"):
        run = ok(call(w.client, "post", RUNS, {"experiment_id": exp, "name": f"{marker} {label} run"}, h))["id"]
        w.add(owner, "run", label, run)
        ok(call(w.client, "post", f"{RUNS}/{run}/log-batch", {
            "metrics": [{"key": METRIC, "value": 0.5, "step": 1, "timestamp": 1},
                        {"key": METRIC, "value": 0.25, "step": 2, "timestamp": 2}],
            "params": [{"key": "p", "value": f"{marker} param"}], "tags": [{"key": "t", "value": f"{marker} tag"}]},
            h))
        body, content_type = multipart_file(f"{marker} artifact".encode(), ARTIFACT, content_type="text/plain")
        ok(w.client.http.post(f"{RUNS}/{run}/log-artifact", body=body,
                              headers={"Authorization": h["Authorization"], "Content-Type": content_type}))
    page = ok(w.client.http.get(f"{RUNS}/{w.one(owner, 'run')}/metrics/{METRIC}?limit=1", headers=h))
    w.page_tokens[owner] = page["next_page_token"]
    deleted = ok(call(w.client, "post", EXPERIMENTS, {"name": f"{marker} archive"}, h))["id"]
    ok(call(w.client, "delete", f"{EXPERIMENTS}/{deleted}", headers=h))
    w.add(owner, "tracking_experiment", "deleted", deleted)


def _configs(w: World, owner: str) -> None:
    """One config of each kind, a survey, an agent template and an agent profile file."""
    marker, h = MARKERS[owner], headers_of(owner)
    w.map_paths[owner] = upload_map(w.client, h)
    body, content_type = multipart_file(json.dumps([{"name": f"{marker} Ann"}, {"name": f"{marker} Bo"}]).encode(),
                                        "people.json", content_type="application/json",
                                        fields={"name": f"{marker} people"})
    profile = ok(w.client.http.post("/api/agent-profiles/upload", body=body,
                                    headers={"Authorization": h["Authorization"], "Content-Type": content_type}))
    w.add(owner, "agent_profile", "file", profile["data"]["id"])
    w.profile_paths[owner] = profile["data"]["file_path"]
    survey = ok(call(w.client, "post", CONFIG_PATHS["survey"], {"name": f"{marker} survey", "data": {
        "title": f"{marker} survey", "pages": [{"elements": [{"name": "q", "type": "text", "title": "How?"}]}]}}, h))
    w.add(owner, "survey", "survey", survey["data"]["id"])
    bodies = {
        "llm": {"name": f"{marker} llm", "config": [{"provider": "builtin", "model": "builtin", "api_key": ""}]},
        "agent": {"name": f"{marker} agents", "config": {"citizens": [{"number": 3}]}},
        "map": {"name": f"{marker} map", "config": {"file_path": w.map_paths[owner]}},
        "workflow": {"name": f"{marker} workflow", "config": [
            {"type": "step", "steps": 2}, {"type": "save_context", "save_as": "final", "target": "status"}]},
    }
    for kind, config in bodies.items():
        w.add(owner, kind, kind, ok(call(w.client, "post", CONFIG_PATHS[kind], config, h), 201)["data"]["id"])
    template = ok(call(w.client, "post", "/api/agent-templates", {**TEMPLATE, "name": f"{marker} template"}, h))
    w.add(owner, "agent_template", "template", template["data"]["id"])
    link = ok(call(w.client, "post", f"/api/map-configs/{w.one(owner, 'map')}/temp-link", {"expire_seconds": 3600}, h))
    w.link_tokens[w.one(owner, "map")] = link["data"]["token"]


def refs(w: World, owner: str) -> dict[str, dict[str, str]]:
    """The launch request's config references of the owner's configs."""
    return {name: {"tenant_id": w.tenant_id(owner), "id": w.one(owner, kind)}
            for name, kind in (("llm", "llm"), ("agents", "agent"), ("map", "map"), ("workflow", "workflow"))}


def _finished_simulation(w: World, owner: str) -> str:
    """Launch a builtin run of the owner's configs (its end is awaited by `_wait_finished`)."""
    launched = launch(w.client, refs(w, owner), name=f"{MARKERS[owner]} society", headers=headers_of(owner))
    return ok(launched)["data"]["id"]


def _wait_finished(w: World, owner: str, exp_id: str) -> None:
    tenant = w.tenant_id(owner)
    exp = wait_until(lambda: (e := _sim(tenant, exp_id)).status in (2, 3, 4) and e, timeout=DEADLINE_SECONDS)
    assert exp.status == 2, f"the {owner}'s simulation ended {exp.status}: {exp.error}"
    # the execution (and with it the bill) is done too, so the owner's account no longer moves
    wait_until(lambda: execution_status(_sim(tenant, exp_id)) == "SUCCEEDED", timeout=DEADLINE_SECONDS)
    w.add(owner, "simulation", "finished", exp_id)
    agents = ok(w.client.http.get(f"/api/experiments/{exp_id}/agents/-/profile", headers=headers_of(owner)))["data"]
    w.agents[exp_id] = str(agents[0]["id"])


def _sim(tenant: str, exp_id: str):
    from chalicelib import wiring

    return wiring.services().control.get(tenant, exp_id)


def _running_simulation(w: World, owner: str, token_file: Path) -> None:
    """An external run, parked after one report: RUNNING, with an agent, a tick, metrics and a log line."""
    marker, h = MARKERS[owner], auth(owner)
    exp_id = ok(launch(w.client, refs(w, owner), name=f"{marker} live", headers=h, engine="external"))["data"]["id"]
    token = engine_token(token_file, exp_id)
    answer = report(w.client, exp_id, token, {
        "cur_day": 0, "cur_t": 29100.0, "input_tokens": 1, "output_tokens": 1, "ticks_done": 1,
        "profiles": [{"id": 1, "name": f"{marker} Ann", "profile": {"age": 30}}],
        "ticks": [{"day": 0, "t": 28800.0, "statuses": [STATUS], "prompt": f"{marker} town",
                   "metrics": {"mean_happiness": 0.5}}],
        "log_lines": [f"{marker} engine says hello"]})
    assert answer.status_code == 200, answer.body
    assert experiment(w.client, exp_id, h).status == 1
    w.add(owner, "simulation", "running", exp_id)
    w.agents[exp_id] = "1"
    w.tokens[exp_id] = token


def build_world(client, token_file: Path) -> World:
    """tenant-a: tracking experiments (active, deleted), two runs with a metric, a param, a tag and an
    artifact, every kind of config, a survey, an agent template, an agent profile file, a temp link to its
    map, a finished and a running simulation. tenant-b: the same but the finished simulation. The platform:
    every kind of config, a survey, a template, a profile file, a temp link and a finished simulation."""
    w = World(client)
    for owner in (*TENANTS, PLATFORM):
        if owner != PLATFORM:
            _tracking(w, owner)
        _configs(w, owner)
    launched = {owner: _finished_simulation(w, owner) for owner in ("tenant-a", PLATFORM)}
    for owner, exp_id in launched.items():
        _wait_finished(w, owner, exp_id)
    for owner in TENANTS:
        _running_simulation(w, owner, token_file)
    # the running simulations come first: the primary simulation of a tenant is one that can be talked to
    for owner in TENANTS:
        w.ids[owner]["simulation"].sort(key=lambda item: item[0] != "running")
    return w


def end_running_simulations(w: World) -> None:
    """The engines' own tokens still work after the sweep: finish every running simulation with them."""
    for owner in TENANTS:
        exp_id = w.running(owner)
        answer = w.client.http.post(f"/api/run-experiments/{exp_id}/finish?callback_auth_token={w.tokens[exp_id]}",
                                    headers={"Content-Type": "application/json"},
                                    body=json.dumps({"status": "finished"}))
        assert answer.status_code == 200, answer.body
        exp = wait_for_end(w.client, exp_id, auth(owner), timeout=DEADLINE_SECONDS)
        assert exp.status == 2
        wait_until(lambda: execution_status(_sim(owner, exp_id)) in ("SUCCEEDED", "FAILED"), timeout=DEADLINE_SECONDS)


def stored() -> dict[tuple[str, str], str]:
    """Everything Agora stores, item by item and object by object: what no refused request may change,
    including what no view shows (a queued message, a stop flag, a callback token's hash)."""
    from chalicelib import wiring

    container = wiring.services()
    dynamodb = container.client("dynamodb")
    state: dict[tuple[str, str], str] = {}
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page["Items"]:
                state[(table, repr(sorted((k, v) for k, v in item.items() if k in ("pk", "sk"))))] = \
                    repr(sorted(item.items()))
    s3 = container.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=container.settings.bucket):
        for obj in page.get("Contents", []):
            state[("s3", obj["Key"])] = f"{obj['ETag']} {obj['Size']}"
    return state


def map_file_bytes() -> bytes:
    return DEFAULT_CITY.read_bytes()


def unknown_path(kind: str, tenant: str) -> Optional[str]:
    """A file path of the tenant's folder that holds nothing."""
    from chalicelib.domain.clock import new_id

    folder = tenant or "_platform"
    return {"map_file": f"maps/{folder}/{new_id()}.json",
            "profile_file": f"agent_profiles/{folder}/{new_id()}.json"}.get(kind)
