"""The reference engine: runs a SimulationSpec's workflow in bounded, checkpointable slices."""
from __future__ import annotations

import hashlib
import json
import math
import random
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, Optional, TypeVar

from chalicelib.sim.citizens import FIELDS, Citizen, TickContext, metrics_of, prices_of
from chalicelib.sim.llm_client import LLMError
from chalicelib.sim.minds import Mind, MindFactory, default_mind_factory
from chalicelib.sim.phrases import Persona
from chalicelib.sim.population import build_population
from chalicelib.sim.records import (
    TALK,
    THOUGHT,
    USER,
    AgentProfile,
    AgentStatus,
    Dialog,
    Inbox,
    PendingDialog,
    PendingSurvey,
    StepResult,
    SurveyAnswer,
    TickRecord,
)
from chalicelib.sim.spec import (
    SECONDS_PER_DAY,
    InterveneStep,
    InterviewStep,
    SaveContextStep,
    SimulationSpec,
    SurveyData,
    SurveyStep,
)
from chalicelib.sim.surveys import survey_id_of
from chalicelib.sim.workflow import describe, is_timed, step_seconds, tick_seconds
from chalicelib.sim.world import World

__all__ = ["Simulation", "StepResult", "TickRecord", "AgentStatus", "AgentProfile", "Dialog", "SurveyAnswer", "Inbox",
           "PendingDialog", "PendingSurvey", "Mind", "LLMError", "default_mind_factory"]

CHECKPOINT_VERSION = 1
TALK_CHANCE = 0.015  # per citizen and 5 simulated minutes awake with company, before sociability
PLACE_TALKATIVENESS = {"home": 0.5, "work": 0.6, "school": 0.8, "shop": 0.8, "leisure": 1.5}
BEDTIME_THOUGHT_CHANCE = 0.5
BEDTIME_MIN = 20 * 60
SOCIAL_BOOST, SOCIAL_CAP = 0.03, 0.15
R = TypeVar("R")


def clock(day: int, t: int) -> str:
    return f"day {day} {t // 3600:02d}:{t % 3600 // 60:02d}"


