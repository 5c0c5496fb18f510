"""What a simulation is made of: LLM, agents, map, workflow and survey configs (pydantic, validated once).

Field names follow AgentSociety's web API where it has them, so its configs and UI keep working.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

Provider = Literal["openai", "deepseek", "qwen", "zhipuai", "siliconflow", "volcengine", "vllm", "builtin"]
START_OF_DAY = 8 * 3600  # AgentSociety starts every simulation at 8:00
SECONDS_PER_DAY = 86_400
DEFAULT_TICK_SECONDS = 300  # 288 ticks a day


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMEndpoint(_Model):
    provider: Provider
    base_url: Optional[Annotated[StrictStr, Field(max_length=2_048)]] = None
    api_key: Annotated[StrictStr, Field(max_length=4_096, repr=False)] = ""  # repr=False: never in a log or traceback
    model: Annotated[StrictStr, Field(max_length=256)] = "builtin"
    concurrency: Annotated[StrictInt, Field(ge=1, le=1_000)] = 200
    timeout: Annotated[float, Field(gt=0, le=600)] = 30

    @model_validator(mode="after")
    def _needs(self) -> LLMEndpoint:
        if self.provider != "builtin":
            if not self.model or self.model == "builtin":
                raise ValueError(f"provider {self.provider} needs a model name")
            if self.provider == "vllm" and not self.base_url:
                raise ValueError("provider vllm needs a base_url")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        return self


LLMConfig = Annotated[list[LLMEndpoint], Field(min_length=1, max_length=16)]


class Distribution(_Model):
    """How one profile attribute is drawn: choice (weighted), uniform_int, normal (clipped), constant."""

    dist: Literal["choice", "uniform_int", "normal", "constant"]
    choices: Optional[list[Union[StrictStr, float, int]]] = None
    weights: Optional[list[Annotated[float, Field(ge=0)]]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    mean: Optional[float] = None
    std: Optional[Annotated[float, Field(ge=0)]] = None
    value: Any = None

    @model_validator(mode="after")
    def _shape(self) -> Distribution:
        if self.dist == "choice":
            if not self.choices:
                raise ValueError("a choice distribution needs choices")
            if self.weights is not None and (len(self.weights) != len(self.choices) or sum(self.weights) <= 0):
                raise ValueError("weights must match choices and not all be zero")
        elif self.dist == "uniform_int":
            if self.min is None or self.max is None or self.min > self.max:
                raise ValueError("a uniform_int distribution needs min <= max")
        elif self.dist == "normal":
            if self.mean is None or self.std is None:
                raise ValueError("a normal distribution needs mean and std")
        elif self.value is None:
            raise ValueError("a constant distribution needs a value")
        return self


PROFILE_ATTRIBUTES = ("age", "gender", "education", "occupation", "income", "personality")


class CitizenGroup(BaseModel):
    model_config = ConfigDict(extra="allow")  # AgentSociety's groups carry more keys (agent_params, blocks ...)

    agent_class: StrictStr = "citizen"
    number: Annotated[StrictInt, Field(ge=0, le=10_000)] = 0
    memory_distributions: dict[StrictStr, Distribution] = Field(default_factory=dict)
    profiles: list[dict[StrictStr, Any]] = Field(default_factory=list, max_length=10_000)
    memory_from_file: Optional[StrictStr] = None


class AgentsConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    citizens: list[CitizenGroup] = Field(min_length=1, max_length=100)
    firms: list[dict[str, Any]] = Field(default_factory=list)
    banks: list[dict[str, Any]] = Field(default_factory=list)
    nbs: list[dict[str, Any]] = Field(default_factory=list)
    governments: list[dict[str, Any]] = Field(default_factory=list)
    supervisor: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _size(self) -> AgentsConfig:
        total = sum(max(g.number, len(g.profiles)) for g in self.citizens)
        if not 1 <= total <= 10_000:
            raise ValueError(f"a simulation has 1 to 10,000 citizens, this config makes {total}")
        return self


class MapConfig(_Model):
    """A map file in S3 under the owning tenant's map prefix (see store.keys.map_key)."""

    file_path: Annotated[StrictStr, Field(min_length=1, max_length=1_024)]




