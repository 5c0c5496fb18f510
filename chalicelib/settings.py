"""Every environment variable Agora reads, named once, read lazily and checked on first use."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

EXPERIMENTS_TABLE = "AGORA_EXPERIMENTS_TABLE"
RUNS_TABLE = "AGORA_RUNS_TABLE"
METRICS_TABLE = "AGORA_METRICS_TABLE"
DIRECTORY_TABLE = "AGORA_DIRECTORY_TABLE"
SIMULATIONS_TABLE = "AGORA_SIMULATIONS_TABLE"
AGENT_DATA_TABLE = "AGORA_AGENT_DATA_TABLE"
CONFIG_KEY_ID = "AGORA_CONFIG_KEY_ID"
STATE_MACHINE_ARN = "AGORA_STATE_MACHINE_ARN"
ENGINE_LAUNCHER = "AGORA_ENGINE_LAUNCHER"
PUBLIC_API_URL = "AGORA_PUBLIC_API_URL"
ENGINE_HEARTBEAT_SECONDS = "AGORA_ENGINE_HEARTBEAT_SECONDS"
SIM_STEP_PAUSE_SECONDS = "AGORA_SIM_STEP_PAUSE_SECONDS"
ENGINE_COMMAND = "AGORA_ENGINE_COMMAND"
EXPORT_PART_BYTES = "AGORA_EXPORT_PART_BYTES"
ENGINE_CLUSTER = "AGORA_ENGINE_CLUSTER"
ENGINE_TASK_DEFINITION = "AGORA_ENGINE_TASK_DEFINITION"
ENGINE_CONTAINER = "AGORA_ENGINE_CONTAINER"
ENGINE_SUBNETS = "AGORA_ENGINE_SUBNETS"
ENGINE_SECURITY_GROUPS = "AGORA_ENGINE_SECURITY_GROUPS"
BUCKET = "AGORA_BUCKET"
TOKEN_SECRET = "AGORA_TOKEN_SECRET"
ADMIN_KEY = "AGORA_ADMIN_KEY"
LOCAL_TENANTS = "AGORA_LOCAL_TENANTS"
RETENTION_DAYS = "AGORA_RETENTION_DAYS"


class SettingsError(RuntimeError):
    """A required setting is missing or malformed: a deployment error, never a client's."""


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class Settings:
    experiments_table: str
    runs_table: str
    metrics_table: str
    directory_table: str
    bucket: str
    token_secret: bytes
    retention_days: int
    simulations_table: str
    agent_data_table: str
    config_key_id: str
    state_machine_arn: str
    engine_launcher: str
    public_api_url: str
    engine_heartbeat_seconds: int
    sim_step_pause_seconds: int
    engine_command: str
    export_part_bytes: int
    engine_cluster: str = ""
    engine_task_definition: str = ""
    engine_container: str = "engine"
    engine_subnets: tuple[str, ...] = ()
    engine_security_groups: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls) -> Settings:
        retention = os.environ.get(RETENTION_DAYS, "30").strip() or "30"
        if not retention.isdigit():
            raise SettingsError(f"{RETENTION_DAYS} must be a whole number of days, got {retention!r}")
        heartbeat = os.environ.get(ENGINE_HEARTBEAT_SECONDS, "300").strip() or "300"
        if not heartbeat.isdigit() or int(heartbeat) < 1:
            raise SettingsError(f"{ENGINE_HEARTBEAT_SECONDS} must be a positive whole number, got {heartbeat!r}")
        pause = os.environ.get(SIM_STEP_PAUSE_SECONDS, "0").strip() or "0"
        if not pause.isdigit():
            raise SettingsError(f"{SIM_STEP_PAUSE_SECONDS} must be a whole number of seconds, got {pause!r}")
        launcher = os.environ.get(ENGINE_LAUNCHER, "process").strip() or "process"
        if launcher not in ("process", "ecs"):
            raise SettingsError(f"{ENGINE_LAUNCHER} must be 'process' or 'ecs', got {launcher!r}")
        return cls(
            experiments_table=_required(EXPERIMENTS_TABLE),
            runs_table=_required(RUNS_TABLE),
            metrics_table=_required(METRICS_TABLE),
            directory_table=_required(DIRECTORY_TABLE),
            bucket=_required(BUCKET),
            token_secret=_required(TOKEN_SECRET).encode(),
            retention_days=int(retention),
            simulations_table=_required(SIMULATIONS_TABLE),
            agent_data_table=_required(AGENT_DATA_TABLE),
            config_key_id=_required(CONFIG_KEY_ID),
            # read when a simulation starts, not at cold start: the tracking API runs without them
            state_machine_arn=os.environ.get(STATE_MACHINE_ARN, "").strip(),
            engine_launcher=launcher,
            public_api_url=os.environ.get(PUBLIC_API_URL, "").strip().rstrip("/"),
            engine_heartbeat_seconds=int(heartbeat),
            sim_step_pause_seconds=int(pause),
            engine_command=os.environ.get(ENGINE_COMMAND, "").strip(),
            export_part_bytes=_part_bytes(),
            engine_cluster=os.environ.get(ENGINE_CLUSTER, "").strip(),
            engine_task_definition=os.environ.get(ENGINE_TASK_DEFINITION, "").strip(),
            engine_container=os.environ.get(ENGINE_CONTAINER, "").strip() or "engine",
            engine_subnets=_names(ENGINE_SUBNETS),
            engine_security_groups=_names(ENGINE_SECURITY_GROUPS),
        )


def _names(variable: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in os.environ.get(variable, "").split(",") if n.strip())


def _part_bytes() -> int:
    text = os.environ.get(EXPORT_PART_BYTES, str(8 * 1024 * 1024)).strip()
    if not text.isdigit() or int(text) < 1024:
        raise SettingsError(f"{EXPORT_PART_BYTES} must be a whole number of bytes (at least 1024), got {text!r}")
    return int(text)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this Lambda container, read once on first use (never at import)."""
    return Settings.from_environ()
