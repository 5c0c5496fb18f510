"""API keys: random bearer secrets, stored and looked up only by their SHA-256 hash."""
from __future__ import annotations

import hashlib
import re
import secrets

KEY_PREFIX = "agora_"
TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def new_api_key() -> str:
    """256 bits of randomness; at that entropy a plain SHA-256 cannot be reversed or brute-forced."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(header_value: str | None) -> str | None:
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
