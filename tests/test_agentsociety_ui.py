"""AgentSociety's v1.5.6 web UI as the client: every call it makes (its paths, bodies, headers and the
fields it reads), page by page, and a simulation configured entirely the way the UI configures one.

`UI_CALLS` is the UI's list of backend calls (research: agentsociety-frontend.md section 2, without the
commercial `/api/alipay/*` and `/api/signin`). The session below makes each of them as the UI does
and checks what the UI reads; the last test checks every listed call was made, so a route that is
missing or reshaped fails here.
"""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile

from tests.conftest import KEYS
from tests.llm_stub import StubLLM
from tests.pb_maps import city_bytes
from tests.sim_helpers import download, multipart_file
from tests.test_sim_runs import wait_until

UI_CALLS = {
    # experiments and runner
    "GET /api/experiments", "GET /api/experiments/{id}", "DELETE /api/experiments/{id}",
    "POST /api/experiments/{id}/export", "POST /api/experiments/{id}/artifacts", "GET /api/experiments/{id}/timeline",
    "GET /api/experiments/{id}/agents/-/profile", "GET /api/experiments/{id}/agents/-/status",
    "GET /api/experiments/{id}/prompt", "GET /api/experiments/{id}/agents/{aid}/status",
    "GET /api/experiments/{id}/agents/{aid}/dialog", "GET /api/experiments/{id}/agents/{aid}/survey",
    "POST /api/experiments/{id}/agents/{aid}/dialog", "POST /api/experiments/{id}/agents/{aid}/survey",
    "GET /api/experiments/{id}/metrics", "POST /api/run-experiments", "GET /api/run-experiments/{id}/status",
    "GET /api/run-experiments/{id}/log", "DELETE /api/run-experiments/{id}",
    # config CRUD
    "GET /api/llm-configs", "POST /api/llm-configs", "PUT /api/llm-configs/{id}", "DELETE /api/llm-configs/{id}",
    "GET /api/map-configs", "POST /api/map-configs/-/upload", "POST /api/map-configs", "PUT /api/map-configs/{id}",
    "DELETE /api/map-configs/{id}", "POST /api/map-configs/{id}/export", "POST /api/map-configs/{id}/temp-link",
    "GET /api/map-configs/{id}/temp-link", "GET /api/agent-configs", "POST /api/agent-configs",
    "DELETE /api/agent-configs/{id}", "GET /api/workflow-configs", "POST /api/workflow-configs",
    "PUT /api/workflow-configs/{id}", "DELETE /api/workflow-configs/{id}",
    # surveys
    "GET /api/surveys", "POST /api/surveys", "PUT /api/surveys/{id}", "DELETE /api/surveys/{id}",
    # profiles, templates and look-ups
    "GET /api/agent-profiles", "GET /api/agent-profiles/{id}", "DELETE /api/agent-profiles/{id}",
    "POST /api/agent-profiles/upload", "GET /api/agent-templates", "GET /api/agent-templates/{id}",
    "POST /api/agent-templates", "DELETE /api/agent-templates/{id}", "GET /api/agent-classes",
    "GET /api/agent-param", "GET /api/block-param/{id}", "GET /api/agent-blocks",
    "GET /api/community/workflow/functions",
    # account and bills (auth builds)
    "GET /api/account", "GET /api/bills",
}
ID = re.compile(r"^[0-9a-z]{26}$|^\d+$|^[A-Za-z]+Block$")
TOKEN = KEYS["tenant-a"]
PEOPLE_CSV = "id,name,age,gender,occupation,education\n" + "".join(
    f"{100 + i},Person {i},{20 + 3 * i},{'female' if i % 2 else 'male'},{occupation},Bachelor\n"
    for i, occupation in enumerate(["teacher", "engineer", "doctor", "student", "retired", "clerk"] * 2))


