"""MLflow's wire format: its request parsing, its JSON shapes, its error bodies (DESIGN.md section 8.2).

Requests as MLflow's server reads them: a GET's query string (a repeated field takes every occurrence),
a POST's JSON body (unknown fields ignored; int64 fields as numbers or strings). Responses as MLflow
writes them: snake_case fields, unset ones left out, epoch milliseconds, `"NaN"` for NaN. Errors as
`{"error_code", "message"}` with MLflow's HTTP statuses.
"""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Optional

from chalice import Response

from chalicelib.api.http import JSON
from chalicelib.domain.errors import (
    AgoraError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Throttled,
    Unauthenticated,
    Unavailable,
)
from chalicelib.domain.tracking.mlflow import NOTE_TAG, RUN_NAME_TAG, USER_TAG, epoch_ms

if TYPE_CHECKING:
    from chalicelib.api.http import Request
    from chalicelib.domain.tracking.mlflow import ArtifactEntry
    from chalicelib.domain.tracking.records import Experiment, Run

MAX_BODY_BYTES = 10_000_000  # API Gateway's payload limit; MLflow's own limits apply per field
_ERROR_CODES: dict[type[AgoraError], tuple[str, int]] = {
    InvalidInput: ("INVALID_PARAMETER_VALUE", 400),
    # a write a deleted run or experiment refuses, a param's second value: MLflow's 400
    Conflict: ("INVALID_PARAMETER_VALUE", 400),
    PayloadTooLarge: ("INVALID_PARAMETER_VALUE", 400),
    NotFound: ("RESOURCE_DOES_NOT_EXIST", 404),
    Forbidden: ("PERMISSION_DENIED", 403),
    Unauthenticated: ("UNAUTHENTICATED", 401),
    Throttled: ("TEMPORARILY_UNAVAILABLE", 503),
    Unavailable: ("TEMPORARILY_UNAVAILABLE", 503),
}
DOUBLE_MAX = 1.7976931348623157e308  # MLflow's stores keep +-Infinity as the largest double


def error(code: str, status: int, message: str) -> Response:
    headers: dict[str, str | list[str]] = {"Content-Type": JSON}
    if status == 401:  # a browser asks for the key (as the password of HTTP Basic)
        headers["WWW-Authenticate"] = 'Basic realm="Agora", charset="UTF-8"'
    if status == 503:
        headers["Retry-After"] = "1"
    return Response(body=json.dumps({"error_code": code, "message": message}), status_code=status, headers=headers)


def error_response(exc: AgoraError) -> Response:
    code, status = _ERROR_CODES[type(exc)]
    detail = exc.detail if isinstance(exc.detail, str) else "; ".join(
        f"{'.'.join(map(str, e.get('loc', ()))) or 'body'}: {e.get('msg')}" for e in exc.detail) \
        if isinstance(exc.detail, list) else json.dumps(exc.detail)
    return error(code, status, detail)


def respond(body: dict[str, Any]) -> Response:
    return Response(body=json.dumps(body, allow_nan=False), status_code=200, headers={"Content-Type": JSON})


# --- requests --------------------------------------------------------------------------------
def body(request: Request) -> dict[str, Any]:
    """A POST's JSON object, as MLflow's server reads it (it must say application/json; empty is {})."""
    content_type = (request.raw.headers.get("content-type") or "").split(";")[0].strip().lower()
    if not content_type:
        raise InvalidInput("Bad Request. Content-Type header is missing.")
    if content_type != JSON:
        raise InvalidInput("Bad Request. Content-Type must be one of ['application/json'].")
    raw = request.raw.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        parsed = json.loads(raw) if raw.strip() else {}
        if isinstance(parsed, str):  # older clients send the JSON document as a JSON string
            parsed = json.loads(parsed)
    except (ValueError, UnicodeDecodeError):
        parsed = {}
    return parsed if isinstance(parsed, dict) else {}


def query(request: Request) -> dict[str, Any]:
    """A GET's query parameters (each the first value), or its JSON body when it has no query string."""
    params = request.raw.query_params
    if not params:
        raw = request.raw.raw_body or b""
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            parsed = {}
        return parsed if isinstance(parsed, dict) else {}
    return {name: params.getlist(name)[0] for name in params}


def query_list(request: Request, name: str) -> list[str]:
    params = request.raw.query_params
    return list(params.getlist(name)) if params and name in params else []


def required(fields: dict[str, Any], name: str, *aliases: str) -> Any:
    for key in (name, *aliases):
        value = fields.get(key)
        if value not in (None, ""):
            return value
    raise InvalidInput(f"Missing value for required parameter '{name}'. See the API docs for more information about "
                       "request parameters.")


