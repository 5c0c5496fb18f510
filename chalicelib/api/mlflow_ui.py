"""MLflow's own web UI over Agora's data: the build inside the installed `mlflow` package, served as it is.

`GET /` is the UI's index.html and `/static-files/...` its bundle (public), read from the installed package
at run time, never copied here. The page asks for the key (HTTP Basic, the key as the password), as MLflow's
basic-auth server does; the browser then sends it with every call the UI makes. The UI reads data through
Agora's MLflow API (chalicelib.api.mlflow) plus what this blueprint adds, each authenticated as a tenant route:

- `POST /graphql`: the four queries the UI sends (the run page's `GetRun`, the experiment's
  `MlflowGetExperimentQuery`, `SearchRuns`, `GetMetricHistoryBulkInterval`), over the same service and
  view shapes as the REST API. As MLflow's: int64 fields are strings, a query's own faults are listed as
  plain strings in `errors`; a domain error (an unknown run) is the field's `apiError`, which the UI shows.
- `/ajax-api/3.0/mlflow/server-info` (the UI's prefix of the client's route) and `ui-telemetry` (off).
- "None" for what Agora does not have and the UI's pages ask for on load (model registry, traces,
  datasets, prompts, gateway): MLflow's own answer when nothing matches is `{}`, and pages then show
  their empty states instead of error banners.
"""
from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from chalice import Chalice, Response

from chalicelib.api import mlflow_views as wire
from chalicelib.api.http import Api, Request
from chalicelib.api.mlflow import server_info
from chalicelib.domain.errors import AgoraError, InvalidInput, NotFound
from chalicelib.wiring import services

if TYPE_CHECKING:
    from chalicelib.domain.tracking.records import Run

api = Api(__name__, errors=wire.error_response, documented=False)
mlflow_ui_bp = api.blueprint
ANY = ("*/*",)
AJAX_2, AJAX_3 = "/ajax-api/2.0/mlflow", "/ajax-api/3.0/mlflow"

# --- the UI's files --------------------------------------------------------------------------------
TEXT_TYPES = {".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".cjs": "text/javascript",
              ".css": "text/css", ".json": "application/json", ".map": "application/json", ".svg": "image/svg+xml",
              ".txt": "text/plain"}
BINARY_TYPES = {".png": "image/png", ".ico": "image/x-icon", ".woff": "font/woff", ".woff2": "font/woff2",
                ".ttf": "font/ttf", ".eot": "application/vnd.ms-fontobject"}
OTHER_TYPE = "application/octet-stream"  # binary for API Gateway already (one of Chalice's default binary types)
MAX_ASSET_DEPTH = 4  # static/js/x.js is 3 deep; lib/notebook-trace-renderer/js/x.js 4
ASSET_MAX_AGE = "public, max-age=2419200"  # 28 days, as MLflow's: the bundle's names carry content hashes


def declare_binary_types(app: Chalice, options: dict[str, Any]) -> None:
    """The asset types that must reach the browser as bytes, on the app's list (API Gateway's binary media
    types come from it; Chalice base64-encodes those bodies): fonts and the icon are not among the defaults."""
    app.api.binary_types.extend(t for t in BINARY_TYPES.values() if t not in app.api.binary_types)


# run by app.register_blueprint(mlflow_ui_bp), as the blueprint's routes are (Chalice 1.34's own hook)
mlflow_ui_bp._deferred_registrations.append(declare_binary_types)


@functools.cache
def installed_build() -> Optional[Path]:
    """`mlflow/server/js/build` of the installed package, found without importing mlflow (a heavy import)."""
    spec = importlib.util.find_spec("mlflow")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        build = Path(folder) / "server" / "js" / "build"
        if (build / "index.html").is_file():
            return build
    return None


def build_dir() -> Path:
    build = installed_build()
    if build is None:
        raise NotFound("MLflow's web UI is not installed here (it ships in the `mlflow` package)")
    return build


