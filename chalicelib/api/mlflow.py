"""MLflow's REST API over Agora's store: `mlflow` scripts and MLflow's web UI work against Agora unchanged.

Every endpoint answers at `/api/2.0/mlflow/...` (the client) and `/ajax-api/2.0/mlflow/...` (the web UI),
as MLflow's server does. Artifacts go through `/api/2.0/mlflow-artifacts/...`: the client's uploads and
downloads of a run's files (a download is a redirect to a short-lived S3 URL; an upload passes through
the function, so it is bounded by the payload limit). The shapes are chalicelib.api.mlflow_views'; the
rules chalicelib.domain.tracking.mlflow's.
"""
from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any, Callable

from chalice import Response

from chalicelib.api import mlflow_views as wire
from chalicelib.api.http import Api, Request, redirect
from chalicelib.api.tracking_artifacts import MAX_DIRECT_UPLOAD_BYTES
from chalicelib.domain.errors import Conflict, InvalidInput, NotFound
from chalicelib.wiring import services

if TYPE_CHECKING:
    from chalicelib.domain.tracking.records import Run

api = Api(__name__, errors=wire.error_response, documented=False)
mlflow_bp = api.blueprint
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MAX_ARTIFACT_DEPTH = 12  # folders below a run's artifact root the artifact routes reach (API Gateway has no `a/b/*`)
ANY = ("*/*",)


def endpoint(path: str, methods: tuple[str, ...] = ("POST",), **options: Any) -> Callable:
    """One MLflow endpoint at both of its prefixes."""
    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        for prefix in PREFIXES:
            api.route(prefix + path, methods, content_types=ANY, **options)(view)
        return view

    return decorator


def _tenant(request: Request) -> str:
    return request.tenant_id


def _mlflow():
    return services().mlflow


# --- experiments -------------------------------------------------------------------------------
@endpoint("/experiments/create")
def create_experiment(request: Request) -> Response:
    fields = wire.body(request)
    name = wire.required(fields, "name")
    if not isinstance(name, str):
        raise InvalidInput(wire.invalid("name", name))
    tags = {t.get("key"): t.get("value") for t in wire.key_values(fields, "tags")}
    try:
        exp = _mlflow().create_experiment(_tenant(request), name, wire.string(fields, "artifact_location"), tags)
    except Conflict:
        return wire.error("RESOURCE_ALREADY_EXISTS", 400, f"Experiment '{name}' already exists.")
    return wire.respond({"experiment_id": exp.id})


@endpoint("/experiments/get", ("GET",))
def get_experiment(request: Request) -> Response:
    experiment_id = wire.required(wire.query(request), "experiment_id")
    return wire.respond({"experiment": wire.experiment(_mlflow().get_experiment(_tenant(request), experiment_id))})


@endpoint("/experiments/get-by-name", ("GET",))
def get_experiment_by_name(request: Request) -> Response:
    name = wire.required(wire.query(request), "experiment_name")
    return wire.respond({"experiment": wire.experiment(_mlflow().experiment_by_name(_tenant(request), name))})


@endpoint("/experiments/search", ("GET", "POST"))
def search_experiments(request: Request) -> Response:
    if request.raw.method == "GET":
        fields: dict[str, Any] = wire.query(request)
        order_by = wire.query_list(request, "order_by")
    else:
        fields = wire.body(request)
        order_by = wire.strings(fields, "order_by")
    page = _mlflow().search_experiments(
        _tenant(request), view_type=wire.string(fields, "view_type"), filter_string=wire.string(fields, "filter"),
        order_by=order_by, max_results=wire.integer(fields, "max_results"),
        page_token=wire.string(fields, "page_token"))
    answer: dict[str, Any] = {}
    if page.items:
        answer["experiments"] = [wire.experiment(e) for e in page.items]
    if page.next_page_token:
        answer["next_page_token"] = page.next_page_token
    return wire.respond(answer)


@endpoint("/experiments/update")
def update_experiment(request: Request) -> Response:
    fields = wire.body(request)
    experiment_id = wire.required(fields, "experiment_id")
    new_name = wire.string(fields, "new_name")
    if new_name:
        _mlflow().rename_experiment(_tenant(request), experiment_id, new_name)
    else:
        _mlflow().get_experiment(_tenant(request), experiment_id)
    return wire.respond({})


