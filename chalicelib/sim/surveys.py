"""SurveyJS questions as the engine sees them: flattening, rule-based answers, checking an LLM's answers."""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.sim.phrases import Persona, about, topic_of

if TYPE_CHECKING:
    import random

    from chalicelib.sim.spec import SurveyData

NO_ANSWER_TYPES = ("html", "image", "expression", "signaturepad", "file", "paneldynamic", "matrixdropdown",
                   "matrixdynamic")
CHOICE_TYPES = ("radiogroup", "dropdown", "imagepicker", "tagbox")
POSITIVE = {"yes", "good", "great", "excellent", "satisfied", "happy", "agree", "better", "more", "increase",
            "likely", "often", "always", "high", "positive", "confident", "optimistic", "support"}
NEGATIVE = {"no", "bad", "poor", "terrible", "dissatisfied", "unsatisfied", "unhappy", "disagree", "worse", "less",
            "decrease", "unlikely", "never", "rarely", "low", "negative", "worried", "pessimistic", "oppose"}
STRONG = {"very", "strongly", "extremely", "completely", "totally"}


def survey_id_of(survey: dict[str, Any]) -> str:
    """The survey's own id, else a stable one derived from its content (same survey, same id)."""
    if survey.get("id"):
        return str(survey["id"])
    digest = hashlib.sha256(json.dumps(survey, sort_keys=True, default=str).encode()).hexdigest()
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"agora-survey:{digest}"))


def questions(survey: SurveyData) -> list[dict[str, Any]]:
    """Every question that takes an answer, panels opened, in page order."""
    found: list[dict[str, Any]] = []

    def walk(elements: list[Any]) -> None:
        for element in elements:
            e = element if isinstance(element, dict) else element.model_dump()
            if e.get("type") == "panel":
                walk(e.get("elements") or [])
            elif e.get("name") and e.get("type", "text") not in NO_ANSWER_TYPES:
                found.append(e)

    for page in survey.pages:
        walk(page.elements)
    return found


def value_of(choice: Any) -> Any:
    return choice.get("value", choice.get("text")) if isinstance(choice, dict) else choice


def text_of(choice: Any) -> str:
    if isinstance(choice, dict):
        text = choice.get("text", choice.get("value"))
        return str(text.get("default", "") if isinstance(text, dict) else text)  # localised texts
    return str(choice)


def sentiment(text: str) -> float:
    """Crude polarity of a choice's wording: +/-1 per word, strengthened by 'very', flipped by 'not'."""
    score, weight, flip = 0.0, 1.0, 1.0
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in STRONG:
            weight = 1.5
        elif word == "not":
            flip = -1.0
        elif word in POSITIVE or word in NEGATIVE:
            score += (1 if word in POSITIVE else -1) * weight * flip
            weight, flip = 1.0, 1.0
    return score


def rating_scale(q: dict[str, Any]) -> list[Any]:
    if q.get("rateValues"):
        return [value_of(v) for v in q["rateValues"]]
    low = int(q.get("rateMin", 1))
    high = int(q.get("rateMax", low + int(q.get("rateCount", 5)) - 1))
    step = max(1, int(q.get("rateStep", 1)))
    return list(range(low, high + 1, step)) or [low]


def rule_answer(q: dict[str, Any], persona: Persona, rng: random.Random) -> Any:
    """An answer consistent with the citizen's state: ordered scales follow the topic's level, plus noise."""
    kind = q.get("type", "text")
    title = str(q.get("title") or q.get("name"))
    level = min(1.0, max(0.0, persona.level(topic_of(title)) + rng.gauss(0, 0.12)))
    if kind in CHOICE_TYPES:
        return _pick(q.get("choices") or [], level, rng)
    if kind == "checkbox":
        values = [value_of(c) for c in q.get("choices") or []]
        picked = [v for v in values if rng.random() < 0.4]
        return picked or values[:1]
    if kind == "ranking":
        values = [value_of(c) for c in q.get("choices") or []]
        rng.shuffle(values)
        return values
    if kind == "rating":
        scale = rating_scale(q)
        return scale[min(len(scale) - 1, int(level * len(scale)))]
    if kind == "boolean":
        yes = level >= 0.5
        return q.get("valueTrue", True) if yes else q.get("valueFalse", False)
    if kind == "matrix":
        columns = q.get("columns") or []
        return {str(value_of(r)): value_of(_pick(columns, level, rng, raw=True)) for r in q.get("rows") or []
                } if columns else {}
    if kind == "multipletext":
        return {str(i.get("name")): about(persona, topic_of(str(i.get("title") or i.get("name"))))
                for i in q.get("items") or [] if isinstance(i, dict)}
    if q.get("inputType") in ("number", "range"):
        return _number_about(title, persona, level)
    return about(persona, topic_of(title))


