"""The workflow steps that take no simulated time: what each does to a running Simulation.

One function per step type (`INSTANT_STEPS`), each `(simulation, step, result)`. They follow
AgentSociety's runner (`SimulationEngine.run()`), with its records: an interview writes the question
(type 2, speaker "user") and the answer (type 2, speaker ""), a message writes the agent's thought
(type 0, speaker ""), save_context writes `{agent id: value}` under `save_as`. Where AgentSociety
would stop the whole run (an id that is not, or no longer, in the simulation), the step skips it
and says so in the run's log.
"""
from __future__ import annotations

from collections import Counter
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from chalicelib.sim.records import THOUGHT, USER, StepResult
from chalicelib.sim.spec import SurveyData
from chalicelib.sim.surveys import survey_id_of

if TYPE_CHECKING:
    from chalicelib.sim import steps
    from chalicelib.sim.citizens import Citizen
    from chalicelib.sim.engine import Simulation

NEWS_IMPACT = 0.1  # how far (x news sensitivity) the news moves happiness at once; live() does the rest


def survey(sim: Simulation, step: steps.SurveyStep, result: StepResult) -> None:
    data = SurveyData.model_validate(step.survey)
    resolved = step.survey if isinstance(step.survey, dict) else {"id": step.survey}
    survey_id, targets = survey_id_of(resolved), sim.targets(step.target_agent, result)
    answers = sim.call_all([partial(sim.mind.answer_survey, sim.persona(c), data) for c in targets])
    rows = [sim.survey_answer(result, c.person.id, survey_id, a) for c, a in zip(targets, answers, strict=True)]
    sim.last_survey = {"survey_id": survey_id, "day": sim.day, "t": float(sim.t),
                       "answers": [r.to_json() for r in rows]}
    sim.log(result, f"survey {data.title or survey_id}: {len(rows)} answers")


def interview(sim: Simulation, step: steps.InterviewStep, result: StepResult) -> None:
    targets, question = sim.targets(step.target_agent, result), step.message
    replies = sim.call_all([partial(sim.mind.answer_interview, sim.persona(c), question) for c in targets])
    for c, reply in zip(targets, replies, strict=True):
        sim.dialog(result, c.person.id, USER, "user", question)
        sim.dialog(result, c.person.id, USER, "", reply)
    sim.log(result, f"interview: {len(targets)} answers to {question[:60]!r}")


def intervene(sim: Simulation, step: steps.InterveneStep, result: StepResult) -> None:
    """Environment variables and the global prompt change; everyone reads the news at once."""
    if step.global_prompt is not None:
        sim.prompt_text = step.global_prompt
    if step.key is not None:
        sim.env[step.key] = step.value
    sim.env.update(step.environment)
    (outlook,) = sim.call_all([partial(sim.mind.interpret, sim.global_prompt, dict(sim.env))])
    result.input_tokens += outlook.input_tokens
    result.output_tokens += outlook.output_tokens
    shift = outlook.mood - sim.mood
    sim.mood, sim.spending = outlook.mood, outlook.spending
    _move_happiness(sim.citizens, shift)
    sim.log(result, f"{step.type}: mood {sim.mood:+.2f}, spending x{sim.spending:.2f}, environment {sorted(sim.env)}")


def update_state(sim: Simulation, step: steps.UpdateStateStep, result: StepResult) -> None:
    targets = sim.targets(step.target_agent, result)
    for c in targets:
        c.set_state(step.key, step.value)
    sim.log(result, f"update_state: {step.key} = {step.value} for {len(targets)} agents")


def message(sim: Simulation, step: steps.MessageStep, result: StepResult) -> None:
    """The targets hear a message: each writes down a thought, and their mood follows what it says."""
    targets, text = sim.targets(step.target_agent, result), step.intervene_message
    (outlook,) = sim.call_all([partial(sim.mind.interpret, text, dict(sim.env))])
    result.input_tokens += outlook.input_tokens
    result.output_tokens += outlook.output_tokens
    thoughts = sim.call_all([partial(sim.mind.react, sim.persona(c), text) for c in targets])
    for c, thought in zip(targets, thoughts, strict=True):
        sim.dialog(result, c.person.id, THOUGHT, "", thought)
    _move_happiness(targets, outlook.mood)
    sim.log(result, f"{step.type}: {len(targets)} agents told {text[:60]!r} (mood {outlook.mood:+.2f})")
    if step.func is not None:
        WORKFLOW_FUNCTIONS[step.func](sim, result)


