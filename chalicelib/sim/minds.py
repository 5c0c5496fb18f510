"""Pluggable minds: the seeded rule-based `RuleMind` and the OpenAI-compatible `LLMMind`.

The engine asks a mind for movement every tick (`decide`), to read the global prompt when it changes
(`interpret`), and for the "expensive" acts: talking, answering users, surveys and interviews, and
thinking about a message a workflow sends (`react`).
To keep LLM calls bounded, `LLMMind` sends only those expensive acts (and `interpret`, once per
intervention) to the model; movement, needs and bedtime thoughts stay rule-based, and the engine
starts at most `max_talks_per_tick` conversations per tick. Calls of one batch may run in parallel
(`parallelism`); each gets its own seeded `random.Random`, so results never depend on thread timing.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol

from chalicelib.sim.citizens import Citizen, Decision, TickContext, decide_by_rules
from chalicelib.sim.llm_client import ChatClient, Completion
from chalicelib.sim.phrases import Persona, about, feeling, read_news, small_talk, topic_of
from chalicelib.sim.spec import LLMEndpoint, SurveyData
from chalicelib.sim.surveys import coerce, describe_questions, questions, rule_answer

if TYPE_CHECKING:
    import random

MAX_PARALLEL_CALLS = 32  # threads per batch at most, whatever the endpoints allow
LLM_TALKS_PER_TICK = 4


@dataclass(frozen=True)
class Reply:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class SurveyReply:
    result: dict[str, Any]
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class Outlook:
    """How the global prompt leaves people: mood -1..1 and a spending factor around 1."""

    mood: float
    spending: float
    input_tokens: int = 0
    output_tokens: int = 0


class Mind(Protocol):
    parallelism: int  # calls of one batch that may run at once; 1 runs them in order on the caller's thread
    max_talks_per_tick: int

    def decide(self, citizen: Citizen, ctx: TickContext, rng: random.Random) -> Decision: ...

    def interpret(self, prompt: str, environment: dict[str, Any], rng: random.Random) -> Outlook: ...

    def talk(self, speaker: Persona, listener: Persona, heard: Optional[str], rng: random.Random) -> Reply: ...

    def answer_user(self, agent: Persona, message: str, rng: random.Random) -> Reply: ...

    def answer_survey(self, agent: Persona, survey: SurveyData, rng: random.Random) -> SurveyReply: ...

    def answer_interview(self, agent: Persona, question: str, rng: random.Random) -> Reply: ...

    def reflect(self, agent: Persona, rng: random.Random) -> Reply: ...

    def react(self, agent: Persona, message: str, rng: random.Random) -> Reply: ...


MindFactory = Callable[[list[LLMEndpoint]], Mind]


class RuleMind:
    """Deterministic: everything comes from the citizen's state and the rng it is given; no I/O, no clock."""

    parallelism = 1
    max_talks_per_tick = 1_000

    def decide(self, citizen: Citizen, ctx: TickContext, rng: random.Random) -> Decision:
        return decide_by_rules(citizen, ctx, rng)

    def interpret(self, prompt: str, environment: dict[str, Any], rng: random.Random) -> Outlook:
        mood, spending = read_news(prompt)
        return Outlook(mood, spending)

    def talk(self, speaker: Persona, listener: Persona, heard: Optional[str], rng: random.Random) -> Reply:
        return Reply(small_talk(speaker, listener, heard, rng))

    def answer_user(self, agent: Persona, message: str, rng: random.Random) -> Reply:
        p = agent.profile
        intro = f"Hi, I'm {agent.name}, a {p.get('age')}-year-old {p.get('occupation')}. I'm at {agent.place} now."
        return Reply(f"{intro} {about(agent, topic_of(message))}")

    def answer_survey(self, agent: Persona, survey: SurveyData, rng: random.Random) -> SurveyReply:
        return SurveyReply({q["name"]: rule_answer(q, agent, rng) for q in questions(survey)})

    def answer_interview(self, agent: Persona, question: str, rng: random.Random) -> Reply:
        topic = topic_of(question)
        extra = "" if topic == "happiness" else " " + about(agent, "happiness")
        return Reply(f"{about(agent, topic)}{extra}")

    def reflect(self, agent: Persona, rng: random.Random) -> Reply:
        s = agent.status
        day = "I worked today" if s.get("employment") == "employed" else "A quiet day"
        return Reply(f"{day}, spent {s.get('consumption', 0):.0f} and I feel "
                     f"{feeling(agent.level('happiness'))}. Time to sleep.")

    def react(self, agent: Persona, message: str, rng: random.Random) -> Reply:
        mood, _ = read_news(message)
        verdict = "good news" if mood > 0 else "worrying" if mood < 0 else "something to think about"
        first = message.split(". ")[0].strip().rstrip(".")[:120]
        return Reply(f"I was told: \"{first}\". That is {verdict}. {about(agent, topic_of(message))}")