class UI:
    """Requests shaped as the UI's `fetchCustom` (auth build) sends them; remembers which calls were made."""

    def __init__(self, client):
        self.client = client
        self.made: set[str] = set()  # "METHOD /api/route/{id}" of every call made

    def _record(self, method: str, path: str) -> None:
        parts = path.split("?")[0].split("/")
        route = "/".join("{id}" if i > 2 and ID.match(part) else part for i, part in enumerate(parts))
        self.made.add(f"{method} {route.replace('/agents/{id}/', '/agents/{aid}/')}")

    def fetch(self, method: str, path: str, body=None, *, auth: bool = True, status: int = 200):
        headers = {"Authorization": f"Bearer {TOKEN}"} if auth else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self._record(method, path)
        response = getattr(self.client.http, method.lower())(path, headers=headers,
                                                             body=json.dumps(body) if body is not None else None)
        assert response.status_code == status, (method, path, response.status_code, response.body[:500])
        return response.json_body if response.body and response.headers.get("Content-Type", "").startswith(
            "application/json") else response

    def data(self, method: str, path: str, body=None, **options):
        return self.fetch(method, path, body, **options)["data"]

    def form_download(self, path: str):
        """`postDownloadCustom`: a hidden form POST, the key as a form field, no Authorization header."""
        self._record("POST", path)
        return self.client.http.post(path, headers={"Content-Type": "application/x-www-form-urlencoded"},
                                     body=f"authorization=Bearer+{TOKEN}")

    def upload(self, path: str, content: bytes, filename: str, **fields: str):
        self._record("POST", path)
        body, content_type = multipart_file(content, filename, fields=fields)
        response = self.client.http.post(path, body=body, headers={"Authorization": f"Bearer {TOKEN}",
                                                                   "Content-Type": content_type})
        assert response.status_code == 200, response.body
        return response.json_body["data"]


def _llm_reply(body: dict) -> str:
    asked = body["messages"][-1]["content"]
    if "fill in the survey" in asked:
        return '{"mood": 4}'
    if '"mood"' in asked:
        return '{"mood": -0.4, "spending": 0.8}'
    return "I am doing all right, thanks for asking."


def _template_form(ui: UI) -> dict:
    """What AgentTemplateForm posts: every parameter at its default, the chosen blocks, the distributions."""
    classes = ui.data("GET", "/api/agent-classes?agent_type=citizen")
    assert classes and {"value", "label"} <= set(classes[0])
    agent_class = classes[0]["value"]
    param = ui.data("GET", f"/api/agent-param?agent_type=citizen&agent_class={agent_class}", auth=False)
    assert {"params_type", "context", "status_attributes"} <= set(param)
    agent_params = {p["name"]: p["default"] for p in param["params_type"]}
    agent_params["sociability"] = 1.5
    blocks = {}
    for name in ui.data("GET", "/api/agent-blocks"):
        block = ui.data("GET", f"/api/block-param/{name}")
        assert {"params_type", "context"} <= set(block)
        blocks[name] = {p["name"]: p["default"] for p in block["params_type"]}
    return {"name": "Curious citizens", "description": "", "agent_type": "citizen", "agent_class": agent_class,
            "memory_distributions": {"education": {"type": "choice", "choices": ["Bachelor", "Master"],
                                                   "weights": [0.5, 0.5]}},
            "agent_params": agent_params, "blocks": blocks}


