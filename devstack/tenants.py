"""Local tenants and the admin key: from AGORA_LOCAL_TENANTS / AGORA_ADMIN_KEY, or generated and printed."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib import settings
from chalicelib.domain.principals import ADMIN, TENANT, Principal, check_tenant_id, hash_api_key, new_api_key

if TYPE_CHECKING:
    from chalicelib.store.directory import Directory

DEFAULT_TENANT = "demo"


@dataclass(frozen=True)
class LocalKeys:
    tenants: dict[str, str]  # tenant id -> plain key (local use only)
    admin_key: str
    admin_generated: bool
    tenants_generated: bool


def parse_local_tenants(text: str) -> dict[str, str]:
    tenants: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        tenant, sep, key = pair.partition(":")
        if not sep or not key:
            raise ValueError(f"{settings.LOCAL_TENANTS} entries look like tenant:key, got {pair!r}")
        tenants[check_tenant_id(tenant.strip())] = key.strip()
    return tenants


def seed_keys(directory: Directory) -> LocalKeys:
    """Store the local keys hashed, exactly as production does."""
    tenants = parse_local_tenants(os.environ.get(settings.LOCAL_TENANTS, ""))
    tenants_generated = not tenants
    if tenants_generated:
        tenants = {DEFAULT_TENANT: new_api_key()}
    admin_key = os.environ.get(settings.ADMIN_KEY, "").strip()
    admin_generated = not admin_key
    admin_key = admin_key or new_api_key()
    for tenant, key in tenants.items():
        directory.put_api_key(hash_api_key(key), Principal(tenant, TENANT), label="local")
    directory.put_api_key(hash_api_key(admin_key), Principal("", ADMIN), label="local admin")
    return LocalKeys(tenants, admin_key, admin_generated, tenants_generated)
