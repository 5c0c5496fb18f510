"""Who calls: tenants and the platform admin, and the API keys that stand for them (stored only hashed)."""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Optional

KEY_PREFIX = "agora_"
TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TENANT = "tenant"
ADMIN = "admin"
ANONYMOUS = "anonymous"
PLATFORM = ""  # the admin's tenant: configs and experiments of tenant "" are the platform's own


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, or the platform admin (tenant "")."""

    tenant_id: str
    role: str  # TENANT | ADMIN

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def new_api_key() -> str:
    """256 bits of randomness; at that entropy a plain SHA-256 cannot be reversed or brute-forced."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(header_value: Optional[str]) -> Optional[str]:
    """The key of an `Authorization` value, else None: `Bearer <key>`, or HTTP Basic with the key as the password
    (any user name), as MLflow's client (MLFLOW_TRACKING_USERNAME/PASSWORD) and browsers send it. Schemes are
    case-insensitive."""
    if not header_value:
        return None
    scheme, _, credentials = header_value.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials or len(credentials) > 1_024:
        return None
    if scheme.lower() == "bearer":
        key = credentials
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        key = decoded.partition(":")[2]
    else:
        return None
    return key if key and len(key) <= 512 else None


def check_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID_PATTERN.match(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} must be 1-63 characters of a-z, 0-9, _ and -, starting alphanumeric")
    return tenant_id