def _configure(ui: UI, llm_url: str) -> dict[str, dict]:
    """Every config page, as the UI fills it in; returns the launch references."""
    template = ui.data("POST", "/api/agent-templates", _template_form(ui))
    assert template["id"] in [t["id"] for t in ui.data("GET", "/api/agent-templates")]
    fetched = ui.data("GET", f"/api/agent-templates/{template['id']}")
    assert {"agent_type", "agent_class", "agent_params", "blocks", "memory_distributions"} <= set(fetched)

    profile = ui.upload("/api/agent-profiles/upload", PEOPLE_CSV.encode(), "people.csv", name="Twelve people",
                        description="a street")
    listed = ui.data("GET", "/api/agent-profiles")
    assert {"id", "name", "description", "record_count", "created_at", "file_path"} <= set(listed[0])
    assert listed[0]["record_count"] == 12
    assert len(ui.data("GET", f"/api/agent-profiles/{profile['id']}")) == 12

    # Agent page (convertFormToConfig): the template's class, params and blocks, the profile file, 10 of it
    agents = {"citizens": [{"agent_class": fetched["agent_class"] or "citizen", "agent_params": fetched["agent_params"],
                            "blocks": fetched["blocks"], "number": 10, "memory_from_file": profile["file_path"]}],
              **{f"{kind}s" if kind != "nbs" else kind: [{"number": 1, "agent_class": kind}]
                 for kind in ("firm", "government", "bank", "nbs")},
              "supervisor": {"agent_class": "ConversationModerator", "agent_params": {"banned_words": "stupid",
                                                                                     "action": "block"},
                             "blocks": {}}}
    ui.fetch("POST", "/api/agent-configs", {"name": "Street", "description": "", "config": agents}, status=201)
    agent_cfg = ui.data("GET", "/api/agent-configs")[0]
    assert {"tenant_id", "id", "name", "description", "config", "updated_at"} <= set(agent_cfg)
    assert agent_cfg["tenant_id"] == "tenant-a"
    assert agent_cfg["config"]["citizens"][0]["memory_from_file"] == profile["file_path"]

    file_path = ui.upload("/api/map-configs/-/upload", city_bytes(), "town.pb")["file_path"]
    ui.fetch("POST", "/api/map-configs", {"name": "Town", "description": "pb", "config": {"file_path": file_path}},
             status=201)
    map_cfg = ui.data("GET", "/api/map-configs")[0]
    assert map_cfg["config"] == {"file_path": file_path} and map_cfg["tenant_id"] == "tenant-a"

    ui.fetch("POST", "/api/llm-configs", {"name": "local vllm", "description": "", "config": [
        {"provider": "vllm", "api_key": "sk-local", "model": "qwen", "base_url": llm_url}]}, status=201)
    llm_cfg = ui.data("GET", "/api/llm-configs")[0]
    assert llm_cfg["config"][0]["api_key"] == "********"

    ui.fetch("POST", "/api/surveys", {"name": "Mood", "data": {"title": "Mood", "pages": [
        {"name": "page1", "elements": [{"type": "rating", "name": "mood", "title": "Your mood?"}]}]}}, status=201)
    survey = ui.data("GET", "/api/surveys")[0]
    assert {"id", "name", "data", "created_at", "updated_at"} <= set(survey)

    # Workflow page: every step type the UI offers, with every field of its one step model (unset: null)
    def step(**fields):
        return {"func": None, "days": None, "steps": None, "ticks_per_step": None, "target_agent": None,
                "interview_message": None, "survey": None, "key": None, "save_as": None, "value": None,
                "intervene_message": None, "description": "", **fields}

    functions = ui.data("GET", "/api/community/workflow/functions")
    workflow = [
        step(type="step", steps=2, ticks_per_step=300),
        step(type="environment", key="weather", value="rainy"),
        step(type="message", target_agent={"filter_str": "${profile.age} >= 30"},
             intervene_message="The city opens a new park."),
        step(type="update_state", target_agent=[100, 101], key="money", value="500"),
        step(type="run", days=0.2, ticks_per_step=300),
        step(type="interview", target_agent={"agent_class": ["SocietyAgent"]}, interview_message="How is the park?"),
        step(type="survey", target_agent=[102, 103], survey=survey["id"]),
        step(type="function", func=functions[0]),
        step(type="next_round"),
        step(type="step", steps=1, ticks_per_step=300),
        step(type="save_context", target_agent=[100, 101, 102], key="happiness", save_as="mood"),
    ]
    ui.fetch("POST", "/api/workflow-configs", {"name": "Park", "description": "", "config": workflow}, status=201)
    wf_cfg = ui.data("GET", "/api/workflow-configs")[0]
    assert wf_cfg["config"][6]["survey"]["id"] == survey["id"]  # the survey's content, resolved as AgentSociety does
    return {kind: {"tenant_id": cfg["tenant_id"], "id": cfg["id"]}
            for kind, cfg in (("llm", llm_cfg), ("agents", agent_cfg), ("map", map_cfg), ("workflow", wf_cfg))}


