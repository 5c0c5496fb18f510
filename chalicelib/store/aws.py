"""How a failed AWS call reads to Agora: a passing failure of the service, or an error of Agora's own.

Every store translates what its service answers (DynamoDB's codes in `store/dynamo.py`); what is
left over comes here. A throttle, a 5xx, a timeout or a dropped connection is the service being
briefly unavailable: the domain's `Unavailable`, which the API answers 503 with `Retry-After` and
the state machine retries. Anything else stays the exception it is (a defect of Agora's, a 500).
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, TypeVar

from botocore.exceptions import ClientError, ConnectionError, ConnectTimeoutError, ReadTimeoutError

from chalicelib.domain.errors import Unavailable

T = TypeVar("T")

TRANSIENT_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded", "SlowDown",
    "TooManyRequestsException", "ServiceUnavailable", "InternalError", "InternalFailure", "RequestTimeout",
    "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException",
    "ProvisionedThroughputExceededException",
})


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return exc.response.get("Error", {}).get("Code") in TRANSIENT_CODES or status >= 500
    return False


@contextlib.contextmanager
def service_calls(service: str) -> Iterator[None]:
    """Calls inside answer a passing failure of `service` as Unavailable (503, retried by clients)."""
    try:
        yield
    except (ClientError, ConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
        if is_transient(exc):
            raise Unavailable(f"{service} is briefly unavailable ({_code(exc)}); retry in a moment") from exc
        raise


def _code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "an error")
    return type(exc).__name__


def calls_to(service: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: every public method's AWS calls answer passing failures as Unavailable."""
    def decorate(cls: type[T]) -> type[T]:
        for name, member in list(vars(cls).items()):
            if callable(member) and not name.startswith("_") and not isinstance(member, (staticmethod, classmethod)):
                setattr(cls, name, _guarded(service, member))
        return cls

    return decorate


def _guarded(service: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        with service_calls(service):
            return method(*args, **kwargs)

    return guarded
