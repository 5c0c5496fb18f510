"""Simulation configs (LLM, agents, map, workflow, surveys): CRUD with the platform's read-only sharing."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import TypeAdapter

from chalicelib.domain.clock import new_id, now_iso
from chalicelib.domain.errors import Forbidden, InvalidInput
from chalicelib.domain.ownership import Owners, not_found_or_forbidden
from chalicelib.domain.principals import PLATFORM, Principal
from chalicelib.domain.simulation.maps import parse_map
from chalicelib.domain.simulation.records import StoredConfig
from chalicelib.domain.validation import validated
from chalicelib.sim import spec

if TYPE_CHECKING:
    from chalicelib.domain.simulation.models import ConfigBody
    from chalicelib.store.secrets import ConfigSecrets
    from chalicelib.store.simulations import SimulationStore

CONFIG_SCHEMAS: dict[str, TypeAdapter] = {
    "llm": TypeAdapter(spec.LLMConfig),
    "agent": TypeAdapter(spec.AgentsConfig),
    "map": TypeAdapter(spec.MapConfig),
    "workflow": TypeAdapter(spec.WorkflowConfig),
    "survey": TypeAdapter(spec.SurveyData),
}
MASK = "********"


class MapFiles(Protocol):
    """Where map files live (implemented by chalicelib.store.sim_objects.SimulationObjects)."""

    def map_exists(self, tenant_id: str, file_path: str) -> bool: ...
    def save_map(self, tenant_id: str, name: str, body: bytes, content_type: str = ...) -> str: ...


@dataclass
class ConfigService:
    store: SimulationStore
    owners: Owners
    secrets: ConfigSecrets
    maps: MapFiles

    def upload_map(self, tenant_id: str, filename: str, data: bytes) -> str:
        """Check and store a map file under the tenant's map folder; returns its `file_path`."""
        try:
            parse_map(data)
        except ValueError as exc:
            raise InvalidInput(f"map file is not a valid map: {exc}") from exc
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", filename.rsplit("/", 1)[-1])[:100] or "map.json"
        return self.maps.save_map(tenant_id, f"{new_id()}-{safe}", data)

    def validate(self, kind: str, owner: str, body: ConfigBody) -> Any:
        raw = body.data if kind == "survey" else body.config
        if raw is None:
            raise InvalidInput(f"{'data' if kind == 'survey' else 'config'} is required")
        value = validated(CONFIG_SCHEMAS[kind], raw)
        if kind == "map" and not self.maps.map_exists(owner, value.file_path):
            raise InvalidInput(f"map file {value.file_path!r} does not exist for this tenant; upload it first")
        return value

    def create(self, principal: Principal, kind: str, body: ConfigBody) -> StoredConfig:
        owner = principal.tenant_id  # the admin's tenant is "": its configs are the platform's
        cfg = self._stored(kind, owner, new_id(), body, created_at=now_iso())
        self.store.put_config(cfg, new=True)
        return cfg

    def update(self, principal: Principal, kind: str, config_id: str, body: ConfigBody) -> StoredConfig:
        current = self._writable(principal, kind, config_id)
        cfg = self._stored(kind, current.tenant_id, config_id, body, created_at=current.created_at, previous=current)
        self.store.put_config(cfg, new=False)
        return cfg

    def delete(self, principal: Principal, kind: str, config_id: str) -> None:
        current = self._writable(principal, kind, config_id)
        self.store.delete_config(current.tenant_id, kind, config_id)

    def list_configs(self, tenant_id: str, kind: str) -> list[StoredConfig]:
        owners = [tenant_id] if tenant_id == PLATFORM else [tenant_id, PLATFORM]
        found = [c for owner in owners for c in self.store.list_configs(owner, kind)]
        return sorted(found, key=lambda c: c.created_at, reverse=True)

    def get(self, tenant_id: str, kind: str, config_id: str, owner: str | None = None) -> StoredConfig:
        """Read a config of the tenant or of the platform; another tenant's is 403, a missing one 404."""
        candidates = [owner] if owner is not None else [tenant_id, PLATFORM]
        for candidate in candidates:
            if candidate not in (tenant_id, PLATFORM):
                raise Forbidden(f"{kind} config {config_id} belongs to another tenant")
            found = self.store.get_config(candidate, kind, config_id)
            if found is not None:
                return found
        raise not_found_or_forbidden(self.owners, tenant_id, config_id, f"{kind} config", readable=(PLATFORM,))

    def open_llm_keys(self, owner: str, sealed: bytes) -> list[str]:
        """The plain api keys of an LLM config sealed for `owner`: for the engine only, never for a client."""
        return self.secrets.open(owner, sealed)

    def _writable(self, principal: Principal, kind: str, config_id: str) -> StoredConfig:
        current = self.get(principal.tenant_id, kind, config_id)
        if current.tenant_id == PLATFORM and not principal.is_admin:
            raise Forbidden(f"{kind} config {config_id} is the platform's; only the admin may change it")
        return current

    def _stored(self, kind: str, owner: str, config_id: str, body: ConfigBody, *, created_at: str,
                previous: StoredConfig | None = None) -> StoredConfig:
        value = self.validate(kind, owner, body)
        secret = None
        if kind == "llm":
            plain = [e.api_key for e in value]
            if previous is not None and previous.secret is not None and any(k == MASK for k in plain):
                # the UI sends the masked key back unchanged: keep the stored one at that position
                old = self.secrets.open(owner, previous.secret)
                plain = [old[i] if k == MASK and i < len(old) else k for i, k in enumerate(plain)]
            secret = self.secrets.seal(owner, plain) if any(plain) else None
            config = [e.model_dump(exclude={"api_key"}) | {"api_key": MASK if k else ""}
                      for e, k in zip(value, plain, strict=True)]
        else:
            config = CONFIG_SCHEMAS[kind].dump_python(value, mode="json", exclude_none=True)
        return StoredConfig(tenant_id=owner, kind=kind, id=config_id, name=body.name, description=body.description,
                            config=config, created_at=created_at, updated_at=now_iso(), secret=secret)
