"""Makes moto run Agora's own Lambda handlers, in-process, instead of Docker containers.

moto 5.2.5 runs Lambda code only in Docker, and it cannot deliver EventBridge events to Lambda
targets. Two private methods are replaced, so moto is pinned exactly (requirements.txt) and
`check_moto()` refuses to patch a moto whose patched signatures differ from 5.2.5's:

1. `moto.awslambda.models.LambdaFunction._invoke_lambda(self, event=None) -> (payload, errored, logs)`
   calls `app.handler_map[name]` with a fake Lambda context. Direct invokes, Step Functions
   `lambda:invoke` (and `.waitForTaskToken`) Tasks and S3 notifications all go through it. The
   handler runs on a thread of its own while the invoker waits (a Lambda is apart from its caller,
   also when moto answers the caller in-process). Functions that are not the app's fall back to
   moto's own implementation.
2. `moto.events.models.Rule.send_to_targets(self, original_event, transform_input=True)` delivers
   matching events to Lambda-ARN targets (moto raises NotImplementedError for them, which S3's
   EventBridge path swallows silently); every other target goes to moto's original method.

`register_functions()` creates the moto side: one dummy-zip function per Lambda of the app (named
as deployed, `<app>-<stage>-<name>`) and one EventBridge rule per `on_cw_event` handler.
Everything in moto is synchronous: a handler runs inside the request that triggered it.
"""
from __future__ import annotations

import copy
import inspect
import io
import json
import logging
import re
import threading
import time
import traceback
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable, Optional

import moto
from moto.awslambda.models import LambdaBackend, LambdaFunction
from moto.events.models import EventTemplateParser, Rule

logger = logging.getLogger(__name__)

EXPECTED_MOTO_VERSION = "5.2.5"
DEFAULT_STAGE = "dev"
ROLE_NAME = "agora-local-lambda"
_ASSUME_ROLE = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
})
_EMPTY = inspect.Parameter.empty
# (class, method, [(parameter name, default)]) exactly as in moto 5.2.5
_EXPECTED_SIGNATURES: list[tuple[type, str, list[tuple[str, Any]]]] = [
    (LambdaFunction, "_invoke_lambda", [("self", _EMPTY), ("event", None)]),
    (LambdaFunction, "invoke", [("self", _EMPTY), ("body", _EMPTY), ("request_headers", _EMPTY),
                                ("response_headers", _EMPTY)]),
    (LambdaBackend, "invoke", [("self", _EMPTY), ("function_name", _EMPTY), ("qualifier", _EMPTY),
                               ("body", _EMPTY), ("headers", _EMPTY), ("response_headers", _EMPTY)]),
    (Rule, "send_to_targets", [("self", _EMPTY), ("original_event", _EMPTY), ("transform_input", True)]),
]


class MotoDriftError(RuntimeError):
    """moto's private internals no longer look like 5.2.5's: the bridge would silently misbehave."""


def check_moto() -> None:
    """Fail loudly if a patched (or relied-upon) moto method changed its signature or its callers."""
    problems = []
    for cls, name, expected in _EXPECTED_SIGNATURES:
        method = _original(cls, name)
        if method is None:
            problems.append(f"{cls.__module__}.{cls.__name__}.{name} is gone")
            continue
        actual = [(p.name, p.default) for p in inspect.signature(method).parameters.values()]
        if actual != expected:
            problems.append(f"{cls.__name__}.{name}{inspect.signature(method)} differs from 5.2.5's {expected}")
    callers = [
        (_original(LambdaFunction, "invoke"), "self._invoke_lambda(event=body)"),
        (_s3_eventbridge_sender(), "rule.send_to_targets(event, transform_input=False)"),
    ]
    for function, call in callers:
        if function is None or call not in inspect.getsource(function):
            problems.append(f"moto no longer calls `{call}` where the bridge expects it")
    if problems:
        raise MotoDriftError(
            f"moto {moto.__version__} is not the {EXPECTED_MOTO_VERSION} that devstack/moto_bridge.py patches: "
            + "; ".join(problems) + ". Pin moto[server]==5.2.5 or port the bridge.")
    if moto.__version__ != EXPECTED_MOTO_VERSION:
        logger.warning("moto %s: the bridge was written against %s (signatures still match)",
                       moto.__version__, EXPECTED_MOTO_VERSION)


def _s3_eventbridge_sender() -> Optional[Callable[..., Any]]:
    from moto.s3 import notifications

    return getattr(notifications, "_send_event_bridge_message", None)


def _original(cls: type, name: str) -> Optional[Callable[..., Any]]:
    method = cls.__dict__.get(name)
    return getattr(method, "__agora_original__", method)


# ---------------------------------------------------------------------------------------------
# State: which app the patched methods dispatch to


