"""LLM api keys encrypted with the platform's KMS key; plain keys never reach a table or a log."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.store.aws import calls_to

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient


@calls_to("KMS")
@dataclass
class ConfigSecrets:
    client: KMSClient
    key_id: str

    def seal(self, tenant_id: str, values: list[str]) -> bytes:
        """Encrypt, bound to the tenant: a ciphertext copied to another tenant's config will not open."""
        return self.client.encrypt(KeyId=self.key_id, Plaintext=json.dumps(values).encode(),
                                   EncryptionContext={"agora:tenant": tenant_id})["CiphertextBlob"]

    def open(self, tenant_id: str, sealed: bytes) -> list[str]:
        plain = self.client.decrypt(CiphertextBlob=sealed, EncryptionContext={"agora:tenant": tenant_id})["Plaintext"]
        return json.loads(plain)
