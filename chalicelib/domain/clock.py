"""Time and ids: ISO-8601 UTC for people, epoch milliseconds for metrics, ULIDs for records."""
from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def now_iso() -> str:
    return iso(now_ms())


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


_last = [0]
_lock = threading.Lock()


def new_id() -> str:
    """A ULID in lower case: 48 bits of milliseconds then 80 random bits, so ids sort by creation time.

    Monotonic within a process: an id made in the same millisecond as the previous one is the
    previous one plus one, so even ids of one millisecond sort in creation order.
    """
    with _lock:
        value = max((now_ms() << 80) | int.from_bytes(os.urandom(10), "big"), _last[0] + 1)
        _last[0] = value
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars)).lower()