def asset(parts: tuple[str, ...], cache_control: str = ASSET_MAX_AGE) -> Response:
    """One file of the UI's build, with its content type; text as text, the rest as bytes."""
    if any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts):
        raise NotFound(f"No such file: {'/'.join(parts)}")
    path = build_dir().joinpath(*parts)
    if not path.is_file():
        raise NotFound(f"No such file: {'/'.join(parts)}")
    suffix = path.suffix.lower()
    if suffix in TEXT_TYPES:
        return Response(body=path.read_text("utf-8"), status_code=200, headers={
            "Content-Type": f"{TEXT_TYPES[suffix]}; charset=utf-8", "Cache-Control": cache_control})
    return Response(body=path.read_bytes(), status_code=200, headers={
        "Content-Type": BINARY_TYPES.get(suffix, OTHER_TYPE), "Cache-Control": cache_control})


@api.route("/", access="form", content_types=ANY)
def index(request: Request) -> Response:
    """The UI's page (it routes by the URL's #fragment, so only `/` serves it). Without a valid key it is a
    401 with `WWW-Authenticate: Basic` (the view reads the key itself, "form" access), so the browser asks
    at once, and as `/` holds every path it then sends the key with each of the UI's calls, unasked."""
    return asset(("index.html",), cache_control="no-cache")


def _asset_route(depth: int) -> None:
    names = [f"p{i}" for i in range(depth)]

    def static_file(request: Request, **parts: str) -> Response:
        return asset(tuple(parts[n] for n in names))

    static_file.__name__ = f"static_file_{depth}"
    api.route("/static-files/" + "/".join("{" + n + "}" for n in names), access="public",
              content_types=ANY)(static_file)


for _depth in range(1, MAX_ASSET_DEPTH + 1):  # API Gateway has no greedy path parameter under Chalice
    _asset_route(_depth)


# --- what the UI asks of the server ------------------------------------------------------------------
api.route(AJAX_3 + "/server-info", access="public", content_types=ANY)(server_info)


@api.route(AJAX_3 + "/ui-telemetry", ("GET", "POST"), access="public", content_types=ANY)
def ui_telemetry(request: Request) -> Response:
    """The UI's usage reports (from a web worker): switched off, nothing is sent or kept."""
    return wire.respond({"disable_ui_telemetry": True})


NOTHING_HERE = (  # (method, path): features Agora does not have, asked for as pages load
    ("POST", AJAX_2 + "/experiments/search-datasets"),  # the runs table's dataset filter
    ("GET", AJAX_2 + "/gateway-proxy"),  # AI gateway endpoints (the runs table)
    ("GET", AJAX_2 + "/model-versions/search"),  # the run page's registered models and linked prompts
    ("GET", AJAX_2 + "/registered-models/search"),  # the model registry and prompts pages
    ("POST", AJAX_3 + "/traces/search"),  # the traces tabs
    ("POST", AJAX_3 + "/traces/metrics"),  # the GenAI overview's charts (an experiment's default landing)
    ("GET", AJAX_3 + "/scorers/list"),  # the run page's traces tab
    ("POST", AJAX_3 + "/datasets/search"),  # evaluation datasets
    ("GET", AJAX_3 + "/gateway/secrets/config"),  # the AI gateway page
)


def _nothing_route(method: str, path: str) -> None:
    def nothing(request: Request) -> Response:
        return wire.respond({})  # MLflow's answer when nothing matches (empty lists are left out)

    nothing.__name__ = "nothing_" + path.rsplit("mlflow/", 1)[-1].replace("/", "_").replace("-", "_")
    api.route(path, (method,), content_types=ANY)(nothing)


for _method, _path in NOTHING_HERE:
    _nothing_route(_method, _path)