@endpoint("/experiments/delete")
def delete_experiment(request: Request) -> Response:
    _mlflow().delete_experiment(_tenant(request), wire.required(wire.body(request), "experiment_id"))
    return wire.respond({})


@endpoint("/experiments/restore")
def restore_experiment(request: Request) -> Response:
    _mlflow().restore_experiment(_tenant(request), wire.required(wire.body(request), "experiment_id"))
    return wire.respond({})


@endpoint("/experiments/set-experiment-tag")
def set_experiment_tag(request: Request) -> Response:
    fields = wire.body(request)
    _mlflow().set_experiment_tag(_tenant(request), wire.required(fields, "experiment_id"),
                                 wire.required(fields, "key"), wire.string(fields, "value") or "")
    return wire.respond({})


@endpoint("/experiments/delete-experiment-tag")
def delete_experiment_tag(request: Request) -> Response:
    fields = wire.body(request)
    _mlflow().delete_experiment_tag(_tenant(request), wire.required(fields, "experiment_id"),
                                    wire.required(fields, "key"))
    return wire.respond({})


# --- runs --------------------------------------------------------------------------------------
def _run_id(fields: dict[str, Any]) -> str:
    return wire.required(fields, "run_id", "run_uuid")


@endpoint("/runs/create")
def create_run(request: Request) -> Response:
    fields = wire.body(request)
    tags = {t.get("key"): t.get("value") for t in wire.key_values(fields, "tags")}
    created = _mlflow().create_run(_tenant(request), wire.string(fields, "experiment_id") or "0",
                                   wire.string(fields, "run_name"), wire.integer(fields, "start_time"), tags)
    return wire.respond({"run": wire.run(created)})


@endpoint("/runs/get", ("GET",))
def get_run(request: Request) -> Response:
    return wire.respond({"run": wire.run(_mlflow().get_run(_tenant(request), _run_id(wire.query(request))))})


@endpoint("/runs/update")
def update_run(request: Request) -> Response:
    fields = wire.body(request)
    updated = _mlflow().update_run(_tenant(request), _run_id(fields), status=wire.string(fields, "status"),
                                   end_time=wire.integer(fields, "end_time"),
                                   run_name=wire.string(fields, "run_name"))
    return wire.respond({"run_info": wire.run_info(updated)})


@endpoint("/runs/delete")
def delete_run(request: Request) -> Response:
    _mlflow().delete_run(_tenant(request), wire.required(wire.body(request), "run_id"))
    return wire.respond({})


@endpoint("/runs/restore")
def restore_run(request: Request) -> Response:
    _mlflow().restore_run(_tenant(request), wire.required(wire.body(request), "run_id"))
    return wire.respond({})


@endpoint("/runs/log-metric")
def log_metric(request: Request) -> Response:
    fields = wire.body(request)
    _mlflow().log(_tenant(request), _run_id(fields), metrics=[wire.metric(fields)])
    return wire.respond({})


def _key_value(fields: dict[str, Any]) -> dict[str, str]:
    """The {key, value} of log-parameter and set-tag (the value a string, possibly empty)."""
    key, value = wire.required(fields, "key"), fields.get("value")
    if not isinstance(value, str):
        raise InvalidInput(wire.invalid("value", value))
    return {"key": key, "value": value}


@endpoint("/runs/log-parameter")
def log_parameter(request: Request) -> Response:
    fields = wire.body(request)
    _mlflow().log(_tenant(request), _run_id(fields), params=[_key_value(fields)])
    return wire.respond({})


@endpoint("/runs/set-tag")
def set_tag(request: Request) -> Response:
    fields = wire.body(request)
    _mlflow().log(_tenant(request), _run_id(fields), tags=[_key_value(fields)])
    return wire.respond({})


@endpoint("/runs/delete-tag")
def delete_tag(request: Request) -> Response:
    fields = wire.body(request)
    _mlflow().delete_run_tag(_tenant(request), wire.required(fields, "run_id"), wire.required(fields, "key"))
    return wire.respond({})


@endpoint("/runs/log-batch")
def log_batch(request: Request) -> Response:
    fields = wire.body(request)
    run_id = wire.required(fields, "run_id")
    metrics = [wire.metric(m) for m in wire.key_values(fields, "metrics")]
    _mlflow().log(_tenant(request), run_id, metrics=metrics, params=wire.key_values(fields, "params"),
                  tags=wire.key_values(fields, "tags"))
    return wire.respond({})


