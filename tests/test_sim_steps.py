"""AgentSociety's workflow steps, agent classes and blocks in the engine: each does what it does there."""
from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from chalicelib.sim import catalog, instant
from chalicelib.sim.engine import Simulation, StepResult
from chalicelib.sim.records import TALK, THOUGHT, USER
from chalicelib.sim.spec import AgentsConfig, SimulationSpec, WorkflowConfig
from chalicelib.sim.world import load_default_city

WORKFLOW = TypeAdapter(WorkflowConfig)
UNSET = {"func": None, "days": None, "steps": None, "ticks_per_step": None, "target_agent": None,
         "interview_message": None, "survey": None, "key": None, "save_as": None, "value": None,
         "intervene_message": None, "description": None}  # every field of AgentSociety's step, as its UI sends


def ui_step(**fields: Any) -> dict[str, Any]:
    return {**UNSET, **fields}


def spec_of(workflow: list[dict], citizens: list[dict] | None = None, supervisor: dict | None = None,
            seed: int = 5) -> SimulationSpec:
    agents: dict[str, Any] = {"citizens": citizens or [{"number": 30}]}
    if supervisor is not None:
        agents["supervisor"] = supervisor
    return SimulationSpec.model_validate({
        "experiment_id": "exp-1", "name": "steps", "seed": seed, "llm": [{"provider": "builtin"}],
        "agents": agents, "map": load_default_city().model_dump(), "workflow": workflow})


def run(spec: SimulationSpec) -> tuple[Simulation, list[StepResult]]:
    sim = Simulation.create(spec)
    results = []
    while not sim.done:
        results.append(sim.advance(max_ticks=48))
    return sim, results


def every(results: list[StepResult], name: str) -> list:
    return [x for r in results for x in getattr(r, name)]


def test_the_ui_steps_validate_with_their_unset_fields_as_null() -> None:
    steps = WORKFLOW.validate_python([
        ui_step(type="run", days=0.5, ticks_per_step=600),
        ui_step(type="step", steps=3, ticks_per_step=300),
        ui_step(type="interview", target_agent=[1, 2], interview_message="How are you?"),
        ui_step(type="survey", target_agent={"agent_class": ["SocietyAgent"]}, survey={"pages": [{"elements": [
            {"name": "q", "type": "text"}]}]}),
        ui_step(type="environment", key="weather", value="rainy"),
        ui_step(type="update_state", target_agent={"filter_str": "${profile.age} > 30"}, key="money", value="100"),
        ui_step(type="message", target_agent=[1], intervene_message="Prices rise tomorrow."),
        ui_step(type="next_round"),
        ui_step(type="save_context", target_agent=[1, 2], key="happiness", save_as="mood"),
        ui_step(type="function", func="do_nothing"),
    ])
    assert [s.type for s in steps] == ["run", "step", "interview", "survey", "environment", "update_state", "message",
                                       "next_round", "save_context", "function"]
    assert steps[5].value == 100.0  # the UI sends text; the engine's attribute is a number