class LLMMind:
    """Talks, answers and reads the news through an OpenAI-compatible chat API; moves by the rules."""

    max_talks_per_tick = LLM_TALKS_PER_TICK

    def __init__(self, endpoints: list[LLMEndpoint], fallback: Optional[RuleMind] = None):
        if not endpoints:
            raise ValueError("an LLM mind needs at least one endpoint")
        self.clients = [ChatClient(e) for e in endpoints]
        self.rules = fallback or RuleMind()
        self.parallelism = max(1, min(MAX_PARALLEL_CALLS, sum(e.concurrency for e in endpoints)))
        self._next = 0
        self._lock = threading.Lock()

    def _chat(self, system: str, user: str, max_tokens: int = 200) -> Completion:
        with self._lock:  # round-robin over the endpoints
            client = self.clients[self._next % len(self.clients)]
            self._next += 1
        return client.chat([{"role": "system", "content": system}, {"role": "user", "content": user}],
                           max_tokens=max_tokens)

    @staticmethod
    def _system(agent: Persona) -> str:
        return (f"{agent.describe()}\nWhat is going on in the city: {agent.prompt}\n"
                "Stay in character. Answer briefly, in the first person, without narration.")

    def decide(self, citizen: Citizen, ctx: TickContext, rng: random.Random) -> Decision:
        return self.rules.decide(citizen, ctx, rng)

    def interpret(self, prompt: str, environment: dict[str, Any], rng: random.Random) -> Outlook:
        c = self._chat("You rate how news affects ordinary citizens. Reply with JSON only.",
                       f"News and situation: {prompt}\nEnvironment: {json.dumps(environment, default=str)}\n"
                       'Reply {"mood": number from -1 (very bad) to 1 (very good), '
                       '"spending": factor from 0.5 (people spend much less) to 1.5 (much more)}', 60)
        data = _json_object(c.text)
        fallback = self.rules.interpret(prompt, environment, rng)
        try:
            mood = max(-1.0, min(1.0, float(data.get("mood", fallback.mood))))
            spending = max(0.5, min(1.5, float(data.get("spending", fallback.spending))))
        except (TypeError, ValueError):
            mood, spending = fallback.mood, fallback.spending
        return Outlook(round(mood, 4), round(spending, 4), c.input_tokens, c.output_tokens)

    def talk(self, speaker: Persona, listener: Persona, heard: Optional[str], rng: random.Random) -> Reply:
        other = f"{listener.name}, a {listener.profile.get('occupation')}"
        ask = (f"You meet {other} at {speaker.place}. Say one or two sentences to start a conversation."
               if heard is None else f"{other} says to you: \"{heard}\". Reply in one or two sentences.")
        c = self._chat(self._system(speaker), ask, 120)
        return Reply(c.text, c.input_tokens, c.output_tokens)

    def answer_user(self, agent: Persona, message: str, rng: random.Random) -> Reply:
        c = self._chat(self._system(agent), f"Someone sends you this message: \"{message}\". Reply.", 200)
        return Reply(c.text, c.input_tokens, c.output_tokens)

    def answer_interview(self, agent: Persona, question: str, rng: random.Random) -> Reply:
        c = self._chat(self._system(agent), f"An interviewer asks: \"{question}\". Answer honestly.", 200)
        return Reply(c.text, c.input_tokens, c.output_tokens)

    def answer_survey(self, agent: Persona, survey: SurveyData, rng: random.Random) -> SurveyReply:
        items = questions(survey)
        c = self._chat(self._system(agent),
                       f"Please fill in the survey \"{survey.title}\".\n{describe_questions(items)}\n"
                       "Reply with one JSON object mapping each question name to your answer (a choice's value "
                       "for choice questions, a list for checkbox, a number for rating, true/false for boolean, "
                       "a sentence for text).", 400)
        given = _json_object(c.text)
        result = {}
        for q in items:  # answers the model left out or got wrong fall back to the rules, never to nothing
            answer = coerce(q, given.get(q["name"]))
            result[q["name"]] = answer if answer is not None else rule_answer(q, agent, rng)
        return SurveyReply(result, c.input_tokens, c.output_tokens)

    def reflect(self, agent: Persona, rng: random.Random) -> Reply:
        return self.rules.reflect(agent, rng)  # one per citizen per day: too many calls for little value

    def react(self, agent: Persona, message: str, rng: random.Random) -> Reply:
        c = self._chat(self._system(agent), f"You receive this message: \"{message}\". Write down your thought "
                                            "about it in one or two sentences.", 120)
        return Reply(c.text, c.input_tokens, c.output_tokens)


def _json_object(text: str) -> dict[str, Any]:
    """The first {...} in a model's answer (models like to wrap JSON in prose or code fences)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        data = json.loads(text[start:end + 1])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def default_mind_factory(endpoints: list[LLMEndpoint]) -> Mind:
    """RuleMind when the first endpoint is `builtin`, else an LLMMind over the non-builtin endpoints."""
    if not endpoints or endpoints[0].provider == "builtin":
        return RuleMind()
    return LLMMind([e for e in endpoints if e.provider != "builtin"])