@endpoint("/runs/log-inputs")
def log_inputs(request: Request) -> Response:
    """Datasets and models a run used: accepted and not kept (Agora has no datasets); the run must exist."""
    _mlflow().get_run(_tenant(request), wire.required(wire.body(request), "run_id"))
    return wire.respond({})


@endpoint("/runs/search")
def search_runs(request: Request) -> Response:
    fields = wire.body(request)
    page = _mlflow().search_runs(
        _tenant(request), experiment_ids=wire.strings(fields, "experiment_ids"),
        filter_string=wire.string(fields, "filter"), view_type=wire.string(fields, "run_view_type"),
        max_results=wire.integer(fields, "max_results"), order_by=wire.strings(fields, "order_by"),
        page_token=wire.string(fields, "page_token"))
    answer: dict[str, Any] = {}
    if page.items:
        answer["runs"] = [wire.run(r) for r in page.items]
    if page.next_page_token:
        answer["next_page_token"] = page.next_page_token
    return wire.respond(answer)


# --- metrics -----------------------------------------------------------------------------------
@endpoint("/metrics/get-history", ("GET",))
def get_metric_history(request: Request) -> Response:
    fields = wire.query(request)
    key = wire.required(fields, "metric_key")
    points, token = _mlflow().metric_history(_tenant(request), _run_id(fields), key,
                                             wire.integer(fields, "max_results"), wire.string(fields, "page_token"))
    answer: dict[str, Any] = {}
    if points:
        answer["metrics"] = [wire.history_point(key, p) for p in points]
    if token:
        answer["next_page_token"] = token
    return wire.respond(answer)


@endpoint("/metrics/get-history-bulk-interval", ("GET",))
def get_history_bulk_interval(request: Request) -> Response:
    fields = wire.query(request)
    key = wire.required(fields, "metric_key")
    found = _mlflow().history_bulk_interval(_tenant(request), wire.query_list(request, "run_ids"), key,
                                            wire.integer(fields, "start_step"), wire.integer(fields, "end_step"),
                                            wire.integer(fields, "max_results"))
    return wire.respond({"metrics": [wire.history_point(key, p, run_id) for run_id, p in found]} if found else {})