@pytest.mark.parametrize(("step", "reason"), [
    (ui_step(type="interview", target_agent=[1]), "interview_message"),
    (ui_step(type="environment", key="weather"), "key and value are required"),
    (ui_step(type="update_state", target_agent=[1], key="mood", value="1"), "update_state can set"),
    (ui_step(type="update_state", target_agent=[1], key="money", value="lots"), "needs a number"),
    (ui_step(type="update_state", target_agent=[1], key="happiness", value="3"), "between 0 and 1"),
    (ui_step(type="message", intervene_message="hi"), "target_agent"),
    (ui_step(type="next_round", target_agent=[1]), "not allowed for NEXT_ROUND"),
    (ui_step(type="save_context", key="happiness", save_as="x"), "target_agent, key and save_as"),
    (ui_step(type="function", func="init_simulation_context_bdsc_2025_track_two"), "unknown workflow function"),
    (ui_step(type="other", target_agent=[1], intervene_message="x", func="nope"), "unknown workflow function"),
    (ui_step(type="message", target_agent={}, intervene_message="x"), "at least one of agent_class or filter_str"),
    (ui_step(type="message", target_agent={"agent_class": ["firm"]}, intervene_message="x"), "unknown agent_class"),
    (ui_step(type="message", target_agent={"filter_str": "${profile.age} >"}, intervene_message="x"),
     "not an expression"),
    (ui_step(type="message", target_agent={"filter_str": "__import__('os').system('id')"}, intervene_message="x"),
     "Call is not allowed"),
    (ui_step(type="message", target_agent={"filter_str": "${profile.name}.upper() == 'A'"}, intervene_message="x"),
     "not allowed"),
    (ui_step(type="teleport"), "type"),
])
def test_a_step_the_engine_cannot_do_is_refused_with_the_reason(step: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        WORKFLOW.validate_python([step])


def test_update_state_and_message_reach_only_their_targets() -> None:
    sim, results = run(spec_of([
        {"type": "step", "steps": 1},
        ui_step(type="update_state", target_agent=[1, 2], key="money", value="12345"),
        ui_step(type="message", target_agent=[3, 4], intervene_message="A war and a crisis: layoffs everywhere."),
    ]))
    last = {s.id: s for s in sim.statuses()}
    assert last[1].status["money"] == last[2].status["money"] == 12345.0
    assert last[3].status["money"] != 12345.0
    thoughts = [d for d in every(results, "dialogs") if d.type == THOUGHT]
    assert sorted(d.agent_id for d in thoughts) == [3, 4]
    assert all(d.speaker == "" and "war" in d.content for d in thoughts)
    before = {s.id: s.status["happiness"] for s in results[0].ticks[0].statuses}
    assert last[3].status["happiness"] < before[3] and last[4].status["happiness"] < before[4]  # bad news hurts


def test_next_round_sends_everyone_home_and_moves_the_clock_one_second() -> None:
    sim = Simulation.create(spec_of([{"type": "step", "steps": 3}, ui_step(type="next_round"),
                                     {"type": "step", "steps": 1}]))
    before = sim.advance(max_ticks=3)  # the three ticks, then next_round, which takes no tick
    assert any(s.parent_id is None or s.action != "Relaxing at home" for s in before.ticks[-1].statuses)
    home = {p.id: p.profile["home"] for p in sim.profiles()}
    assert (sim.cur_day, sim.cur_t) == (0, 8 * 3600 + 3 * 300 + 1.0)
    assert all(s.parent_id == home[s.id] and s.action == "Relaxing at home" for s in sim.statuses())
    after = sim.advance()
    assert [t.t for t in after.ticks] == [8 * 3600 + 3 * 300 + 1.0] and sim.done


def test_save_context_saves_each_target_agents_attribute_by_id() -> None:
    sim, results = run(spec_of([
        {"type": "step", "steps": 2},
        ui_step(type="save_context", target_agent={"filter_str": "${profile.age} >= 40"}, key="happiness",
                save_as="older_mood"),
        ui_step(type="save_context", target_agent=[1, 2], key="occupation", save_as="jobs"),
        ui_step(type="save_context", target_agent=[1], key="nothing_like_this", save_as="missing"),
    ]))
    artifacts = {k: v for r in results for k, v in r.artifacts.items()}
    older = {str(p.id) for p in sim.profiles() if p.profile["age"] >= 40}
    assert older and set(artifacts["older_mood"]) == older
    assert all(isinstance(v, float) for v in artifacts["older_mood"].values())
    assert artifacts["jobs"] == {str(p.id): p.profile["occupation"] for p in sim.profiles()[:2]}
    assert artifacts["missing"] == {}
    assert any("1 agents have no 'nothing_like_this'" in line for line in every(results, "log_lines"))


def test_the_workflow_functions_do_what_the_look_up_says() -> None:
    assert set(instant.WORKFLOW_FUNCTIONS) == set(catalog.WORKFLOW_FUNCTIONS)
    sim, results = run(spec_of([
        {"type": "step", "steps": 12},
        ui_step(type="function", func="save_status_summary"),
        ui_step(type="function", func="save_employment_report"),
        ui_step(type="function", func="send_everyone_home"),
        ui_step(type="function", func="do_nothing"),
    ]))
    artifacts = {k: v for r in results for k, v in r.artifacts.items()}
    summary = artifacts["status_summary"]
    assert summary["agents"] == 30 and 0 <= summary["mean"]["happiness"] <= 1 and "money" in summary["mean"]
    report = artifacts["employment_report"]
    assert report["agents"] == 30 and sum(report[k] for k in ("employed", "unemployed", "student", "retired")) == 30
    home = {p.id: p.profile["home"] for p in sim.profiles()}
    assert all(s.parent_id == home[s.id] for s in sim.statuses())


def test_a_deleted_agent_leaves_the_timeline_keeps_its_records_and_stays_gone_after_a_restore() -> None:
    spec = spec_of([{"type": "step", "steps": 2}, ui_step(type="delete_agent", target_agent=[1, 2]),
                    {"type": "step", "steps": 2},
                    ui_step(type="interview", target_agent=[2, 3], interview_message="Still here?"),
                    {"type": "step", "steps": 2}])
    sim = Simulation.create(spec)
    first = sim.advance(max_ticks=3)
    restored = Simulation.restore(sim.checkpoint(), spec)
    rest = []
    while not restored.done:
        rest.append(restored.advance(max_ticks=48))
    ids_before = {s.id for s in first.ticks[0].statuses}
    assert {1, 2} <= ids_before
    assert all({1, 2}.isdisjoint(s.id for s in t.statuses) for t in first.ticks[2:] + every(rest, "ticks"))
    assert len(restored.profiles()) == 30  # AgentSociety keeps the profiles of deleted agents
    interviewed = {d.agent_id for d in every(rest, "dialogs") if d.type == USER}
    assert interviewed == {3}
    assert any("agents 2 have left the simulation, skipped" in line for line in every(rest, "log_lines"))


def test_a_workflow_naming_an_agent_the_simulation_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="does not have: 31"):
        Simulation.create(spec_of([ui_step(type="update_state", target_agent=[1, 31], key="money", value="1")]))


