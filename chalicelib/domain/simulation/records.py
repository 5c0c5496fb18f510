"""Simulation experiments and configs as the domain sees them (AgentSociety's field names)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Optional

from chalicelib.domain.principals import PLATFORM

CONFIG_KINDS = ("llm", "agent", "map", "workflow", "survey")
__all__ = ["CONFIG_KINDS", "PLATFORM", "RunControl", "SimExperiment", "SimStatus", "StepOutcome", "StoredConfig"]


class SimStatus(IntEnum):
    NOT_STARTED = 0
    RUNNING = 1
    FINISHED = 2
    ERROR = 3
    STOPPED = 4

    @property
    def ended(self) -> bool:
        return self in (SimStatus.FINISHED, SimStatus.ERROR, SimStatus.STOPPED)


@dataclass(frozen=True)
class StoredConfig:
    tenant_id: str
    kind: str
    id: str
    name: str
    description: str
    config: Any  # the validated JSON; an LLM config's api keys are blanked here and kept encrypted apart
    created_at: str
    updated_at: str
    secret: Optional[bytes] = None  # KMS ciphertext of the LLM api keys

    def to_json(self) -> dict:
        body = {"tenant_id": self.tenant_id, "id": self.id, "name": self.name, "description": self.description,
                "created_at": self.created_at, "updated_at": self.updated_at}
        if self.kind == "survey":
            body["data"] = self.config
        elif self.kind in ("agent_template", "agent_profile"):  # AgentSociety's flat rows
            body.update(self.config)
        else:
            body["config"] = self.config
        return body


@dataclass(frozen=True)
class SimExperiment:
    tenant_id: str
    id: str
    name: str
    status: SimStatus
    cur_day: int
    cur_t: float
    config: str  # the resolved configs as JSON text, without secrets (AgentSociety sends YAML text here)
    error: str
    input_tokens: int
    output_tokens: int
    created_at: str
    updated_at: str
    engine: str  # "builtin" | "external"
    tracking_run_id: str
    llm_billed: bool  # the LLM config is the platform's, so its tokens are billed
    num_day: int = 0
    stop_requested: bool = False
    execution_arn: Optional[str] = None
    started_at: Optional[str] = None
    ended_at: Optional[str] = None
    ticks_done: int = 0

    def changed(self, **changes: Any) -> SimExperiment:
        return replace(self, **changes)

    def to_json(self) -> dict:
        return {
            "tenant_id": self.tenant_id, "id": self.id, "name": self.name, "num_day": self.num_day,
            "status": int(self.status), "cur_day": self.cur_day, "cur_t": self.cur_t, "config": self.config,
            "error": self.error, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


@dataclass
class RunControl:
    """What only the orchestration sees: never returned by the API."""

    llm_secret: Optional[bytes] = None
    llm_owner: str = ""
    callback_token_hash: Optional[str] = None
    callback_used: bool = False
    task_token: Optional[str] = None


FINISHED, STOPPED, ERROR = "finished", "stopped", "error"  # how a run ended, as the engine and the states say


@dataclass(frozen=True)
class StepOutcome:
    """What a Prepare or Advance task tells the state machine: is the run over, how, and which engine runs it.

    Crosses the Step Functions boundary as JSON (`to_state`); the ASL reads `done`, `outcome` and `engine`.
    """

    done: bool
    outcome: Optional[str]  # FINISHED | STOPPED (when done), None while the run goes on
    engine: str  # "builtin" | "external"

    @classmethod
    def going_on(cls, engine: str) -> StepOutcome:
        return cls(False, None, engine)

    @classmethod
    def ended(cls, outcome: str, engine: str) -> StepOutcome:
        return cls(True, outcome, engine)

    def to_state(self) -> dict[str, Any]:
        return {"done": self.done, "outcome": self.outcome, "engine": self.engine}
