"""What a mind is told about a citizen (Persona) and the rule-based mind's wording."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random

# Substrings of a question -> which of the citizen's state it is about (first match wins).
TOPICS = (("hung", "hunger"), ("food", "hunger"), ("tired", "tiredness"), ("energ", "energy"), ("sleep", "energy"),
          ("health", "health"), ("sick", "health"), ("money", "wealth"), ("income", "wealth"),
          ("financ", "wealth"), ("wage", "wealth"), ("salary", "wealth"), ("afford", "wealth"),
          ("spend", "spending"), ("consum", "spending"), ("buy", "spending"), ("shop", "spending"),
          ("price", "prices"), ("job", "work"), ("work", "work"), ("employ", "work"), ("career", "work"))
NEWS_WORDS = {  # global-prompt words -> (mood, spending) pushes, for the rule-based reading of interventions
    "crisis": (-0.5, -0.3), "recession": (-0.5, -0.3), "layoff": (-0.4, -0.2), "unemployment": (-0.3, -0.15),
    "pandemic": (-0.6, -0.3), "lockdown": (-0.5, -0.4), "epidemic": (-0.5, -0.3), "war": (-0.7, -0.3),
    "inflation": (-0.3, -0.2), "tax": (-0.2, -0.1), "flood": (-0.5, -0.2), "storm": (-0.3, -0.1),
    "disaster": (-0.6, -0.3), "scandal": (-0.2, 0.0), "shortage": (-0.3, -0.1), "strike": (-0.2, -0.1),
    "festival": (0.4, 0.3), "holiday": (0.3, 0.25), "bonus": (0.4, 0.3), "subsidy": (0.3, 0.3),
    "coupon": (0.2, 0.4), "discount": (0.2, 0.35), "sale": (0.1, 0.3), "growth": (0.3, 0.2), "boom": (0.4, 0.3),
    "celebrat": (0.4, 0.2), "victory": (0.4, 0.2), "raise": (0.3, 0.2), "sunny": (0.1, 0.05), "peace": (0.3, 0.1),
}
# word starts only: "war" must not match "toward", "sale" not "wholesale"
NEWS_PATTERNS = tuple((re.compile(r"\b" + word), NEWS_WORDS[word]) for word in sorted(NEWS_WORDS))


@dataclass(frozen=True)
class Persona:
    """A read-only snapshot of one citizen at one instant; safe to hand to threads."""

    id: int
    name: str
    profile: dict[str, Any]
    status: dict[str, Any]
    action: str
    place: str
    place_kind: str
    workplace: str
    time: str  # "day 0 08:05"
    prompt: str  # the global prompt (news, situation)
    weather: str
    prices: float

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name else f"agent {self.id}"

    def level(self, topic: str) -> float:
        """How high (0-1) the citizen's state is on a topic; 1 is the good end."""
        s = self.status
        if topic == "hunger":
            return float(s.get("hunger", 0.5))
        if topic == "tiredness":
            return 1 - float(s.get("energy", 0.5))
        if topic in ("energy", "health"):
            return float(s.get(topic, 0.5))
        if topic == "wealth":
            income = float(self.profile.get("income") or 0) + 1
            return min(1.0, float(s.get("money", 0)) / (2 * income))
        if topic == "spending":
            return min(1.0, float(s.get("consumption", 0)) / 100)
        if topic == "prices":
            return min(1.0, self.prices / 2)
        if topic == "work":
            return 0.8 if s.get("employment") == "employed" else 0.3
        return float(s.get("happiness", 0.5))

    def describe(self) -> str:
        p = self.profile
        return (f"You are {self.name}, a {p.get('age')}-year-old {p.get('gender')} {p.get('occupation')} "
                f"({p.get('education')}, monthly income {p.get('income')}, personality {p.get('personality')}). "
                f"It is {self.time}. You are at {self.place} ({self.action}). Your state: "
                + ", ".join(f"{k} {v}" for k, v in self.status.items() if k != "place") + ".")


def topic_of(question: str) -> str:
    text = question.lower()
    return next((topic for word, topic in TOPICS if word in text), "happiness")


def feeling(level: float) -> str:
    return ("miserable" if level < 0.2 else "rather unhappy" if level < 0.4 else "okay" if level < 0.6
            else "quite happy" if level < 0.8 else "really happy")


def read_news(prompt: str) -> tuple[float, float]:
    """Mood (-1..1) and spending factor (0.5..1.5) a text suggests, from its words."""
    text = prompt.lower()
    mood = spending = 0.0
    for pattern, (m, sp) in NEWS_PATTERNS:  # in sorted word order: the float sum never depends on dict order
        if pattern.search(text):
            mood, spending = mood + m, spending + sp
    mood = max(-1.0, min(1.0, mood))
    return round(mood, 4), round(max(0.5, min(1.5, 1 + spending)), 4)


def about(persona: Persona, topic: str) -> str:
    """One first-person sentence on a topic, with the numbers behind it."""
    s, p = persona.status, persona.profile
    if topic in ("hunger",):
        return f"I am {'hungry' if persona.level('hunger') > 0.6 else 'not very hungry'} right now."
    if topic in ("tiredness", "energy"):
        rest = "I could use some rest" if s.get("energy", 1) < 0.4 else "I feel fit"
        return f"My energy is at {s.get('energy', 0):.0%}, {rest}."
    if topic == "health":
        return f"My health is {'poor lately' if s.get('health', 1) < 0.5 else 'fine'}."
    if topic == "wealth":
        return f"I have {s.get('money', 0):.0f} in savings on a monthly income of {p.get('income')}."
    if topic in ("spending", "prices"):
        dear = "expensive" if persona.prices > 1.05 else "cheap" if persona.prices < 0.95 else "normal"
        return f"I spent {s.get('consumption', 0):.0f} today; prices feel {dear}."
    if topic == "work":
        if s.get("employment") == "employed":
            return f"I work as a {p.get('occupation')} at {persona.workplace}."
        return f"I am {s.get('employment')} at the moment."
    return f"I feel {feeling(persona.level('happiness'))} (happiness {s.get('happiness', 0):.2f})."


def small_talk(speaker: Persona, listener: Persona, heard: str | None, rng: random.Random) -> str:
    """A line of conversation: an opener, or a reply to what was just heard."""
    if heard is not None:
        agree = rng.choice(("I know what you mean.", "Really?", "Same here.", "That's interesting.", "Hm, maybe."))
        return f"{agree} {about(speaker, rng.choice(('happiness', 'work', 'spending', 'energy')))}"
    topics = ["happiness", "work", "spending", "weather", "place"]
    if speaker.prompt and read_news(speaker.prompt)[0] != 0:
        topics += ["news", "news"]  # people talk about what is going on
    topic = rng.choice(topics)
    hello = rng.choice(("Hi", "Hello", "Hey", "Good to see you"))
    if topic == "weather":
        line = f"What {speaker.weather} weather today."
    elif topic == "place":
        line = f"I come to {speaker.place} quite often."
    elif topic == "news":
        line = "Did you hear? " + speaker.prompt.split(". ")[0].strip().rstrip(".") + "."
    else:
        line = about(speaker, topic)
    return f"{hello} {listener.first_name}! {line}"
