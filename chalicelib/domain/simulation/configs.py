"""Simulation configs (LLM, agents, map, workflow, surveys, agent templates and profile files): CRUD with the
platform's read-only sharing, the uploads of map and profile files, and maps' temporary download links."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

from pydantic import TypeAdapter

from chalicelib.domain.clock import iso, new_id, now_iso, now_ms
from chalicelib.domain.errors import Forbidden, InvalidInput, NotFound
from chalicelib.domain.ownership import Owners, not_found_or_forbidden
from chalicelib.domain.principals import PLATFORM, Principal
from chalicelib.domain.simulation.maps import parse_map
from chalicelib.domain.simulation.profiles import parse_profile_file
from chalicelib.domain.simulation.records import StoredConfig
from chalicelib.domain.validation import check_text, validated
from chalicelib.sim import spec

if TYPE_CHECKING:
    from chalicelib.domain.simulation.models import ConfigBody
    from chalicelib.domain.tokens import PageTokens
    from chalicelib.store.secrets import ConfigSecrets
    from chalicelib.store.simulations import SimulationStore

CONFIG_SCHEMAS: dict[str, TypeAdapter] = {
    "llm": TypeAdapter(spec.LLMConfig),
    "agent": TypeAdapter(spec.AgentsConfig),
    "map": TypeAdapter(spec.MapConfig),
    "workflow": TypeAdapter(spec.WorkflowConfig),
    "survey": TypeAdapter(spec.SurveyData),
    "agent_template": TypeAdapter(spec.AgentTemplateConfig),
}
LABELS = {"llm": "LLM config", "agent": "agent config", "map": "map config", "workflow": "workflow config",
          "survey": "survey", "agent_template": "agent template", "agent_profile": "agent profile"}
MASK = "********"
MAP_EXTENSIONS = {"pb": "application/octet-stream", "json": "application/json"}  # -> content type stored
DOWNLOAD_SECONDS = 300
MAX_SECRET_BYTES = 4_096  # KMS Encrypt's plaintext limit: all api keys of one config, as a JSON list


class ConfigFiles(Protocol):
    """Where map and profile files live (implemented by chalicelib.store.sim_objects.SimulationObjects)."""

    def map_exists(self, tenant_id: str, file_path: str) -> bool: ...
    def save_map(self, tenant_id: str, name: str, body: bytes, content_type: str = ...) -> str: ...
    def map_download_url(self, file_path: str, expires_seconds: int) -> str: ...
    def profile_file_readable(self, tenant_id: str, file_path: str) -> bool: ...
    def save_profile_file(self, tenant_id: str, file_id: str, records: list[dict]) -> str: ...
    def load_profile_file(self, tenant_id: str, file_path: str) -> list[dict] | None: ...
    def delete_profile_file(self, tenant_id: str, file_path: str) -> None: ...


@dataclass
class ConfigService:
    store: SimulationStore
    owners: Owners
    secrets: ConfigSecrets
    files: ConfigFiles
    link_tokens: PageTokens
    clock: Callable[[], int] = now_ms  # epoch milliseconds; tests pass their own

    def upload_map(self, tenant_id: str, filename: str, data: bytes) -> str:
        """Check and store a map file under the tenant's map folder; returns its `file_path`.

        AgentSociety's `.pb` maps are stored as `maps/<tenant>/<id>.pb`, as AgentSociety names them;
        Agora's JSON maps keep a cleaned form of their file name.
        """
        extension = filename.lower().rsplit(".", 1)[-1] if "." in filename else ""
        if extension not in MAP_EXTENSIONS:
            raise InvalidInput("upload a .pb map (AgentSociety's city.map.v2.Map) or a .json map (Agora's format)")
        try:
            parse_map(data, filename)
        except ValueError as exc:
            raise InvalidInput(f"map file is not a valid map: {exc}") from exc
        if extension == "pb":
            name = f"{new_id()}.pb"
        else:
            name = f"{new_id()}-{re.sub(r'[^A-Za-z0-9_.-]', '_', filename.rsplit('/', 1)[-1])[:100]}"
        return self.files.save_map(tenant_id, name, data, MAP_EXTENSIONS[extension])

    def map_download(self, tenant_id: str, config_id: str) -> str:
        """A short-lived URL of a map config's file, for the caller's or the platform's map."""
        cfg = self.get(tenant_id, "map", config_id)
        return self.files.map_download_url(cfg.config["file_path"], DOWNLOAD_SECONDS)

    def map_link(self, tenant_id: str, config_id: str, expire_seconds: int) -> str:
        """A token that downloads this map, without a key, until it expires (AgentSociety's temp link)."""
        cfg = self.get(tenant_id, "map", config_id)
        expires_at = self.clock() + expire_seconds * 1000
        return self.link_tokens.encode(_map_scope(cfg), {"exp": expires_at, "n": new_id()})

    def open_map_link(self, config_id: str, token: str) -> str:
        """The download URL a temp-link token grants, for its map only; no tenant key is involved."""
        owner = self.owners.owner_of(config_id)
        cfg = self.store.get_config(owner, "map", config_id) if owner is not None else None
        if cfg is None:
            raise NotFound("Map configuration not found")
        try:
            claims = self.link_tokens.decode(_map_scope(cfg), token)
        except InvalidInput as exc:
            raise NotFound("Download link not found") from exc
        now = self.clock()
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
            raise InvalidInput(f"Download link expired. {iso(int(claims.get('exp') or 0))} < {iso(now)}")
        seconds = max(1, min(DOWNLOAD_SECONDS, (claims["exp"] - now) // 1000))
        return self.files.map_download_url(cfg.config["file_path"], seconds)

    # agent profile files --------------------------------------------------------------------------
    def upload_profile(self, principal: Principal, filename: str, data: bytes, name: str | None,
                       description: str | None) -> StoredConfig:
        """Check a JSON or CSV file of people, store its records, and list it as an agent profile."""
        if not filename:
            raise InvalidInput("File name is required")
        records = parse_profile_file(filename, data)
        owner, file_id = principal.tenant_id, new_id()
        title = (name or "").strip() or filename.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "profiles"
        check_text(title, "name")
        check_text(description or "", "description")
        if len(title) > 255 or len(description or "") > 2_000:
            raise InvalidInput("name is at most 255 characters and description at most 2,000")
        file_path = self.files.save_profile_file(owner, file_id, records)
        now = now_iso()
        cfg = StoredConfig(tenant_id=owner, kind="agent_profile", id=new_id(), name=title,
                           description=description or "", created_at=now, updated_at=now,
                           config={"agent_type": "", "file_path": file_path, "record_count": len(records)})
        try:
            self.store.put_config(cfg, new=True)
        except BaseException:
            self.files.delete_profile_file(owner, file_path)
            raise
        return cfg

    def profile_records(self, tenant_id: str, config_id: str) -> list[dict]:
        cfg = self.get(tenant_id, "agent_profile", config_id)
        records = self.files.load_profile_file(cfg.tenant_id, cfg.config["file_path"])
        if records is None:
            raise NotFound(f"the file of agent profile {config_id} is gone")
        return records

    def memory_records(self, owner: str, file_path: str) -> list[dict]:
        """The records of an agent config's `memory_from_file`: the owner's profile file or the platform's."""
        for candidate in (owner, PLATFORM):
            if self.files.profile_file_readable(candidate, file_path):
                records = self.files.load_profile_file(candidate, file_path)
                if records is None:
                    raise InvalidInput(f"memory_from_file {file_path!r} does not exist; upload the profile first")
                return records
        raise InvalidInput(f"memory_from_file must be the file_path of one of your agent profiles or the "
                           f"platform's (agent_profiles/<tenant>/...), got {file_path!r}")

    def with_survey(self, tenant_id: str, step: Any) -> Any:
        """A survey step naming its survey by id, with the survey's content instead (AgentSociety resolves it
        when a workflow is saved, and its UI reads the survey's `id` back from the saved step)."""
        if not isinstance(step, dict) or step.get("type") != "survey" or not isinstance(step.get("survey"), str):
            return step
        try:
            survey = self.get(tenant_id, "survey", step["survey"])
        except (NotFound, Forbidden) as exc:
            raise InvalidInput(f"Survey with ID {step['survey']} not found") from exc
        return {**step, "survey": {"id": survey.id, "title": survey.config.get("title") or survey.name,
                                   **{k: v for k, v in survey.config.items() if k != "title"}}}

    def validate(self, kind: str, owner: str, body: ConfigBody) -> Any:
        raw = body.data if kind == "survey" else body.config
        if raw is None:
            raise InvalidInput(f"{'data' if kind == 'survey' else 'config'} is required")
        if kind == "workflow" and isinstance(raw, list):
            raw = [self.with_survey(owner, step) for step in raw]
        value = validated(CONFIG_SCHEMAS[kind], raw)
        if kind == "map" and not self.files.map_exists(owner, value.file_path):
            raise InvalidInput(f"map file {value.file_path!r} does not exist for this tenant; upload it first")
        if kind == "agent":
            for group in [*value.citizens, *([value.supervisor] if value.supervisor else [])]:
                if group.memory_from_file is not None:
                    self.memory_records(owner, group.memory_from_file)
        return value

    def create(self, principal: Principal, kind: str, body: ConfigBody) -> StoredConfig:
        if kind not in CONFIG_SCHEMAS:
            raise InvalidInput(f"a {LABELS[kind]} is not created from a JSON body")
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
        if kind == "agent_profile":  # the file first: a retry after a failure finds the row and ends the job
            self.files.delete_profile_file(current.tenant_id, current.config["file_path"])
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
                raise Forbidden(f"{LABELS[kind]} {config_id} belongs to another tenant")
            found = self.store.get_config(candidate, kind, config_id)
            if found is not None:
                return found
        raise not_found_or_forbidden(self.owners, tenant_id, config_id, LABELS[kind], readable=(PLATFORM,))

    def open_llm_keys(self, owner: str, sealed: bytes) -> list[str]:
        """The plain api keys of an LLM config sealed for `owner`: for the engine only, never for a client."""
        return self.secrets.open(owner, sealed)

    def _writable(self, principal: Principal, kind: str, config_id: str) -> StoredConfig:
        current = self.get(principal.tenant_id, kind, config_id)
        if current.tenant_id == PLATFORM and not principal.is_admin:
            raise Forbidden(f"{LABELS[kind]} {config_id} is the platform's; only the admin may change it")
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
            if len(json.dumps(plain).encode()) > MAX_SECRET_BYTES:
                raise InvalidInput(f"the api keys of one LLM config hold at most {MAX_SECRET_BYTES:,} bytes together "
                                   f"(the limit of what KMS encrypts in one call), these hold "
                                   f"{len(json.dumps(plain).encode()):,}")
            secret = self.secrets.seal(owner, plain) if any(plain) else None
            config = [e.model_dump(exclude={"api_key"}) | {"api_key": MASK if k else ""}
                      for e, k in zip(value, plain, strict=True)]
        else:
            config = CONFIG_SCHEMAS[kind].dump_python(value, mode="json", exclude_none=True)
        return StoredConfig(tenant_id=owner, kind=kind, id=config_id, name=body.name, description=body.description,
                            config=config, created_at=created_at, updated_at=now_iso(), secret=secret)


def _map_scope(cfg: StoredConfig) -> str:
    """What a temp-link token is signed for: this map of this owner, nothing else."""
    return f"map-link|{cfg.tenant_id}|{cfg.id}"
