"""Every environment variable Agora reads, named once, read lazily and checked on first use."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

EXPERIMENTS_TABLE = "AGORA_EXPERIMENTS_TABLE"
RUNS_TABLE = "AGORA_RUNS_TABLE"
METRICS_TABLE = "AGORA_METRICS_TABLE"
DIRECTORY_TABLE = "AGORA_DIRECTORY_TABLE"
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

    @classmethod
    def from_environ(cls) -> Settings:
        retention = os.environ.get(RETENTION_DAYS, "30").strip() or "30"
        if not retention.isdigit():
            raise SettingsError(f"{RETENTION_DAYS} must be a whole number of days, got {retention!r}")
        return cls(
            experiments_table=_required(EXPERIMENTS_TABLE),
            runs_table=_required(RUNS_TABLE),
            metrics_table=_required(METRICS_TABLE),
            directory_table=_required(DIRECTORY_TABLE),
            bucket=_required(BUCKET),
            token_secret=_required(TOKEN_SECRET).encode(),
            retention_days=int(retention),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this Lambda container, read once on first use (never at import)."""
    return Settings.from_environ()