def test_filters_pick_agents_by_class_and_by_profile() -> None:
    spec = spec_of([ui_step(type="message", target_agent={"filter_str": "${profile.occupation} == 'teacher' or "
                                                                       "${profile.age} > 60"},
                            intervene_message="Schools close early."),
                    ui_step(type="message", target_agent={"agent_class": ["citizen"]}, intervene_message="Hello"),
                    ui_step(type="message", target_agent={"filter_str": "${profile.no_such_thing} == 1"},
                            intervene_message="Nobody")],
                   citizens=[{"number": 40, "memory_distributions": {
                       "occupation": {"dist_type": "choice", "choices": ["teacher", "engineer"], "weights": [1, 1]},
                       "age": {"dist_type": "uniform_int", "min_value": 20, "max_value": 80}}}])
    sim, results = run(spec)
    wanted = {p.id for p in sim.profiles() if p.profile["occupation"] == "teacher" or p.profile["age"] > 60}
    told = [d for d in every(results, "dialogs") if d.type == THOUGHT]
    assert {d.agent_id for d in told if "Schools" in d.content} == wanted and 0 < len(wanted) < 40
    assert len([d for d in told if "Hello" in d.content]) == 40
    assert not [d for d in told if "Nobody" in d.content]


def test_blocks_switch_behaviour_on_and_off() -> None:
    day = [{"type": "run", "days": 1}]
    still = spec_of(day, citizens=[{"number": 20, "blocks": {"SocialBlock": {}, "EconomyBlock": {}}}])
    sim, results = run(still)
    home = {p.id: p.profile["home"] for p in sim.profiles()}
    assert all(s.parent_id == home[s.id] for t in every(results, "ticks") for s in t.statuses)  # no MobilityBlock

    broke = spec_of(day, citizens=[{"number": 20, "blocks": {"MobilityBlock": {}, "SocialBlock": {}}}])
    sim, results = run(broke)
    start = {s.id: s.status["money"] for s in every(results, "ticks")[0].statuses}
    assert {s.id: s.status["money"] for s in sim.statuses()} == start  # no EconomyBlock: no wages, no spending

    quiet = spec_of(day, citizens=[{"number": 20, "blocks": {"MobilityBlock": {}, "EconomyBlock": {"UBI": 50}}}])
    sim, results = run(quiet)
    assert not [d for d in every(results, "dialogs") if d.type == TALK]  # no SocialBlock: nobody talks
    everyone = spec_of(day, citizens=[{"number": 20}])
    _, chatty = run(everyone)
    assert [d for d in every(chatty, "dialogs") if d.type == TALK]