def _pick(choices: list[Any], level: float, rng: random.Random, raw: bool = False) -> Any:
    if not choices:
        return None
    scores = [sentiment(text_of(c)) for c in choices]
    top = max(abs(s) for s in scores)
    if top == 0:  # no wording to go by: any choice
        chosen = rng.choice(choices)
    else:
        wanted = 2 * level - 1  # -1 at the bad end, +1 at the good end
        chosen = min(zip(choices, scores, strict=False), key=lambda cs: abs(cs[1] / top - wanted))[0]
    return chosen if raw else value_of(chosen)


def _number_about(title: str, persona: Persona, level: float) -> Any:
    text = title.lower()
    if re.search(r"\bage\b|\bold\b", text):
        return persona.profile.get("age")
    if "income" in text or "salary" in text:
        return persona.profile.get("income")
    return round(level * 10)


def coerce(q: dict[str, Any], answer: Any) -> Optional[Any]:
    """An LLM's answer made to fit the question, or None when it does not (the caller falls back)."""
    kind = q.get("type", "text")
    if answer is None:
        return None
    if kind in CHOICE_TYPES:
        return _match(q.get("choices") or [], answer)
    if kind in ("checkbox", "ranking"):
        items = answer if isinstance(answer, list) else [answer]
        matched = [m for m in (_match(q.get("choices") or [], a) for a in items) if m is not None]
        return matched or None
    if kind == "rating":
        scale = rating_scale(q)
        try:
            number = float(answer)
        except (TypeError, ValueError):
            return _match(scale, answer)
        numeric = [s for s in scale if isinstance(s, (int, float))]
        return min(numeric, key=lambda s: abs(s - number)) if numeric else _match(scale, answer)
    if kind == "boolean":
        if isinstance(answer, bool):
            return answer
        text = str(answer).strip().lower()
        return True if text in ("yes", "true", "1", "y") else False if text in ("no", "false", "0", "n") else None
    if kind in ("matrix", "multipletext"):
        return answer if isinstance(answer, dict) else None
    if q.get("inputType") in ("number", "range"):
        try:
            return float(answer)
        except (TypeError, ValueError):
            return None
    return answer if isinstance(answer, str) else json.dumps(answer)


def _match(choices: list[Any], answer: Any) -> Optional[Any]:
    for c in choices:
        if value_of(c) == answer:
            return value_of(c)
    wanted = str(answer).strip().lower()
    for c in choices:
        if wanted in (str(value_of(c)).strip().lower(), text_of(c).strip().lower()):
            return value_of(c)
    return None


def describe_questions(items: list[dict[str, Any]]) -> str:
    """The questions in a compact form for an LLM prompt."""
    lines = []
    for q in items:
        line = f"- {q['name']} ({q.get('type', 'text')}): {q.get('title') or q['name']}"
        if q.get("choices"):
            line += " Choices: " + json.dumps([value_of(c) for c in q["choices"]], ensure_ascii=False)
        if q.get("type") == "rating":
            line += " Scale: " + json.dumps(rating_scale(q))
        if q.get("type") == "matrix":
            line += (" Rows: " + json.dumps([value_of(r) for r in q.get("rows") or []]) + " Columns: "
                     + json.dumps([value_of(c) for c in q.get("columns") or []]))
        lines.append(line)
    return "\n".join(lines)
