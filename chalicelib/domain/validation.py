"""Input rules shared by both APIs: MLflow's key and size limits, metric values, strict JSON."""
from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, StrictInt, ValidationError

from chalicelib.domain.errors import InvalidInput, PayloadTooLarge

MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6_000
MAX_TAG_VALUE_LENGTH = 8_000
MAX_BATCH_METRICS = 1_000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1_000
MAX_JSON_BODY_BYTES = 1_000_000
MAX_JSON_DEPTH = 32  # DynamoDB's limit for nested documents; no client of Agora nests deeper

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-. /:]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# a media type, as HTTP writes one: type/subtype, then optional ;name=value parameters (RFC 9110 section 8.3.1)
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf'^{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|"[^"\\\x00-\x1f\x7f]*"))*$')
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

# The rules above as JSON Schema patterns (ECMA-262), for the OpenAPI document: each matches exactly what its
# check accepts (tests/test_openapi.py compares them). A key or path is segments joined by '/', each segment
# non-empty and neither '.' nor '..': either some character other than '.', or three dots or more.
_KEY_SEGMENT = r"(?:\.*[A-Za-z0-9_ :-][A-Za-z0-9_. :-]*|\.{3,})"
KEY_PATTERN = rf"^{_KEY_SEGMENT}(?:/{_KEY_SEGMENT})*$"  # with 1 to MAX_KEY_LENGTH characters: check_key
_PATH_SEGMENT = r"(?:\.*[^/.\x00-\x1f\x7f][^/\x00-\x1f\x7f]*|\.{3,})"
RELATIVE_PATH_PATTERN = rf"^{_PATH_SEGMENT}(?:/{_PATH_SEGMENT})*$"  # check_relative_path, when not empty
FOLDER_PATTERN = rf"^{_PATH_SEGMENT}(?:/{_PATH_SEGMENT})*/*$"  # a relative path, trailing slashes allowed
MEDIA_TYPE_PATTERN = _MEDIA_TYPE.pattern  # check_media_type


def _integral(value: Any) -> Any:
    """A JSON number without a fraction (3.0, 1e2) is the integer it spells, as JSON Schema's `integer` says."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A request's whole number: an int or an integral float (3.0 is 3); 3.5, booleans and strings are refused.
# Bounds go before INTEGRAL (`Annotated[StrictInt, Field(ge=0), INTEGRAL]`): after it pydantic still checks
# them but writes them into the JSON Schema as "ge"/"le", which no JSON Schema reader knows.
INTEGRAL = BeforeValidator(_integral)
WholeInt = Annotated[StrictInt, INTEGRAL]


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
    """Reject anything that would normalise to another path (leading '/', '.', '..', empty segments), and
    control characters, which S3 keys may hold but its event notifications and URLs mangle."""
    if _CONTROL.search(path):
        raise ValueError(f"{what} {path!r} must not contain control characters")
    if path.startswith("/"):
        raise ValueError(f"{what} {path!r} must not start with '/'")
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        raise ValueError(f"{what} {path!r} must not contain '.', '..' or empty path segments")
    return path


def check_media_type(value: str, what: str = "content_type") -> str:
    """A media type such as `text/plain; charset=utf-8`; nothing that could end a header line early."""
    if not _MEDIA_TYPE.match(value):
        raise ValueError(f"{what} {value!r} is not a media type (type/subtype, optionally ;name=value)")
    return value


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
        parsed = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidInput("request body is nested too deeply") from exc
    return checked_json(parsed, "request body")


def checked_json(value: Any, what: str) -> Any:
    """JSON that Agora can store: nested at most MAX_JSON_DEPTH levels, every text valid Unicode.

    A JSON escape can spell a lone surrogate (`"\\ud800"`), which no UTF-8 store accepts.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise InvalidInput(f"{what} nests more than {MAX_JSON_DEPTH} levels of objects and lists")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    check_text(key, what)
                pending.append((child, depth + 1))
        elif isinstance(item, str):
            check_text(item, what)
    return value


def check_text(text: str, what: str) -> str:
    """Text that encodes as UTF-8 (no lone surrogates); 400 otherwise."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} holds text that is not valid Unicode (a lone surrogate at position "
                           f"{exc.start})") from exc
    return text


def validation_detail(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors as the `detail` list of a 400: where, what, which rule."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]


def validated(model: Any, data: Any) -> Any:
    """`data` checked by a pydantic model class or TypeAdapter; a failure is a 400 listing every error."""
    try:
        return model.validate_python(data) if hasattr(model, "validate_python") else model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_detail(exc)) from exc