def _launch(ui: UI, refs: dict, name: str = "park") -> str:
    """CreateExperiment: POST, then every 2 s the status; "Running" leads to GET /experiments/{id}."""
    exp_id = ui.data("POST", "/api/run-experiments", {"exp_name": name, **refs})["id"]
    status = ui.data("GET", f"/api/run-experiments/{exp_id}/status")
    assert status in ("Running", "Terminated")
    exp = ui.data("GET", f"/api/experiments/{exp_id}")
    assert {"status", "name"} <= set(exp)
    return exp_id


def _talk_while_running(ui: UI, exp_id: str) -> tuple[int, int]:
    """Replay in live mode: a chat and a survey to an agent; both POSTs must answer exactly 200."""
    wait_until(lambda: ui.data("GET", f"/api/experiments/{exp_id}")["status"] == 1, timeout=30)
    timeline = wait_until(lambda: ui.data("GET", f"/api/experiments/{exp_id}/timeline"), timeout=30)
    day, t = timeline[0]["day"], timeline[0]["t"]
    agent = ui.data("GET", f"/api/experiments/{exp_id}/agents/-/profile")[0]["id"]
    survey_id = ui.data("GET", "/api/surveys")[0]["id"]
    ui.fetch("POST", f"/api/experiments/{exp_id}/agents/{agent}/dialog", {"content": "Do you like it here?",
                                                                           "day": day, "t": t})
    ui.fetch("POST", f"/api/experiments/{exp_id}/agents/{agent}/survey", {"survey_id": survey_id, "day": day, "t": t})
    return agent, day


