"""Faults injected at the AWS boundary (botocore), never inside Agora's own code.

`fail(client, "DeleteObjects", code="InternalError", status=500, after=0, times=1)` lets the first
`after` calls of that operation on that botocore client through, then makes the next `times` calls
(None: all of them) answer with the error, as AWS would, before anything is sent. The handler only
answers; it changes nothing in Agora. An answer given here skips botocore's own retries.
"""
from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

_ids = itertools.count()


@dataclass
class _Response:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    content: bytes = b""


@dataclass
class Fault:
    operation: str
    code: str
    status: int
    times: Optional[int]  # None: every call
    after: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    injected: int = 0
    calls: int = 0

    def __call__(self, model: Any, params: Any, **_: Any) -> Any:
        if model.name != self.operation:
            return None
        self.calls += 1
        if self.calls <= self.after or (self.times is not None and self.injected >= self.times):
            return None
        self.injected += 1
        parsed = {"Error": {"Code": self.code, "Message": f"injected {self.code}"},
                  "ResponseMetadata": {"HTTPStatusCode": self.status}, **self.extra}
        return _Response(self.status), parsed


@contextlib.contextmanager
def fail(client: Any, operation: str, *, code: str = "InternalError", status: int = 500, after: int = 0,
         times: Optional[int] = 1, **extra: Any) -> Iterator[Fault]:
    """Answer `operation` on `client` with an AWS error `times` times (None: for as long as the block runs)."""
    fault = Fault(operation, code, status, times, after, extra)
    unique = f"agora-fault-{next(_ids)}"
    service = client.meta.service_model.service_name
    client.meta.events.register_first(f"before-call.{service}", fault, unique_id=unique)
    try:
        yield fault
    finally:
        client.meta.events.unregister(f"before-call.{service}", unique_id=unique)
