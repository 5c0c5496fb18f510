"""Offset paging as every listing of both APIs checks it: one rule for limits and offsets."""
from __future__ import annotations

from chalicelib.domain.errors import InvalidInput


def check_limit(limit: int, *, max_limit: int, name: str = "limit") -> None:
    if not 1 <= limit <= max_limit:
        raise InvalidInput(f"{name} must be between 1 and {max_limit}, got {limit}")


def check_page(limit: int, offset: int, *, max_limit: int, offset_name: str = "offset") -> None:
    """A page of 1 to `max_limit` items starting at a non-negative offset (AgentSociety calls it `skip`)."""
    check_limit(limit, max_limit=max_limit)
    if offset < 0:
        raise InvalidInput(f"{offset_name} must not be negative, got {offset}")