def string(fields: dict[str, Any], name: str) -> Optional[str]:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(invalid(name, value))
    return value


def integer(fields: dict[str, Any], name: str) -> Optional[int]:
    """An int64 field: a JSON number or a decimal string, as protobuf's JSON reads it."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(invalid(name, value))
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InvalidInput(invalid(name, value))


def number(value: Any, name: str = "value") -> float:
    """A double field: a JSON number or a string ("1.5", "NaN", "Infinity")."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(invalid(name, value))
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(invalid(name, value)) from None


def strings(fields: dict[str, Any], name: str) -> list[str]:
    value = fields.get(name) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(invalid(name, value))
    return value


def key_values(fields: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = fields.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidInput(invalid(name, value))
    return value


def metric(entry: dict[str, Any]) -> dict[str, Any]:
    """A metric of log-metric or log-batch as Agora's MetricIn takes it (MLflow's timestamp is required)."""
    key = required(entry, "key")
    value = number(required(entry, "value"), "value")
    timestamp = integer(entry, "timestamp")
    if timestamp is None:
        raise InvalidInput("Missing value for required parameter 'timestamp'. See the API docs for more information "
                           "about request parameters.")
    value_json: Any = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity") \
        if math.isinf(value) else value
    return {"key": key, "value": value_json, "timestamp": timestamp, "step": integer(entry, "step") or 0}


def invalid(name: str, value: Any) -> str:
    return (f"Invalid value {json.dumps(value)} for parameter '{name}' supplied:  Hint: Value was of type "
            f"'{type(value).__name__}'. See the API docs for more information about request parameters.")


# --- responses -------------------------------------------------------------------------------
def _pairs(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def double(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return DOUBLE_MAX if value > 0 else -DOUBLE_MAX
    return value


def experiment(exp: Experiment) -> dict[str, Any]:
    tags = dict(exp.tags)
    if exp.description and NOTE_TAG not in tags:
        tags[NOTE_TAG] = exp.description
    shaped: dict[str, Any] = {"experiment_id": exp.id, "name": exp.name, "artifact_location": exp.artifact_location,
                              "lifecycle_stage": exp.lifecycle_stage, "last_update_time": epoch_ms(exp.updated_at),
                              "creation_time": epoch_ms(exp.created_at)}
    if tags:
        shaped["tags"] = _pairs(tags)
    return shaped


def artifact_root(run: Run) -> str:
    """The run's artifact URI as MLflow's client must see it: through this server's mlflow-artifacts routes."""
    return f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts"


def run_info(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {"run_uuid": run.id, "experiment_id": run.experiment_id, "run_name": run.name,
                            "user_id": run.tags.get(USER_TAG, ""), "status": run.status,
                            "start_time": epoch_ms(run.start_time)}
    if run.end_time is not None:
        info["end_time"] = epoch_ms(run.end_time)
    info.update(artifact_uri=artifact_root(run), lifecycle_stage=run.lifecycle_stage, run_id=run.id)
    return info


def run(found: Run) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if found.latest:
        data["metrics"] = [{"key": k, "value": double(p.value), "timestamp": p.timestamp, "step": p.step}
                           for k, p in sorted(found.latest.items())]
    if found.params:
        data["params"] = _pairs(dict(sorted(found.params.items())))
    tags = dict(found.tags)
    tags.setdefault(RUN_NAME_TAG, found.name)  # as MLflow's runs always carry it (the UI reads data.tags)
    if found.description and NOTE_TAG not in tags:
        tags[NOTE_TAG] = found.description
    data["tags"] = _pairs(tags)
    return {"info": run_info(found), "data": data, "inputs": {}, "outputs": {}}


def history_point(key: str, point: dict[str, Any], run_id: Optional[str] = None) -> dict[str, Any]:
    """A point of Agora's history (its JSON form) as MLflow's Metric (MetricWithRunId with `run_id`)."""
    value = point["value"]
    if isinstance(value, str):
        value = double(float(value.replace("Infinity", "inf")))
    shaped = {"key": key, "value": value, "timestamp": point["timestamp"], "step": point["step"]}
    if run_id is not None:
        shaped["run_id"] = run_id
    return shaped


def file_info(entry: ArtifactEntry, name: Optional[str] = None) -> dict[str, Any]:
    shaped: dict[str, Any] = {"path": name if name is not None else entry.path, "is_dir": entry.is_dir}
    if not entry.is_dir:
        shaped["file_size"] = entry.size
    return shaped