# --- GraphQL -------------------------------------------------------------------------------------------
# The part of MLflow's schema (mlflow/server/graphql) the UI's queries select, with MLflow's type names
# (Apollo caches by `__typename`). LongString is int64 as a string.
SCHEMA_TEXT = '''
directive @component(name: String!) on QUERY | MUTATION
scalar LongString
enum MlflowRunStatus { RUNNING SCHEDULED FINISHED FAILED KILLED }
enum MlflowViewType { ACTIVE_ONLY DELETED_ONLY ALL }
enum MlflowModelVersionStatus { PENDING_REGISTRATION FAILED_REGISTRATION READY }

type Query {
  mlflowGetExperiment(input: MlflowGetExperimentInput): MlflowGetExperimentResponse
  mlflowGetRun(input: MlflowGetRunInput): MlflowGetRunResponse
  mlflowSearchRuns(input: MlflowSearchRunsInput): MlflowSearchRunsResponse
  mlflowGetMetricHistoryBulkInterval(input: MlflowGetMetricHistoryBulkIntervalInput):
    MlflowGetMetricHistoryBulkIntervalResponse
}
input MlflowGetExperimentInput { experimentId: String }
input MlflowGetRunInput { runId: String, runUuid: String }
input MlflowSearchRunsInput { experimentIds: [String], filter: String, runViewType: MlflowViewType, maxResults: Int,
  orderBy: [String], pageToken: String }
input MlflowGetMetricHistoryBulkIntervalInput { runIds: [String], metricKey: String, startStep: Int, endStep: Int,
  maxResults: Int }

type ApiError { code: String, message: String, helpUrl: String, traceId: String }
type MlflowGetExperimentResponse { experiment: MlflowExperiment, apiError: ApiError }
type MlflowGetRunResponse { run: MlflowRunExtension, apiError: ApiError }
type MlflowSearchRunsResponse { runs: [MlflowRunExtension!], nextPageToken: String, apiError: ApiError }
type MlflowGetMetricHistoryBulkIntervalResponse { metrics: [MlflowMetricWithRunId!], apiError: ApiError }

type MlflowExperiment { experimentId: String, name: String, artifactLocation: String, lifecycleStage: String,
  lastUpdateTime: LongString, creationTime: LongString, tags: [MlflowExperimentTag!],
  effectiveTraceArchivalRetention: String, workspace: String }
type MlflowExperimentTag { key: String, value: String }
type MlflowRunExtension { info: MlflowRunInfo, data: MlflowRunData, inputs: MlflowRunInputs,
  outputs: MlflowRunOutputs, experiment: MlflowExperiment, modelVersions: [MlflowModelVersion!] }
type MlflowRunInfo { runId: String, runUuid: String, runName: String, experimentId: String, userId: String,
  status: MlflowRunStatus, startTime: LongString, endTime: LongString, artifactUri: String, lifecycleStage: String }
type MlflowRunData { metrics: [MlflowMetricExtension!], params: [MlflowParam!], tags: [MlflowRunTag!] }
type MlflowMetricExtension { key: String, value: Float, timestamp: LongString, step: LongString,
  datasetName: String, datasetDigest: String, modelId: String, runId: String }
type MlflowMetricWithRunId { key: String, value: Float, timestamp: LongString, step: LongString, runId: String }
type MlflowParam { key: String, value: String }
type MlflowRunTag { key: String, value: String }
type MlflowRunInputs { datasetInputs: [MlflowDatasetInput!], modelInputs: [MlflowModelInput!] }
type MlflowDatasetInput { tags: [MlflowInputTag!], dataset: MlflowDataset }
type MlflowInputTag { key: String, value: String }
type MlflowDataset { name: String, digest: String, sourceType: String, source: String, schema: String,
  profile: String }
type MlflowModelInput { modelId: String }
type MlflowRunOutputs { modelOutputs: [MlflowModelOutput!] }
type MlflowModelOutput { modelId: String, step: LongString }
type MlflowModelVersion { name: String, version: String, creationTimestamp: LongString,
  lastUpdatedTimestamp: LongString, userId: String, currentStage: String, description: String, source: String,
  runId: String, status: MlflowModelVersionStatus, statusMessage: String, runLink: String, aliases: [String],
  modelId: String }
'''


@functools.cache
def schema() -> Any:
    """The schema, built on the first GraphQL request (graphql-core's import and the build stay off cold starts)."""
    from graphql import build_schema

    built = build_schema(SCHEMA_TEXT)
    built.type_map["LongString"].serialize = str  # type: ignore[attr-defined]
    return built

MAX_QUERY_TOKENS = 2_000  # the UI's largest query (GetRun, with Apollo's __typename fields) is about 200


@api.route("/graphql", ("POST",), content_types=ANY)
def graphql(request: Request) -> Response:
    """A GraphQL request as MLflow's server takes it: a JSON body {query, variables, operationName}; HTTP 200
    with {data, errors}, errors as plain strings."""
    fields = wire.body(request)
    query, variables, operation = fields.get("query"), fields.get("variables"), fields.get("operationName")
    if not isinstance(query, str) or not isinstance(variables, (dict, type(None))) or \
            not isinstance(operation, (str, type(None))):
        raise InvalidInput("a GraphQL request is a JSON object: a `query` string, a `variables` object and an "
                           "`operationName` string (both optional)")
    from graphql import GraphQLError, execute_sync, parse, validate

    try:
        document = parse(query, max_tokens=MAX_QUERY_TOKENS)
    except GraphQLError as exc:
        return _graphql_answer(None, [exc])
    problems = validate(schema(), document)
    if problems:
        return _graphql_answer(None, problems)
    result = execute_sync(schema(), document, root_value=UiQueries(request.tenant_id), variable_values=variables,
                          operation_name=operation)
    return _graphql_answer(result.data, result.errors)


