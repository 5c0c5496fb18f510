"""Who calls: tenants and the platform admin, and the API keys that stand for them (stored only hashed)."""
from __future__ import annotations

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
    """The key of an `Authorization: Bearer <key>` value (scheme case-insensitive), else None."""
    if not header_value:
        return None
    scheme, _, key = header_value.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > 512:
        return None
    return key


def check_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID_PATTERN.match(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} must be 1-63 characters of a-z, 0-9, _ and -, starting alphanumeric")
    return tenant_id
