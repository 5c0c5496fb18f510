"""Local tenants and the admin key: from AGORA_LOCAL_TENANTS / AGORA_ADMIN_KEY, or generated and printed;
and open mode's tenant (AGORA_OPEN_TENANT), whose key never leaves this process."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

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
    open_tenant: Optional[str] = None  # requests without credentials act as this tenant (open mode)


def parse_local_tenants(text: str) -> dict[str, str]:
    tenants: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        tenant, sep, key = pair.partition(":")
        if not sep or not key:
            raise ValueError(f"{settings.LOCAL_TENANTS} entries look like tenant:key, got {pair!r}")
        tenants[check_tenant_id(tenant.strip())] = key.strip()
    return tenants


def open_tenant() -> Optional[str]:
    """The tenant of open mode, or None when it is off (the default)."""
    tenant = os.environ.get(settings.OPEN_TENANT, "").strip()
    return check_tenant_id(tenant) if tenant else None


def seed_keys(directory: Directory, open_key: Optional[str] = None) -> LocalKeys:
    """Store the local keys hashed, exactly as production does; `open_key` is open mode's key."""
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
    tenant = open_tenant()
    if tenant is not None and open_key is not None:
        directory.put_api_key(hash_api_key(open_key), Principal(tenant, TENANT), label="local open mode")
    return LocalKeys(tenants, admin_key, admin_generated, tenants_generated, tenant)
