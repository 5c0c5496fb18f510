"""The reference engine: runs a SimulationSpec's workflow in bounded, checkpointable slices."""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, Optional, TypeVar

from chalicelib.sim import catalog
from chalicelib.sim.citizens import FIELDS, Citizen, TickContext, metrics_of, prices_of
from chalicelib.sim.instant import INSTANT_STEPS
from chalicelib.sim.llm_client import LLMError
from chalicelib.sim.minds import Mind, MindFactory, RuleMind, default_mind_factory
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
    StatusRow,
    StepResult,
    SurveyAnswer,
    TickRecord,
)
from chalicelib.sim.spec import SECONDS_PER_DAY, SimulationSpec, SupervisorConfig, SurveyData
from chalicelib.sim.steps import AgentFilter, Target, describe, is_timed, step_seconds, tick_seconds
from chalicelib.sim.targets import matches
from chalicelib.sim.world import World

__all__ = ["Simulation", "StepResult", "TickRecord", "AgentStatus", "AgentProfile", "Dialog", "SurveyAnswer", "Inbox",
           "PendingDialog", "PendingSurvey", "Mind", "LLMError", "default_mind_factory"]

CHECKPOINT_VERSION = 2
PLACE_TALKATIVENESS = {"home": 0.5, "work": 0.6, "school": 0.8, "shop": 0.8, "leisure": 1.5}
BEDTIME_THOUGHT_CHANCE = 0.5
BEDTIME_MIN = 20 * 60
SOCIAL_BOOST, SOCIAL_CAP = 0.03, 0.15
R = TypeVar("R")


