"""Simulation results: experiment views, timeline, metrics, agents, prompt, talking to agents, delete, exports."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from tests import tables
from tests.conftest import KEYS, auth
from tests.sim_helpers import call, download, make_configs
from tests.test_sim_runs import launch, report, wait_for_end, wait_until

WORKFLOW = [{"type": "step", "steps": 24}, {"type": "interview", "question": "How are you?"},
            {"type": "save_context", "save_as": "final", "target": "status"}]


@pytest.fixture
def finished(sim_client):
    refs = make_configs(sim_client, agents=8, workflow=WORKFLOW)
    exp_id = launch(sim_client, refs, name="finished society").json_body["data"]["id"]
    wait_for_end(sim_client, exp_id)
    return exp_id


def get(client, path, tenant="tenant-a"):
    return client.http.get(path, headers=auth(tenant))


def test_experiment_views_list_get_and_platform_visibility(sim_client, finished):
    listed = get(sim_client, "/api/experiments")
    assert listed.status_code == 200
    assert listed.json_body["total"] == 1
    exp = listed.json_body["data"][0]
    assert exp["id"] == finished and exp["status"] == 2 and exp["tenant_id"] == "tenant-a"
    assert set(exp) == {"tenant_id", "id", "name", "num_day", "status", "cur_day", "cur_t", "config", "error",
                        "input_tokens", "output_tokens", "created_at", "updated_at"}
    llm = json.loads(exp["config"])["llm"][0]
    assert "api_key" not in llm or llm["api_key"] in ("", "********")
    assert get(sim_client, f"/api/experiments/{finished}").json_body["data"] == exp
    assert get(sim_client, "/api/experiments", "tenant-b").json_body == {"total": 0, "data": []}
    assert get(sim_client, f"/api/experiments/{finished}", "tenant-b").status_code == 403
    assert get(sim_client, "/api/experiments/01unknown").status_code == 404
    for bad in ("?limit=0", "?limit=1001", "?skip=-1", "?limit=x"):
        assert get(sim_client, f"/api/experiments{bad}").status_code == 400


def test_timeline_metrics_prompt_and_agent_views(sim_client, finished):
    timeline = get(sim_client, f"/api/experiments/{finished}/timeline").json_body["data"]
    # 24 ticks and the snapshot after them, where the interview and save_context happened
    assert len(timeline) == 25 and timeline == sorted(timeline, key=lambda i: (i["day"], i["t"]))
    assert timeline[0] == {"day": 0, "t": 28800.0}

    metrics = get(sim_client, f"/api/experiments/{finished}/metrics").json_body["data"]
    assert {"mean_happiness", "employment_rate", "consumption", "dialog_count"} <= set(metrics)
    steps = [m["step"] for m in metrics["mean_happiness"]]
    assert steps == sorted(steps) and len(steps) == 25
    assert set(metrics["mean_happiness"][0]) == {"key", "value", "step"}

    profiles = get(sim_client, f"/api/experiments/{finished}/agents/-/profile").json_body["data"]
    assert len(profiles) == 8 and {"id", "name", "profile"} <= set(profiles[0])
    agent = profiles[0]["id"]
    assert get(sim_client, f"/api/experiments/{finished}/agents/{agent}/profile").json_body["data"] == profiles[0]
    assert get(sim_client, f"/api/experiments/{finished}/agents/999999/profile").status_code == 404
    assert get(sim_client, f"/api/experiments/{finished}/agents/abc/profile").status_code == 400

    latest = get(sim_client, f"/api/experiments/{finished}/agents/-/status").json_body["data"]
    assert len(latest) == 8 and latest[0]["t"] == timeline[-1]["t"]
    at = get(sim_client, f"/api/experiments/{finished}/agents/-/status?day=0&t=29100").json_body["data"]
    assert {s["t"] for s in at} == {29100.0}
    assert set(at[0]) >= {"id", "day", "t", "lng", "lat", "parent_id", "action", "status", "created_at"}
    assert get(sim_client, f"/api/experiments/{finished}/agents/-/status?day=0&t=1").json_body["data"] == []
    assert get(sim_client, f"/api/experiments/{finished}/agents/-/status?day=0").status_code == 400

    history = get(sim_client, f"/api/experiments/{finished}/agents/{agent}/status").json_body["data"]
    assert [s["t"] for s in history] == [i["t"] for i in timeline]
    dialogs = get(sim_client, f"/api/experiments/{finished}/agents/{agent}/dialog").json_body["data"]
    assert any(d["content"] for d in dialogs) and {"id", "day", "t", "type", "speaker", "content"} <= set(dialogs[0])
    assert get(sim_client, f"/api/experiments/{finished}/agents/{agent}/survey").json_body["data"] == []

    prompt = get(sim_client, f"/api/experiments/{finished}/prompt").json_body["data"]
    assert prompt["prompt"] and prompt["t"] == timeline[-1]["t"]
    assert get(sim_client, f"/api/experiments/{finished}/prompt?day=5&t=0").json_body["data"] is None
    from chalicelib import wiring

    # a prompt read leaves every agent's state unread (the replay UI asks for it on every tick)
    assert "statuses" not in wiring.services().agent_data.instant("tenant-a", finished, with_agents=False)


def test_views_before_the_run_starts_are_400(sim_client, fake_engine):
    refs = make_configs(sim_client, agents=3)
    exp_id = launch(sim_client, refs, engine="external").json_body["data"]["id"]
    fake_engine()
    assert get(sim_client, f"/api/experiments/{exp_id}").json_body["data"]["status"] == 0
    for path in ("timeline", "metrics", "agents/-/profile", "agents/-/status", "agents/1/dialog", "prompt"):
        response = get(sim_client, f"/api/experiments/{exp_id}/{path}")
        assert response.status_code == 400, path
    assert call(sim_client, "post", f"/api/experiments/{exp_id}/agents/1/dialog",
                {"content": "hi", "day": 0, "t": 0}).status_code == 400
    assert call(sim_client, "delete", f"/api/experiments/{exp_id}").status_code == 409


def test_dialogs_and_surveys_reach_a_running_agent_and_are_marked_processed(sim_client, fake_engine):
    from chalicelib import wiring

    refs = make_configs(sim_client, agents=3)
    survey = call(sim_client, "post", "/api/surveys", {"name": "s", "data": {"pages": [{"elements": [
        {"name": "q", "type": "rating", "title": "How?"}]}]}}).json_body["data"]
    exp_id = launch(sim_client, refs, engine="external").json_body["data"]["id"]
    token = fake_engine()
    status = {"id": 1, "day": 0, "t": 28800.0, "lng": 0.0, "lat": 0.0, "parent_id": 1, "action": "home", "status": {}}
    first = report(sim_client, exp_id, token, {
        "cur_day": 0, "cur_t": 28800.0, "input_tokens": 0, "output_tokens": 0, "ticks_done": 0,
        "profiles": [{"id": 1, "name": "Ann", "profile": {}}],
        "ticks": [{"day": 0, "t": 28800.0, "statuses": [status]}]})
    assert first.json_body["data"]["inbox"] == []

    sent = call(sim_client, "post", f"/api/experiments/{exp_id}/agents/1/dialog",
                {"content": "hello", "day": 0, "t": 1})
    assert sent.status_code == 200, sent.body
    asked = call(sim_client, "post", f"/api/experiments/{exp_id}/agents/1/survey",
                 {"survey_id": survey["id"], "day": 0, "t": 1})
    assert asked.status_code == 200, asked.body
    assert call(sim_client, "post", f"/api/experiments/{exp_id}/agents/42/dialog",
                {"content": "x", "day": 0, "t": 1}).status_code == 404
    assert call(sim_client, "post", f"/api/experiments/{exp_id}/agents/1/survey",
                {"survey_id": "01nope", "day": 0, "t": 1}).status_code == 400
    assert call(sim_client, "post", f"/api/experiments/{exp_id}/agents/1/dialog",
                {"content": "", "day": 0, "t": 1}).status_code == 400
    assert call(sim_client, "post", f"/api/experiments/{exp_id}/agents/1/dialog", {"content": "x", "day": 0, "t": 1},
                auth("tenant-b")).status_code == 403
    pending_survey = get(sim_client, f"/api/experiments/{exp_id}/agents/1/survey").json_body["data"]
    assert pending_survey == [{"id": 1, "day": 0, "t": 1.0, "survey_id": survey["id"], "result": None}]

    inbox = report(sim_client, exp_id, token, {"cur_day": 0, "cur_t": 29100.0, "input_tokens": 0, "output_tokens": 0,
                                               "ticks_done": 1}).json_body["data"]["inbox"]
    assert {m["kind"] for m in inbox} == {"dialog", "survey"}
    assert [m["content"] for m in inbox if m["kind"] == "dialog"] == ["hello"]
    report(sim_client, exp_id, token, {"cur_day": 0, "cur_t": 29400.0, "input_tokens": 0, "output_tokens": 0,
                                       "ticks_done": 2, "processed_inbox_ids": [m["id"] for m in inbox],
                                       "surveys": [{"id": 1, "day": 0, "t": 29100.0, "survey_id": survey["id"],
                                                    "result": {"q": 4}}]})
    assert wiring.services().agent_data.pending("tenant-a", exp_id) == []
    answered = get(sim_client, f"/api/experiments/{exp_id}/agents/1/survey").json_body["data"]
    assert [a["result"] for a in answered] == [{"q": 4}]


def test_the_builtin_engine_answers_a_user_message_on_its_next_tick(sim_client, monkeypatch):
    from chalicelib import settings, wiring

    monkeypatch.setenv(settings.SIM_STEP_PAUSE_SECONDS, "1")
    wiring.reset()
    refs = make_configs(sim_client, agents=4, workflow=[{"type": "step", "steps": 48}])
    exp_id = launch(sim_client, refs).json_body["data"]["id"]
    wait_until(lambda: get(sim_client, f"/api/experiments/{exp_id}").json_body["data"]["status"] == 1)
    agent = get(sim_client, f"/api/experiments/{exp_id}/agents/-/profile").json_body["data"][0]["id"]
    sent = call(sim_client, "post", f"/api/experiments/{exp_id}/agents/{agent}/dialog",
                {"content": "Are you happy?", "day": 0, "t": 28800})
    assert sent.status_code == 200
    wait_for_end(sim_client, exp_id)
    dialogs = get(sim_client, f"/api/experiments/{exp_id}/agents/{agent}/dialog").json_body["data"]
    user = [d for d in dialogs if d["type"] == 2 and d["content"] == "Are you happy?"]
    assert user, dialogs
    answers = [d for d in dialogs if d["type"] == 2 and d["speaker"] == ""]  # the agent's answer, as AgentSociety
    assert answers and (answers[0]["day"], answers[0]["t"]) >= (user[0]["day"], user[0]["t"])
    assert wiring.services().agent_data.pending("tenant-a", exp_id) == []


def test_delete_refuses_a_running_experiment_and_removes_everything_else(sim_client, finished, aws_env):
    from chalicelib import wiring

    container = wiring.services()
    exp = container.sim_views.get("tenant-a", finished)
    assert call(sim_client, "delete", f"/api/experiments/{finished}", headers=auth("tenant-b")).status_code == 403
    assert call(sim_client, "delete", "/api/experiments/01unknown").status_code == 404
    export = sim_client.http.post(f"/api/experiments/{finished}/export", headers=auth())
    assert export.status_code == 303

    deleted = call(sim_client, "delete", f"/api/experiments/{finished}")
    assert deleted.status_code == 200, deleted.body
    assert get(sim_client, f"/api/experiments/{finished}").status_code == 404
    assert call(sim_client, "delete", f"/api/experiments/{finished}").status_code == 404
    s3 = container.s3
    for prefix in (f"simulations/tenant-a/{finished}/", f"exports/tenant-a/{finished}/"):
        assert s3.list_objects_v2(Bucket=container.settings.bucket, Prefix=prefix).get("KeyCount", 0) == 0
    leftovers = [i for i in tables.table("agent_data").scan()["Items"] if finished in i["pk"]]
    assert leftovers == []
    assert container.runs.find("tenant-a", exp.tracking_run_id) is None


def test_export_zip_layout_file_by_file(sim_client, finished):
    response = sim_client.http.post(f"/api/experiments/{finished}/export", headers=auth())
    assert response.status_code == 303, response.body
    archive = zipfile.ZipFile(io.BytesIO(download(response.headers["Location"])))
    names = archive.namelist()
    assert names == ["experiment.yaml", "metrics.json", "artifacts.json", "agent_profile.csv", "agent_status.csv",
                     "agent_dialog.csv", "global_prompt.csv", "metric.csv"]  # no survey step: no survey file

    yaml_text = archive.read("experiment.yaml").decode()
    assert f'id: "{finished}"' in yaml_text and "status: 2" in yaml_text and "tenant_id" not in yaml_text
    assert set(json.loads(archive.read("metrics.json"))) >= {"mean_happiness"}
    assert "final" in json.loads(archive.read("artifacts.json"))

    def rows(name):
        return list(csv.DictReader(io.StringIO(archive.read(name).decode())))

    profiles = rows("agent_profile.csv")
    assert len(profiles) == 8 and isinstance(json.loads(profiles[0]["profile"]), dict)
    statuses = rows("agent_status.csv")
    assert len(statuses) == 8 * 25
    assert list(statuses[0]) == ["id", "day", "t", "lng", "lat", "parent_id", "action", "status", "created_at"]
    assert isinstance(json.loads(statuses[0]["status"]), dict)  # JSON, not Python repr
    assert len(rows("global_prompt.csv")) == 25
    metric = rows("metric.csv")
    assert list(metric[0]) == ["id", "key", "value", "step", "created_at"]
    assert len(metric) == sum(len(v) for v in json.loads(archive.read("metrics.json")).values())
    assert rows("agent_dialog.csv")


def test_downloads_accept_the_key_as_a_form_field(sim_client, finished):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = f"authorization=Bearer+{KEYS['tenant-a']}"
    export = sim_client.http.post(f"/api/experiments/{finished}/export", headers=form, body=body)
    assert export.status_code == 303
    artifacts = sim_client.http.post(f"/api/experiments/{finished}/artifacts", headers=form, body=body)
    assert artifacts.status_code == 200
    assert "attachment" in artifacts.headers["Content-Disposition"]
    assert "final" in json.loads(artifacts.body)
    for bad in ("", "authorization=Bearer+wrong", "authorization=nothing"):
        assert sim_client.http.post(f"/api/experiments/{finished}/export", headers=form, body=bad).status_code == 401
    other = f"authorization=Bearer+{KEYS['tenant-b']}"
    assert sim_client.http.post(f"/api/experiments/{finished}/export", headers=form, body=other).status_code == 403


def test_artifacts_download_is_404_without_save_context(sim_client):
    refs = make_configs(sim_client, agents=3, workflow=[{"type": "step", "steps": 2}])
    exp_id = launch(sim_client, refs).json_body["data"]["id"]
    wait_for_end(sim_client, exp_id)
    response = sim_client.http.post(f"/api/experiments/{exp_id}/artifacts", headers=auth())
    assert response.status_code == 404 and response.json_body["detail"] == "Artifacts not found"
    # an export without artifacts leaves artifacts.json out rather than failing
    export = sim_client.http.post(f"/api/experiments/{exp_id}/export", headers=auth())
    archive = zipfile.ZipFile(io.BytesIO(download(export.headers["Location"])))
    assert "artifacts.json" not in archive.namelist() and "agent_status.csv" in archive.namelist()