def _replay(ui: UI, exp_id: str, chatted: int) -> None:
    """Replay's load order, then one step of the timeline, reading what the UI reads."""
    surveys = {s["id"] for s in ui.data("GET", "/api/surveys")}
    exp = ui.data("GET", f"/api/experiments/{exp_id}")
    assert exp["status"] == 2, exp["error"]
    assert set(exp) >= {"id", "name", "num_day", "status", "cur_day", "cur_t", "input_tokens", "output_tokens",
                        "created_at", "updated_at", "config", "error"}
    assert exp["input_tokens"] > 0 and exp["output_tokens"] > 0  # the LLM was asked, and counted
    timeline = ui.data("GET", f"/api/experiments/{exp_id}/timeline")
    assert timeline and set(timeline[0]) == {"day", "t"}
    instants = {(i["day"], i["t"]) for i in timeline}
    profiles = ui.data("GET", f"/api/experiments/{exp_id}/agents/-/profile")
    assert sorted(p["id"] for p in profiles) == list(range(100, 110))  # the profile file's first ten people
    assert profiles[0]["name"] == "Person 0" and profiles[0]["profile"]["occupation"] == "teacher"
    metrics = ui.data("GET", f"/api/experiments/{exp_id}/metrics")
    assert isinstance(metrics, dict) and all({"key", "value", "step"} <= set(p[0]) for p in metrics.values())
    assert metrics["moderated_talks"]  # the supervisor is on
    latest = ui.data("GET", f"/api/experiments/{exp_id}/agents/-/status")
    assert len(latest) == 10 and {"id", "day", "t", "lng", "lat", "parent_id", "action", "status"} <= set(latest[0])
    assert all(116.3 < s["lng"] < 116.5 and 39.8 < s["lat"] < 40.0 for s in latest if s["lng"] is not None)
    assert ui.data("GET", f"/api/experiments/{exp_id}/prompt")["prompt"]
    day, t = timeline[1]["day"], timeline[1]["t"]
    assert {s["t"] for s in ui.data("GET", f"/api/experiments/{exp_id}/agents/-/status?day={day}&t={t}")} == {t}
    assert ui.data("GET", f"/api/experiments/{exp_id}/prompt?day={day}&t={t}")["prompt"]

    seen_types = set()
    for agent in (p["id"] for p in profiles):
        history = ui.data("GET", f"/api/experiments/{exp_id}/agents/{agent}/status")
        assert {(s["day"], s["t"]) for s in history} <= instants
        dialogs = ui.data("GET", f"/api/experiments/{exp_id}/agents/{agent}/dialog")
        for d in dialogs:
            assert {"id", "day", "t", "type", "speaker", "content"} <= set(d)
            assert (d["day"], d["t"]) in instants, f"dialog off the timeline: {d}"  # the replay shows it
            seen_types.add((d["type"], d["speaker"] if d["type"] != 1 else "agent"))
            if d["type"] == 1:
                assert int(d["speaker"]) in range(100, 110)
        answers = ui.data("GET", f"/api/experiments/{exp_id}/agents/{agent}/survey")
        for a in answers:
            assert {"id", "day", "t", "survey_id", "result"} <= set(a) and a["survey_id"] in surveys
            assert (a["day"], a["t"]) in instants and isinstance(a["result"], dict)
        if agent in (102, 103):
            assert answers, "the workflow's survey reached its targets"
        if agent == chatted:
            assert [d["speaker"] for d in dialogs if d["content"] == "Do you like it here?"] == ["user"]
    # thoughts (the message), the interview's and the chat's question and answer
    assert {(0, ""), (2, "user"), (2, "")} <= seen_types


def _downloads(ui: UI, exp_id: str) -> None:
    export = ui.form_download(f"/api/experiments/{exp_id}/export")
    assert export.status_code == 303
    archive = zipfile.ZipFile(io.BytesIO(download(export.headers["Location"])))
    assert "agent_dialog.csv" in archive.namelist()
    dialogs = list(csv.DictReader(io.TextIOWrapper(archive.open("agent_dialog.csv"), encoding="utf-8")))
    assert {"0", "2"} <= {d["type"] for d in dialogs}
    artifacts = ui.form_download(f"/api/experiments/{exp_id}/artifacts")
    assert artifacts.status_code == 200 and "attachment" in artifacts.headers["Content-Disposition"]
    saved = json.loads(artifacts.body)
    assert set(saved["mood"]) == {"100", "101", "102"}  # AgentSociety's {agent id: value}
    log = ui.fetch("GET", f"/api/run-experiments/{exp_id}/log")
    assert "interview" in log.body.decode() and "next_round" in log.body.decode()


def _maps_and_crud(ui: UI, refs: dict) -> None:
    map_id = refs["map"]["id"]
    exported = ui.form_download(f"/api/map-configs/{map_id}/export")
    assert exported.status_code == 303 and download(exported.headers["Location"]) == city_bytes()
    token = ui.data("POST", f"/api/map-configs/{map_id}/temp-link", {"expire_seconds": 600})["token"]
    opened = ui.fetch("GET", f"/api/map-configs/{map_id}/temp-link?token={token}", auth=False, status=303)
    assert download(opened.headers["Location"]) == city_bytes()

    llm = ui.data("GET", "/api/llm-configs")[0]  # the UI sends the masked key back; the stored one is kept
    ui.fetch("PUT", f"/api/llm-configs/{llm['id']}", {"name": "renamed", "description": "", "config": llm["config"]})
    map_cfg = ui.data("GET", "/api/map-configs")[0]
    ui.fetch("PUT", f"/api/map-configs/{map_id}", {"name": "renamed", "description": "", "config": map_cfg["config"]})
    workflow = ui.data("GET", "/api/workflow-configs")[0]
    ui.fetch("PUT", f"/api/workflow-configs/{workflow['id']}", {"name": "renamed", "description": "",
                                                               "config": workflow["config"]})
    survey = ui.data("GET", "/api/surveys")[0]
    ui.fetch("PUT", f"/api/surveys/{survey['id']}", {"name": "renamed", "data": survey["data"]})
    for path in (f"/api/llm-configs/{llm['id']}", f"/api/map-configs/{map_id}",
                 f"/api/workflow-configs/{workflow['id']}", f"/api/agent-configs/{refs['agents']['id']}",
                 f"/api/surveys/{survey['id']}"):
        ui.fetch("DELETE", path)
    template = ui.data("GET", "/api/agent-templates")[0]
    ui.fetch("DELETE", f"/api/agent-templates/{template['id']}")
    profile = ui.data("GET", "/api/agent-profiles")[0]
    ui.fetch("DELETE", f"/api/agent-profiles/{profile['id']}")


