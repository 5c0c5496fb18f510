"""What a simulation is made of: LLM, agents, map, workflow and survey configs (pydantic, validated once).

Field names follow AgentSociety's web API where it has them, so its configs and UI keep working.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_serializer,
    field_validator,
    model_validator,
)

from chalicelib.sim import catalog, steps
from chalicelib.sim.steps import DEFAULT_TICK_SECONDS, SECONDS_PER_DAY, WorkflowConfig, WorkflowStep

Provider = Literal["openai", "deepseek", "qwen", "zhipuai", "siliconflow", "volcengine", "vllm", "builtin"]
START_OF_DAY = 8 * 3600  # AgentSociety starts every simulation at 8:00
__all__ = ["DEFAULT_TICK_SECONDS", "SECONDS_PER_DAY", "WorkflowConfig", "WorkflowStep"]


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
    """How one profile attribute is drawn: choice (weighted), uniform_int, uniform_float, normal (clipped), constant.

    AgentSociety writes the kind as `dist_type` (agent configs) or `type` (agent templates) and the
    bounds as `min_value`/`max_value`; Agora's own form is `dist`, `min`, `max`. Both are read.
    """

    dist: Literal["choice", "uniform_int", "uniform_float", "normal", "constant"]
    choices: Optional[list[Union[StrictStr, float, int]]] = None
    weights: Optional[list[Annotated[float, Field(ge=0)]]] = None
    min: Optional[float] = None
    max: Optional[float] = None
    mean: Optional[float] = None
    std: Optional[Annotated[float, Field(ge=0)]] = None
    value: Any = None

    @model_validator(mode="before")
    @classmethod
    def _agentsociety_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for theirs, ours in (("dist_type", "dist"), ("type", "dist"), ("min_value", "min"), ("max_value", "max")):
            if theirs in data and ours not in data:
                data[ours] = data.pop(theirs)
            elif theirs in data and data[theirs] == data[ours]:
                data.pop(theirs)
        return data

    @model_validator(mode="after")
    def _shape(self) -> Distribution:
        if self.dist == "choice":
            if not self.choices:
                raise ValueError("a choice distribution needs choices")
            if self.weights is not None and (len(self.weights) != len(self.choices) or sum(self.weights) <= 0):
                raise ValueError("weights must match choices and not all be zero")
        elif self.dist in ("uniform_int", "uniform_float"):
            if self.min is None or self.max is None or self.min > self.max:
                raise ValueError(f"a {self.dist} distribution needs min_value <= max_value")
        elif self.dist == "normal":
            if self.mean is None or self.std is None:
                raise ValueError("a normal distribution needs mean and std")
        elif self.value is None:
            raise ValueError("a constant distribution needs a value")
        return self

    def agentsociety(self) -> dict[str, Any]:
        """The distribution as AgentSociety's agent templates write it (`type`, `min_value`/`max_value`)."""
        if self.dist == "choice":
            choices = self.choices or []
            return {"type": "choice", "choices": choices, "weights": self.weights or [1 / len(choices)] * len(choices)}
        if self.dist in ("uniform_int", "uniform_float"):
            cast = int if self.dist == "uniform_int" else float
            return {"type": self.dist, "min_value": cast(self.min or 0), "max_value": cast(self.max or 0)}
        if self.dist == "normal":
            bounds = {"min_value": self.min, "max_value": self.max}
            return {"type": "normal", "mean": self.mean, "std": self.std,
                    **{k: v for k, v in bounds.items() if v is not None}}
        return {"type": "constant", "value": self.value}


PROFILE_ATTRIBUTES = ("age", "gender", "education", "occupation", "income", "personality")


class _AgentGroup(BaseModel):
    """What AgentSociety's agent configs say of a kind of agent: its class, parameters and blocks."""

    model_config = ConfigDict(extra="forbid")

    agent_class: StrictStr = catalog.DEFAULT_CITIZEN_CLASS
    agent_params: dict[StrictStr, Any] = Field(default_factory=dict)
    blocks: Optional[dict[StrictStr, Any]] = None  # None or {}: every block, with its defaults
    memory_from_file: Optional[Annotated[StrictStr, Field(min_length=1, max_length=1_024)]] = None
    agent_type: ClassVar[str] = catalog.CITIZEN

    @model_validator(mode="after")
    def _known(self) -> _AgentGroup:
        cls = catalog.agent_class(self.agent_type, self.agent_class)
        self.agent_params = catalog.checked(cls.params, self.agent_params, f"agent_params of {self.agent_class}")\
            .model_dump()
        self.blocks = {name: params.model_dump() for name, params in catalog.checked_blocks(self.blocks).items()}
        return self