def test_agent_params_tune_the_citizens() -> None:
    day = [{"type": "run", "days": 1}]
    _, silent = run(spec_of(day, citizens=[{"number": 30, "agent_params": {"sociability": 0,
                                                                            "bedtime_thoughts": False}}]))
    kinds = {d.type for d in every(silent, "dialogs")}
    assert TALK not in kinds and THOUGHT not in kinds
    with pytest.raises(ValidationError, match="sociability"):
        spec_of(day, citizens=[{"number": 3, "agent_params": {"sociability": -1}}])
    with pytest.raises(ValidationError, match="enable_cognition"):  # AgentSociety's own knob: not this engine's
        spec_of(day, citizens=[{"number": 3, "agent_params": {"enable_cognition": True}}])
    with pytest.raises(ValidationError, match="Invalid block type: OtherBlock"):
        spec_of(day, citizens=[{"number": 3, "blocks": {"OtherBlock": {}}}])


def test_the_moderator_blocks_or_flags_conversations_with_banned_words() -> None:
    day = [{"type": "run", "days": 1}]
    banned = "hi, hello, hey"

    def talks(action: str) -> tuple[list, float]:
        sim, results = run(spec_of(day, citizens=[{"number": 40}], supervisor={
            "agent_class": "ConversationModerator", "agent_params": {"banned_words": banned, "action": action}}))
        lines = [d for d in every(results, "dialogs") if d.type == TALK]
        return lines, every(results, "ticks")[-1].metrics["moderated_talks"]

    blocked, blocked_count = talks("block")
    flagged, flagged_count = talks("flag")
    greeting = ("hi ", "hello ", "hey ")
    assert blocked_count > 0 and flagged_count == blocked_count  # the same seed: the same conversations
    assert not [d for d in blocked if d.content.lower().startswith(greeting)]
    assert [d for d in flagged if d.content.lower().startswith(greeting)]
    assert len(flagged) > len(blocked)
    with pytest.raises(ValidationError, match="supervisor has no behaviour blocks"):
        AgentsConfig.model_validate({"citizens": [{"number": 1}], "supervisor": {"blocks": {"mobilityblock": {}}}})


def test_results_of_final_instant_steps_lie_on_the_timeline() -> None:
    survey = {"id": "s-1", "pages": [{"elements": [{"name": "q", "type": "rating"}]}]}
    sim, results = run(spec_of([{"type": "step", "steps": 3}, ui_step(type="survey", survey=survey),
                                ui_step(type="interview", target_agent=[1], interview_message="And now?")]))
    instants = [(t.day, t.t) for t in every(results, "ticks")]
    assert len(instants) == 4 and instants[-1] == (0, 8 * 3600 + 900.0)  # 3 ticks, then the snapshot
    stamped = {(a.day, a.t) for a in every(results, "survey_answers")} | \
        {(d.day, d.t) for d in every(results, "dialogs") if d.type == USER}
    assert stamped == {instants[-1]}
    only_instant = run(spec_of([ui_step(type="interview", target_agent=[1], interview_message="Hi?")]))[1]
    assert [(t.day, t.t) for t in every(only_instant, "ticks")] == [(0, 8 * 3600.0)]


def test_results_stamped_before_a_next_round_lie_on_the_timeline_too() -> None:
    sim, results = run(spec_of([{"type": "step", "steps": 2},
                                ui_step(type="interview", target_agent=[1], interview_message="Before?"),
                                ui_step(type="next_round"), ui_step(type="next_round"),
                                {"type": "step", "steps": 2}]))
    instants = [(t.day, t.t) for t in every(results, "ticks")]
    after_ticks = 8 * 3600 + 600.0
    # 2 ticks, the instant of the interview (recorded once, before everyone went home), 2 ticks 2 s later
    assert instants == [(0, 8 * 3600.0), (0, 8 * 3600 + 300.0), (0, after_ticks), (0, after_ticks + 2),
                        (0, after_ticks + 302)]
    assert {(d.day, d.t) for d in every(results, "dialogs") if d.type == USER} == {(0, after_ticks)}