def next_round(sim: Simulation, step: steps.NextRoundStep, result: StepResult) -> None:
    """Everyone goes home and starts afresh, keeping what they have and know; the clock moves 1 s."""
    sim.close_instant(result)
    for c in sim.citizens:
        c.go_home()
    sim.move_clock(1)
    sim.log(result, f"next_round: {len(sim.citizens)} agents back home")


def save_context(sim: Simulation, step: steps.SaveContextStep, result: StepResult) -> None:
    if step.key is None:
        result.artifacts[step.save_as] = _snapshot(sim, step.target)
        sim.log(result, f"save_context {step.target} as {step.save_as!r}")
        return
    values, lacking = {}, []
    for c in sim.targets(step.target_agent, result):
        value = sim.attribute(c, step.key)
        if value is None:
            lacking.append(c.person.id)
        else:
            values[str(c.person.id)] = value
    result.artifacts[step.save_as] = values
    note = f", {len(lacking)} agents have no {step.key!r}" if lacking else ""
    sim.log(result, f"save_context {step.key!r} of {len(values)} agents as {step.save_as!r}{note}")


def function(sim: Simulation, step: steps.FunctionStep, result: StepResult) -> None:
    WORKFLOW_FUNCTIONS[step.func](sim, result)


def delete_agent(sim: Simulation, step: steps.DeleteAgentStep, result: StepResult) -> None:
    """The targets leave: no more statuses, talks or answers; their records so far stay."""
    gone = sim.targets(step.target_agent, result)
    sim.remove(gone)
    sim.log(result, f"delete_agent: {len(gone)} agents left the simulation, {len(sim.citizens)} remain")


def _move_happiness(citizens: list[Citizen], mood: float) -> None:
    for c in citizens:
        c.happiness = round(min(1.0, max(0.0, c.happiness + NEWS_IMPACT * mood * c.person.sensitivity)), 4)


def _snapshot(sim: Simulation, target: str) -> Any:
    """Agora's save_context without a key: everything of one kind at this instant."""
    if target == "profile":
        return [p.to_json() for p in sim.profiles()]
    if target == "metrics":
        return {"day": sim.day, "t": float(sim.t), "step": sim.ticks_done, "metrics": dict(sim.last_metrics)}
    if target == "survey":
        return dict(sim.last_survey)
    return {"day": sim.day, "t": float(sim.t), "agents": [s.to_json() for s in sim.statuses()]}


# --- workflow functions (chalicelib.sim.catalog.WORKFLOW_FUNCTIONS describes them) ----------------
def _do_nothing(sim: Simulation, result: StepResult) -> None:
    sim.log(result, "function do_nothing")


def _save_status_summary(sim: Simulation, result: StepResult) -> None:
    statuses = [s.status for s in sim.statuses()]
    numeric = sorted({k for s in statuses for k, v in s.items() if isinstance(v, (int, float))})
    result.artifacts["status_summary"] = {
        "day": sim.day, "t": float(sim.t), "agents": len(statuses),
        "mean": {k: round(sum(s[k] for s in statuses) / len(statuses), 4) for k in numeric} if statuses else {}}
    sim.log(result, f"function save_status_summary: {len(statuses)} agents")


def _save_employment_report(sim: Simulation, result: StepResult) -> None:
    counts = Counter(c.employment for c in sim.citizens)
    result.artifacts["employment_report"] = {"day": sim.day, "t": float(sim.t), "agents": len(sim.citizens),
                                             **{k: counts.get(k, 0) for k in
                                                ("employed", "unemployed", "student", "retired")}}
    sim.log(result, f"function save_employment_report: {dict(sorted(counts.items()))}")


def _send_everyone_home(sim: Simulation, result: StepResult) -> None:
    for c in sim.citizens:
        c.go_home()
    sim.log(result, f"function send_everyone_home: {len(sim.citizens)} agents")


WORKFLOW_FUNCTIONS: dict[str, Callable[[Simulation, StepResult], None]] = {
    "do_nothing": _do_nothing,
    "save_status_summary": _save_status_summary,
    "save_employment_report": _save_employment_report,
    "send_everyone_home": _send_everyone_home,
}

# instant workflow step type -> what the engine does for it (the timed kinds: chalicelib.sim.steps.TIMED_STEPS)
INSTANT_STEPS: dict[str, Callable[[Simulation, Any, StepResult], None]] = {
    "survey": survey,
    "interview": interview,
    "intervene": intervene,
    "environment": intervene,
    "update_state": update_state,
    "message": message,
    "other": message,
    "next_round": next_round,
    "save_context": save_context,
    "function": function,
    "delete_agent": delete_agent,
}