def _console_and_bills(ui: UI, exp_id: str) -> None:
    listed = ui.data("GET", "/api/experiments")
    assert exp_id in [e["id"] for e in listed]
    account = ui.data("GET", "/api/account")
    assert float(account["balance"]) < 100  # run time and tokens were billed
    bills = ui.fetch("GET", "/api/bills?item=&skip=0&limit=10")
    assert {"id", "related_exp_id", "item", "amount", "unit_price", "quantity", "description",
            "created_at"} <= set(bills["data"][0])
    assert {"recharge", "run_time"} <= {b["item"] for b in bills["data"]}  # the tenant's own LLM: no token lines
    ui.fetch("DELETE", f"/api/experiments/{exp_id}")
    assert exp_id not in [e["id"] for e in ui.data("GET", "/api/experiments")]


def _stop(ui: UI, exp_id: str) -> None:
    """Console: "Stop" on a running experiment; it ends STOPPED (4) and the launch poll reads Terminated."""
    wait_until(lambda: ui.data("GET", f"/api/experiments/{exp_id}")["status"] == 1, timeout=30)
    ui.fetch("DELETE", f"/api/run-experiments/{exp_id}")
    exp = wait_until(lambda: (e := ui.data("GET", f"/api/experiments/{exp_id}"))["status"] != 1 and e, timeout=60)
    assert exp["status"] == 4 and ui.data("GET", f"/api/run-experiments/{exp_id}/status") == "Terminated"


def test_every_ui_call_in_one_session_configure_launch_talk_stop_replay_export_delete(sim_client, monkeypatch):
    from chalicelib import settings, wiring

    monkeypatch.setenv(settings.SIM_STEP_PAUSE_SECONDS, "1")  # a live run to talk to and one to stop
    wiring.reset()
    ui = UI(sim_client)
    assert ui.fetch("GET", "/api/experiments/01jzzzzzzzzzzzzzzzzzzzzzzz", status=404)["detail"]  # "initialising"
    with StubLLM(reply=_llm_reply) as llm:
        refs = _configure(ui, llm.base_url)
        exp_id = _launch(ui, refs)
        stopped = _launch(ui, refs, name="to stop")
        chatted, _ = _talk_while_running(ui, exp_id)
        _stop(ui, stopped)
        wait_until(lambda: ui.data("GET", f"/api/experiments/{exp_id}")["status"] in (2, 3, 4), timeout=120)
        assert llm.requests and all(r["headers"]["Authorization"] == "Bearer sk-local" for r in llm.requests)
    assert ui.data("GET", f"/api/run-experiments/{exp_id}/status") == "Terminated"
    _replay(ui, exp_id, chatted)
    _downloads(ui, exp_id)
    _maps_and_crud(ui, refs)
    _console_and_bills(ui, exp_id)
    assert UI_CALLS - ui.made == set(), "calls of the UI this session did not make"
