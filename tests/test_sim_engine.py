"""The reference engine: a day of the builtin mind, determinism across checkpoints, workflow steps, inbox, LLM mind."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from chalicelib.sim.engine import Inbox, Simulation, StepResult
from chalicelib.sim.llm_client import LLMError
from chalicelib.sim.minds import LLMMind, RuleMind, default_mind_factory
from chalicelib.sim.records import PendingDialog, PendingSurvey
from chalicelib.sim.spec import LLMEndpoint, SimulationSpec
from chalicelib.sim.world import load_default_city
from tests.llm_stub import StubLLM

SURVEY = {"title": "Life in the city", "pages": [{"name": "p1", "elements": [
    {"name": "satisfied", "type": "radiogroup", "title": "How satisfied are you with your life?",
     "choices": ["Very dissatisfied", "Dissatisfied", "Neutral", "Satisfied", "Very satisfied"]},
    {"name": "activities", "type": "checkbox", "title": "What do you do in your free time?",
     "choices": [{"value": "sport", "text": "Sport"}, {"value": "reading", "text": "Reading"}, "music"]},
    {"name": "score", "type": "rating", "title": "Rate your happiness", "rateMin": 1, "rateMax": 10},
    {"name": "employed", "type": "boolean", "title": "Do you have a job?"},
    {"type": "panel", "name": "more", "elements": [
        {"name": "why", "type": "comment", "title": "What worries you about money?"}]},
    {"name": "note", "type": "html", "html": "<b>thanks</b>"},
]}]}
QUESTIONS = ("satisfied", "activities", "score", "employed", "why")


def make_spec(number: int = 50, workflow: Any = None, llm: Any = None, seed: int = 7, **group: Any) -> SimulationSpec:
    return SimulationSpec.model_validate({
        "experiment_id": "exp-1", "name": "test", "seed": seed,
        "llm": llm or [{"provider": "builtin"}],
        "agents": {"citizens": [{"number": number, **group}]},
        "map": load_default_city().model_dump(),
        "workflow": workflow or [{"type": "run", "days": 1}],
    })


def run_all(sim: Simulation, max_ticks: int = 12) -> list[StepResult]:
    results = []
    while not sim.done:
        results.append(sim.advance(max_ticks=max_ticks))
    return results


def as_json(results: list[StepResult]) -> str:
    return json.dumps([r.to_json() for r in results], sort_keys=True)


def flat(results: list[StepResult], name: str) -> list:
    return [x for r in results for x in getattr(r, name)]


def test_a_builtin_day_writes_every_agent_every_tick() -> None:
    sim = Simulation.create(make_spec(50))
    assert (sim.cur_day, sim.cur_t, sim.ticks_done, sim.total_ticks_planned) == (0, 8 * 3600.0, 0, 288)
    results = run_all(sim)  # its speed is measured in bench/, not asserted here
    ticks = flat(results, "ticks")
    assert len(ticks) == 288 and sim.ticks_done == 288 and sim.done
    assert [tick.step for tick in ticks] == list(range(288))
    for tick in ticks:
        assert [s.id for s in tick.statuses] == list(range(1, 51))
        assert {"mean_happiness", "employment_rate", "consumption", "dialog_count"} <= set(tick.metrics)
        assert all(isinstance(v, float) for v in tick.metrics.values())
        assert 0 <= tick.metrics["mean_happiness"] <= 1 and 0 <= tick.metrics["employment_rate"] <= 1
    status = ticks[100].statuses[0].to_json()
    assert set(status) == {"id", "day", "t", "lng", "lat", "parent_id", "action", "status"}
    assert {"happiness", "hunger", "energy", "money", "consumption", "employment", "place"} <= set(status["status"])
    dialogs = flat(results, "dialogs")
    assert dialogs and {d.type for d in dialogs} == {0, 1}
    assert set(dialogs[0].to_json()) == {"id", "day", "t", "type", "speaker", "content"}
    assert sum(t.metrics["dialog_count"] for t in ticks) == len(dialogs)
    assert sum(t.metrics["consumption"] for t in ticks) > 0
    assert {"Working", "Sleeping"} <= {s.action for t in ticks for s in t.statuses}
    assert any(s.parent_id is None for t in ticks for s in t.statuses)  # somebody travelled
    assert ticks[0].prompt.startswith("You live in Agora City")
    assert ticks[0].global_prompt() == {"day": 0, "t": 28800.0, "prompt": ticks[0].prompt}
    assert {"key": "dialog_count", "value": ticks[5].metrics["dialog_count"], "step": 5} in ticks[5].metric_rows()
    logs = flat(results, "log_lines")
    assert logs[0] == "day 0 08:00 step 1/1: run 1 day(s), 300 s per tick"
    assert any(line.startswith("day 0 09:00 50 agents,") for line in logs) and logs[-1].endswith("workflow finished")
    assert len(sim.profiles()) == 50 and set(sim.profiles()[0].to_json()) == {"id", "name", "profile"}


def test_clock_starts_at_eight_and_wraps_at_midnight() -> None:
    sim = Simulation.create(make_spec(5, [{"type": "step", "steps": 15, "ticks_per_step": 3600},
                                          {"type": "run", "days": 0.5, "ticks_per_step": 3600}]))
    assert sim.total_ticks_planned == 27
    result = sim.advance(max_ticks=15)
    assert [(t.day, t.t) for t in result.ticks][-2:] == [(0, 21 * 3600.0), (0, 22 * 3600.0)]
    assert (sim.cur_day, sim.cur_t, sim.ticks_done) == (0, 23 * 3600.0, 15)
    result = sim.advance(max_ticks=2)
    assert [(t.day, t.t) for t in result.ticks] == [(0, 23 * 3600.0), (1, 0.0)]
    assert (sim.cur_day, sim.cur_t) == (1, 3600.0)
    run_all(sim)
    assert (sim.cur_day, sim.cur_t, sim.ticks_done) == (1, 11 * 3600.0, 27)  # half a day after 23:00
    assert sim.advance().ticks == []  # done: nothing more to do


def test_uneven_run_ends_on_the_exact_second() -> None:
    sim = Simulation.create(make_spec(3, [{"type": "run", "days": 0.01, "ticks_per_step": 300}]))
    run_all(sim)  # 864 s: two full ticks and one of 264 s
    assert sim.ticks_done == sim.total_ticks_planned == 3 and sim.cur_t == 8 * 3600 + 864.0


def test_same_spec_same_results_even_across_checkpoints() -> None:
    workflow = [{"type": "run", "days": 1}, {"type": "survey", "survey": SURVEY},
                {"type": "interview", "question": "How is work?", "target_agent": [1, 2]},
                {"type": "step", "steps": 30}]
    spec = make_spec(50, workflow)
    straight = as_json(run_all(Simulation.create(spec)))
    assert straight == as_json(run_all(Simulation.create(spec)))
    sim, pieces, sizes = Simulation.create(spec), [], []
    while not sim.done:
        pieces.append(sim.advance(max_ticks=12))
        blob = sim.checkpoint()
        sizes.append(len(blob))
        sim = Simulation.restore(blob, spec)
    assert as_json(pieces) == straight
    assert max(sizes) < 20_000
    assert as_json(run_all(Simulation.create(make_spec(50, workflow, seed=8)))) != straight


def test_checkpoint_belongs_to_its_spec() -> None:
    blob = Simulation.create(make_spec(5)).checkpoint()
    with pytest.raises(ValueError, match="different simulation spec"):
        Simulation.restore(blob, make_spec(6))
    with pytest.raises(ValueError, match="resolved"):
        Simulation.create(make_spec(5, [{"type": "survey", "survey": "a-survey-id"}]))


def test_zero_tick_steps_answer_change_and_save() -> None:
    workflow = [
        {"type": "step", "steps": 2},
        {"type": "survey", "survey": {**SURVEY, "id": "survey-1"}},
        {"type": "interview", "question": "How do you feel about your job?", "target_agent": [3, 4]},
        {"type": "intervene", "global_prompt": "An economic crisis hits the city; layoffs everywhere.",
         "environment": {"prices": 1.5, "weather": "rainy"}},
        {"type": "save_context", "save_as": "after-crisis", "target": "status"},
        {"type": "save_context", "save_as": "people", "target": "profile"},
        {"type": "save_context", "save_as": "numbers", "target": "metrics"},
        {"type": "save_context", "save_as": "answers", "target": "survey"},
        {"type": "step", "steps": 1},
    ]
    sim = Simulation.create(make_spec(20, workflow))
    first = sim.advance(max_ticks=2)
    assert len(first.ticks) == 2 and sim.ticks_done == 2  # the zero-tick steps ran right after, for free
    assert (sim.cur_day, sim.cur_t) == (0, 8 * 3600 + 600.0)
    answers = first.survey_answers
    assert [a.agent_id for a in answers] == list(range(1, 21)) and {a.survey_id for a in answers} == {"survey-1"}
    for a in answers:
        r = a.result
        assert set(r) == set(QUESTIONS) and a.t == 8 * 3600 + 600.0
        assert r["satisfied"] in SURVEY["pages"][0]["elements"][0]["choices"]
        assert r["activities"] and set(r["activities"]) <= {"sport", "reading", "music"}
        assert r["score"] in range(1, 11) and isinstance(r["employed"], bool) and isinstance(r["why"], str)
    assert set(answers[0].to_json()) == {"id", "day", "t", "survey_id", "result"}
    interview = [d for d in first.dialogs if d.t == 8 * 3600 + 600.0]  # the ticks' talk came earlier
    # AgentSociety's rows: the question (type 2, speaker "user"), then the answer (type 2, speaker "")
    assert [(d.agent_id, d.type, d.speaker) for d in interview] == [(3, 2, "user"), (3, 2, ""), (4, 2, "user"),
                                                                    (4, 2, "")]
    assert interview[0].content == "How do you feel about your job?" and interview[1].content
    assert set(first.artifacts) == {"after-crisis", "people", "numbers", "answers"}
    assert len(first.artifacts["after-crisis"]["agents"]) == 20 and len(first.artifacts["people"]) == 20
    assert first.artifacts["numbers"]["step"] == 2 and "mean_happiness" in first.artifacts["numbers"]["metrics"]
    assert first.artifacts["answers"]["survey_id"] == "survey-1" and len(first.artifacts["answers"]["answers"]) == 20
    json.dumps(first.to_json())  # everything is plain JSON
    last = sim.advance()
    assert sim.done and len(last.ticks) == 1
    assert last.ticks[0].prompt.startswith("An economic crisis") and "weather=\"rainy\"" in last.ticks[0].prompt
    assert first.ticks[0].prompt.startswith("You live in")


def test_interventions_move_mood_and_spending() -> None:
    def day(pre: list) -> tuple[float, float]:
        ticks = flat(run_all(Simulation.create(make_spec(100, pre + [{"type": "run", "days": 1}], seed=3)), 100),
                     "ticks")
        return (sum(t.metrics["mean_happiness"] for t in ticks) / len(ticks),
                sum(t.metrics["consumption"] for t in ticks))

    calm = day([])
    crisis = day([{"type": "intervene", "global_prompt": "An economic crisis: layoffs and inflation.",
                   "environment": {"prices": 1.5, "weather": "storm"}}])
    festival = day([{"type": "intervene", "global_prompt": "The city festival begins, discounts everywhere.",
                     "key": "weather", "value": "sunny"}])
    assert crisis[0] < calm[0] < festival[0]
    assert crisis[1] < calm[1] < festival[1]


def test_inbox_dialogs_and_surveys_are_answered_and_reported() -> None:
    sim = Simulation.create(make_spec(10, [{"type": "step", "steps": 3}]))
    inbox = Inbox(dialogs=[PendingDialog("d-1", 3, 0, 28000.0, "How is your money situation?"),
                           PendingDialog("d-2", 99, 0, 28000.0, "Anyone there?")],
                  surveys=[PendingSurvey("s-1", 4, 0, 28000.0, "survey-9", SURVEY),
                           PendingSurvey("s-2", 5, 0, 28000.0, "survey-x", {"pages": []})])
    result = sim.advance(max_ticks=1, inbox=inbox)
    assert result.processed_inbox_ids == ["d-1", "d-2", "s-1", "s-2"]
    user = [d for d in result.dialogs if d.type == 2]
    assert user[0].to_json() == {"id": 3, "day": 0, "t": 28000.0, "type": 2, "speaker": "user",
                                 "content": "How is your money situation?"}
    # the answer: type 2 with speaker "" (the agent), at the instant of the tick that answered it
    reply = [d for d in result.dialogs if d.agent_id == 3 and d.type == 2 and d.speaker == "" and d.t == 28800.0]
    assert reply and "savings" in reply[0].content
    # a survey sent from the replay keeps the instant it was sent at, where the replay shows it
    assert [(a.agent_id, a.survey_id, a.day, a.t) for a in result.survey_answers] == [(4, "survey-9", 0, 28000.0)]
    assert any("agent 99 is not in the simulation" in line for line in result.log_lines)
    assert any("s-2" in line and "not a usable survey" in line for line in result.log_lines)
    run_all(sim)
    late = sim.advance(inbox=Inbox(dialogs=[PendingDialog("d-3", 1, 0, 0.0, "Still there?")]))
    assert late.processed_inbox_ids == ["d-3"] and [d.type for d in late.dialogs] == [2, 2]  # done: answered now


def test_profiles_follow_distributions_and_explicit_profiles_win() -> None:
    spec = make_spec(40, memory_distributions={
        "occupation": {"dist": "constant", "value": "teacher"},
        "age": {"dist": "uniform_int", "min": 30, "max": 35},
        "gender": {"dist": "choice", "choices": ["female", "male"], "weights": [1, 0]},
        "income": {"dist": "normal", "mean": 5000, "std": 10, "min": 4000, "max": 6000},
        "hobby": {"dist": "choice", "choices": ["chess"]},
    }, profiles=[{"name": "Ada Lovelace", "age": 36, "occupation": "doctor", "home": 5, "work": 501}])
    profiles = Simulation.create(spec).profiles()
    assert len(profiles) == 40 and [p.id for p in profiles] == list(range(1, 41))
    ada = profiles[0]
    assert ada.name == "Ada Lovelace" and ada.profile["age"] == 36 and ada.profile["occupation"] == "doctor"
    assert ada.profile["home"] == 5 and ada.profile["work"] == 501 and ada.profile["gender"] == "female"
    for p in profiles[1:]:
        assert p.profile["occupation"] == "teacher" and 30 <= p.profile["age"] <= 35
        assert p.profile["gender"] == "female" and 4000 <= p.profile["income"] <= 6000
        assert p.profile["hobby"] == "chess" and p.profile["work"] in (401, 402)  # teachers work at schools
    assert [p.to_json() for p in profiles] == [p.to_json() for p in Simulation.create(spec).profiles()]
    defaults = [p.profile for p in Simulation.create(make_spec(300)).profiles()]
    assert all(18 <= p["age"] <= 85 and p["gender"] in ("male", "female") for p in defaults)
    assert {"student", "retired", "unemployed", "worker"} <= {p["occupation"] for p in defaults}


def test_default_mind_factory_picks_by_provider() -> None:
    assert isinstance(default_mind_factory([LLMEndpoint(provider="builtin")]), RuleMind)
    endpoint = LLMEndpoint(provider="deepseek", model="deepseek-chat", api_key="sk-hidden-42")
    mind = default_mind_factory([endpoint])
    assert isinstance(mind, LLMMind) and mind.clients[0].url == "https://api.deepseek.com/v1/chat/completions"
    assert "sk-hidden-42" not in repr(mind.clients) + repr(endpoint)


def _llm_spec(base_url: str, workflow: list, number: int = 4) -> SimulationSpec:
    return make_spec(number, workflow, llm=[{"provider": "openai", "base_url": base_url,
                                             "api_key": "sk-secret-123", "model": "gpt-test", "timeout": 5}])


def _stub_reply(body: dict) -> str:
    asked = body["messages"][-1]["content"]
    if "fill in the survey" in asked:
        return 'Sure: {"satisfied": "satisfied", "score": 12, "employed": "yes", "activities": ["music", "golf"]}'
    if "JSON" in asked or '"mood"' in asked:
        return '{"mood": -0.8, "spending": 0.6}'
    return "Things are fine, thanks."


def test_llm_mind_counts_tokens_and_sends_the_key_only_in_the_header() -> None:
    workflow = [{"type": "interview", "question": "How are you?", "target_agent": [1, 2]},
                {"type": "survey", "survey": SURVEY, "target_agent": [3]},
                {"type": "intervene", "global_prompt": "Bad news today."},
                {"type": "step", "steps": 2}]
    with StubLLM(reply=_stub_reply, usage=(11, 7)) as stub:
        sim = Simulation.create(_llm_spec(stub.base_url, workflow))
        results = run_all(sim)
    calls = stub.requests
    assert len(calls) >= 4  # 2 interviews, 1 survey, 1 reading of the news, plus any conversations
    assert sum(r.input_tokens for r in results) == 11 * len(calls)
    assert sum(r.output_tokens for r in results) == 7 * len(calls)
    for call in calls:
        assert call["path"] == "/v1/chat/completions" and call["body"]["model"] == "gpt-test"
        assert call["headers"]["Authorization"] == "Bearer sk-secret-123"
        assert "sk-secret-123" not in json.dumps(call["body"]) + call["path"]
    assert "sk-secret-123" not in as_json(results) + repr(sim.spec)
    answers = [d for d in flat(results, "dialogs") if d.type == 2 and d.speaker == ""]
    assert [d.content for d in answers[:2]] == ["Things are fine, thanks."] * 2
    (survey,) = flat(results, "survey_answers")
    assert survey.result["satisfied"] == "Satisfied"  # matched to the choice's own spelling
    assert survey.result["score"] == 10 and survey.result["employed"] is True  # clipped, read as yes
    assert survey.result["activities"] == ["music"]  # the invented choice is dropped
    assert isinstance(survey.result["why"], str)  # left out by the model: answered by the rules
    assert any("mood -0.80" in line for line in flat(results, "log_lines"))


def test_llm_errors_raise_and_never_show_the_key() -> None:
    workflow = [{"type": "interview", "question": "Hello?"}]
    with StubLLM(status=500) as stub:
        sim = Simulation.create(_llm_spec(stub.base_url, workflow))
        with pytest.raises(LLMError, match="HTTP 500") as failure:
            sim.advance()
    assert "sk-secret-123" not in str(failure.value)
    with StubLLM() as stub:
        closed = stub.base_url  # nothing listens there once the stub is gone
    with pytest.raises(LLMError, match="failed"):
        Simulation.create(_llm_spec(closed, workflow)).advance()


def test_a_thousand_agents_stay_fast_and_small() -> None:
    spec = make_spec(1000)
    sim = Simulation.create(spec)
    started = time.process_time()
    result = sim.advance(max_ticks=12)
    assert time.process_time() - started < 1.5 and len(result.ticks) == 12
    blob = sim.checkpoint()
    assert len(blob) < 200_000
    again = Simulation.restore(blob, spec)
    assert as_json([again.advance(12)]) == as_json([sim.advance(12)])