class Moderator:
    """AgentSociety's supervisor, as the engine has it: a ConversationModerator watching every talk."""

    def __init__(self, config: SupervisorConfig):
        params = catalog.ModeratorParams.model_validate(config.agent_params)
        words = [w.strip().lower() for w in params.banned_words.split(",") if w.strip()]
        self.pattern = re.compile("|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in words)) if words else None
        self.blocks = params.action == "block"

    def objects(self, *lines: str) -> bool:
        return self.pattern is not None and any(self.pattern.search(line.lower()) for line in lines)


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
        _check_targets(spec, {p.id for p in self.people})
        self.moderator = Moderator(spec.agents.supervisor) if spec.agents.supervisor else None
        # a workflow ending in instant steps ends with a snapshot, so their results lie on the timeline
        self.ends_with_snapshot = not is_timed(spec.workflow[-1])
        self.total_ticks_planned = sum(math.ceil(step_seconds(s) / tick_seconds(s))
                                       for s in spec.workflow if is_timed(s)) + self.ends_with_snapshot
        # run state; everything below is in the checkpoint
        self.day, self.t, self.ticks_done = 0, spec.start_t, 0
        self.step_index, self.step_left = 0, -1  # -1: the current run/step has not begun
        self.rng = random.Random(spec.seed)
        self.prompt_text = self.world.describe()
        self.env: dict[str, Any] = {}
        self.mood, self.spending = 0.0, 1.0
        self.citizens: list[Citizen] = []  # those still in the simulation (delete_agent removes)
        self.deleted: set[int] = set()
        self.moderated = 0  # conversations the moderator intercepted so far
        self.instant_dialogs = 0  # dialogs written at the current instant by instant steps, for its record
        self.unrecorded = False  # answers or dialogs stamped at the current instant, which no record holds yet
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
        sim.since_log, sim.moderated, sim.instant_dialogs = state["since_log"], state["moderated"], state["instant"]
        sim.unrecorded = state["unrecorded"]
        sim.deleted = set(state["deleted"])
        columns = state["agents"]
        alive = [p for p in sim.people if p.id not in sim.deleted]
        sim.citizens = [Citizen(p, [columns[f][i] for f in FIELDS]) for i, p in enumerate(alive)]
        return sim

    def checkpoint(self) -> bytes:
        version, internal, gauss = self.rng.getstate()
        state = {"v": CHECKPOINT_VERSION, "fp": _fingerprint(self.spec), "day": self.day, "t": self.t,
                 "ticks": self.ticks_done, "step": self.step_index, "left": self.step_left,
                 "rng": [version, list(internal), gauss], "prompt": self.prompt_text, "env": self.env,
                 "mood": self.mood, "spending": self.spending, "last_survey": self.last_survey,
                 "metrics": self.last_metrics, "since_log": self.since_log, "moderated": self.moderated,
                 "instant": self.instant_dialogs, "unrecorded": self.unrecorded, "deleted": sorted(self.deleted),
                 # columns compress far better than one object per citizen
                 "agents": {f: [getattr(c, f) for c in self.citizens] for f in FIELDS}}
        return zlib.compress(json.dumps(state, separators=(",", ":"), sort_keys=True).encode(), 9)

    @property
    def agent_count(self) -> int:
        """Agents the run began with (the work of a tick grows with them)."""
        return len(self.people)

    @property
    def rule_based(self) -> bool:
        """Whether every decision and word comes from the rules (no language model to call)."""
        return isinstance(self.mind, RuleMind)

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
        """Every agent the run began with; one deleted along the way keeps its profile, as in AgentSociety."""
        return [p.agent_profile() for p in self.people]

    def statuses(self) -> list[AgentStatus]:
        """Every citizen's status at the current instant (what a tick starting now would record)."""
        day, t = self.day, float(self.t)
        return [AgentStatus.of_row(row, day, t) for row in self.status_rows()]

    def status_rows(self) -> list[StatusRow]:
        """Every citizen's status at the current instant as rows (records.ROW_FIELDS): what a tick records."""
        world = self.world
        by_id, position = world.by_id, world.position
        rows: list[StatusRow] = []
        append = rows.append
        for c in self.citizens:
            if c.dest >= 0:  # between places: interpolated, no parent (Citizen.place)
                lng, lat = position(c.aoi, c.dest, (c.travel_total - c.travel_left) / c.travel_total)
                parent, place = None, "travelling"
            else:
                a = by_id[c.aoi]
                lng, lat, parent, place = a.lng, a.lat, c.aoi, a.name
            append((c.person.id, lng, lat, parent, c.action, c.happiness, c.hunger, c.energy, c.health, c.money,
                    c.spent_today, "employed" if c.employed else c.person.idle_employment, place))
        return rows

    @property
    def global_prompt(self) -> str:
        """The global prompt as written each tick: the situation text plus any environment variables."""
        if not self.env:
            return self.prompt_text
        env = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in sorted(self.env.items()))
        return f"{self.prompt_text}\nEnvironment: {env}"

    # ---- the work loop ------------------------------------------------------------------------------
    def advance(self, max_ticks: int = 12, inbox: Optional[Inbox] = None) -> StepResult:
        """Run up to max_ticks ticks; the instant steps (chalicelib.sim.instant) cost none.

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
                    self.log(result, f"step {self.step_index + 1}/{len(self.spec.workflow)}: {describe(step)}")
                length = min(tick_seconds(step), self.step_left)
                self._tick(length, result, pending)
                pending, ticks = None, ticks + 1
                self.step_left -= length
                if self.step_left <= 0:
                    self.step_index, self.step_left = self.step_index + 1, -1
            else:
                dialogs, answers = len(result.dialogs), len(result.survey_answers)
                INSTANT_STEPS[step.type](self, step, result)
                self.instant_dialogs += len(result.dialogs) - dialogs
                self.unrecorded |= len(result.dialogs) > dialogs or len(result.survey_answers) > answers
                self.step_index += 1
        if pending:
            self._answer_inbox(pending, result)
        if self.done and not was_done:
            if self.ends_with_snapshot:
                self._snapshot(result)
            self.log(result, "workflow finished")
        return result

    def log(self, result: StepResult, text: str) -> None:
        result.log_lines.append(f"{clock(self.day, self.t)} {text}")

    def _context(self, length: int) -> TickContext:
        return TickContext(self.day, self.t, length, self.world, self.mood, self.spending, prices_of(self.env),
                           self.env.get("weather", "mild"))

    def _tick(self, length: int, result: StepResult, inbox: Optional[Inbox]) -> None:
        ctx, rng = self._context(length), self.rng
        day, t = self.day, float(self.t)
        before = len(result.dialogs)
        sleepers: list[Citizen] = []
        decide, late = self.mind.decide, ctx.minute >= BEDTIME_MIN
        for c in self.citizens:
            c.tick_spent = 0.0
            if c.dest >= 0:  # travelling
                c.travel(ctx, rng)
            else:
                was = c.activity
                c.apply(decide(c, ctx, rng), ctx, rng)
                if (late and c.activity == "sleep" and was != "sleep"
                        and c.person.behaviour.bedtime_thoughts
                        and rng.random() < BEDTIME_THOUGHT_CHANCE):  # not those sleeping in at 8:00
                    sleepers.append(c)
            c.live(ctx, rng)
        if inbox:
            self._answer_inbox(inbox, result)
        self._conversations(ctx, result)
        thoughts = self.call_all([partial(self.mind.reflect, self.persona(c)) for c in sleepers])
        for c, reply in zip(sleepers, thoughts, strict=True):
            self.dialog(result, c.person.id, THOUGHT, "", reply)
        self._record(result, day, t, self.instant_dialogs + len(result.dialogs) - before)
        hour = self.t // 3600
        self.move_clock(length)
        for _ in range(self.day - day):
            for c in self.citizens:
                c.new_day(ctx, rng)
        if self.t // 3600 != hour:
            m, (dialogs, spent) = self.last_metrics, self.since_log
            self.log(result, f"{len(self.citizens)} agents, {dialogs} dialogs, happiness {m['mean_happiness']:.2f}, "
                             f"employment {m['employment_rate']:.0%}, consumption {spent:.0f}"
                             + (f", {self.moderated} talks moderated" if self.moderator else ""))
            self.since_log = [0, 0.0]

    def _record(self, result: StepResult, day: int, t: float, written: int) -> None:
        """The instant's record: every citizen's status, the global prompt and the metrics."""
        self.last_metrics = metrics_of(self.citizens, written)
        if self.moderator:
            self.last_metrics["moderated_talks"] = float(self.moderated)
        dialogs, spent = self.since_log
        self.since_log = [dialogs + written, round(spent + self.last_metrics["consumption"], 2)]
        result.ticks.append(TickRecord(self.ticks_done, day, t, self.status_rows(), self.global_prompt,
                                       self.last_metrics))
        self.ticks_done += 1
        self.instant_dialogs, self.unrecorded = 0, False

    def _snapshot(self, result: StepResult) -> None:
        """A record of the current instant without a tick, so that what was stamped at it lies on the timeline."""
        for c in self.citizens:
            c.tick_spent = 0.0
        self._record(result, self.day, float(self.t), self.instant_dialogs)

    def close_instant(self, result: StepResult) -> None:
        """Before the clock moves outside a tick (next_round): record the instant if results were stamped at it."""
        if self.unrecorded:
            self._snapshot(result)

    def move_clock(self, seconds: int) -> None:
        self.t += seconds
        if self.t >= SECONDS_PER_DAY:
            self.day, self.t = self.day + self.t // SECONDS_PER_DAY, self.t % SECONDS_PER_DAY

    # ---- who a step is for --------------------------------------------------------------------------
    def targets(self, target: Optional[Target], result: StepResult) -> list[Citizen]:
        """The citizens a step's target_agent names (None: all); ids no longer here are logged and skipped."""
        if target is None:
            return list(self.citizens)
        if isinstance(target, AgentFilter):
            classes = {catalog.resolve_class(name) for name in target.agent_class or ()}
            return [c for c in self.citizens if (not classes or c.person.agent_class in classes)
                    and (not target.filter_str or matches(target.filter_str, c.person.filter_view))]
        wanted = set(target)
        found = [c for c in self.citizens if c.person.id in wanted]
        if len(found) < len(wanted):
            gone = sorted(wanted - {c.person.id for c in found})
            self.log(result, f"agents {', '.join(map(str, gone[:20]))} have left the simulation, skipped")
        return found

    def remove(self, citizens: list[Citizen]) -> None:
        gone = {c.person.id for c in citizens}
        self.deleted |= gone
        self.citizens = [c for c in self.citizens if c.person.id not in gone]

    def attribute(self, c: Citizen, key: str) -> Any:
        """A status attribute, else a profile attribute, of a citizen (AgentSociety's `status.get(key)`)."""
        status = c.status(self.world)
        if key in status:
            return status[key]
        if key in ("id", "name"):
            return getattr(c.person, key)
        return c.person.profile.get(key)

    # ---- mind calls ---------------------------------------------------------------------------------
    def call_all(self, calls: list[Callable[[random.Random], R]]) -> list[R]:
        """Run mind calls, in parallel when the mind allows; each gets an rng seeded in order from ours."""
        seeds = [self.rng.getrandbits(64) for _ in calls]
        parallelism = getattr(self.mind, "parallelism", 1)
        if parallelism <= 1 or len(calls) <= 1:
            return [call(random.Random(seed)) for call, seed in zip(calls, seeds, strict=True)]
        with ThreadPoolExecutor(max_workers=min(parallelism, len(calls))) as pool:
            return list(pool.map(lambda cs: cs[0](random.Random(cs[1])), zip(calls, seeds, strict=True)))

    def persona(self, c: Citizen) -> Persona:
        w = self.world
        here = None if c.travelling else w.by_id[c.aoi]
        return Persona(c.person.id, c.person.name, c.person.profile, c.status(w), c.action,
                       here.name if here else "on the way", here.kind if here else "street",
                       w.by_id[c.work].name if c.work >= 0 else "nowhere", clock(self.day, self.t),
                       self.global_prompt, str(self.env.get("weather", "mild")), prices_of(self.env))

    def dialog(self, result: StepResult, agent_id: int, kind: int, speaker: str, reply: Any,
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
            if c.dest < 0 and c.activity != "sleep" and c.person.behaviour.social:
                groups.setdefault(c.aoi, []).append(c)
        pairs: list[tuple[Citizen, Citizen]] = []
        rng = self.rng
        for aoi in sorted(groups):
            group = groups[aoi]
            if len(group) < 2:
                continue
            chance = ctx.tick / 300 * PLACE_TALKATIVENESS.get(self.world.by_id[aoi].kind, 1.0)
            free = list(group)  # in group order: a partner is drawn by its position among those still free
            paired: set[int] = set()  # ids of the group's citizens no longer free (a set: groups run to hundreds)
            for c in group:
                p = c.person
                if (p.id not in paired and len(free) > 1
                        and rng.random() < chance * p.behaviour.talk_chance * p.sociability):
                    free.remove(c)
                    other = free.pop(rng.randrange(len(free)))
                    paired.update((p.id, other.person.id))
                    pairs.append((c, other))
        pairs = pairs[:getattr(self.mind, "max_talks_per_tick", len(pairs))]

        def converse(a: Persona, b: Persona, rng: random.Random) -> tuple[Any, Any]:
            opener = self.mind.talk(a, b, None, rng)
            return opener, self.mind.talk(b, a, opener.text, rng)

        replies = self.call_all([partial(converse, self.persona(x), self.persona(y)) for x, y in pairs])
        for (a, b), (opener, answer) in zip(pairs, replies, strict=True):
            if self.moderator and self.moderator.objects(opener.text, answer.text):
                self.moderated += 1
                if self.moderator.blocks:  # the words were said to the model, so they are paid for
                    result.input_tokens += opener.input_tokens + answer.input_tokens
                    result.output_tokens += opener.output_tokens + answer.output_tokens
                    continue
            for speaker, line in ((a, opener), (b, answer)):
                self.dialog(result, a.person.id, TALK, str(speaker.person.id), line)
                self.dialog(result, b.person.id, TALK, str(speaker.person.id), line.text)  # tokens once
            for c in (a, b):
                c.social = round(min(SOCIAL_CAP, c.social + SOCIAL_BOOST), 4)

    def _answer_inbox(self, inbox: Inbox, result: StepResult) -> None:
        """Users' chats and surveys: a chat's question keeps the instant the user sent it at, its answer
        is written now; a survey's answer keeps the instant it was sent at (AgentSociety)."""
        by_id = {c.person.id: c for c in self.citizens}
        for item in list(inbox.dialogs) + list(inbox.surveys):
            if item.agent_id not in by_id:
                self.log(result, f"inbox item {item.id}: agent {item.agent_id} is not in the simulation, dropped")
        dialogs = [d for d in inbox.dialogs if d.agent_id in by_id]
        replies = self.call_all([partial(self.mind.answer_user, self.persona(by_id[d.agent_id]), d.content)
                                 for d in dialogs])
        for d, reply in zip(dialogs, replies, strict=True):
            self.dialog(result, d.agent_id, USER, "user", d.content, d.day, d.t)
            self.dialog(result, d.agent_id, USER, "", reply)
        surveys = []
        for s in inbox.surveys:
            try:
                surveys.append((s, SurveyData.model_validate(s.survey)))
            except ValueError as e:
                self.log(result, f"inbox survey {s.id}: not a usable survey ({str(e).splitlines()[0]})")
        surveys = [(s, data) for s, data in surveys if s.agent_id in by_id]
        answers = self.call_all([partial(self.mind.answer_survey, self.persona(by_id[s.agent_id]), data)
                                 for s, data in surveys])
        for (s, _), answer in zip(surveys, answers, strict=True):
            self.survey_answer(result, s.agent_id, s.survey_id, answer, s.day, s.t)
        result.processed_inbox_ids.extend([d.id for d in inbox.dialogs] + [s.id for s in inbox.surveys])

    def survey_answer(self, result: StepResult, agent_id: int, survey_id: str, answer: Any,
                      day: Optional[int] = None, t: Optional[float] = None) -> SurveyAnswer:
        row = SurveyAnswer(agent_id, self.day if day is None else day, float(self.t if t is None else t),
                           survey_id, answer.result)
        result.survey_answers.append(row)
        result.input_tokens += answer.input_tokens
        result.output_tokens += answer.output_tokens
        return row


def check_population(spec: SimulationSpec) -> None:
    """What only the built population can tell about a spec (unique agent ids, the ids a workflow names);
    a ValueError says what is wrong."""
    _check_targets(spec, {p.id for p in build_population(spec, World(spec.map))})


def _check_targets(spec: SimulationSpec, ids: set[int]) -> None:
    """Agent ids a workflow names must be agents of the simulation (a ValueError says which are not)."""
    for index, step in enumerate(spec.workflow, start=1):
        target = getattr(step, "target_agent", None)
        if isinstance(target, list):
            unknown = sorted(set(target) - ids)
            if unknown:
                raise ValueError(f"workflow step {index} ({step.type}) names agents that the simulation does not "
                                 f"have: {', '.join(map(str, unknown[:20]))}")
