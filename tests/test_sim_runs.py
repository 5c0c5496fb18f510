"""Simulation runs on the real state machine (moto's interpreter), the built-in engine and the external one."""
from __future__ import annotations

import json
import time

from tests.conftest import auth
from tests.sim_helpers import call, make_configs

TERMINAL = {2, 3, 4}


def launch(client, refs, name="society", headers=None, **extra):
    body = {"exp_name": name, "llm": refs["llm"], "agents": refs["agents"], "map": refs["map"],
            "workflow": refs["workflow"], **extra}
    return call(client, "post", "/api/run-experiments", body, headers)


def experiment(client, exp_id, headers=None):
    from chalicelib import wiring

    return wiring.services().control.get(_tenant(headers), exp_id)


def _tenant(headers):
    from tests.conftest import KEYS

    key = (headers or auth())["Authorization"].split(" ", 1)[1]
    return next(t for t, k in KEYS.items() if k == key)


def wait_until(predicate, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def wait_for_end(client, exp_id, headers=None, timeout=30.0):
    return wait_until(lambda: (e := experiment(client, exp_id, headers)).status in TERMINAL and e, timeout)


def execution_status(exp):
    from chalicelib import wiring

    return wiring.services().step_functions.describe(exp.execution_arn)


def test_a_builtin_run_finishes_with_metrics_and_agent_data(sim_client):
    from chalicelib import wiring

    refs = make_configs(sim_client, agents=10, workflow=[{"type": "step", "steps": 30},
                                                         {"type": "interview", "question": "How are you?"},
                                                         {"type": "save_context", "save_as": "end"}])
    response = launch(sim_client, refs)
    assert response.status_code == 200, response.body
    exp_id = response.json_body["data"]["id"]

    exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 2 and exp.error == ""
    assert (exp.cur_day, exp.cur_t) == (0, 8 * 3600 + 30 * 300)
    assert exp.ticks_done == 31  # 30 ticks, then the snapshot where the interview's answers are stamped
    wait_until(lambda: execution_status(exp) == "SUCCEEDED")
    assert call(sim_client, "get", f"/api/run-experiments/{exp_id}/status").json_body["data"] == "Terminated"

    data = wiring.services().agent_data
    timeline = data.timeline("tenant-a", exp_id)
    assert len(timeline) == 31  # ticks are recorded at their start: the first one is the initial instant
    assert timeline[0] == {"day": 0, "t": 28800.0} and timeline[-1] == {"day": 0, "t": 28800.0 + 30 * 300}
    instant = data.instant("tenant-a", exp_id, 0, 28800.0 + 300)
    assert sorted(s["id"] for s in instant["statuses"]) == sorted(p["id"] for p in data.profiles("tenant-a", exp_id))
    assert len(data.profiles("tenant-a", exp_id)) == 10
    agent = data.profiles("tenant-a", exp_id)[0]["id"]
    assert len(data.agent_statuses("tenant-a", exp_id, agent)) == 31
    answers = [d for d in data.agent_dialogs("tenant-a", exp_id, agent) if d["type"] == 2]
    # the interview: question (speaker "user") and answer (speaker ""), at the last instant of the timeline
    assert [(d["speaker"], d["day"], d["t"]) for d in answers] == [("user", 0, 37800.0), ("", 0, 37800.0)]

    run = wiring.services().runs.get("tenant-a", exp.tracking_run_id)
    assert run.status == "FINISHED"
    assert {"mean_happiness", "employment_rate", "consumption", "dialog_count"} <= set(run.latest)
    history = sim_client.http.get(f"/api/v1/experiments/runs/{run.id}/metrics/mean_happiness?limit=1000",
                                  headers=auth()).json_body
    assert len(history["points"]) == 31
    assert wiring.services().sim_objects.load_artifacts("tenant-a", exp_id)["end"]
    log = call(sim_client, "get", f"/api/run-experiments/{exp_id}/log")
    assert log.status_code == 200 and "prepared 10 agents" in log.body.decode()


def test_the_experiment_exists_not_started_when_the_launch_answers(sim_client, monkeypatch):
    refs = make_configs(sim_client, agents=3, workflow=[{"type": "step", "steps": 2}])
    exp_id = launch(sim_client, refs).json_body["data"]["id"]
    exp = experiment(sim_client, exp_id)
    assert exp.status in (0, 1, 2)
    assert exp.execution_arn.endswith(f":{exp_id}")
    wait_for_end(sim_client, exp_id)


def test_stopping_a_run_half_way_ends_it_stopped_and_billed_once(sim_client, monkeypatch):
    from chalicelib import settings, wiring

    monkeypatch.setenv(settings.SIM_STEP_PAUSE_SECONDS, "1")
    wiring.reset()
    refs = make_configs(sim_client, agents=5, workflow=[{"type": "run", "days": 2}])
    exp_id = launch(sim_client, refs).json_body["data"]["id"]
    wait_until(lambda: experiment(sim_client, exp_id).ticks_done >= 12)

    stopped = call(sim_client, "delete", f"/api/run-experiments/{exp_id}")
    assert stopped.status_code == 200, stopped.body
    exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 4 and exp.error == "Experiment stopped by user"
    assert 12 <= exp.ticks_done < 2 * 288
    wait_until(lambda: execution_status(exp) == "SUCCEEDED")
    assert call(sim_client, "get", f"/api/run-experiments/{exp_id}/status").json_body["data"] == "Terminated"
    # stopping again, or stopping an ended run, is a conflict and changes nothing
    again = call(sim_client, "delete", f"/api/run-experiments/{exp_id}")
    assert again.status_code == 409 and again.json_body["detail"]
    assert experiment(sim_client, exp_id).status == 4
    assert wiring.services().runs.get("tenant-a", exp.tracking_run_id).status == "KILLED"


def test_stop_never_overwrites_a_finished_run(sim_client):
    refs = make_configs(sim_client, agents=3, workflow=[{"type": "step", "steps": 2}])
    exp_id = launch(sim_client, refs).json_body["data"]["id"]
    wait_for_end(sim_client, exp_id)
    response = call(sim_client, "delete", f"/api/run-experiments/{exp_id}")
    assert response.status_code == 409
    assert experiment(sim_client, exp_id).status == 2


def test_an_engine_exception_ends_the_run_as_error_with_the_message(sim_client):
    from tests.llm_stub import StubLLM

    with StubLLM(status=500) as stub:
        refs = make_configs(sim_client, agents=6, workflow=[{"type": "interview", "question": "Hello?"},
                                                            {"type": "step", "steps": 3}],
                            llm=[{"provider": "openai", "model": "m", "api_key": "sk-x", "base_url": stub.base_url}])
        exp_id = launch(sim_client, refs).json_body["data"]["id"]
        exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 3
    assert "LLMError" in exp.error and "500" in exp.error
    assert "sk-x" not in exp.error
    assert call(sim_client, "get", f"/api/run-experiments/{exp_id}/status").json_body["data"] == "Failed"
    from chalicelib import wiring

    assert wiring.services().runs.get("tenant-a", exp.tracking_run_id).status == "FAILED"


# --- the external engine ---------------------------------------------------------------------------

def report(client, exp_id, token, body):
    return client.http.post(f"/api/run-experiments/{exp_id}/engine/progress?callback_auth_token={token}",
                            headers={"Content-Type": "application/json"}, body=json.dumps(body))


def finish(client, exp_id, token, body=None):
    path = f"/api/run-experiments/{exp_id}/finish"
    if token is not None:
        path += f"?callback_auth_token={token}"
    return client.http.post(path, headers={"Content-Type": "application/json"}, body=json.dumps(body or {}))


STATUS = {"id": 1, "day": 0, "t": 28800.0, "lng": 1.0, "lat": 2.0, "parent_id": 3, "action": "sleep",
          "status": {"happiness": 0.5}}


def test_an_external_engine_reports_progress_and_finishes_by_callback(sim_client, fake_engine):
    refs = make_configs(sim_client, agents=3)
    exp_id = launch(sim_client, refs, engine="external").json_body["data"]["id"]
    token = fake_engine()

    spec = sim_client.http.get(f"/api/run-experiments/{exp_id}/engine/spec?callback_auth_token={token}")
    assert spec.status_code == 200 and spec.json_body["data"]["experiment_id"] == exp_id
    answer = report(sim_client, exp_id, token, {
        "cur_day": 0, "cur_t": 29100.0, "input_tokens": 10, "output_tokens": 4, "ticks_done": 1,
        "profiles": [{"id": 1, "name": "Ann", "profile": {"age": 30}}],
        "ticks": [{"day": 0, "t": 28800.0, "statuses": [STATUS], "prompt": "a town",
                   "metrics": {"mean_happiness": 0.5}}],
        "log_lines": ["engine says hello"]})
    assert answer.status_code == 200, answer.body
    assert answer.json_body["data"] == {"stop": False, "inbox": []}
    exp = experiment(sim_client, exp_id)
    assert (exp.status, exp.cur_t, exp.input_tokens, exp.output_tokens) == (1, 29100.0, 10, 4)

    done = finish(sim_client, exp_id, token, {"status": "finished"})
    assert done.status_code == 200, done.body
    exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 2
    assert "engine says hello" in call(sim_client, "get", f"/api/run-experiments/{exp_id}/log").body.decode()

    # the token is single use: a second finish, or a report after it, is refused
    assert finish(sim_client, exp_id, token).status_code == 403
    assert report(sim_client, exp_id, token, {"cur_day": 0, "cur_t": 1.0, "input_tokens": 0, "output_tokens": 0,
                                              "ticks_done": 0}).status_code == 403


def test_wrong_or_missing_callback_tokens_are_403_and_change_nothing(sim_client, fake_engine):
    refs = make_configs(sim_client, agents=3)
    exp_id = launch(sim_client, refs, engine="external").json_body["data"]["id"]
    token = fake_engine()

    for bad in (None, "", "x" * 43, token[:-1] + ("A" if token[-1] != "A" else "B")):
        assert finish(sim_client, exp_id, bad).status_code == 403
        assert sim_client.http.get(f"/api/run-experiments/{exp_id}/engine/spec"
                                   f"?callback_auth_token={bad or ''}").status_code == 403
    assert finish(sim_client, "01unknown", token).status_code == 403
    assert experiment(sim_client, exp_id).status == 0
    # the engine's own token still works afterwards
    assert finish(sim_client, exp_id, token, {"status": "error", "error": "out of memory"}).status_code == 200
    exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 3 and "out of memory" in exp.error


def test_stopping_an_external_run_ends_it_at_once(sim_client, fake_engine):
    refs = make_configs(sim_client, agents=3)
    exp_id = launch(sim_client, refs, engine="external").json_body["data"]["id"]
    token = fake_engine()
    assert call(sim_client, "delete", f"/api/run-experiments/{exp_id}").status_code == 200
    exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 4
    assert finish(sim_client, exp_id, token).status_code == 403


def test_a_silent_external_engine_is_found_by_the_heartbeat_timeout(sim_client, fake_engine, monkeypatch):
    from chalicelib import settings, wiring

    monkeypatch.setenv(settings.ENGINE_HEARTBEAT_SECONDS, "2")
    wiring.reset()
    refs = make_configs(sim_client, agents=3)
    exp_id = launch(sim_client, refs, engine="external").json_body["data"]["id"]
    token = fake_engine()  # started, then never reports
    exp = wait_for_end(sim_client, exp_id, timeout=20)
    assert exp.status == 3
    assert "heartbeat" in exp.error
    # the token dies with its run: no spec (with the tenant's LLM keys), no report, no finish
    spec = sim_client.http.get(f"/api/run-experiments/{exp_id}/engine/spec?callback_auth_token={token}")
    assert spec.status_code == 403 and "api_key" not in spec.body.decode()
    assert report(sim_client, exp_id, token, {"cur_day": 0, "cur_t": 0, "input_tokens": 0, "output_tokens": 0,
                                              "ticks_done": 0}).status_code == 403
    assert finish(sim_client, exp_id, token).status_code == 403