@dataclass
class _Bridge:
    app: Any = None
    stage: str = DEFAULT_STAGE
    names: frozenset[str] = field(default_factory=frozenset)
    prefix: Optional[re.Pattern[str]] = None


_bridge = _Bridge()
_install_lock = threading.Lock()


def function_names(app: Any) -> list[str]:
    """The app's Lambda functions, as opposed to route views, which also sit in `handler_map`."""
    names = [src.name for src in app.event_sources]
    names += [fn.name for fn in app.pure_lambda_functions]
    names += [auth.name for auth in app.builtin_auth_handlers]
    return [n for n in dict.fromkeys(names) if n in app.handler_map]


def deployed_name(app: Any, name: str, stage: str = DEFAULT_STAGE) -> str:
    """Chalice names a deployed function `<app>-<stage>-<name>`."""
    return f"{app.app_name}-{stage}-{name}"


def install(app: Any, stage: str = DEFAULT_STAGE) -> None:
    """Patch moto (once) and dispatch to `app`; calling it again only switches the app."""
    with _install_lock:
        check_moto()
        _bridge.app = app
        _bridge.stage = stage
        _bridge.names = frozenset(function_names(app))
        _bridge.prefix = re.compile(rf"^{re.escape(app.app_name)}-[^-]+-(?P<name>.+)$")
        _patch(LambdaFunction, "_invoke_lambda", _invoke_lambda)
        _patch(Rule, "send_to_targets", _send_to_targets)


def uninstall() -> None:
    """Restore moto's own methods (for completeness; the local stack never needs it)."""
    with _install_lock:
        for cls, name in ((LambdaFunction, "_invoke_lambda"), (Rule, "send_to_targets")):
            original = _original(cls, name)
            if original is not None:
                setattr(cls, name, original)
        _bridge.app = None
        _bridge.names = frozenset()


def is_installed() -> bool:
    return hasattr(LambdaFunction.__dict__.get("_invoke_lambda"), "__agora_original__")


def _patch(cls: type, name: str, replacement: Callable[..., Any]) -> None:
    current = cls.__dict__[name]
    if hasattr(current, "__agora_original__"):
        return
    replacement.__agora_original__ = current  # type: ignore[attr-defined]
    setattr(cls, name, replacement)


def _handler_name(function_name: str) -> Optional[str]:
    """The handler_map key for a moto function name, or None if it is not one of the app's."""
    if function_name in _bridge.names:
        return function_name
    match = _bridge.prefix.match(function_name) if _bridge.prefix else None
    if match and match.group("name") in _bridge.names:
        return match.group("name")
    return None


# ---------------------------------------------------------------------------------------------
# Patch 1: Lambda invocation


class LambdaContext:
    """What handlers (and Powertools' `inject_lambda_context`) read of the real Lambda context."""

    def __init__(self, fn: LambdaFunction) -> None:
        self.function_name: str = fn.function_name
        self.function_version: str = "$LATEST"
        self.invoked_function_arn: str = fn.function_arn
        self.memory_limit_in_mb: int = int(fn.memory_size)
        self.aws_request_id: str = str(uuid.uuid4())
        self.log_group_name: str = f"/aws/lambda/{fn.function_name}"
        self.log_stream_name: str = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.timeout_seconds: float = float(fn.timeout)
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _lambda_error(exc: BaseException, error_type: Optional[str] = None) -> str:
    """The payload the Python runtime returns for an unhandled exception."""
    return json.dumps({
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    })


def _invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    name = _handler_name(self.function_name)
    if _bridge.app is None or name is None:
        return _invoke_lambda.__agora_original__(self, event)  # type: ignore[attr-defined]
    if event is None or event == "{}":  # moto passes the string "{}" for an empty body
        event = {}
    handler = _bridge.app.handler_map[name]
    context = LambdaContext(self)
    started = time.monotonic()
    try:
        result = _on_its_own_thread(self.function_name, lambda: handler(event, context))
    except Exception as exc:
        logger.exception("Lambda %s failed", self.function_name)
        return _lambda_error(exc), True, ""
    finally:
        elapsed = time.monotonic() - started
        if elapsed > context.timeout_seconds:
            logger.warning("Lambda %s ran %.1f s, beyond its %s s timeout (not enforced locally)",
                           self.function_name, elapsed, context.timeout_seconds)
    try:
        payload = json.dumps(result)
    except (TypeError, ValueError) as exc:
        logger.error("Lambda %s returned something JSON cannot encode: %s", self.function_name, exc)
        return _lambda_error(exc, "Runtime.MarshalError"), True, ""
    return payload, False, ""


