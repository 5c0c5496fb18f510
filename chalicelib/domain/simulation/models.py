"""Request models of the simulation API and of the engine's reports (AgentSociety's field names)."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from chalicelib.domain.validation import INTEGRAL

Day = Annotated[StrictInt, Field(ge=0), INTEGRAL]  # a simulated day (3.0 is day 3)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigBody(BaseModel):
    """A config as AgentSociety's UI posts it; `config` (or a survey's `data`) is checked by its kind's schema."""

    model_config = ConfigDict(extra="ignore")  # AgentSociety's UI also sends tenant_id, id, updated_at

    name: StrictStr = Field(min_length=1, max_length=255)
    description: StrictStr = Field(default="", max_length=2_000)
    config: Any = None
    data: Any = None  # surveys carry their SurveyJS JSON as `data`


class AgentTemplateBody(BaseModel):
    """An agent template as AgentSociety's UI posts it; the fields after `description` are checked by
    chalicelib.sim.spec.AgentTemplateConfig (the engine's classes, parameters and blocks)."""

    model_config = ConfigDict(extra="ignore")  # the UI's "duplicate" re-posts tenant_id, id and timestamps

    name: StrictStr = Field(min_length=1, max_length=255)
    description: Optional[StrictStr] = Field(default="", max_length=2_000)
    agent_type: Any = None
    agent_class: Any = None
    memory_distributions: Any = None
    agent_params: Any = None
    blocks: Any = None

    def config_body(self) -> ConfigBody:
        fields = ("agent_type", "agent_class", "memory_distributions", "agent_params", "blocks")
        config = {name: getattr(self, name) for name in fields if getattr(self, name) is not None}
        return ConfigBody(name=self.name, description=self.description or "", config=config)


MAP_LINK_MAX_SECONDS = 7 * 24 * 3600  # a presigned S3 URL lives a week at most


class MapLinkRequest(_Request):
    expire_seconds: Annotated[StrictInt, Field(ge=1, le=MAP_LINK_MAX_SECONDS), INTEGRAL] = 600


class ConfigRef(_Request):
    tenant_id: StrictStr = ""
    id: StrictStr = Field(min_length=1, max_length=64)


class LaunchRequest(_Request):
    llm: ConfigRef
    agents: ConfigRef
    map: ConfigRef
    workflow: ConfigRef
    exp_name: StrictStr = Field(min_length=1, max_length=255)
    engine: Literal["builtin", "external"] = "builtin"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class DialogRequest(_Request):
    content: StrictStr = Field(min_length=1, max_length=10_000)
    day: Day
    t: float = Field(ge=0, le=86_400)


class SurveyRequest(_Request):
    survey_id: StrictStr = Field(min_length=1, max_length=64)
    day: Day
    t: float = Field(ge=0, le=86_400)


# the engine's side ----------------------------------------------------------------------------------
class FinishReport(_Request):
    status: Literal["finished", "stopped", "error"] = "finished"
    error: StrictStr = Field(default="", max_length=10_000)


class TickReport(_Request):
    step: Optional[StrictInt] = None  # the engine's tick index; the API keys instants by (day, t)
    day: StrictInt
    t: float
    statuses: list[dict[str, Any]] = Field(max_length=10_000)
    prompt: StrictStr = ""
    metrics: dict[StrictStr, float] = Field(default_factory=dict)


class ProgressReport(_Request):
    cur_day: StrictInt
    cur_t: float
    input_tokens: StrictInt = Field(ge=0)
    output_tokens: StrictInt = Field(ge=0)
    ticks_done: StrictInt = Field(ge=0)
    ticks: list[TickReport] = Field(default_factory=list, max_length=500)
    dialogs: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    surveys: list[dict[str, Any]] = Field(default_factory=list, max_length=100_000)
    artifacts: Optional[dict[str, Any]] = None
    log_lines: list[StrictStr] = Field(default_factory=list, max_length=1_000)
    processed_inbox_ids: list[StrictStr] = Field(default_factory=list)
    profiles: Optional[list[dict[str, Any]]] = None
