"""Workflow steps, exactly as AgentSociety defines them (`configs/exp.py` WorkflowStepConfig), plus Agora's own.

AgentSociety's types: run, step (timed); interview, survey, environment, update_state, message,
next_round, save_context, function, delete_agent, other (instant). Their fields keep
AgentSociety's names (`interview_message`, `intervene_message`, `target_agent`, `key`, `value`,
`save_as`, `func`). Agora's extensions, documented in the README: `question` for an interview's
message, an `intervene` type that rewrites the global prompt, `save_context` with `target` instead
of `key`, and `target_agent` left out meaning every citizen where AgentSociety requires it.
A combination the engine cannot do is a 400 that says so, never a step that silently does nothing.
"""
from __future__ import annotations

from typing import Annotated, Any, Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

from chalicelib.sim import catalog
from chalicelib.sim.targets import check_filter

SECONDS_PER_DAY = 86_400
DEFAULT_TICK_SECONDS = 300  # 288 ticks a day


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Optional[StrictStr] = None

    @model_validator(mode="before")
    @classmethod
    def _drop_unset(cls, data: Any) -> Any:
        """AgentSociety's UI sends every field of its one step model; unset ones arrive as null."""
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class AgentFilter(BaseModel):
    """Which agents a step is for: by class, by an expression over their profile, or both."""

    model_config = ConfigDict(extra="forbid")

    agent_class: Optional[list[StrictStr]] = Field(default=None, max_length=20)
    filter_str: Optional[Annotated[StrictStr, Field(min_length=1, max_length=2_000)]] = None

    @model_validator(mode="after")
    def _one(self) -> AgentFilter:
        if not self.agent_class and not self.filter_str:
            raise ValueError("Please provide at least one of agent_class or filter_str for AgentFilterConfig")
        for name in self.agent_class or ():
            if catalog.resolve_class(name) not in catalog.CLASSES:
                raise ValueError(f"unknown agent_class {name!r}; the engine has {sorted(catalog.CLASSES)}")
        if self.filter_str:
            check_filter(self.filter_str)
        return self


Target = Union[Annotated[list[StrictInt], Field(min_length=1, max_length=10_000)], AgentFilter]


class RunDaysStep(_Step):
    type: Literal["run"]
    days: Annotated[float, Field(gt=0, le=365)] = 1
    ticks_per_step: Annotated[StrictInt, Field(ge=60, le=3_600)] = DEFAULT_TICK_SECONDS


class RunTicksStep(_Step):
    type: Literal["step"]
    steps: Annotated[StrictInt, Field(ge=1, le=100_000)] = 1
    ticks_per_step: Annotated[StrictInt, Field(ge=60, le=3_600)] = DEFAULT_TICK_SECONDS


class SurveyStep(_Step):
    type: Literal["survey"]
    survey: Union[StrictStr, dict[str, Any]]  # a survey id (resolved at launch) or the survey itself
    target_agent: Optional[Target] = None  # Agora: left out, every citizen


class InterviewStep(_Step):
    type: Literal["interview"]
    interview_message: Optional[Annotated[StrictStr, Field(min_length=1, max_length=4_000)]] = None
    question: Optional[Annotated[StrictStr, Field(min_length=1, max_length=4_000)]] = None  # Agora's name
    target_agent: Optional[Target] = None  # Agora: left out, every citizen

    @model_validator(mode="after")
    def _message(self) -> InterviewStep:
        if (self.interview_message is None) == (self.question is None):
            raise ValueError("an interview step needs interview_message (or Agora's question), not both")
        return self

    @property
    def message(self) -> str:
        return self.interview_message or self.question or ""


