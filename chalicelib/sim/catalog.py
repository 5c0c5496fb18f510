"""What the reference engine offers, as AgentSociety's UI asks for it: agent classes with their
parameters and status attributes, behaviour blocks with theirs, and the workflow functions.

Every class, parameter, block and function listed here is honoured by the engine
(`population.py` reads the parameters, `citizens.py` and `engine.py` the blocks, `engine.py`
runs the functions); the look-up routes describe this module, so the UI never offers a choice the
engine would ignore. The descriptions follow AgentSociety's conversion of pydantic fields to UI
form parameters (`type` str|int|float|bool|select|select_multiple, `options`, `default`).
"""
from __future__ import annotations

import types
import typing
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chalicelib.domain.validation import validation_detail

CITIZEN, SUPERVISOR = "citizen", "supervisor"
DEFAULT_CITIZEN_CLASS = "SocietyAgent"  # AgentSociety's default citizen; "citizen" is accepted for it
CLASS_ALIASES = {"citizen": DEFAULT_CITIZEN_CLASS}


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a parameter the engine does not know is a 400, not ignored


class CitizenParams(_Params):
    sociability: float = Field(1.0, ge=0, le=10, description="How much more (above 1) or less (below 1) than their "
                                                             "personality says these citizens seek company and talk")
    thrift: float = Field(1.0, gt=0, le=10, description="Restraint in spending: above 1 they buy less and less often")
    news_sensitivity: float = Field(1.0, ge=0, le=10, description="How strongly the global prompt's news and "
                                                                   "interventions move their happiness")
    bedtime_thoughts: bool = Field(True, description="Whether they write down a thought when they go to bed")


class ModeratorParams(_Params):
    banned_words: str = Field("", max_length=2_000, description="Comma-separated words; a conversation in which "
                                                                "either line contains one is intercepted")
    action: Literal["block", "flag"] = Field("block", description="block: the conversation does not happen; "
                                                                  "flag: it happens and is counted")


class MobilityParams(_Params):
    speed_kmh: float = Field(18.0, gt=0, le=200, description="Travel speed through the city, km/h")
    search_limit: int = Field(3, ge=1, le=50, description="Among how many of the nearest places of a kind "
                                                          "a citizen picks where to go")


class SocialParams(_Params):
    talk_chance: float = Field(0.015, ge=0, le=1, description="Chance per 5 simulated minutes awake in company to "
                                                              "start a conversation, before sociability")


class EconomyParams(_Params):
    UBI: float = Field(0.0, ge=0, le=1_000_000, description="Universal basic income paid to every citizen at "
                                                            "midnight, per day")
    wage_factor: float = Field(1.0, ge=0, le=100, description="Multiplies what working citizens earn")


BLOCKS: dict[str, type[_Params]] = {"MobilityBlock": MobilityParams, "SocialBlock": SocialParams,
                                    "EconomyBlock": EconomyParams}
BLOCK_EFFECTS = {"MobilityBlock": "citizens move between home, work and other places (without it they stay home)",
                 "SocialBlock": "citizens talk with others at the same place (without it they never talk)",
                 "EconomyBlock": "citizens earn, spend and are paid the UBI (without it their money never changes)"}


class AgentClass(BaseModel):
    agent_type: str
    params: type[_Params]
    context: list[tuple[str, str, str]]  # (name, type, description) of what the agent's mind is told
    status_attributes: list[tuple[str, str, str]]
    description: str


CITIZEN_CONTEXT = [("name", "str", "The citizen's name"), ("occupation", "str", "The citizen's occupation"),
                   ("place", "str", "Where the citizen is now"), ("action", "str", "What the citizen is doing"),
                   ("time", "str", "Current simulated time, e.g. 'day 0 08:05'"),
                   ("prompt", "str", "The global prompt: news and situation of the city"),
                   ("weather", "str", "The weather (environment variable 'weather')"),
                   ("prices", "float", "The price level (environment variable 'prices', 1 is normal)"),
                   ("status", "dict", "The citizen's status attributes")]
CITIZEN_STATUS = [("happiness", "float", "agent's happiness, 0-1"), ("hunger", "float", "agent's hunger, 0-1"),
                  ("energy", "float", "agent's energy, 0-1"), ("health", "float", "agent's health, 0-1"),
                  ("money", "float", "agent's money"), ("consumption", "float", "agent's spending today"),
                  ("employment", "str", "employed, unemployed, student or retired"),
                  ("place", "str", "the name of the place the agent is at, or 'travelling'")]
