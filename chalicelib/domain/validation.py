"""Input rules shared by both APIs: MLflow's key and size limits, metric values, strict JSON."""
from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import ValidationError

from chalicelib.domain.errors import InvalidInput, PayloadTooLarge

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6_000
MAX_TAG_VALUE_LENGTH = 8_000
MAX_BATCH_METRICS = 1_000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1_000
MAX_JSON_BODY_BYTES = 1_000_000

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-. /:]+$")
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def check_key(key: str, what: str = "key") -> str:
    """MLflow's key rule: 1-250 characters of [A-Za-z0-9_-. /:], and no path tricks."""
    if not key:
        raise ValueError(f"{what} must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{what} is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}")
    if not _KEY_PATTERN.match(key):
        raise ValueError(f"{what} {key!r} may only contain letters, digits and _ - . space / :")
    check_relative_path(key, what)
    return key


def check_relative_path(path: str, what: str = "path") -> str:
    """Reject anything that would normalise to another path: leading '/', '.', '..', empty segments."""
    if path.startswith("/"):
        raise ValueError(f"{what} {path!r} must not start with '/'")
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        raise ValueError(f"{what} {path!r} must not contain '.', '..' or empty path segments")
    return path


def metric_value(raw: Any) -> float:
    """A finite JSON number, or one of the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(raw, bool):
        raise ValueError("metric value must be a number, not a boolean")
    if isinstance(raw, (int, float)):
        try:
            value = float(raw)
        except OverflowError as exc:
            raise ValueError("metric value is too large for a 64-bit float") from exc
        if not math.isfinite(value):
            raise ValueError('send non-finite metric values as the strings "NaN", "Infinity" or "-Infinity"')
        return value
    if isinstance(raw, str) and raw in NON_FINITE:
        return NON_FINITE[raw]
    raise ValueError('metric value must be a number or one of "NaN", "Infinity", "-Infinity"')


def metric_value_to_json(value: float) -> float | str:
    """The inverse of `metric_value`: JSON has no NaN or Infinity, so they travel as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON; send it as the string \"{name}\"")


def parse_json_body(raw: bytes | None, limit: int = MAX_JSON_BODY_BYTES) -> Any:
    """Strict JSON (no bare NaN/Infinity), size-limited; an empty body is an empty object."""
    if raw is None or raw.strip() == b"":
        return {}
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {limit}")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidInput("request body is nested too deeply") from exc


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors as the `detail` list of a 400: where, what, which rule."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]


def validated(model: Any, data: Any) -> Any:
    """`data` checked by a pydantic model class or TypeAdapter; a failure is a 400 listing every error."""
    try:
        return model.validate_python(data) if hasattr(model, "validate_python") else model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_detail(exc)) from exc