def _graphql_answer(data: Any, errors: Any) -> Response:
    return wire.respond({"data": data, "errors": [e.message for e in errors] if errors else None})


class UiQueries:
    """The root of one request's queries: each field is a method (graphql-core's default resolver calls it
    with the field's arguments), answering through Agora's MLflow service as the REST API does."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._experiments: dict[str, Any] = {}  # a search's runs share their experiment: read it once

    # the arguments are GraphQL's: `input` is each query's one argument (absent: None)
    def mlflowGetExperiment(self, info: Any, input: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        fields = input or {}
        return _answer(lambda: {"experiment": self.experiment(wire.required(fields, "experimentId"))})

    def mlflowGetRun(self, info: Any, input: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        fields = input or {}
        return _answer(lambda: {"run": self.run(services().mlflow.get_run(
            self.tenant_id, wire.required(fields, "runId", "runUuid")))})

    def mlflowSearchRuns(self, info: Any, input: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        fields = input or {}

        def search() -> dict[str, Any]:
            page = services().mlflow.search_runs(
                self.tenant_id, experiment_ids=fields.get("experimentIds") or [], filter_string=fields.get("filter"),
                view_type=fields.get("runViewType"), max_results=fields.get("maxResults"),
                order_by=fields.get("orderBy") or [], page_token=fields.get("pageToken"))
            return {"runs": [self.run(r) for r in page.items], "nextPageToken": page.next_page_token}

        return _answer(search)

    def mlflowGetMetricHistoryBulkInterval(self, info: Any, input: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        fields = input or {}

        def history() -> dict[str, Any]:
            key = wire.required(fields, "metricKey")
            found = services().mlflow.history_bulk_interval(
                self.tenant_id, fields.get("runIds") or [], key, fields.get("startStep"), fields.get("endStep"),
                fields.get("maxResults"))
            return {"metrics": [_metric(wire.history_point(key, p, run_id)) for run_id, p in found]}

        return _answer(history)

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        if experiment_id not in self._experiments:
            shaped = _camel(wire.experiment(services().mlflow.get_experiment(self.tenant_id, experiment_id)))
            self._experiments[experiment_id] = {"tags": [], "effectiveTraceArchivalRetention": "", **shaped}
        return self._experiments[experiment_id]

    def run(self, run: Run) -> dict[str, Any]:
        """MLflow's RunExtension: the REST API's run, its experiment read only if the query selects it."""
        shaped = wire.run(run)
        data = shaped["data"]
        return {"info": _camel(shaped["info"]),
                "data": {"metrics": [_metric(m) for m in data.get("metrics", [])],
                         "params": data.get("params", []), "tags": data.get("tags", [])},
                "inputs": {"datasetInputs": [], "modelInputs": []},  # Agora keeps no datasets or logged models
                "outputs": {"modelOutputs": []},
                "experiment": lambda info: self.experiment(run.experiment_id),
                "modelVersions": []}  # nor a model registry


def _answer(compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A response type's fields, or its `apiError` for a domain error (the code and message of the REST API)."""
    try:
        return {**compute(), "apiError": None}
    except AgoraError as exc:
        error = json.loads(wire.error_response(exc).body)
        return {"apiError": {"code": error["error_code"], "message": error["message"]}}


def _metric(shaped: dict[str, Any]) -> dict[str, Any]:
    """A metric of the REST shape as GraphQL's: camelCase, NaN as null (the REST API's "NaN")."""
    metric = _camel(shaped)
    if metric["value"] == "NaN":
        metric["value"] = None
    return metric


def _camel(fields: dict[str, Any]) -> dict[str, Any]:
    """`experiment_id` as `experimentId` (GraphQL's names of the proto fields); values unchanged."""
    return {_camel_name(k): v for k, v in fields.items()}


def _camel_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
