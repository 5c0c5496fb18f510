"""A simulation's S3 objects (spec, checkpoint, save_context artifacts) and the tenants' map files."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from chalicelib.domain.errors import InvalidInput
from chalicelib.store import keys
from chalicelib.store.objects import ObjectStore

MAX_MAP_BYTES = 20 * 1024 * 1024


@dataclass
class SimulationObjects:
    objects: ObjectStore

    def _key(self, tenant_id: str, experiment_id: str, name: str) -> str:
        return keys.simulation_prefix(tenant_id, experiment_id) + name

    def save_spec(self, tenant_id: str, experiment_id: str, spec: dict) -> None:
        self.objects.put_bytes(self._key(tenant_id, experiment_id, "spec.json"), json.dumps(spec).encode(), "application/json")

    def load_spec(self, tenant_id: str, experiment_id: str) -> dict:
        return json.loads(self.objects.get(self._key(tenant_id, experiment_id, "spec.json")))

    def save_checkpoint(self, tenant_id: str, experiment_id: str, blob: bytes) -> None:
        self.objects.put_bytes(self._key(tenant_id, experiment_id, "checkpoint.bin"), blob)

    def load_checkpoint(self, tenant_id: str, experiment_id: str) -> Optional[bytes]:
        return self.objects.get_if_exists(self._key(tenant_id, experiment_id, "checkpoint.bin"))

    def save_artifacts(self, tenant_id: str, experiment_id: str, artifacts: dict) -> None:
        body = json.dumps(artifacts, indent=2, ensure_ascii=False).encode()
        self.objects.put_bytes(self._key(tenant_id, experiment_id, "artifacts.json"), body, "application/json")

    def load_artifacts(self, tenant_id: str, experiment_id: str) -> Optional[dict]:
        blob = self.objects.get_if_exists(self._key(tenant_id, experiment_id, "artifacts.json"))
        return json.loads(blob) if blob is not None else None

    # maps ---------------------------------------------------------------------------------------
    def map_path(self, tenant_id: str, name: str) -> str:
        return keys.map_file_prefix(tenant_id) + name

    def map_exists(self, tenant_id: str, file_path: str) -> bool:
        return file_path.startswith(keys.map_file_prefix(tenant_id)) and self.objects.head(file_path) is not None

    def load_map(self, tenant_id: str, file_path: str) -> Any:
        if not file_path.startswith(keys.map_file_prefix(tenant_id)):
            raise InvalidInput(f"map file {file_path!r} is outside the owner's map folder")
        blob = self.objects.get_if_exists(file_path)
        if blob is None:
            raise InvalidInput(f"map file {file_path!r} does not exist")
        return json.loads(blob)

    def save_map(self, tenant_id: str, name: str, body: bytes) -> str:
        path = self.map_path(tenant_id, name)
        self.objects.put_bytes(path, body, "application/json")
        return path