CLASSES: dict[str, AgentClass] = {
    DEFAULT_CITIZEN_CLASS: AgentClass(
        agent_type=CITIZEN, params=CitizenParams, context=CITIZEN_CONTEXT, status_attributes=CITIZEN_STATUS,
        description="A citizen with a daily rhythm of sleep, work or school, meals, shopping and leisure; its "
                    "mind (rules or an LLM) talks, answers surveys and interviews and reads the news"),
    "ConversationModerator": AgentClass(
        agent_type=SUPERVISOR, params=ModeratorParams,
        context=[("conversation", "str", "The two lines of a conversation between citizens")],
        status_attributes=[("moderated_talks", "int", "conversations intercepted so far")],
        description="Watches every conversation between citizens and blocks or flags those with banned words"),
}
# status attributes a workflow's update_state may set, with the type its (text) value is read as
SETTABLE_STATUS = {"happiness": float, "hunger": float, "energy": float, "health": float, "money": float}
WORKFLOW_FUNCTIONS = {
    "do_nothing": "does nothing (AgentSociety's generic function)",
    "save_status_summary": "saves the mean of every numeric status attribute as the artifact 'status_summary'",
    "save_employment_report": "saves how many citizens are employed, unemployed, students or retired as the "
                              "artifact 'employment_report'",
    "send_everyone_home": "every citizen goes home and stops what they were doing",
}


def resolve_class(name: str) -> str:
    return CLASS_ALIASES.get(name, name)


AGENT_TYPES = (CITIZEN, SUPERVISOR)


def classes_of(agent_type: str) -> list[str]:
    if agent_type not in AGENT_TYPES:
        raise ValueError(f"Invalid agent_type. Must be 'citizen' or 'supervisor', got: {agent_type}")
    return [name for name, cls in CLASSES.items() if cls.agent_type == agent_type]


def agent_class(agent_type: str, name: str) -> AgentClass:
    available = classes_of(agent_type)
    resolved = resolve_class(name)
    if resolved not in available:
        raise ValueError(f"Invalid agent_class {name!r} for agent_type {agent_type!r}. "
                         f"Available classes: {available}")
    return CLASSES[resolved]


def checked(model: type[_Params], values: Optional[dict[str, Any]], what: str) -> _Params:
    """Parameters checked by their model; a ValueError lists what is wrong."""
    try:
        return model.model_validate(values or {})
    except ValidationError as exc:
        raise ValueError(f"{what}: {validation_detail(exc)}") from exc


def checked_blocks(blocks: Optional[dict[str, Any]]) -> dict[str, _Params]:
    """A group's blocks, each with checked parameters; an unknown block is a ValueError."""
    result: dict[str, _Params] = {}
    for name, params in (blocks or {}).items():
        if name not in BLOCKS:
            raise ValueError(f"Invalid block type: {name}. Available blocks: {sorted(BLOCKS)}")
        result[name] = checked(BLOCKS[name], params if isinstance(params, dict) else {}, f"block {name}")
    return result


# --- the look-ups' shapes ------------------------------------------------------------------------
def form_params(model: type[_Params]) -> list[dict[str, Any]]:
    """A params model as AgentSociety's UI form parameters (its `parse_pydantic_to_antd_form` rules)."""
    found = []
    for name, field in model.model_fields.items():
        kind, options = _form_type(field.annotation)
        found.append({"name": name, "required": field.is_required(),
                      "default": None if field.is_required() else field.get_default(call_default_factory=True),
                      "description": field.description, "type": kind, "options": options})
    return found


def _form_type(annotation: Any) -> tuple[str, list[dict[str, Any]]]:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "select", [{"label": str(v), "value": v} for v in typing.get_args(annotation)]
    if origin in (typing.Union, types.UnionType):
        first = next(a for a in typing.get_args(annotation) if a is not type(None))
        return _form_type(first)
    return {str: "str", int: "int", float: "float", bool: "bool"}[annotation], []


def table(rows: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"name": name, "type": kind, "description": description} for name, kind, description in rows]


def agent_param(agent_type: str, name: str) -> dict[str, Any]:
    cls = agent_class(agent_type, name)
    return {"params_type": form_params(cls.params), "context": table(cls.context),
            "status_attributes": table(cls.status_attributes)}


def block_param(block_type: str) -> dict[str, Any]:
    if block_type not in BLOCKS:
        raise ValueError(f"Invalid block type: {block_type}. Available blocks: {sorted(BLOCKS)}")
    return {"params_type": form_params(BLOCKS[block_type]), "context": []}
