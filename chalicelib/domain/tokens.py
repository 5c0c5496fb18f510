"""Opaque, tamper-proof page tokens: a JSON position signed with HMAC-SHA256 and bound to its listing."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from chalicelib.domain.errors import InvalidInput


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class PageTokens:
    """Signs positions so a client can hand them back but never forge or move them to another listing.

    `scope` names the listing (tenant, run, metric key, window): a token minted for one scope is
    rejected for another, so a token cannot be replayed against a neighbour's data.
    """

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._secret, scope.encode() + b"\0" + payload, hashlib.sha256).digest()[:16]

    def encode(self, scope: str, position: dict[str, Any]) -> str:
        payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._sign(scope, payload))}"

    def decode(self, scope: str, token: str) -> dict[str, Any]:
        try:
            payload_text, signature_text = token.split(".", 1)
            payload = _unb64(payload_text)
            signature = _unb64(signature_text)
        except (ValueError, TypeError) as exc:
            raise InvalidInput("page_token is malformed") from exc
        if not hmac.compare_digest(signature, self._sign(scope, payload)):
            raise InvalidInput("page_token is invalid or belongs to another listing")
        try:
            position = json.loads(payload)
        except ValueError as exc:  # pragma: no cover - only reachable with a valid signature
            raise InvalidInput("page_token is malformed") from exc
        if not isinstance(position, dict):
            raise InvalidInput("page_token is malformed")
        return position
