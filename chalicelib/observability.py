"""Logs, metrics and traces for every Lambda: Powertools, applied once by a Chalice middleware.

Log lines are JSON with the tenant, the request or execution id, the route or function and the
correlation id that launches carry into Step Functions executions. Headers and bodies are never
logged, so API keys, callback tokens and LLM keys stay out of the logs.
"""
from __future__ import annotations

import os
import time
import uuid
from functools import cache
from typing import Any, Callable, Optional

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.logs import SERVICE

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Agora", service=SERVICE)
XRAY_DAEMON = "AWS_XRAY_DAEMON_ADDRESS"  # set by Lambda only for functions with active X-Ray tracing
TRACE_DISABLED = "POWERTOOLS_TRACE_DISABLED"


@cache
def tracer() -> Optional[Any]:
    """Powertools' X-Ray tracer where X-Ray is on, else None: importing the X-Ray SDK costs a cold start
    about 170 ms, for nothing where no trace is sent."""
    if not os.environ.get(XRAY_DAEMON) or os.environ.get(TRACE_DISABLED, "").lower() in ("1", "true"):
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


def count(name: str, value: float = 1) -> None:
    """Add to a business metric of this invocation (flushed as EMF when the invocation ends)."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _http_keys(request: Any) -> dict[str, Any]:
    context = request.context or {}
    authorizer = context.get("authorizer") or {}
    request_id = context.get("requestId") or ""
    correlation_id = (request.headers or {}).get("x-correlation-id") or request_id or uuid.uuid4().hex
    return {"tenant_id": authorizer.get("tenant_id"), "request_id": request_id,
            "route": f"{request.method} {context.get('resourcePath', request.path)}",
            "correlation_id": correlation_id[:128]}


def correlation_id() -> str:
    """The current request's correlation id (the caller's `X-Correlation-Id`, else API Gateway's request id)."""
    return str(logger.thread_safe_get_current_keys().get("correlation_id") or "")


def _event_keys(event: Any) -> dict[str, Any]:
    payload: Any = getattr(event, "event", None) or getattr(event, "to_dict", dict)()
    context = getattr(event, "context", None)
    keys: dict[str, Any] = {"function": getattr(context, "function_name", None),
                            "request_id": getattr(context, "aws_request_id", None)}
    if isinstance(payload, dict):
        keys |= {k: payload.get(k) for k in ("tenant_id", "experiment_id", "correlation_id") if payload.get(k)}
    return keys


def _traced(event: Any, get_response: Callable[[Any], Any], keys: dict[str, Any]) -> Any:
    """The handler in an X-Ray subsegment annotated with tenant and route (where X-Ray is on)."""
    xray = tracer()
    if xray is None:
        return get_response(event)
    with xray.provider.in_subsegment("## handler") as subsegment:
        for name in ("tenant_id", "route", "function"):
            if keys.get(name):
                subsegment.put_annotation(name, keys[name])
        return get_response(event)


def observe(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Chalice middleware for every handler type: context keys, one summary line, metrics flushed."""
    is_http = hasattr(event, "method") and hasattr(event, "headers")
    keys = _http_keys(event) if is_http else _event_keys(event)
    logger.thread_safe_append_keys(**keys)  # this thread's request only: the local stack serves many at once
    began = time.monotonic()
    try:
        response = _traced(event, get_response, keys)
        status = getattr(response, "status_code", None)
        if is_http:
            count("Requests")
            if status is not None and status >= 500:
                count("Errors")
            elif status is not None and status >= 400:
                count("ClientErrors")
        logger.info("handled", extra={"status": status, "duration_ms": round((time.monotonic() - began) * 1000, 1)})
        return response
    except Exception:
        count("Errors")
        logger.exception("failed", extra={"duration_ms": round((time.monotonic() - began) * 1000, 1)})
        raise
    finally:
        if metrics.metric_set:  # an invocation that counted nothing publishes nothing
            metrics.flush_metrics()
            metrics.clear_metrics()  # flushing does not clear when metrics are disabled (tests, local)
        logger.thread_safe_remove_keys(list(keys))
