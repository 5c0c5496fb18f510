"""Every environment variable Agora reads, named once, read lazily and checked on first use."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from chalicelib.domain.billing import BillingRates

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
DATA_DIR = "AGORA_DATA_DIR"  # where the local stack keeps its data (default .agora/ in the checkout)
OPEN_TENANT = "AGORA_OPEN_TENANT"  # the local stack's open mode; a deployed function refuses to start with it
LAMBDA_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"  # set by the Lambda runtime, never locally
RETENTION_DAYS = "AGORA_RETENTION_DAYS"
# JSON, e.g. {"llm_input_token": "3.0", "llm_output_token": "3.0", "run_time": "0.001"}
BILLING_RATES = "AGORA_BILLING_RATES"

# what an external engine finds in its environment (set by the launcher, never by an operator)
ENGINE_CALLBACK_TOKEN = "AGORA_CALLBACK_TOKEN"
ENGINE_API_URL = "AGORA_API_URL"
ENGINE_EXPERIMENT_ID = "AGORA_EXPERIMENT_ID"

# the table of each store, by the name the wiring knows it by
TABLES = {"experiments": EXPERIMENTS_TABLE, "runs": RUNS_TABLE, "metrics": METRICS_TABLE,
          "directory": DIRECTORY_TABLE, "simulations": SIMULATIONS_TABLE, "agent_data": AGENT_DATA_TABLE}
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part of a multipart upload but the last
DEFAULT_PART_BYTES = 8 * 1024 * 1024


class SettingsError(RuntimeError):
    """A required setting is missing or malformed: a deployment error, never a client's."""


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set")
    return value


def _whole(name: str, default: int, minimum: int = 0, unit: str = "") -> int:
    text = os.environ.get(name, "").strip() or str(default)
    if not text.isdigit() or int(text) < minimum:
        raise SettingsError(f"{name} must be a whole number{unit} of at least {minimum}, got {text!r}")
    return int(text)


def _names(variable: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in os.environ.get(variable, "").split(",") if n.strip())


def _billing_rates() -> BillingRates:
    try:
        return BillingRates.parse(os.environ.get(BILLING_RATES, ""))
    except ValueError as exc:
        raise SettingsError(f"{BILLING_RATES}: {exc}") from exc


@dataclass(frozen=True)
class Settings:
    tables: dict[str, str]  # store name (TABLES) -> table name
    bucket: str
    token_secret: bytes
    retention_days: int
    config_key_id: str
    state_machine_arn: str
    engine_launcher: str
    public_api_url: str
    engine_heartbeat_seconds: int
    sim_step_pause_seconds: int
    engine_command: str
    export_part_bytes: int
    billing_rates: BillingRates
    engine_cluster: str = ""
    engine_task_definition: str = ""
    engine_container: str = "engine"
    engine_subnets: tuple[str, ...] = ()
    engine_security_groups: tuple[str, ...] = ()

    def table(self, store: str) -> str:
        return self.tables[store]

    @classmethod
    def from_environ(cls) -> Settings:
        if os.environ.get(OPEN_TENANT, "").strip() and os.environ.get(LAMBDA_FUNCTION_NAME):
            raise SettingsError(f"{OPEN_TENANT} lets requests without a key in: it is for the local stack only, "
                                "never for a deployed function")
        launcher = os.environ.get(ENGINE_LAUNCHER, "").strip() or "process"
        if launcher not in ("process", "ecs"):
            raise SettingsError(f"{ENGINE_LAUNCHER} must be 'process' or 'ecs', got {launcher!r}")
        return cls(
            tables={store: _required(variable) for store, variable in TABLES.items()},
            bucket=_required(BUCKET),
            token_secret=_required(TOKEN_SECRET).encode(),
            retention_days=_whole(RETENTION_DAYS, 30, unit=" of days"),
            config_key_id=_required(CONFIG_KEY_ID),
            # read when a simulation starts, not at cold start: the tracking API runs without them
            state_machine_arn=os.environ.get(STATE_MACHINE_ARN, "").strip(),
            engine_launcher=launcher,
            public_api_url=os.environ.get(PUBLIC_API_URL, "").strip().rstrip("/"),
            engine_heartbeat_seconds=_whole(ENGINE_HEARTBEAT_SECONDS, 300, minimum=1, unit=" of seconds"),
            sim_step_pause_seconds=_whole(SIM_STEP_PAUSE_SECONDS, 0, unit=" of seconds"),
            engine_command=os.environ.get(ENGINE_COMMAND, "").strip(),
            export_part_bytes=_whole(EXPORT_PART_BYTES, DEFAULT_PART_BYTES, minimum=MIN_PART_BYTES, unit=" of bytes"),
            billing_rates=_billing_rates(),
            engine_cluster=os.environ.get(ENGINE_CLUSTER, "").strip(),
            engine_task_definition=os.environ.get(ENGINE_TASK_DEFINITION, "").strip(),
            engine_container=os.environ.get(ENGINE_CONTAINER, "").strip() or "engine",
            engine_subnets=_names(ENGINE_SUBNETS),
            engine_security_groups=_names(ENGINE_SECURITY_GROUPS),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this Lambda container, read once on first use (never at import)."""
    return Settings.from_environ()