# the web UI's own bulk read (only under /ajax-api, as MLflow's): every point of each run, up to max_results
@api.route("/ajax-api/2.0/mlflow/metrics/get-history-bulk", ("GET",), content_types=ANY)
def get_history_bulk(request: Request) -> Response:
    fields = wire.query(request)
    key = wire.required(fields, "metric_key")
    found = _mlflow().history_bulk_interval(_tenant(request), wire.query_list(request, "run_id"), key, None, None,
                                            wire.integer(fields, "max_results") or 25_000 // 2)
    return wire.respond({"metrics": [wire.history_point(key, p, run_id) for run_id, p in found]} if found else {})


# --- artifacts ---------------------------------------------------------------------------------
@endpoint("/artifacts/list", ("GET",))
def list_artifacts(request: Request) -> Response:
    """One folder of a run's artifacts; paths relative to the run's root (MLflow's tracking API, the UI's)."""
    fields = wire.query(request)
    run_id = _run_id(fields)
    run = _mlflow().get_run(_tenant(request), run_id)
    entries = _mlflow().artifact_folder(run, _folder(fields.get("path")))
    answer: dict[str, Any] = {"root_uri": wire.artifact_root(run)}
    if entries:
        answer["files"] = [wire.file_info(e) for e in entries]
    return wire.respond(answer)


@endpoint("/logged-models/search")
def search_logged_models(request: Request) -> Response:
    """Agora keeps no logged models: none match (the client asks before listing a run's folder)."""
    wire.body(request)
    return wire.respond({})


def _folder(path: Any) -> str:
    if path in (None, ""):
        return ""
    if not isinstance(path, str) or path.startswith("/") or any(p in ("..", ".") for p in path.split("/")):
        raise InvalidInput("Invalid path")
    return path.strip("/")


def _run_path(request: Request, experiment_id: str, run_id: str, parts: tuple[str, ...]) -> tuple[Run, str]:
    """(run, artifact path) of an mlflow-artifacts URL; the run must be the tenant's, of that experiment. The run
    is read once, here, for the whole request."""
    run = _mlflow().get_run(_tenant(request), run_id)
    if run.experiment_id != experiment_id:
        raise NotFound(f"No such artifact: '{experiment_id}/{run_id}/artifacts/{'/'.join(parts)}'")
    return run, _folder("/".join(parts))


def _artifact_route(view: Callable[..., Response], methods: tuple[str, ...]) -> None:
    """`view(request, experiment_id, run_id, parts)` at `<exp>/<run>/artifacts/<1 to MAX_ARTIFACT_DEPTH parts>`."""
    names = [f"p{i}" for i in range(MAX_ARTIFACT_DEPTH)]
    for depth in range(1, MAX_ARTIFACT_DEPTH + 1):
        path = ARTIFACTS + "/{experiment_id}/{run_id}/artifacts/" + "/".join("{" + n + "}" for n in names[:depth])

        def handler(request: Request, experiment_id: str, run_id: str, **parts: str) -> Response:
            return view(request, experiment_id, run_id, tuple(parts[n] for n in names if n in parts))

        handler.__name__ = f"{view.__name__}_{depth}"
        handler.__doc__ = view.__doc__
        api.route(path, methods, content_types=ANY)(handler)


def upload_artifact(request: Request, experiment_id: str, run_id: str, parts: tuple[str, ...]) -> Response:
    """The client's upload of one file (its bytes as the body), bounded by what a function call carries."""
    run, path = _run_path(request, experiment_id, run_id, parts)
    data = request.raw.raw_body or b""
    if len(data) > MAX_DIRECT_UPLOAD_BYTES:
        raise InvalidInput(f"the file is {len(data)} bytes; uploads through the API take at most "
                           f"{MAX_DIRECT_UPLOAD_BYTES} (larger files: POST /api/v1/experiments/runs/{run_id}/"
                           "artifact-uploads, straight to S3)")
    content_type = request.raw.headers.get("content-type") or mimetypes.guess_type(path)[0] or \
        "application/octet-stream"
    services().artifacts.upload_to(run, path, data, content_type)
    return Response(body="", status_code=200)


def download_artifact(request: Request, experiment_id: str, run_id: str, parts: tuple[str, ...]) -> Response:
    """A file of the run: a redirect to a short-lived S3 URL (the bytes never pass through the function)."""
    run, path = _run_path(request, experiment_id, run_id, parts)
    try:
        return redirect(services().artifacts.download_url_of(run, path))
    except NotFound:
        if _mlflow().artifact_folder(run, path):
            raise InvalidInput(f"Artifact path refers to a directory, not a file: '{'/'.join(parts)}'") from None
        raise NotFound(f"No such artifact: '{experiment_id}/{run_id}/artifacts/{path}'") from None


_artifact_route(upload_artifact, ("PUT",))
_artifact_route(download_artifact, ("GET",))


@api.route(ARTIFACTS, ("GET",), content_types=ANY)
def list_artifact_folder(request: Request) -> Response:
    """The client's listing: `path=<exp>/<run>/artifacts[/<folder>]`, entries by their names only."""
    path = _folder(wire.query(request).get("path"))
    parts = path.split("/") if path else []
    if len(parts) < 3 or parts[2] != "artifacts":
        raise InvalidInput("path must be <experiment id>/<run id>/artifacts[/<folder>]")
    run, folder = _run_path(request, parts[0], parts[1], tuple(parts[3:]))
    entries = _mlflow().artifact_folder(run, folder)
    if not entries:
        return wire.respond({})
    return wire.respond({"files": [wire.file_info(e, e.path.rsplit("/", 1)[-1]) for e in entries]})


# --- what the client asks of the server -----------------------------------------------------------
@api.route("/api/3.0/mlflow/server-info", ("GET",), access="public", content_types=ANY)
def server_info(request: Request) -> Response:
    """What this server does: no multipart transfers through the proxy routes, no workspaces."""
    return wire.respond({"store_type": "Agora", "workspaces_enabled": False, "trace_archival_enabled": False,
                         "multipart_uploads_enabled": False, "multipart_downloads_enabled": False,
                         "presigned_upload_run_id_supported": False, "presigned_upload_model_id_supported": False,
                         "features_enabled": {}})
