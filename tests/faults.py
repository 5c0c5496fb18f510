"""Faults injected at the AWS boundary (botocore), never inside Agora's own code.

`fail(client, "DeleteObjects", code="InternalError", status=500, after=0, times=1)` lets the first
`after` calls of that operation on that botocore client through, then makes the next `times` calls
(None: all of them) answer with the error, as AWS would, before anything is sent. The handler only
answers; it changes nothing in Agora. An answer given here skips botocore's own retries.

`when=` narrows a fault to the calls whose API parameters it accepts (e.g. one table's writes);
the other calls go through and are not counted.

`unprocessed(client, keep=0, times=1)` is BatchWriteItem's partial success: of each selected call,
only the first `keep` write requests of each table reach DynamoDB and the rest come back in
`UnprocessedItems` of a 200 answer, as DynamoDB does when it runs short of capacity.
"""
from __future__ import annotations

import contextlib
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

_ids = itertools.count()
Predicate = Callable[[dict], bool]


@dataclass
class _Response:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    content: bytes = b""


@dataclass
class _Selector:
    """Counts the calls of one operation `when` accepts and picks calls after+1 .. after+times."""

    operation: str
    times: Optional[int]
    after: int = 0
    when: Optional[Predicate] = None
    injected: int = 0
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pick(self, model: Any, params: Any) -> bool:
        if model.name != self.operation:
            return False
        if self.when is not None and not self.when(params):
            return False
        with self._lock:
            self.calls += 1
            if self.calls <= self.after or (self.times is not None and self.injected >= self.times):
                return False
            self.injected += 1
            return True


@dataclass
class Fault(_Selector):
    code: str = "InternalError"
    status: int = 500
    extra: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    def choose(self, model: Any, params: Any, context: Any = None, **_: Any) -> None:
        """before-parameter-build: decide on the API parameters whether this call fails."""
        if self.pick(model, params) and context is not None:
            context[self.key] = True

    def __call__(self, model: Any, params: Any, context: Any = None, **_: Any) -> Any:
        """before-call: answer the chosen call with the error."""
        if not (context or {}).pop(self.key, False):
            return None
        parsed = {"Error": {"Code": self.code, "Message": f"injected {self.code}"},
                  "ResponseMetadata": {"HTTPStatusCode": self.status}, **self.extra}
        return _Response(self.status), parsed


def _event(client: Any, stage: str) -> str:
    return f"{stage}.{client.meta.service_model.service_id.hyphenize()}"


@contextlib.contextmanager
def _registered(client: Any, handlers: list[tuple[str, Callable[..., Any]]]) -> Iterator[None]:
    unique = f"agora-fault-{next(_ids)}"
    for stage, handler in handlers:
        client.meta.events.register_first(_event(client, stage), handler, unique_id=f"{unique}-{stage}")
    try:
        yield
    finally:
        for stage, _ in handlers:
            client.meta.events.unregister(_event(client, stage), unique_id=f"{unique}-{stage}")


@contextlib.contextmanager
def fail(client: Any, operation: str, *, code: str = "InternalError", status: int = 500, after: int = 0,
         times: Optional[int] = 1, when: Optional[Predicate] = None, **extra: Any) -> Iterator[Fault]:
    """Answer `operation` on `client` with an AWS error `times` times (None: for as long as the block runs)."""
    fault = Fault(operation, times, after, when, code=code, status=status, extra=extra,
                  key=f"agora-fault-{next(_ids)}")
    with _registered(client, [("before-parameter-build", fault.choose), ("before-call", fault)]):
        yield fault


@dataclass
class Unprocessed(_Selector):
    keep: int = 0
    key: str = ""
    left_out: int = 0  # write requests handed back unprocessed, over all selected calls

    def trim(self, model: Any, params: Any, context: Any = None, **_: Any) -> None:
        """before-parameter-build: send only the first `keep` requests of each table, remember the rest."""
        if context is None or not self.pick(model, params):
            return
        rest = {table: list(requests[self.keep:]) for table, requests in params["RequestItems"].items()
                if requests[self.keep:]}
        kept = {table: list(requests[:self.keep]) for table, requests in params["RequestItems"].items()
                if requests[:self.keep]}
        with self._lock:
            self.left_out += sum(len(r) for r in rest.values())
        context[self.key] = rest
        params["RequestItems"] = kept

    def answer(self, model: Any, params: Any, context: Any = None, **_: Any) -> Any:
        """before-call: a call left with nothing to send is answered 200, everything unprocessed."""
        rest = (context or {}).get(self.key)
        if rest is None or self.keep > 0:
            return None
        context.pop(self.key)
        return _Response(200), {"UnprocessedItems": rest, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def report(self, parsed: Any = None, context: Any = None, **_: Any) -> None:
        """after-call: add the requests held back to what DynamoDB reports unprocessed."""
        rest = (context or {}).pop(self.key, None)
        if rest is None or parsed is None:
            return
        unprocessed = parsed.setdefault("UnprocessedItems", {})
        for table, requests in rest.items():
            unprocessed.setdefault(table, []).extend(requests)


@contextlib.contextmanager
def unprocessed(client: Any, *, keep: int = 0, after: int = 0, times: Optional[int] = 1,
                when: Optional[Predicate] = None) -> Iterator[Unprocessed]:
    """BatchWriteItem answered 200 with all but the first `keep` requests of each table unprocessed."""
    partial = Unprocessed("BatchWriteItem", times, after, when, keep=keep, key=f"agora-unprocessed-{next(_ids)}")
    with _registered(client, [("before-parameter-build", partial.trim), ("before-call", partial.answer),
                              ("after-call", partial.report)]):
        yield partial
