"""The directory table: hashed API keys and the owner of every id (for 403-versus-404 answers)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from chalicelib.domain.clock import now_iso
from chalicelib.domain.records import Principal
from chalicelib.store import keys
from chalicelib.store.dynamo import Table


@dataclass
class Directory:
    table: Table

    def put_api_key(self, key_hash: str, principal: Principal, label: str = "") -> None:
        """Store a key by its hash only; the plain key never reaches the table."""
        self.table.put({**keys.api_key_key(key_hash), "tenant_id": principal.tenant_id, "role": principal.role,
                        "label": label, "created_at": now_iso()})

    def principal_for(self, key_hash: str) -> Optional[Principal]:
        item = self.table.get(keys.api_key_key(key_hash), consistent=False)
        if not item or item.get("revoked"):
            return None
        return Principal(tenant_id=item["tenant_id"], role=item["role"])

    def owner_action(self, resource_id: str, tenant_id: str, kind: str) -> dict[str, Any]:
        """The transaction action recording who owns a new id (fails if the id is taken)."""
        return self.table.put_action({**keys.owner_key(resource_id), "tenant_id": tenant_id, "kind": kind},
                                     condition="attribute_not_exists(pk)")

    def owner_of(self, resource_id: str) -> Optional[str]:
        item = self.table.get(keys.owner_key(resource_id), consistent=False)
        return item["tenant_id"] if item else None

    def forget(self, resource_id: str) -> None:
        self.table.delete(keys.owner_key(resource_id))