class InterveneStep(_Step):
    """`environment` (AgentSociety: set environment variable `key` to `value`) and Agora's `intervene`,
    which may also rewrite the global prompt or set several variables at once."""

    type: Literal["intervene", "environment"]
    global_prompt: Optional[Annotated[StrictStr, Field(max_length=10_000)]] = None
    key: Optional[Annotated[StrictStr, Field(min_length=1, max_length=200)]] = None
    value: Any = None
    environment: dict[StrictStr, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> InterveneStep:
        if self.type == "environment" and self.global_prompt is None and not self.environment \
                and (self.key is None or self.value is None):
            raise ValueError("key and value are required for ENVIRONMENT_INTERVENE step")
        if self.global_prompt is None and self.key is None and not self.environment:
            raise ValueError("an intervene step changes global_prompt, key/value or environment")
        return self


class UpdateStateStep(_Step):
    """Set one status attribute of the target agents (AgentSociety's `status.update(key, value)`)."""

    type: Literal["update_state"]
    key: StrictStr
    value: Any
    target_agent: Target

    @field_validator("key")
    @classmethod
    def _settable(cls, key: str) -> str:
        if key not in catalog.SETTABLE_STATUS:
            raise ValueError(f"update_state can set {sorted(catalog.SETTABLE_STATUS)}; {key!r} is not one of "
                             "the engine's settable status attributes")
        return key

    @model_validator(mode="after")
    def _number(self) -> UpdateStateStep:
        try:
            self.value = catalog.SETTABLE_STATUS[self.key](self.value)  # the UI sends text
        except (TypeError, ValueError) as exc:
            raise ValueError(f"update_state of {self.key!r} needs a number, got {self.value!r}") from exc
        if self.key != "money" and not 0 <= self.value <= 1:
            raise ValueError(f"{self.key} lies between 0 and 1, got {self.value}")
        return self


class MessageStep(_Step):
    """A message to the target agents, who react to it (a thought, a change of mood). `other` is
    AgentSociety's INTERVENE, which does the same; its `func`, if given, runs after it."""

    type: Literal["message", "other"]
    intervene_message: Annotated[StrictStr, Field(min_length=1, max_length=4_000)]
    target_agent: Target
    func: Optional[StrictStr] = None

    @field_validator("func")
    @classmethod
    def _known(cls, func: Optional[str]) -> Optional[str]:
        return _known_function(func) if func is not None else None


class NextRoundStep(_Step):
    """Every agent goes home and starts afresh (memory kept); the clock moves one second (AgentSociety)."""

    type: Literal["next_round"]
    target_agent: Any = None

    @model_validator(mode="after")
    def _everyone(self) -> NextRoundStep:
        if self.target_agent is not None:
            raise ValueError("target_agent is not allowed for NEXT_ROUND step")
        return self


class SaveContextStep(_Step):
    """AgentSociety: `{agent id: value of key}` of the target agents saved as artifact `save_as`;
    Agora: without `key`, `target` saves all statuses, profiles, the metrics or the last survey."""

    type: Literal["save_context"]
    save_as: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    key: Optional[Annotated[StrictStr, Field(min_length=1, max_length=200)]] = None
    target_agent: Optional[Target] = None
    target: Literal["status", "profile", "metrics", "survey"] = "status"

    @model_validator(mode="after")
    def _key(self) -> SaveContextStep:
        if self.key is not None and self.target_agent is None:
            raise ValueError("target_agent, key and save_as are required for SAVE_CONTEXT step")
        return self


class FunctionStep(_Step):
    type: Literal["function"]
    func: StrictStr

    @field_validator("func")
    @classmethod
    def _known(cls, func: str) -> str:
        return _known_function(func)


class DeleteAgentStep(_Step):
    """The target agents leave the simulation: not simulated any more, their records kept."""

    type: Literal["delete_agent"]
    target_agent: Target


def _known_function(func: str) -> str:
    if func not in catalog.WORKFLOW_FUNCTIONS:
        raise ValueError(f"unknown workflow function {func!r}; the engine has {sorted(catalog.WORKFLOW_FUNCTIONS)}")
    return func


WorkflowStep = Annotated[
    Union[RunDaysStep, RunTicksStep, SurveyStep, InterviewStep, InterveneStep, UpdateStateStep, MessageStep,
          NextRoundStep, SaveContextStep, FunctionStep, DeleteAgentStep],
    Field(discriminator="type")]
WorkflowConfig = Annotated[list[WorkflowStep], Field(min_length=1, max_length=1_000)]


# --- simulated time of the timed kinds -------------------------------------------------------------
def _run_days_seconds(step: RunDaysStep) -> int:
    return max(1, int(round(step.days * SECONDS_PER_DAY)))


def _run_ticks_seconds(step: RunTicksStep) -> int:
    return step.steps * step.ticks_per_step


# step type -> simulated seconds it lasts; every other kind takes no simulated time (engine.INSTANT_STEPS)
TIMED_STEPS: dict[str, Callable[[Any], int]] = {"run": _run_days_seconds, "step": _run_ticks_seconds}
TIMED_DESCRIPTIONS: dict[str, Callable[[Any], str]] = {
    "run": lambda step: f"run {step.days:g} day(s), {step.ticks_per_step} s per tick",
    "step": lambda step: f"{step.steps} tick(s) of {step.ticks_per_step} s",
}


def is_timed(step: Any) -> bool:
    return step.type in TIMED_STEPS


def step_seconds(step: Any) -> int:
    """Simulated seconds a step lasts (0 for the instant kinds)."""
    seconds = TIMED_STEPS.get(step.type)
    return seconds(step) if seconds else 0


def tick_seconds(step: Any) -> int:
    """Simulated seconds of one tick of a timed step."""
    return int(step.ticks_per_step)


def describe(step: Any) -> str:
    return TIMED_DESCRIPTIONS[step.type](step) if is_timed(step) else step.type
