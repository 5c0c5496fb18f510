"""The directory table: hashed API keys and the owner of every id (for 403-versus-404 answers)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from chalicelib.domain.clock import now_iso
from chalicelib.domain.principals import Principal
from chalicelib.store import keys
from chalicelib.store.dynamo import ConditionFailed, Table
from chalicelib.store.expressions import Condition, Update


def owned_by(tenant_id: str) -> Condition:
    """An owner record that is the tenant's, or none at all (removing it then is harmless)."""
    return Condition.absent() | Condition.equals("tenant_id", tenant_id)


@dataclass
class Directory:
    table: Table

    def put_api_key(self, key_hash: str, principal: Principal, label: str = "") -> None:
        """Store a key by its hash only; the plain key never reaches the table."""
        self.table.put({**keys.api_key_key(key_hash), "tenant_id": principal.tenant_id, "role": principal.role,
                        "label": label, "created_at": now_iso()})

    def revoke_api_key(self, key_hash: str) -> bool:
        """Mark a key revoked (kept, with when, for the audit trail); False if there is no such key."""
        try:
            self.table.update(keys.api_key_key(key_hash), Update().assign({"revoked": True, "revoked_at": now_iso()}),
                              condition=Condition.exists())
        except ConditionFailed:
            return False
        return True

    def principal_for(self, key_hash: str) -> Optional[Principal]:
        item = self.table.get(keys.api_key_key(key_hash), consistent=False)
        if not item or item.get("revoked"):
            return None
        return Principal(tenant_id=item["tenant_id"], role=item["role"])

    def owner_action(self, resource_id: str, tenant_id: str, kind: str) -> dict[str, Any]:
        """The transaction action recording who owns a new id (fails if the id is taken)."""
        return self.table.put_action({**keys.owner_key(resource_id), "tenant_id": tenant_id, "kind": kind},
                                     condition=Condition.absent())

    def forget_action(self, resource_id: str, tenant_id: str) -> dict[str, Any]:
        """The transaction action removing the owner record of an id, only the tenant's own."""
        return self.table.delete_action(keys.owner_key(resource_id),
                                        condition=owned_by(tenant_id))

    def owner_of(self, resource_id: str) -> Optional[str]:
        item = self.table.get(keys.owner_key(resource_id), consistent=False)
        return item["tenant_id"] if item else None

    def forget(self, resource_id: str) -> None:
        self.table.delete(keys.owner_key(resource_id))