def _on_its_own_thread(function_name: str, call: Callable[[], Any]) -> Any:
    """Run a handler as a Lambda runs: apart from its caller, which waits for it.

    moto answers in-process calls on the caller's thread, so an S3 upload made by a request would run
    the upload trigger nested inside that request: the handler's log keys (per thread) would replace
    and then remove the request's own, and a caller holding the DynamoDB lock would share it with the
    handler. On a thread of its own the handler starts clean; a caller holding the lock lends it
    while it waits (as moto_hardening does for stream deliveries).
    """
    from devstack.moto_hardening import DYNAMODB_LOCK

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises it
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"lambda:{function_name}", daemon=True)
    with DYNAMODB_LOCK.suspended():
        worker.start()
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


# ---------------------------------------------------------------------------------------------
# Patch 2: EventBridge -> Lambda targets


def _is_lambda_arn(arn: str) -> bool:
    return arn.startswith("arn:") and arn.split(":")[2:3] == ["lambda"]


def _iso_time(value: Any) -> Any:
    """moto puts a float epoch in `time` (S3 path); AWS sends `2024-01-01T00:00:00Z`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _lambda_input(target: dict[str, Any], event: dict[str, Any], transform_input: bool) -> Any:
    if not transform_input:
        return event
    if "Input" in target:
        return json.loads(target["Input"])
    transformer = target.get("InputTransformer")
    if transformer:
        return EventTemplateParser.parse(input_template=transformer.get("InputTemplate"),
                                         input_paths_map=transformer.get("InputPathsMap", {}), event=event)
    return event


def _send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
    original = _send_to_targets.__agora_original__  # type: ignore[attr-defined]
    lambda_targets = [t for t in self.targets if _is_lambda_arn(t["Arn"])]
    if not lambda_targets:
        return original(self, original_event, transform_input)
    others = [t for t in self.targets if not _is_lambda_arn(t["Arn"])]
    if others:
        # a shallow copy carrying only the other targets: no mutation of the shared rule
        view = copy.copy(self)
        view.targets = others
        original(view, original_event, transform_input)
    if self.state != "ENABLED" or (self.scheduled_expression and not self.event_pattern.get_pattern()):
        return  # a disabled rule or a schedule rule (which matches no events)
    if not self.event_pattern.matches_event(original_event):
        return
    from moto.awslambda.utils import get_backend

    event = copy.deepcopy(original_event)
    if "time" in event:
        event["time"] = _iso_time(event["time"])
    for target in lambda_targets:
        arn = target["Arn"]
        response_headers: dict[str, str] = {}
        try:
            payload = _lambda_input(target, event, transform_input)
            body = payload if isinstance(payload, str) else json.dumps(payload)
            region, account = arn.split(":")[3], arn.split(":")[4]
            result = get_backend(account, region).invoke(arn, None, body, {"x-amz-invocation-type": "Event"},
                                                          response_headers)
        except Exception:
            logger.exception("EventBridge rule %s could not deliver to %s", self.name, arn)
            continue
        if response_headers.get("x-amz-function-error"):
            logger.error("EventBridge rule %s: target %s failed: %s", self.name, arn, result)


# ---------------------------------------------------------------------------------------------
# The moto side: functions and rules


def _dummy_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "# never run: devstack.moto_bridge dispatches to the Chalice app\n")
    return buffer.getvalue()


def _ensure_role(session: Any) -> str:
    iam = session.client("iam")
    try:
        return iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=_ASSUME_ROLE)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]


def register_functions(session: Any, app: Any, stage: str = DEFAULT_STAGE, *, timeout: int = 30,
                       memory_size: int = 512, environment: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Create a moto function per Lambda of the app and a rule per `on_cw_event`; returns name -> ARN."""
    from chalice.app import CloudWatchEventConfig

    lam = session.client("lambda")
    events = session.client("events")
    role = _ensure_role(session)
    code = _dummy_zip()
    handler_strings = {src.name: src.handler_string
                       for src in [*app.event_sources, *app.pure_lambda_functions, *app.builtin_auth_handlers]}
    arns: dict[str, str] = {}
    for name in function_names(app):
        function_name = deployed_name(app, name, stage)
        try:
            arns[name] = lam.create_function(
                FunctionName=function_name, Runtime="python3.11", Role=role, Handler=handler_strings[name],
                Code={"ZipFile": code}, Timeout=timeout, MemorySize=memory_size,
                Environment={"Variables": dict(environment or {})},
                Description=f"devstack: dispatched in-process to app.handler_map[{name!r}]")["FunctionArn"]
        except lam.exceptions.ResourceConflictException:
            arns[name] = lam.get_function(FunctionName=function_name)["Configuration"]["FunctionArn"]
    for source in app.event_sources:
        if isinstance(source, CloudWatchEventConfig) and source.name in arns:
            rule = f"{deployed_name(app, source.name, stage)}-event"[:64]
            events.put_rule(Name=rule, EventPattern=json.dumps(source.event_pattern), State="ENABLED",
                            Description=f"devstack: on_cw_event {source.name}")
            events.put_targets(Rule=rule, Targets=[{"Id": "handler", "Arn": arns[source.name]}])
    return arns
