"""Who owns an id, for answers that tell "another tenant's" (403) from "nobody's" (404)."""
from __future__ import annotations

from typing import Optional, Protocol

from chalicelib.domain.errors import AgoraError, Forbidden, NotFound


class Owners(Protocol):
    """The directory of owners (implemented by chalicelib.store.directory.Directory)."""

    def owner_of(self, resource_id: str) -> Optional[str]: ...


def not_found_or_forbidden(owners: Owners, tenant_id: str, resource_id: str, kind: str,
                           readable: tuple[str, ...] = ()) -> AgoraError:
    """The error for an id the tenant cannot see: 403 when another tenant owns it, else 404.

    `readable` names other owners whose ids the tenant may read (the platform), which are then 404 too.
    """
    owner = owners.owner_of(resource_id)
    if owner is not None and owner != tenant_id and owner not in readable:
        return Forbidden(f"{kind} {resource_id} belongs to another tenant")
    return NotFound(f"{kind} {resource_id} does not exist")
