"""The tracking records as the domain sees them; the store maps them to items, the API to JSON."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from chalicelib.domain.tracking.metrics import MetricPoint, SeriesState

ACTIVE = "active"
DELETED = "deleted"
LIFECYCLE_STAGES = (ACTIVE, DELETED)


@dataclass(frozen=True)
class Experiment:
    tenant_id: str
    id: str
    name: str
    description: str
    artifact_location: str
    lifecycle_stage: str
    tags: dict[str, str]
    created_at: str
    updated_at: str
    deleted_at: Optional[str] = None
    version: int = 0

    @property
    def active(self) -> bool:
        return self.lifecycle_stage == ACTIVE

    def changed(self, **changes: Any) -> Experiment:
        return replace(self, version=self.version + 1, **changes)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "artifact_location": self.artifact_location,
            "lifecycle_stage": self.lifecycle_stage,
            "tags": dict(self.tags),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Run:
    tenant_id: str
    id: str
    experiment_id: str
    name: str
    description: str
    status: str
    start_time: str
    end_time: Optional[str]
    artifact_uri: str
    lifecycle_stage: str = ACTIVE  # MLflow deletes runs softly (runs/delete) and restores them; /api/v1 lists both
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    latest: dict[str, MetricPoint] = field(default_factory=dict)
    version: int = 0
    series: dict[str, SeriesState] = field(default_factory=dict, compare=False)  # as stored: span and version

    def changed(self, **changes: Any) -> Run:
        return replace(self, version=self.version + 1, **changes)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "experiment_id": self.experiment_id,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "tags": dict(self.tags),
            "params": dict(self.params),
            "metrics": {key: point.to_json() | {"key": key} for key, point in sorted(self.latest.items())},
            "artifact_uri": self.artifact_uri,
        }


@dataclass(frozen=True)
class Artifact:
    path: str
    size: int
    last_modified: str
    checksum: Optional[str] = None

    def to_json(self) -> dict:
        return {"path": self.path, "size": self.size, "last_modified": self.last_modified, "checksum": self.checksum}
