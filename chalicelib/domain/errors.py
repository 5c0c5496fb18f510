"""Domain exceptions; the HTTP layer maps each class to a status code once (chalicelib/api/http.py)."""
from __future__ import annotations

from typing import Any


class AgoraError(Exception):
    """Base of every error a client can cause; `detail` is what the client reads."""

    def __init__(self, detail: Any) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail


class InvalidInput(AgoraError):
    """The request is malformed or breaks a limit (400)."""


class Unauthenticated(AgoraError):
    """No credentials, or credentials that resolve to no one (401)."""


class Forbidden(AgoraError):
    """The resource belongs to another tenant, or the action needs another role (403)."""


class NotFound(AgoraError):
    """No such resource anywhere (404)."""


class Conflict(AgoraError):
    """The request clashes with the current state: duplicate name, changed param, bad transition (409)."""


class PayloadTooLarge(AgoraError):
    """The body is larger than the route accepts (413)."""


class Throttled(AgoraError):
    """The storage refused the request for capacity; the client should retry after a pause (503)."""


class Unavailable(AgoraError):
    """A service Agora depends on failed for a moment (a 5xx, a timeout); retrying later succeeds (503)."""


class StaleRecord(Exception):
    """Raised by a store: the record changed since it was read (optimistic locking); read again and retry.

    Never reaches a client: the service that read the record decides whether to retry or answer 409.
    """