class Aoi(_Model):
    id: StrictInt
    kind: Literal["home", "work", "shop", "leisure", "school", "hospital", "other"]
    name: StrictStr = ""
    lng: float
    lat: float


class MapData(_Model):
    """The content of a map file: areas of interest with their kind and position."""

    name: StrictStr = "city"
    aois: list[Aoi] = Field(min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _kinds(self) -> MapData:
        kinds = {a.kind for a in self.aois}
        if "home" not in kinds or "work" not in kinds:
            raise ValueError("a map needs at least one home and one work area")
        if len({a.id for a in self.aois}) != len(self.aois):
            raise ValueError("area ids must be unique")
        return self


class RunDaysStep(_Model):
    type: Literal["run"]
    days: Annotated[float, Field(gt=0, le=365)] = 1
    ticks_per_step: Annotated[StrictInt, Field(ge=60, le=3_600)] = DEFAULT_TICK_SECONDS
    description: StrictStr = ""


class RunTicksStep(_Model):
    type: Literal["step"]
    steps: Annotated[StrictInt, Field(ge=1, le=100_000)] = 1
    ticks_per_step: Annotated[StrictInt, Field(ge=60, le=3_600)] = DEFAULT_TICK_SECONDS
    description: StrictStr = ""


class SurveyStep(_Model):
    type: Literal["survey"]
    survey: Union[StrictStr, dict[str, Any]]  # a survey id (resolved at launch) or the survey itself
    target_agent: Optional[list[StrictInt]] = None  # None: every citizen
    description: StrictStr = ""


class InterviewStep(_Model):
    type: Literal["interview"]
    question: Annotated[StrictStr, Field(min_length=1, max_length=4_000)]
    target_agent: Optional[list[StrictInt]] = None
    description: StrictStr = ""


class InterveneStep(_Model):
    """Change the global prompt and/or environment variables (AgentSociety's `environment` step too)."""

    type: Literal["intervene", "environment"]
    global_prompt: Optional[Annotated[StrictStr, Field(max_length=10_000)]] = None
    key: Optional[StrictStr] = None
    value: Any = None
    environment: dict[StrictStr, Any] = Field(default_factory=dict)
    description: StrictStr = ""

    @model_validator(mode="after")
    def _something(self) -> InterveneStep:
        if self.global_prompt is None and self.key is None and not self.environment:
            raise ValueError("an intervene step changes global_prompt, key/value or environment")
        return self


class SaveContextStep(_Model):
    type: Literal["save_context"]
    save_as: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    target: Literal["status", "profile", "metrics", "survey"] = "status"
    description: StrictStr = ""


WorkflowStep = Annotated[Union[RunDaysStep, RunTicksStep, SurveyStep, InterviewStep, InterveneStep, SaveContextStep],
                         Field(discriminator="type")]
WorkflowConfig = Annotated[list[WorkflowStep], Field(min_length=1, max_length=1_000)]


class SurveyQuestion(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: StrictStr
    title: StrictStr = ""
    type: StrictStr = "text"  # text | radiogroup | checkbox | boolean | rating | matrix
    choices: list[Any] = Field(default_factory=list)


class SurveyPage(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: StrictStr = "page1"
    elements: list[SurveyQuestion] = Field(default_factory=list)


class SurveyData(BaseModel):
    """SurveyJS JSON as AgentSociety stores it; only pages/elements matter to the engine."""

    model_config = ConfigDict(extra="allow")

    title: StrictStr = ""
    pages: list[SurveyPage] = Field(min_length=1)

    @field_validator("pages")
    @classmethod
    def _questions(cls, pages: list[SurveyPage]) -> list[SurveyPage]:
        if not any(p.elements for p in pages):
            raise ValueError("a survey needs at least one question")
        return pages


class SimulationSpec(_Model):
    """Everything the engine needs, resolved at launch (configs loaded, survey ids replaced)."""

    experiment_id: StrictStr
    name: StrictStr
    llm: list[LLMEndpoint]
    agents: AgentsConfig
    map: MapData
    workflow: list[WorkflowStep]
    seed: StrictInt = 0
    start_t: StrictInt = START_OF_DAY
