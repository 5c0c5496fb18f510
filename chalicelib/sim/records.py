"""What the engine writes and reads: AgentSociety's per-experiment rows as plain dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

# AgentSociety's dialog types (agent_dialog.type)
THOUGHT, TALK, USER = 0, 1, 2
# An agent's status as the engine records it every tick: one row of these values per agent
# (AgentStatus's fields without day and t, which the tick has, and its `status` dict flattened)
STATUS_KEYS = ("happiness", "hunger", "energy", "health", "money", "consumption", "employment", "place")
ROW_FIELDS = ("id", "lng", "lat", "parent_id", "action") + STATUS_KEYS
_FIRST_STATUS = len(ROW_FIELDS) - len(STATUS_KEYS)
StatusRow = tuple  # values in ROW_FIELDS order


@dataclass(frozen=True)
class AgentProfile:
    id: int
    name: str
    profile: dict[str, Any]

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "profile": dict(self.profile)}


@dataclass(frozen=True)
class AgentStatus:
    id: int
    day: int
    t: float
    lng: Optional[float]
    lat: Optional[float]
    parent_id: Optional[int]  # the AOI the agent is in; None while travelling
    action: str
    status: dict[str, Any]

    def to_json(self) -> dict:
        return {"id": self.id, "day": self.day, "t": self.t, "lng": self.lng, "lat": self.lat,
                "parent_id": self.parent_id, "action": self.action, "status": dict(self.status)}

    @classmethod
    def of_row(cls, row: StatusRow, day: int, t: float) -> AgentStatus:
        return cls(row[0], day, t, row[1], row[2], row[3], row[4],
                   dict(zip(STATUS_KEYS, row[_FIRST_STATUS:], strict=True)))


@dataclass(frozen=True)
class Dialog:
    agent_id: int
    day: int
    t: float
    type: int  # THOUGHT, TALK or USER
    speaker: str
    content: str

    def to_json(self) -> dict:
        # AgentSociety calls the agent column `id`
        return {"id": self.agent_id, "day": self.day, "t": self.t, "type": self.type,
                "speaker": self.speaker, "content": self.content}


@dataclass(frozen=True)
class SurveyAnswer:
    agent_id: int
    day: int
    t: float
    survey_id: str
    result: dict[str, Any]

    def to_json(self) -> dict:
        return {"id": self.agent_id, "day": self.day, "t": self.t, "survey_id": self.survey_id,
                "result": dict(self.result)}


@dataclass(frozen=True)
class TickRecord:
    step: int  # 0-based index of the tick over the whole run: AgentSociety's metric `step`
    day: int
    t: float
    rows: list[StatusRow]  # every agent's status at the instant, one row each (ROW_FIELDS)
    prompt: str
    metrics: dict[str, float]

    @property
    def statuses(self) -> list[AgentStatus]:
        """The rows as AgentStatus objects (built on each access: the engine itself keeps rows only)."""
        return [AgentStatus.of_row(row, self.day, self.t) for row in self.rows]

    def global_prompt(self) -> dict:
        return {"day": self.day, "t": self.t, "prompt": self.prompt}

    def metric_rows(self) -> list[dict]:
        return [{"key": key, "value": value, "step": self.step} for key, value in sorted(self.metrics.items())]

    def status_dicts(self) -> list[dict]:
        """The statuses as JSON objects (AgentStatus.to_json's shape), straight from the rows."""
        day, t, first = self.day, self.t, _FIRST_STATUS
        return [{"id": r[0], "day": day, "t": t, "lng": r[1], "lat": r[2], "parent_id": r[3], "action": r[4],
                 "status": dict(zip(STATUS_KEYS, r[first:], strict=True))} for r in self.rows]

    def to_json(self) -> dict:
        return {"step": self.step, "day": self.day, "t": self.t, "statuses": self.status_dicts(),
                "prompt": self.prompt, "metrics": dict(self.metrics)}


@dataclass(frozen=True)
class PendingDialog:
    """A user's message to one agent (AgentSociety's pending_dialog row)."""

    id: str
    agent_id: int
    day: int
    t: float
    content: str


@dataclass(frozen=True)
class PendingSurvey:
    """A survey sent to one agent while the run goes (AgentSociety's pending_survey row)."""

    id: str
    agent_id: int
    day: int
    t: float
    survey_id: str
    survey: dict[str, Any]


@dataclass(frozen=True)
class Inbox:
    dialogs: list[PendingDialog] = field(default_factory=list)
    surveys: list[PendingSurvey] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.dialogs or self.surveys)


@dataclass
class StepResult:
    """Everything one `advance()` call produced, for the caller to store."""

    ticks: list[TickRecord] = field(default_factory=list)
    dialogs: list[Dialog] = field(default_factory=list)
    survey_answers: list[SurveyAnswer] = field(default_factory=list)
    artifacts: dict[str, Any] = field(default_factory=dict)
    log_lines: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    processed_inbox_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"ticks": [r.to_json() for r in self.ticks], "dialogs": [d.to_json() for d in self.dialogs],
                "survey_answers": [a.to_json() for a in self.survey_answers], "artifacts": self.artifacts,
                "log_lines": list(self.log_lines), "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "processed_inbox_ids": list(self.processed_inbox_ids)}
