"""A simulation's S3 objects (spec, checkpoint, save_context artifacts, exports) and the tenants' map files."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from chalicelib.store import keys
from chalicelib.store.exports import MultipartUpload

if TYPE_CHECKING:
    from chalicelib.store.objects import ObjectStore


@dataclass
class SimulationObjects:
    objects: ObjectStore
    export_part_bytes: int

    def save_spec(self, tenant_id: str, experiment_id: str, spec: dict) -> None:
        self.objects.put_bytes(keys.simulation_spec_key(tenant_id, experiment_id), json.dumps(spec).encode(),
                               "application/json")

    def load_spec(self, tenant_id: str, experiment_id: str) -> dict:
        return json.loads(self.objects.get(keys.simulation_spec_key(tenant_id, experiment_id)))

    def save_checkpoint(self, tenant_id: str, experiment_id: str, blob: bytes) -> None:
        self.objects.put_bytes(keys.simulation_checkpoint_key(tenant_id, experiment_id), blob)

    def checkpoint_exists(self, tenant_id: str, experiment_id: str) -> bool:
        return self.objects.head(keys.simulation_checkpoint_key(tenant_id, experiment_id)) is not None

    def load_checkpoint(self, tenant_id: str, experiment_id: str) -> Optional[bytes]:
        return self.objects.get_if_exists(keys.simulation_checkpoint_key(tenant_id, experiment_id))

    def save_artifacts(self, tenant_id: str, experiment_id: str, artifacts: dict) -> None:
        body = json.dumps(artifacts, indent=2, ensure_ascii=False).encode()
        self.objects.put_bytes(keys.simulation_artifacts_key(tenant_id, experiment_id), body, "application/json")

    def load_artifacts(self, tenant_id: str, experiment_id: str) -> Optional[dict]:
        blob = self.objects.get_if_exists(keys.simulation_artifacts_key(tenant_id, experiment_id))
        return json.loads(blob) if blob is not None else None

    def delete_all(self, tenant_id: str, experiment_id: str) -> int:
        """Every object of the simulation (its internal objects and its exports); returns how many."""
        return sum(self.objects.delete_prefix(prefix)
                   for prefix in keys.simulation_object_prefixes(tenant_id, experiment_id))

    # exports ------------------------------------------------------------------------------------
    def open_export(self, tenant_id: str, experiment_id: str, export_id: str) -> tuple[str, MultipartUpload]:
        """A streaming upload of a new export archive: (its key, the write-only stream)."""
        key = keys.export_key(tenant_id, experiment_id, export_id)
        return key, MultipartUpload(self.objects.client, self.objects.bucket, key, "application/zip",
                                    self.export_part_bytes)

    def download_url(self, key: str, filename: str) -> str:
        return self.objects.download_url(key, filename)

    # maps ---------------------------------------------------------------------------------------
    def map_exists(self, tenant_id: str, file_path: str) -> bool:
        return file_path.startswith(keys.map_file_prefix(tenant_id)) and self.objects.head(file_path) is not None

    def load_map(self, tenant_id: str, file_path: str) -> Optional[bytes]:
        """The map file's bytes, None if it is not in the owner's map folder or does not exist."""
        if not file_path.startswith(keys.map_file_prefix(tenant_id)):
            return None
        return self.objects.get_if_exists(file_path)

    def save_map(self, tenant_id: str, name: str, body: bytes, content_type: str = "application/json") -> str:
        path = keys.map_file_key(tenant_id, name)
        self.objects.put_bytes(path, body, content_type)
        return path

    def map_download_url(self, file_path: str, expires_seconds: int) -> str:
        """A presigned GET of a map file, as an attachment named like the file."""
        return self.objects.download_url(file_path, file_path.rsplit("/", 1)[-1], expires_seconds)

    # agent profile files --------------------------------------------------------------------------
    def profile_file_readable(self, tenant_id: str, file_path: str) -> bool:
        """Whether the path lies in the tenant's profile folder (the check before any read)."""
        return file_path.startswith(keys.agent_profile_file_prefix(tenant_id))

    def save_profile_file(self, tenant_id: str, file_id: str, records: list[dict]) -> str:
        path = keys.agent_profile_file_key(tenant_id, file_id)
        self.objects.put_bytes(path, json.dumps(records, ensure_ascii=False).encode(), "application/json")
        return path

    def load_profile_file(self, tenant_id: str, file_path: str) -> Optional[list[dict]]:
        """The records of a profile file, None if it is not in the owner's folder or does not exist."""
        if not self.profile_file_readable(tenant_id, file_path):
            return None
        blob = self.objects.get_if_exists(file_path)
        return json.loads(blob) if blob is not None else None

    def delete_profile_file(self, tenant_id: str, file_path: str) -> None:
        if self.profile_file_readable(tenant_id, file_path):
            self.objects.delete(file_path)