def _fingerprint(spec: SimulationSpec) -> str:
    """What must not change between checkpoint and restore (the LLM config may: keys get rotated)."""
    text = spec.model_dump_json(include={"agents", "map", "workflow", "seed", "start_t"})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Simulation:
    """One run: create() or restore(), then advance() in bounded slices until done, checkpoint() in between."""

    def __init__(self, spec: SimulationSpec, mind: Mind):
        for step in spec.workflow:
            if step.type == "survey" and not isinstance(step.survey, dict):
                raise ValueError(f"survey {step.survey!r} must be resolved to its content before the run")
        self.spec, self.mind = spec, mind
        self.world = World(spec.map)
        self.people = build_population(spec, self.world)
        self.total_ticks_planned = sum(math.ceil(step_seconds(s) / tick_seconds(s))
                                       for s in spec.workflow if is_timed(s))
        # run state; everything below is in the checkpoint
        self.day, self.t, self.ticks_done = 0, spec.start_t, 0
        self.step_index, self.step_left = 0, -1  # -1: the current run/step has not begun
        self.rng = random.Random(spec.seed)
        self.prompt_text = self.world.describe()
        self.env: dict[str, Any] = {}
        self.mood, self.spending = 0.0, 1.0
        self.citizens: list[Citizen] = []
        self.last_survey: dict[str, Any] = {}
        self.last_metrics: dict[str, float] = {}
        self.since_log = [0, 0.0]  # dialogs and money spent since the last progress line

    # ---- life cycle ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, spec: SimulationSpec, mind_factory: Optional[MindFactory] = None) -> Simulation:
        sim = cls(spec, (mind_factory or default_mind_factory)(spec.llm))
        sim.citizens = [Citizen.fresh(p, sim.rng) for p in sim.people]
        return sim

    @classmethod
    def restore(cls, blob: bytes, spec: SimulationSpec, mind_factory: Optional[MindFactory] = None) -> Simulation:
        state = json.loads(zlib.decompress(blob))
        if state.get("v") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {state.get('v')} is not {CHECKPOINT_VERSION}")
        if state["fp"] != _fingerprint(spec):
            raise ValueError("the checkpoint was made for a different simulation spec")
        sim = cls(spec, (mind_factory or default_mind_factory)(spec.llm))
        sim.day, sim.t, sim.ticks_done = state["day"], state["t"], state["ticks"]
        sim.step_index, sim.step_left = state["step"], state["left"]
        version, internal, gauss = state["rng"]
        sim.rng.setstate((version, tuple(internal), gauss))
        sim.prompt_text, sim.env = state["prompt"], state["env"]
        sim.mood, sim.spending = state["mood"], state["spending"]
        sim.last_survey, sim.last_metrics = state["last_survey"], state["metrics"]
        sim.since_log = state["since_log"]
        columns = state["agents"]
        sim.citizens = [Citizen(p, [columns[f][i] for f in FIELDS]) for i, p in enumerate(sim.people)]
        return sim

    def checkpoint(self) -> bytes:
        version, internal, gauss = self.rng.getstate()
        state = {"v": CHECKPOINT_VERSION, "fp": _fingerprint(self.spec), "day": self.day, "t": self.t,
                 "ticks": self.ticks_done, "step": self.step_index, "left": self.step_left,
                 "rng": [version, list(internal), gauss], "prompt": self.prompt_text, "env": self.env,
                 "mood": self.mood, "spending": self.spending, "last_survey": self.last_survey,
                 "metrics": self.last_metrics, "since_log": self.since_log,
                 # columns compress far better than one object per citizen
                 "agents": {f: [getattr(c, f) for c in self.citizens] for f in FIELDS}}
        return zlib.compress(json.dumps(state, separators=(",", ":"), sort_keys=True).encode(), 9)

    @property
    def done(self) -> bool:
        return self.step_index >= len(self.spec.workflow)

    @property
    def cur_day(self) -> int:
        return self.day

    @property
    def cur_t(self) -> float:
        return float(self.t)

    def profiles(self) -> list[AgentProfile]:
        return [p.agent_profile() for p in self.people]

    def statuses(self) -> list[AgentStatus]:
        """Every citizen's status at the current instant (what a tick starting now would record)."""
        day, t, world = self.day, float(self.t), self.world
        return [AgentStatus(c.person.id, day, t, *c.place(world), c.action, c.status(world))
                for c in self.citizens]

    @property
    def global_prompt(self) -> str:
        """The global prompt as written each tick: the situation text plus any environment variables."""
        if not self.env:
            return self.prompt_text
        env = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in sorted(self.env.items()))
        return f"{self.prompt_text}\nEnvironment: {env}"

    # ---- the work loop ------------------------------------------------------------------------------
    def advance(self, max_ticks: int = 12, inbox: Optional[Inbox] = None) -> StepResult:
        """Run up to max_ticks ticks; survey/interview/intervene/save_context steps cost none.

        Inbox items are answered in the first tick of this call, or at the current instant when this call
        runs no tick, so every id passed in comes back in processed_inbox_ids. After an exception (an
        LLMError), discard this object and restore the last checkpoint.
        """
        result = StepResult()
        was_done = self.done
        pending = inbox if inbox else None
        ticks = 0
        while not self.done:
            step = self.spec.workflow[self.step_index]
            if is_timed(step):
                if ticks >= max_ticks:
                    break
                if self.step_left < 0:
                    self.step_left = step_seconds(step)
                    self._log(result, f"step {self.step_index + 1}/{len(self.spec.workflow)}: {describe(step)}")
                length = min(tick_seconds(step), self.step_left)
                self._tick(length, result, pending)
                pending, ticks = None, ticks + 1
                self.step_left -= length
                if self.step_left <= 0:
                    self.step_index, self.step_left = self.step_index + 1, -1
            else:
                INSTANT_STEPS[step.type](self, step, result)
                self.step_index += 1
        if pending:
            self._answer_inbox(pending, result)
        if self.done and not was_done:
            self._log(result, "workflow finished")
        return result

    def _log(self, result: StepResult, text: str) -> None:
        result.log_lines.append(f"{clock(self.day, self.t)} {text}")

    def _context(self, length: int) -> TickContext:
        return TickContext(self.day, self.t, length, self.world, self.mood, self.spending, prices_of(self.env),
                           self.env.get("weather", "mild"))

    def _tick(self, length: int, result: StepResult, inbox: Optional[Inbox]) -> None:
        ctx, rng = self._context(length), self.rng
        day, t = self.day, float(self.t)
        before = len(result.dialogs)
        sleepers: list[Citizen] = []
        for c in self.citizens:
            c.tick_spent = 0.0
            if c.travelling:
                c.travel(ctx, rng)
            else:
                was = c.activity
                c.apply(self.mind.decide(c, ctx, rng), ctx, rng)
                if (c.activity == "sleep" and was != "sleep" and ctx.minute >= BEDTIME_MIN
                        and rng.random() < BEDTIME_THOUGHT_CHANCE):  # not those sleeping in at 8:00
                    sleepers.append(c)
            c.live(ctx, rng)
        if inbox:
            self._answer_inbox(inbox, result)
        self._conversations(ctx, result)
        thoughts = self._call_all([partial(self.mind.reflect, self._persona(c)) for c in sleepers])
        for c, reply in zip(sleepers, thoughts, strict=False):
            self._dialog(result, c.person.id, THOUGHT, "", reply)
        written = len(result.dialogs) - before
        self.last_metrics = metrics_of(self.citizens, written)
        dialogs, spent = self.since_log
        self.since_log = [dialogs + written, round(spent + self.last_metrics["consumption"], 2)]
        result.ticks.append(TickRecord(self.ticks_done, day, t, self.statuses(), self.global_prompt,
                                       self.last_metrics))
        self.ticks_done += 1
        hour = self.t // 3600
        self.t += length
        if self.t >= SECONDS_PER_DAY:
            self.day, self.t = self.day + self.t // SECONDS_PER_DAY, self.t % SECONDS_PER_DAY
            for c in self.citizens:
                c.new_day(ctx, rng)
        if self.t // 3600 != hour:
            m, (dialogs, spent) = self.last_metrics, self.since_log
            self._log(result, f"{len(self.citizens)} agents, {dialogs} dialogs, happiness {m['mean_happiness']:.2f}, "
                              f"employment {m['employment_rate']:.0%}, consumption {spent:.0f}")
            self.since_log = [0, 0.0]

    # ---- mind calls ---------------------------------------------------------------------------------
    def _call_all(self, calls: list[Callable[[random.Random], R]]) -> list[R]:
        """Run mind calls, in parallel when the mind allows; each gets an rng seeded in order from ours."""
        seeds = [self.rng.getrandbits(64) for _ in calls]
        parallelism = getattr(self.mind, "parallelism", 1)
        if parallelism <= 1 or len(calls) <= 1:
            return [call(random.Random(seed)) for call, seed in zip(calls, seeds, strict=False)]
        with ThreadPoolExecutor(max_workers=min(parallelism, len(calls))) as pool:
            return list(pool.map(lambda cs: cs[0](random.Random(cs[1])), zip(calls, seeds, strict=False)))

    def _persona(self, c: Citizen) -> Persona:
        w = self.world
        here = None if c.travelling else w.by_id[c.aoi]
        return Persona(c.person.id, c.person.name, c.person.profile, c.status(w), c.action,
                       here.name if here else "on the way", here.kind if here else "street",
                       w.by_id[c.work].name if c.work >= 0 else "nowhere", clock(self.day, self.t),
                       self.global_prompt, str(self.env.get("weather", "mild")), prices_of(self.env))

    def _dialog(self, result: StepResult, agent_id: int, kind: int, speaker: str, reply: Any,
                day: Optional[int] = None, t: Optional[float] = None) -> None:
        text = reply if isinstance(reply, str) else reply.text
        result.dialogs.append(Dialog(agent_id, self.day if day is None else day,
                                     float(self.t if t is None else t), kind, speaker, text))
        if not isinstance(reply, str):
            result.input_tokens += reply.input_tokens
            result.output_tokens += reply.output_tokens

    def _conversations(self, ctx: TickContext, result: StepResult) -> None:
        """Citizens awake at the same place talk in pairs; both keep both lines (speaker = who said it)."""
        groups: dict[int, list[Citizen]] = {}
        for c in self.citizens:
            if not c.travelling and c.activity != "sleep":
                groups.setdefault(c.aoi, []).append(c)
        pairs: list[tuple[Citizen, Citizen]] = []
        for aoi in sorted(groups):
            group = groups[aoi]
            if len(group) < 2:
                continue
            chance = TALK_CHANCE * ctx.tick / 300 * PLACE_TALKATIVENESS.get(self.world.by_id[aoi].kind, 1.0)
            free = list(group)
            for c in group:
                if c in free and len(free) > 1 and self.rng.random() < chance * c.person.sociability:
                    free.remove(c)
                    other = free.pop(self.rng.randrange(len(free)))
                    pairs.append((c, other))
        pairs = pairs[:getattr(self.mind, "max_talks_per_tick", len(pairs))]

        def converse(a: Persona, b: Persona, rng: random.Random) -> tuple[Any, Any]:
            opener = self.mind.talk(a, b, None, rng)
            return opener, self.mind.talk(b, a, opener.text, rng)

        replies = self._call_all([partial(converse, self._persona(x), self._persona(y))
                                  for x, y in pairs])
        for (a, b), (opener, answer) in zip(pairs, replies, strict=False):
            for speaker, line in ((a, opener), (b, answer)):
                self._dialog(result, a.person.id, TALK, str(speaker.person.id), line)
                self._dialog(result, b.person.id, TALK, str(speaker.person.id), line.text)  # tokens once
            for c in (a, b):
                c.social = round(min(SOCIAL_CAP, c.social + SOCIAL_BOOST), 4)

    def _answer_inbox(self, inbox: Inbox, result: StepResult) -> None:
        by_id = {c.person.id: c for c in self.citizens}
        for item in list(inbox.dialogs) + list(inbox.surveys):
            if item.agent_id not in by_id:
                self._log(result, f"inbox item {item.id}: no agent {item.agent_id}, dropped")
        dialogs = [d for d in inbox.dialogs if d.agent_id in by_id]
        replies = self._call_all([partial(self.mind.answer_user, self._persona(by_id[d.agent_id]), d.content)
                                  for d in dialogs])
        for d, reply in zip(dialogs, replies, strict=False):
            self._dialog(result, d.agent_id, USER, "user", d.content, d.day, d.t)
            self._dialog(result, d.agent_id, TALK, str(d.agent_id), reply)
        surveys = []
        for s in inbox.surveys:
            try:
                surveys.append((s, SurveyData.model_validate(s.survey)))
            except ValueError as e:
                self._log(result, f"inbox survey {s.id}: not a usable survey ({str(e).splitlines()[0]})")
        surveys = [(s, data) for s, data in surveys if s.agent_id in by_id]
        answers = self._call_all([partial(self.mind.answer_survey, self._persona(by_id[s.agent_id]), data)
                                  for s, data in surveys])
        for (s, _), answer in zip(surveys, answers, strict=False):
            self._survey_answer(result, s.agent_id, s.survey_id, answer)
        result.processed_inbox_ids.extend([d.id for d in inbox.dialogs] + [s.id for s in inbox.surveys])

    def _survey_answer(self, result: StepResult, agent_id: int, survey_id: str, answer: Any) -> SurveyAnswer:
        row = SurveyAnswer(agent_id, self.day, float(self.t), survey_id, answer.result)
        result.survey_answers.append(row)
        result.input_tokens += answer.input_tokens
        result.output_tokens += answer.output_tokens
        return row

    # ---- zero-tick workflow steps -------------------------------------------------------------------
    def _targets(self, ids: Optional[list[int]]) -> list[Citizen]:
        if ids is None:
            return list(self.citizens)
        wanted = set(ids)
        return [c for c in self.citizens if c.person.id in wanted]

    def _survey_step(self, step: SurveyStep, result: StepResult) -> None:
        data = SurveyData.model_validate(step.survey)
        resolved = step.survey if isinstance(step.survey, dict) else {"id": step.survey}
        survey_id, targets = survey_id_of(resolved), self._targets(step.target_agent)
        answers = self._call_all([partial(self.mind.answer_survey, self._persona(c), data) for c in targets])
        rows = [self._survey_answer(result, c.person.id, survey_id, a) for c, a in zip(targets, answers, strict=False)]
        self.last_survey = {"survey_id": survey_id, "day": self.day, "t": float(self.t),
                            "answers": [r.to_json() for r in rows]}
        self._log(result, f"survey {data.title or survey_id}: {len(rows)} answers")

    def _interview_step(self, step: InterviewStep, result: StepResult) -> None:
        targets = self._targets(step.target_agent)
        replies = self._call_all([partial(self.mind.answer_interview, self._persona(c), step.question)
                                  for c in targets])
        for c, reply in zip(targets, replies, strict=False):
            self._dialog(result, c.person.id, USER, "interviewer", step.question)
            self._dialog(result, c.person.id, TALK, str(c.person.id), reply)
        self._log(result, f"interview: {len(targets)} answers to {step.question[:60]!r}")

    def _save_context_step(self, step: SaveContextStep, result: StepResult) -> None:
        result.artifacts[step.save_as] = self._context_artifact(step.target)
        self._log(result, f"save_context {step.target} as {step.save_as!r}")

    def _intervene(self, step: InterveneStep, result: StepResult) -> None:
        if step.global_prompt is not None:
            self.prompt_text = step.global_prompt
        if step.key is not None:
            self.env[step.key] = step.value
        self.env.update(step.environment)
        prompt = self.global_prompt
        (outlook,) = self._call_all([partial(self.mind.interpret, prompt, dict(self.env))])
        result.input_tokens += outlook.input_tokens
        result.output_tokens += outlook.output_tokens
        shift = outlook.mood - self.mood
        self.mood, self.spending = outlook.mood, outlook.spending
        for c in self.citizens:  # news hits at once; live() then keeps happiness near the new level
            c.happiness = round(min(1.0, max(0.0, c.happiness + 0.1 * shift * c.person.sensitivity)), 4)
        self._log(result, f"intervene: mood {self.mood:+.2f}, spending x{self.spending:.2f}, "
                          f"environment {sorted(self.env)}")

    def _context_artifact(self, target: str) -> Any:
        if target == "profile":
            return [p.to_json() for p in self.profiles()]
        if target == "metrics":
            return {"day": self.day, "t": float(self.t), "step": self.ticks_done, "metrics": dict(self.last_metrics)}
        if target == "survey":
            return dict(self.last_survey)
        return {"day": self.day, "t": float(self.t), "agents": [s.to_json() for s in self.statuses()]}


# instant workflow step type -> what the engine does for it (timed kinds: chalicelib.sim.workflow)
INSTANT_STEPS: dict[str, Callable[[Simulation, Any, StepResult], None]] = {
    "survey": Simulation._survey_step,
    "interview": Simulation._interview_step,
    "intervene": Simulation._intervene,
    "environment": Simulation._intervene,
    "save_context": Simulation._save_context_step,
}
