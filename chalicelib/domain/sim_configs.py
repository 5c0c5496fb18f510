"""Simulation configs (LLM, agents, map, workflow, surveys): CRUD with the platform's read-only sharing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict, Field, StrictStr, TypeAdapter, ValidationError

from chalicelib.domain.clock import new_id, now_iso
from chalicelib.domain.errors import Forbidden, InvalidInput, NotFound
from chalicelib.domain.records import Principal
from chalicelib.domain.sim_records import PLATFORM, StoredConfig
from chalicelib.sim import spec

if TYPE_CHECKING:
    from chalicelib.store.directory import Directory
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


class ConfigBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # AgentSociety's UI also sends tenant_id, id, updated_at

    name: StrictStr = Field(min_length=1, max_length=255)
    description: StrictStr = Field(default="", max_length=2_000)
    config: Any = None
    data: Any = None  # surveys carry their SurveyJS JSON as `data`


def validation_errors(exc: ValidationError) -> list[dict]:
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]


@dataclass
class ConfigService:
    store: SimulationStore
    directory: Directory
    secrets: ConfigSecrets
    map_exists: Callable[[str, str], bool]  # (owner tenant, file_path) -> does the map file exist?

    def validate(self, kind: str, owner: str, body: ConfigBody) -> Any:
        raw = body.data if kind == "survey" else body.config
        if raw is None:
            raise InvalidInput(f"{'data' if kind == 'survey' else 'config'} is required")
        try:
            value = CONFIG_SCHEMAS[kind].validate_python(raw)
        except ValidationError as exc:
            raise InvalidInput(validation_errors(exc)) from exc
        if kind == "map" and not self.map_exists(owner, value.file_path):
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

    def list(self, tenant_id: str, kind: str) -> list[StoredConfig]:
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
        owner_now = self.directory.owner_of(config_id)
        if owner_now is not None and owner_now not in (tenant_id, PLATFORM):
            raise Forbidden(f"{kind} config {config_id} belongs to another tenant")
        raise NotFound(f"{kind} config {config_id} does not exist")

    def api_keys(self, cfg: StoredConfig) -> list[str]:
        """The plain api keys of an LLM config, for the engine only."""
        if cfg.secret is None:
            return ["" for _ in cfg.config]
        return self.secrets.open(cfg.tenant_id, cfg.secret)

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
            config = [e.model_dump(exclude={"api_key"}) | {"api_key": MASK if k else ""} for e, k in zip(value, plain)]
        else:
            config = CONFIG_SCHEMAS[kind].dump_python(value, mode="json", exclude_none=True)
        return StoredConfig(tenant_id=owner, kind=kind, id=config_id, name=body.name, description=body.description,
                            config=config, created_at=created_at, updated_at=now_iso(), secret=secret)