class CitizenGroup(_AgentGroup):
    number: Optional[Annotated[StrictInt, Field(ge=0, le=10_000)]] = None
    memory_distributions: Optional[dict[StrictStr, Distribution]] = None
    profiles: list[dict[StrictStr, Any]] = Field(default_factory=list, max_length=10_000)  # Agora: inline profiles
    tools: list[Any] = Field(default_factory=list, max_length=0)  # AgentSociety's field; the engine has no tools

    @model_validator(mode="after")
    def _source(self) -> CitizenGroup:
        if self.memory_from_file is not None and self.memory_distributions:
            raise ValueError("When using memory_from_file, memory_distributions should not be set")
        if self.memory_from_file is not None and self.profiles:
            raise ValueError("profiles come from memory_from_file or are given inline, not both")
        if self.memory_from_file is None and self.number is None and not self.profiles:
            raise ValueError("number is required when memory_from_file is not set")
        return self

    @property
    def size(self) -> int:
        """How many citizens the group makes: `number`, of which inline `profiles` give the first ones
        (more profiles than `number`: one citizen each). The launch turns a profile file into `profiles`."""
        return max(self.number or 0, len(self.profiles))


class SupervisorConfig(_AgentGroup):
    agent_class: StrictStr = "ConversationModerator"
    agent_type: ClassVar[str] = catalog.SUPERVISOR

    @model_validator(mode="before")
    @classmethod
    def _no_blocks(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("blocks"):
            raise ValueError("a supervisor has no behaviour blocks; leave blocks empty")
        return data


class AgentTemplateConfig(BaseModel):
    """An agent template: AgentSociety's ApiAgentTemplate without its bookkeeping fields. Its class,
    parameters and blocks are what an agent config's group copies from it."""

    model_config = ConfigDict(extra="forbid")

    agent_type: Literal["citizen", "supervisor"]
    agent_class: StrictStr
    memory_distributions: dict[Annotated[StrictStr, Field(min_length=1, max_length=100)], Distribution] = \
        Field(max_length=100)
    agent_params: dict[StrictStr, Any] = Field(default_factory=dict)
    blocks: dict[StrictStr, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> AgentTemplateConfig:
        cls = catalog.agent_class(self.agent_type, self.agent_class)
        self.agent_params = catalog.checked(cls.params, self.agent_params, f"agent_params of {self.agent_class}")\
            .model_dump()
        if self.agent_type == catalog.SUPERVISOR and (self.blocks or self.memory_distributions):
            raise ValueError("a supervisor template has no blocks and no memory_distributions")
        self.blocks = {name: params.model_dump() for name, params in catalog.checked_blocks(self.blocks).items()}
        return self

    @field_serializer("memory_distributions")
    def _agentsociety(self, value: dict[str, Distribution]) -> dict[str, Any]:
        return {name: dist.agentsociety() for name, dist in value.items()}


class AgentsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    citizens: list[CitizenGroup] = Field(min_length=1, max_length=100)
    # AgentSociety's institutions: the engine's economy (jobs, wages, prices) stands for them, so they
    # are accepted and noted in the run's log, not simulated one by one
    firms: list[dict[str, Any]] = Field(default_factory=list)
    banks: list[dict[str, Any]] = Field(default_factory=list)
    nbs: list[dict[str, Any]] = Field(default_factory=list)
    governments: list[dict[str, Any]] = Field(default_factory=list)
    supervisor: Optional[SupervisorConfig] = None
    init_funcs: list[Any] = Field(default_factory=list, max_length=0)  # AgentSociety's; the engine has none

    @model_validator(mode="after")
    def _size(self) -> AgentsConfig:
        if any(g.memory_from_file for g in self.citizens):
            return self  # counted when the launch reads the profile files
        total = sum(g.size for g in self.citizens)
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
    def _unique(self) -> MapData:
        if len({a.id for a in self.aois}) != len(self.aois):
            raise ValueError("area ids must be unique")
        return self


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
    workflow: list[steps.WorkflowStep]
    seed: StrictInt = 0
    start_t: StrictInt = START_OF_DAY
