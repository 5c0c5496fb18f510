"""Tenant isolation on every route, generated from the route table (`chalicelib.api.http.ROUTES`).

A route added later is swept without anyone listing it; a path parameter, a body or a public route
the matrix cannot fill makes `test_the_matrix_can_fill_every_route` fail, naming the route to teach it.

What Agora answers, and what the matrix asserts (README "Errors", docs/decisions.md "Tenancy and ids"):
- another tenant's id in the path: 403 `{"detail"}` (the directory knows every id's owner); an id
  nobody owns: 404; a malformed or oversized id: 400 or 404; never 500.
- another tenant's resource named in a body or query string: 403 for ids (a run to create in an
  experiment, runs to compare, configs to launch, a survey to send to an agent); 400 for what is
  checked as "not in your space" (a map config's `file_path`, an agent config's `memory_from_file`,
  a workflow's survey step, an experiment's `artifact_location`, an artifact path climbing out of the
  run, another listing's `page_token`); a download path is looked up among the run's own artifacts: 404.
- no key or a bad key: 401 `{"detail"}` on "tenant", "admin" and "form" routes (for "form" routes in the
  header or in the `authorization` form field); a tenant key on an "admin" route: 403.
- the platform's resources (tenant "", made with the admin key) are readable by every tenant; a
  tenant's write on them is 403.
- a temp link opens its own map only (another map, another tenant's or a forged token: 404).
- the engine's callbacks take their run's `callback_auth_token` and nothing else: another run's token,
  a wrong, tampered, empty or missing one, a tenant key: 403; an unknown experiment is 403 too (the
  callback routes do not tell whether an id exists).
- nothing a refused request does changes anything: every owner's view (every GET route filled with the
  owner's ids, as the owner) and everything stored (every DynamoDB item and S3 object) are the same
  before and after the attacks.
- whatever tenant-b can read (every GET route with its own ids, every listing, the public routes) names
  none of tenant-a's ids or data.

One world (tests/isolation_fixtures.py) is built once and shared by the whole sweep; every check is a
subtest named "<scenario>: <METHOD> <path> [<case>]".
"""
from __future__ import annotations

import base64
import functools
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote, urlparse

from tests.conftest import KEYS, auth
from tests.isolation_fixtures import (
    ARTIFACT,
    CONFIG_PATHS,
    MARKERS,
    METRIC,
    NOBODY,
    PLATFORM,
    TENANTS,
    World,
    build_world,
    end_running_simulations,
    headers_of,
    map_file_bytes,
    refs,
    stored,
    unknown_path,
)
from tests.sim_helpers import multipart_file
from tests.test_sim_agents import TEMPLATE
from tests.test_sim_runs import STATUS
from tests.tracking_helpers import EXPERIMENTS, RUNS

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
PLATFORM_EXPORTS = "exports/_platform/"  # where the platform's simulation exports are written
ULID = re.compile(r"\b01[0-9a-hjkmnp-tv-z]{24}\b")

# (method, path) -> why the matrix does not sweep it. Nothing is excluded: /api/openapi.json is public,
# exercised by the public scenario and by the listing sweep (it must name no tenant's data).
EXCLUDED: dict[tuple[str, str], str] = {}


@functools.lru_cache(maxsize=1)
def routes() -> tuple:
    """Every operation of the route table (importing the app registers the blueprints, which fill it)."""
    import app  # noqa: F401
    from chalicelib.api.http import ROUTES

    return tuple(sorted({(r.method, r.path): r for r in ROUTES}.values(), key=lambda r: (r.path, r.method)))


def params(route) -> list[str]:
    return re.findall(r"{(\w+)}", route.path)


def op(route) -> str:
    return f"{route.method} {route.path}"


# --- path parameters: what each names, and how to fill it ---------------------------------------
class MatrixGap(AssertionError):
    """The matrix cannot fill a route: teach it (this file) about the route."""


CONFIG_COLLECTIONS = {path.rsplit("/", 1)[1]: kind for kind, path in CONFIG_PATHS.items()}


def _experiment_kind(path: str) -> Optional[str]:
    if path.startswith(EXPERIMENTS + "/"):
        return "tracking_experiment"
    if path.startswith(("/api/experiments/", "/api/run-experiments/")):
        return "simulation"
    return None


PARAM_KINDS: dict[str, Callable[[str], Optional[str]]] = {
    "experiment_id": _experiment_kind,
    "run_id": lambda path: "run" if path.startswith(RUNS + "/") else None,
    "config_id": lambda path: CONFIG_COLLECTIONS.get(path.split("/")[2]),
    "template_id": lambda path: "agent_template",
    "profile_id": lambda path: "agent_profile",
    "agent_id": lambda path: "sim_agent" if "/{experiment_id}/agents/" in path else None,
    "key": lambda path: "metric_key" if "/{run_id}/metrics/" in path else None,
    "block_type": lambda path: "block_type",
    "tenant_id": lambda path: "tenant" if path.startswith("/api/admin/") else None,
}
# kinds whose ids have an owner (another tenant's is 403, nobody's 404)
OWNED = {"tracking_experiment", "run", "llm", "agent", "map", "workflow", "survey", "agent_template",
         "agent_profile", "simulation"}


def kind_of(route, name: str) -> str:
    resolve = PARAM_KINDS.get(name)
    kind = resolve(route.path) if resolve else None
    if kind is None:
        raise MatrixGap(f"{op(route)}: the isolation matrix cannot fill path parameter {{{name}}}; teach "
                        f"tests/test_isolation.py (PARAM_KINDS, and the world in tests/isolation_fixtures.py) "
                        f"which resource it names")
    return kind


# kinds without an owner of their own: values that name nothing, (label, value, accepted answers)
UNOWNED_UNKNOWN: dict[str, list[tuple[str, str, frozenset[int]]]] = {
    "sim_agent": [("unknown agent", "999999", frozenset({404})), ("malformed agent", "abc", frozenset({400}))],
    "metric_key": [("unknown metric", "no-such-metric", frozenset({404}))],
    "block_type": [("unknown block", "NoSuchBlock", frozenset({400}))],
    "tenant": [("malformed tenant", "-not-a-tenant", frozenset({400}))],  # any well-formed tenant id is valid
}


def unknown_values(w: World, kind: str) -> list[tuple[str, str, frozenset[int]]]:
    """(label, value, accepted answers) of ids that name nothing."""
    if kind in OWNED:
        return [("unknown id", w.one(NOBODY, kind), frozenset({404})),
                ("malformed id", "not-an-id", frozenset({400, 404})),
                ("oversized id", "x" * 1100, frozenset({400, 404}))]
    return UNOWNED_UNKNOWN[kind]


# An agent's histories answer any agent number of a readable simulation with a list, empty for an agent
# that does not exist (AgentSociety's behaviour): 200 [] stands for 404 there.
EMPTY_FOR_UNKNOWN_AGENT = {("GET", "/api/experiments/{experiment_id}/agents/{agent_id}/" + view)
                           for view in ("status", "dialog", "survey")}


def candidates(w: World, kind: str, owner: str, filled: dict[str, str]) -> list[tuple[str, str]]:
    if kind in OWNED:
        return w.all(owner, kind)
    if kind == "sim_agent":
        return [("its agent", w.agents[filled["experiment_id"]])]
    if kind == "tenant":
        return [("its tenant", w.tenant_id(owner) or "tenant-a")]
    return [("", {"metric_key": METRIC, "block_type": "MobilityBlock"}[kind])]


def fills(w: World, route, owner: str) -> list[tuple[str, dict[str, str]]]:
    """Every way to fill the route's path with the owner's ids: (label, values); the first is primary."""
    filled: list[tuple[str, dict[str, str]]] = [("", {})]
    for name in params(route):
        kind = kind_of(route, name)
        filled = [(f"{label} {name}={choice}".strip() if choice else label, {**values, name: value})
                  for label, values in filled for choice, value in candidates(w, kind, owner, values)]
    return filled


def primary(w: World, route, owner: str) -> dict[str, str]:
    """The owner's primary way to fill the route's path."""
    filled = fills(w, route, owner)
    if not filled:
        raise MatrixGap(f"{op(route)}: {owner} owns nothing to fill its path with; give it one of each kind in "
                        "tests/isolation_fixtures.py (build_world)")
    return filled[0][1]


def owned_params(route) -> list[str]:
    return [name for name in params(route) if kind_of(route, name) in OWNED]


# --- bodies and query strings: a valid request of each route ----------------------------------------
@dataclass(frozen=True)
class Part:
    body: Optional[bytes] = None
    content_type: str = JSON
    query: str = ""


def as_json(value: Any, query: str = "") -> Part:
    return Part(json.dumps(value).encode(), JSON, query)


def multipart(content: bytes, filename: str, query: str = "", **fields: str) -> Part:
    body, content_type = multipart_file(content, filename, fields=fields)
    return Part(body, content_type, query)


@dataclass(frozen=True)
class Payload:
    """How to build the body and query string; `build(world, owner, caller)`, where `owner` is the
    tenant whose resources they name and `caller` the one sending."""

    build: Callable[[World, str, str], Part]
    names: tuple[str, ...] = ()  # kinds of resources named in the body or the query
    foreign: frozenset[int] = frozenset({403})  # the answer when they are another tenant's
    unknown: Optional[frozenset[int]] = frozenset({404})  # ... when they do not exist (None: that is no error)


def _named(w: World, owner: str, caller: str, kind: str) -> str:
    """A file path (or id) of the owner's; NOBODY's is one of the caller's folder that holds nothing."""
    if owner == NOBODY:
        return unknown_path(kind, w.tenant_id(caller)) or w.one(NOBODY, kind)
    return {"map_file": w.map_paths, "profile_file": w.profile_paths}[kind][owner]


RUN_PREFIX_DEPTH = 6  # tenants/<tenant>/ then experiments/<id>/runs/<id>/artifacts/


def _escape(w: World, owner: str, file: str = "") -> str:
    """An artifact path climbing out of the caller's run into the owner's run (of tenant-a's run: its file)."""
    return ("../" * RUN_PREFIX_DEPTH + f"{owner}/experiments/{w.one(owner, 'tracking_experiment')}/runs/"
            f"{w.one(owner, 'run')}/artifacts/{file}")


def _artifact_dir(w: World, owner: str, caller: str) -> str:
    return quote("x" if owner in (caller, NOBODY) else _escape(w, owner), safe="")


def _artifact_file(w: World, owner: str, caller: str) -> str:
    if owner == NOBODY:
        return "no-such-file.txt"
    return ARTIFACT if owner == caller else quote(_escape(w, owner, ARTIFACT), safe="")


def _page_token(w: World, owner: str, caller: str) -> Part:
    if owner == caller:
        return Part()
    token = w.page_tokens[owner] if owner != NOBODY else w.page_tokens[caller][::-1]
    return Part(query=f"limit=1&page_token={quote(token, safe='')}")


def _compare(w: World, owner: str, caller: str) -> Part:
    """The caller's run beside the owner's (the owner's own request: two of its runs)."""
    if owner == caller:
        return as_json({"run_ids": [run for _, run in w.all(owner, "run")[:2]]})
    return as_json({"run_ids": [w.one(caller, "run"), w.one(owner, "run")]})


def _launch(w: World, owner: str, caller: str) -> Part:
    named = refs(w, owner) if owner != NOBODY else {
        name: {"tenant_id": w.tenant_id(caller), "id": w.one(NOBODY, kind)}
        for name, kind in (("llm", "llm"), ("agents", "agent"), ("map", "map"), ("workflow", "workflow"))}
    return as_json({"exp_name": "hijacked", **named})


def _progress(w: World, owner: str, caller: str) -> Part:
    return as_json({"cur_day": 0, "cur_t": 40000.0, "input_tokens": 999, "output_tokens": 999, "ticks_done": 9,
                    "profiles": [{"id": 1, "name": "injected", "profile": {}}],
                    "ticks": [{"day": 0, "t": 39000.0, "statuses": [STATUS], "prompt": "injected"}],
                    "log_lines": ["injected"]})


BUILTIN_LLM = {"provider": "builtin", "model": "builtin", "api_key": ""}
SIMPLE = {  # (method, path) -> body of a write that names no other resource
    ("PATCH", EXPERIMENTS + "/{experiment_id}"): {"description": "hijacked"},
    ("POST", RUNS + "/{run_id}/log-metrics"): {"metrics": {METRIC: 9}, "step": 9},
    ("POST", RUNS + "/{run_id}/log-params"): {"params": {"hijacked": "x"}},
    ("POST", RUNS + "/{run_id}/log-batch"): {"tags": [{"key": "t", "value": "hijacked"}]},
    ("POST", RUNS + "/{run_id}/end"): {"status": "KILLED"},
    ("POST", "/api/llm-configs"): {"name": "hijacked", "config": [BUILTIN_LLM]},
    ("PUT", "/api/llm-configs/{config_id}"): {"name": "hijacked", "config": [BUILTIN_LLM]},
    ("POST", "/api/surveys"): {"name": "hijacked", "data": {"pages": [{"elements": [{"name": "q"}]}]}},
    ("PUT", "/api/surveys/{config_id}"): {"name": "hijacked", "data": {"pages": [{"elements": [{"name": "q"}]}]}},
    ("POST", "/api/agent-templates"): {**TEMPLATE, "name": "hijacked"},
    ("PUT", "/api/agent-templates/{template_id}"): {**TEMPLATE, "name": "hijacked"},
    ("POST", "/api/map-configs/{config_id}/temp-link"): {"expire_seconds": 600},
    ("POST", "/api/experiments/{experiment_id}/agents/{agent_id}/dialog"): {"content": "hijacked", "day": 0, "t": 1},
    ("POST", "/api/admin/accounts/{tenant_id}/recharge"): {"amount": "7", "request_id": "isolation-recharge"},
    ("POST", "/api/run-experiments/{experiment_id}/finish"): {"status": "error", "error": "injected"},
}
PAYLOADS: dict[tuple[str, str], Payload] = {
    **{key: Payload(lambda w, o, c, body=body: as_json(body)) for key, body in SIMPLE.items()},
    ("POST", RUNS): Payload(lambda w, o, c: as_json({"experiment_id": w.one(o, "tracking_experiment")}),
                            names=("tracking_experiment",)),
    ("GET", RUNS): Payload(lambda w, o, c: Part(query=f"experiment_id={w.one(o, 'tracking_experiment')}"),
                           names=("tracking_experiment",)),
    ("POST", RUNS + "/compare"): Payload(_compare, names=("run",)),
    ("POST", EXPERIMENTS): Payload(  # the artifact location of another tenant's experiment
        lambda w, o, c: as_json({"name": "intruder"} if o == c else
                                {"name": "intruder", "artifact_location": w.artifact_locations[o]}),
        names=("artifact_location",), foreign=frozenset({400}), unknown=None),
    # artifact paths climbing out of the caller's run into tenant-a's
    ("POST", RUNS + "/{run_id}/log-artifact"): Payload(
        lambda w, o, c: multipart(b"hijacked", "hijack.txt", query=f"artifact_path={_artifact_dir(w, o, c)}"),
        names=("artifact_path",), foreign=frozenset({400}), unknown=None),
    ("POST", RUNS + "/{run_id}/artifact-uploads"): Payload(
        lambda w, o, c: as_json({"path": "big.bin" if o in (c, NOBODY) else _escape(w, o, "big.bin")}),
        names=("artifact_path",), foreign=frozenset({400}), unknown=None),
    ("GET", RUNS + "/{run_id}/artifacts/download"): Payload(
        lambda w, o, c: Part(query=f"path={_artifact_file(w, o, c)}"), names=("artifact_path",),
        foreign=frozenset({400, 404})),  # a path is looked up among the run's own artifacts: 404
    # another tenant's page token (or a forged one) on the caller's own metric history
    ("GET", RUNS + "/{run_id}/metrics/{key}"): Payload(_page_token, names=("page_token",),
                                                       foreign=frozenset({400}), unknown=frozenset({400})),
    **{(method, path): Payload(
        lambda w, o, c: as_json({"name": "hijacked", "config": {"file_path": _named(w, o, c, "map_file")}}),
        names=("map_file",), foreign=frozenset({400}), unknown=frozenset({400}))
       for method, path in (("POST", "/api/map-configs"), ("PUT", "/api/map-configs/{config_id}"))},
    **{(method, path): Payload(
        lambda w, o, c: as_json({"name": "hijacked", "config": {"citizens": [
            {"agent_class": "SocietyAgent", "memory_from_file": _named(w, o, c, "profile_file"), "number": 1}]}}),
        names=("profile_file",), foreign=frozenset({400}), unknown=frozenset({400}))
       for method, path in (("POST", "/api/agent-configs"), ("PUT", "/api/agent-configs/{config_id}"))},
    **{(method, path): Payload(
        lambda w, o, c: as_json({"name": "hijacked", "config": [{"type": "step", "steps": 1},
                                                                {"type": "survey", "survey": w.one(o, "survey")}]}),
        names=("survey",), foreign=frozenset({400}), unknown=frozenset({400}))
       for method, path in (("POST", "/api/workflow-configs"), ("PUT", "/api/workflow-configs/{config_id}"))},
    ("POST", "/api/map-configs/-/upload"): Payload(lambda w, o, c: multipart(map_file_bytes(), "hijack.json")),
    ("POST", "/api/agent-profiles/upload"): Payload(
        lambda w, o, c: multipart(b'[{"name": "intruder"}]', "intruders.json", name="hijacked")),
    ("POST", "/api/experiments/{experiment_id}/agents/{agent_id}/survey"): Payload(
        lambda w, o, c: as_json({"survey_id": w.one(o, "survey"), "day": 0, "t": 1}),
        names=("survey",), unknown=frozenset({400})),
    ("POST", "/api/run-experiments"): Payload(_launch, names=("llm", "agent", "map", "workflow"),
                                              unknown=frozenset({400})),
    ("POST", "/api/run-experiments/{experiment_id}/engine/progress"): Payload(_progress),
}
NO_PAYLOAD = Payload(lambda w, o, c: Part())


def _claimed(claim: str) -> Callable[[World, str, str], Part]:
    """A launch naming tenant-a's configs by id while claiming they are the caller's or the platform's."""
    def build(w: World, owner: str, caller: str) -> Part:
        named = {name: {**ref, "tenant_id": w.tenant_id(caller) if claim == "caller" else ""}
                 for name, ref in refs(w, owner).items()}
        return as_json({"exp_name": "hijacked", **named})
    return build


# more bodies naming tenant-a's resources: (method, path) -> [(label, build, expected)]
EXTRA_FOREIGN: dict[tuple[str, str], list[tuple[str, Callable[[World, str, str], Part], frozenset[int]]]] = {
    ("POST", "/api/run-experiments"): [("tenant-a's config ids, claimed as the caller's", _claimed("caller"),
                                        frozenset({403})),
                                       ("tenant-a's config ids, claimed as the platform's", _claimed("platform"),
                                        frozenset({403}))],
}
# extra query strings the owner's views and the listing sweep read each GET route with
VIEW_QUERIES: dict[tuple[str, str], list[str]] = {
    ("GET", EXPERIMENTS): ["", "search=alpha-secret", "lifecycle_stage=deleted",
                           "lifecycle_stage=deleted&search=alpha-secret", "limit=1000"],
    ("GET", RUNS): ["", "limit=1000"],
    ("GET", "/api/experiments"): ["", "limit=1000"],
    ("GET", "/api/bills"): ["", "limit=1000"],
    ("GET", "/api/experiments/{experiment_id}/agents/-/status"): ["", "day=0&t=28800"],
    ("GET", "/api/experiments/{experiment_id}/prompt"): ["", "day=0&t=28800"],
}
PUBLIC_QUERIES = {  # look-ups that need a query string
    ("GET", "/api/agent-classes"): "agent_type=citizen",
    ("GET", "/api/agent-param"): "agent_type=citizen&agent_class=SocietyAgent",
}
# POST routes that only read a platform resource (a tenant may call them on the platform's)
PLATFORM_READS = {("POST", "/api/map-configs/{config_id}/export"), ("POST", "/api/map-configs/{config_id}/temp-link"),
                  ("POST", "/api/experiments/{experiment_id}/export"),
                  ("POST", "/api/experiments/{experiment_id}/artifacts")}


def payload(route) -> Payload:
    return PAYLOADS.get((route.method, route.path), NO_PAYLOAD)


def public_part(route) -> Part:
    return Part(query=PUBLIC_QUERIES.get((route.method, route.path), ""))


def public_kind(route) -> str:
    """How a public route is authorised: by a callback token, by a temp-link token, or not at all."""
    if "callback_auth_token" in route.query:
        return "callback"
    if "token" in route.query:
        return "link"
    if owned_params(route):
        raise MatrixGap(f"{op(route)} is public but names a tenant's resource: teach tests/test_isolation.py how it "
                        "is authorised (public_kind) and which scenario attacks it")
    return "lookup"


# --- the sweep ----------------------------------------------------------------------------------------
# Without any Authorization header a route behind the API Gateway authorizer is refused before the authorizer
# runs: chalice's test client answers its own body, API Gateway its UNAUTHORIZED gateway response, which says
# {"detail"} (infra/template.json, read here; tests/test_infra.py checks it too).
CHALICE_NO_TOKEN = {"message": "Unauthorized"}
GATEWAY_UNAUTHORIZED = json.loads(json.loads(Path(__file__).resolve().parent.parent.joinpath(
    "infra", "template.json").read_text())["Resources"]["RestAPI"]["Properties"]["DefinitionBody"][
    "x-amazon-apigateway-gateway-responses"]["UNAUTHORIZED"]["responseTemplates"][JSON])


@dataclass
class Sweep:
    w: World
    subtests: Any
    exercised: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def send(self, scenario: str, route, values: dict[str, str], headers: dict[str, str], part: Part,
             query: str = ""):
        self.exercised.setdefault(scenario, set()).add((route.method, route.path))
        path = route.path
        for name, value in values.items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        query = "&".join(q for q in (part.query, query) if q)
        if query:
            path += "?" + query
        headers = {**headers, "Content-Type": part.content_type}
        return getattr(self.w.client.http, route.method.lower())(path, headers=headers, body=part.body)

    def expect(self, scenario: str, route, label: str, response, statuses: frozenset[int] | set[int], *,
               empty_ok: bool = False, no_header: bool = False, secret: Optional[str] = MARKERS["tenant-a"]) -> None:
        """One subtest: the answer is one of `statuses` with a `{"detail"}` body if an error, and shows none of
        tenant-a's data (`secret`); `empty_ok`: 200 with an empty list stands for 404."""
        with self.subtests.test(msg=f"{scenario}: {op(route)} [{label}]"):
            text = response.body.decode("utf-8", "replace") if isinstance(response.body, bytes) else str(response.body)
            if empty_ok and response.status_code == 200:
                assert json.loads(text).get("data") == [], text[:500]
                return
            if no_header and route.access != "form" and response.status_code == 401 and \
                    json.loads(text) == CHALICE_NO_TOKEN:
                assert GATEWAY_UNAUTHORIZED.get("detail"), GATEWAY_UNAUTHORIZED
                return
            assert response.status_code in statuses, (
                f"{op(route)} [{label}] answered {response.status_code}, expected {sorted(statuses)}: {text[:500]}")
            if response.status_code >= 400:
                assert "detail" in json.loads(text), text[:500]
            if secret:
                assert secret not in text, f"the answer shows tenant-a's data: {text[:500]}"


def header(key: Optional[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key is not None else {}


def seen(response) -> tuple[int, Any]:
    """What a view shows, comparable between two reads (a redirect: where to, without its signature)."""
    if 300 <= response.status_code < 400:
        location = urlparse(response.headers.get("Location", ""))
        return response.status_code, location._replace(query="").geturl()
    text = response.body.decode("utf-8", "replace") if isinstance(response.body, bytes) else str(response.body)
    if response.headers.get("Content-Type", "").startswith(JSON):
        return response.status_code, json.loads(text)
    return response.status_code, text


def owner_views(s: Sweep, owner: str) -> dict[str, tuple[int, Any]]:
    """Every GET route the owner can fill, read as the owner: the owner's whole view of its resources."""
    views = {}
    for route in routes():
        if route.method != "GET" or route.access != "tenant":
            continue
        named = payload(route).names
        if any(not s.w.all(owner, kind) for kind in named if kind in OWNED):
            continue
        for label, values in fills(s.w, route, owner):
            part = payload(route).build(s.w, owner, owner)
            for query in VIEW_QUERIES.get((route.method, route.path), [""]):
                response = s.send("owner views", route, values, headers_of(owner), part, query)
                views[f"{owner}: {op(route)} [{label}] ?{query}"] = seen(response)
    return views


def check_views(s: Sweep, views: dict[str, tuple[int, Any]]) -> None:
    for name, (status, _) in views.items():
        if name.startswith(PLATFORM):
            assert status < 500, name
        else:  # a tenant reads every view of its own resources; so an attacker's refusal means something
            assert status in (200, 303), f"{name}: {status} {_}"


def check_payloads(s: Sweep) -> None:
    """Every JSON body the matrix sends as tenant-a would pass the route's own model: a refusal is never
    only a validation error (a 400) standing in for the 401 or 403 under test."""
    for route in routes():
        if route.body is None:
            continue
        with s.subtests.test(msg=f"payloads: {op(route)} [tenant-a's request]"):
            part = payload(route).build(s.w, "tenant-a", "tenant-a")
            assert part.content_type == JSON and part.body is not None
            route.body.model_validate_json(part.body)


def sweep_auth(s: Sweep) -> None:
    """No key or a bad key: 401; a tenant key on an admin route: 403. On tenant-a's ids, with valid bodies."""
    bad = {"no key": {}, "unknown key": header("not-a-key"), "empty bearer": {"Authorization": "Bearer "},
           "basic, the key not encoded": {"Authorization": f"Basic {KEYS['tenant-a']}"},
           "basic, an unknown key": {"Authorization": "Basic " + base64.b64encode(b"tenant-a:not-a-key").decode()},
           "another scheme": {"Authorization": f"Token {KEYS['tenant-a']}"},
           "key without scheme": {"Authorization": KEYS["tenant-a"]}}
    for route in routes():
        if route.access == "public":
            continue
        values = primary(s.w, route, "tenant-a")
        part = payload(route).build(s.w, "tenant-a", "tenant-a")
        for label, headers in bad.items():
            s.expect("auth", route, label, s.send("auth", route, values, headers, part), {401}, no_header=not headers)
        if route.access == "admin":
            for tenant in TENANTS:
                s.expect("auth", route, f"{tenant}'s key", s.send("auth", route, values, auth(tenant), part), {403})
        if route.access == "form":
            for label, form in (("form field: unknown key", "authorization=Bearer+not-a-key"),
                                ("form field: empty", "authorization="), ("form: no field", ""),
                                ("form field: another scheme", f"authorization=Basic+{KEYS['tenant-a']}")):
                response = s.send("auth", route, values, {}, Part(form.encode(), FORM))
                s.expect("auth", route, label, response, {401})


def sweep_foreign(s: Sweep) -> None:
    """tenant-b with tenant-a's ids, in the path (403) or named in the body or query (the payload's answer)."""
    for route in routes():
        if route.access not in ("tenant", "form"):
            continue
        pay = payload(route)
        if not owned_params(route) and not pay.names:
            continue
        expected = frozenset({403}) if owned_params(route) else pay.foreign
        # with tenant-a's ids in the path, the request tenant-a itself would send: refused for the path alone
        part = pay.build(s.w, "tenant-a", "tenant-a" if owned_params(route) else "tenant-b")
        primary(s.w, route, "tenant-a")  # tenant-a owns something to attack
        for label, values in fills(s.w, route, "tenant-a"):
            label = f"tenant-b, tenant-a's {label or 'ids'}"
            s.expect("foreign", route, label, s.send("foreign", route, values, auth("tenant-b"), part), expected)
            if route.access == "form":
                form = Part(f"authorization=Bearer+{KEYS['tenant-b']}".encode(), FORM)
                s.expect("foreign", route, label + ", key in the form",
                         s.send("foreign", route, values, {}, form), expected)
        if owned_params(route) and pay.names:  # tenant-b's own resource, with tenant-a's named in the request
            label, values = fills(s.w, route, "tenant-b")[0]
            response = s.send("foreign", route, values, auth("tenant-b"), pay.build(s.w, "tenant-a", "tenant-b"))
            s.expect("foreign", route, f"tenant-b's {label}, tenant-a's {'/'.join(pay.names)} in the request",
                     response, pay.foreign)
        for label, build, extra_expected in EXTRA_FOREIGN.get((route.method, route.path), []):
            values = primary(s.w, route, "tenant-b")
            response = s.send("foreign", route, values, auth("tenant-b"), build(s.w, "tenant-a", "tenant-b"))
            s.expect("foreign", route, f"tenant-b, {label}", response, extra_expected)


def sweep_unknown(s: Sweep) -> None:
    """Ids nobody owns: 404 (400 for a malformed one), never 500; one parameter at a time, as their owner."""
    for route in routes():
        if route.access == "public" and public_kind(route) != "lookup":
            continue  # temp links and callbacks: sweep_links and sweep_callbacks
        caller = {"admin": PLATFORM, "public": None}.get(route.access, "tenant-a")
        headers = headers_of(caller) if caller else {}
        pay = payload(route)
        owner = "tenant-a"
        known = primary(s.w, route, owner)
        part = pay.build(s.w, owner, owner) if caller else public_part(route)
        for name in params(route):
            for label, value, expected in unknown_values(s.w, kind_of(route, name)):
                values = {**known, name: value}
                response = s.send("unknown", route, values, headers, part)
                empty_ok = (route.method, route.path) in EMPTY_FOR_UNKNOWN_AGENT and name == "agent_id"
                s.expect("unknown", route, f"{name}: {label}", response, expected, empty_ok=empty_ok)
        if pay.names and pay.unknown is not None:
            response = s.send("unknown", route, known, headers, pay.build(s.w, NOBODY, owner))
            s.expect("unknown", route, f"unknown {'/'.join(pay.names)} in the body", response, pay.unknown)


def sweep_platform(s: Sweep) -> None:
    """The platform's resources: tenant-b reads them (200), its other writes are 403."""
    for route in routes():
        if route.access not in ("tenant", "form") or not owned_params(route):
            continue
        platform_fills = fills(s.w, route, PLATFORM)
        if not platform_fills:
            continue  # the platform owns no tracking data
        if route.method == "GET":
            expected = {200}
        elif (route.method, route.path) in PLATFORM_READS:
            expected = {200, 303}
        else:
            expected = {403}
        part = payload(route).build(s.w, PLATFORM, "tenant-b")
        for label, values in platform_fills:
            s.expect("platform", route, f"tenant-b, the platform's {label}",
                     s.send("platform", route, values, auth("tenant-b"), part), expected, secret=None)


def sweep_links(s: Sweep) -> None:
    """A temp link opens its own map only, without a key; any other token or map is 404."""
    a_map, b_map = s.w.one("tenant-a", "map"), s.w.one("tenant-b", "map")
    a_token, b_token = s.w.link_tokens[a_map], s.w.link_tokens[b_map]
    cases = [("tenant-a's map, its own link, no key", a_map, a_token, {303}),
             ("tenant-a's map, tenant-b's link", a_map, b_token, {404}),
             ("tenant-b's map, tenant-a's link", b_map, a_token, {404}),
             ("tenant-a's map, a forged link", a_map, a_token[:-2] + ("AA" if a_token[-2:] != "AA" else "BB"), {404}),
             ("tenant-a's map, no token", a_map, None, {400}),
             ("an unknown map, tenant-a's link", s.w.one(NOBODY, "map"), a_token, {404}),
             ("an oversized map id, tenant-a's link", "x" * 1100, a_token, {400, 404})]
    for route in routes():
        if route.access != "public" or public_kind(route) != "link":
            continue
        (name,) = owned_params(route)
        for label, map_id, token, expected in cases:
            query = f"token={quote(token, safe='')}" if token is not None else ""
            response = s.send("links", route, {name: map_id}, {}, Part(), query)
            s.expect("links", route, label, response, expected, secret=None)


def sweep_callbacks(s: Sweep) -> None:
    """The engine's routes take their run's callback token and nothing else."""
    w = s.w
    a_run, b_run = w.running("tenant-a"), w.running("tenant-b")
    a_token, b_token = w.tokens[a_run], w.tokens[b_run]
    tampered = a_token[:-1] + ("A" if a_token[-1] != "A" else "B")
    finished = dict(w.all("tenant-a", "simulation"))["finished"]
    cases = [("tenant-a's run, tenant-b's run's token", a_run, b_token, {}),
             ("tenant-a's finished run, its running run's token", finished, a_token, {}),
             ("tenant-b's run, tenant-a's run's token", b_run, a_token, {}),
             ("the platform's run, tenant-a's run's token", w.one(PLATFORM, "simulation"), a_token, {}),
             ("an unknown experiment, tenant-a's run's token", w.one(NOBODY, "simulation"), a_token, {}),
             ("tenant-a's run, an unknown token", a_run, secrets.token_urlsafe(32), {}),
             ("tenant-a's run, a tampered token", a_run, tampered, {}),
             ("tenant-a's run, an empty token", a_run, "", {}),
             ("tenant-a's run, no token", a_run, None, {}),
             ("tenant-a's run, tenant-a's API key instead of a token", a_run, None, auth("tenant-a")),
             ("tenant-a's run, tenant-a's API key as the token", a_run, KEYS["tenant-a"], {})]
    for route in routes():
        if route.access != "public" or public_kind(route) != "callback":
            continue
        (name,) = owned_params(route)
        part = payload(route).build(w, "tenant-a", "tenant-a")
        for label, exp_id, token, headers in cases:
            query = f"callback_auth_token={quote(token, safe='')}" if token is not None else ""
            response = s.send("callbacks", route, {name: exp_id}, headers, part, query)
            s.expect("callbacks", route, label, response, {403}, secret=None)
        if route.method == "GET":  # a read: the run's own token works (the finish comes after the sweep)
            response = s.send("callbacks", route, {name: a_run}, {}, part, f"callback_auth_token={a_token}")
            s.expect("callbacks", route, "tenant-a's run, its own token", response, {200}, secret=None)


def sweep_public(s: Sweep) -> None:
    """Look-ups and the OpenAPI document answer without a key."""
    for route in routes():
        if route.access != "public" or public_kind(route) != "lookup":
            continue
        response = s.send("public", route, primary(s.w, route, "tenant-a"), {}, public_part(route))
        s.expect("public", route, "no key", response, {200})


def secrets_of(views: dict[str, tuple[int, Any]], owner: str) -> set[str]:
    return {m for name, view in views.items() if name.startswith(owner + ":") for m in ULID.findall(json.dumps(view))}


def sweep_listings(s: Sweep, a_secrets: set[str]) -> None:
    """Everything tenant-b can read (its own resources, every listing, the public routes) names none of
    tenant-a's ids or data."""
    for route in routes():
        if route.method != "GET" or (route.access == "public" and public_kind(route) != "lookup"):
            continue
        public = route.access == "public"
        headers = {} if public else auth("tenant-b")
        pay = payload(route)
        primary(s.w, route, "tenant-b")  # tenant-b owns something to read
        for label, values in fills(s.w, route, "tenant-b"):
            part = public_part(route) if public else pay.build(s.w, "tenant-b", "tenant-b")
            for query in VIEW_QUERIES.get((route.method, route.path), [""]):
                response = s.send("listings", route, values, headers, part, query)
                with s.subtests.test(msg=f"listings: {op(route)} [tenant-b {label}] ?{query}"):
                    assert response.status_code in (200, 303), response.body[:500]
                    shown = response.body.decode("utf-8", "replace") + response.headers.get("Location", "")
                    assert MARKERS["tenant-a"] not in shown, shown[:500]
                    leaked = {i for i in a_secrets if i in shown}
                    assert not leaked, f"tenant-a's ids {sorted(leaked)} in {shown[:500]}"


# --- the tests ----------------------------------------------------------------------------------------
def test_the_matrix_can_fill_every_route():
    """A new route whose path parameter, body or public access the matrix does not know fails here."""
    gaps = []
    for route in routes():
        try:
            for name in params(route):
                kind = kind_of(route, name)
                if kind not in OWNED and kind not in UNOWNED_UNKNOWN:
                    gaps.append(f"{op(route)}: kind {kind!r} of {{{name}}} has no unknown values (UNOWNED_UNKNOWN) "
                                "nor a filler (candidates)")
            if route.access == "public":
                public_kind(route)
        except MatrixGap as gap:
            gaps.append(str(gap))
        needs_body = route.body is not None or any(t.startswith("multipart/") for t in route.content_types)
        if needs_body and (route.method, route.path) not in PAYLOADS:
            gaps.append(f"{op(route)} takes a body: teach tests/test_isolation.py (PAYLOADS) a valid one, naming "
                        "tenant-a's resources where the body names any")
    known = {(r.method, r.path) for r in routes()}
    stale = sorted((set(PAYLOADS) | set(VIEW_QUERIES) | set(PUBLIC_QUERIES) | PLATFORM_READS | set(EXCLUDED) |
                    EMPTY_FOR_UNKNOWN_AGENT | set(EXTRA_FOREIGN)) - known)
    gaps += [f"{method} {path} is no route any more: remove it from tests/test_isolation.py" for method, path in stale]
    assert not gaps, "\n".join(gaps)


def test_every_route_keeps_tenants_apart(sim_client, fake_engine, tmp_path, subtests):
    """One world, every route swept by every scenario that applies, and every owner's view unchanged."""
    w = build_world(sim_client, tmp_path / "token")
    s = Sweep(w, subtests)
    before = {**owner_views(s, "tenant-a"), **owner_views(s, "tenant-b"), **owner_views(s, PLATFORM)}
    check_views(s, before)
    check_payloads(s)
    stored_before = stored()

    sweep_auth(s)
    sweep_foreign(s)
    sweep_unknown(s)
    sweep_platform(s)
    sweep_links(s)
    sweep_callbacks(s)
    sweep_public(s)

    stored_after = stored()
    after = {**owner_views(s, "tenant-a"), **owner_views(s, "tenant-b"), **owner_views(s, PLATFORM)}
    assert set(after) == set(before)
    for name, view in before.items():
        with subtests.test(msg=f"unchanged: {name}"):
            assert after[name] == view
    with subtests.test(msg="unchanged: everything stored"):
        changed = {key: (stored_before.get(key), stored_after.get(key))
                   for key in set(stored_before) | set(stored_after) if stored_before.get(key) != stored_after.get(key)}
        # the one write a refused or read-only request may leave: the archive of the platform's simulation
        # that tenant-b was allowed to export (sweep_platform)
        changed = {key: change for key, change in changed.items()
                   if not (key[0] == "s3" and key[1].startswith(PLATFORM_EXPORTS) and change[0] is None)}
        assert not changed, "\n".join(f"{key}: {old} -> {new}" for key, (old, new) in sorted(changed.items()))

    a_ids = {i for ids in w.ids["tenant-a"].values() for _, i in ids}
    for name, view in before.items():
        if name.startswith(PLATFORM):  # the admin key is the platform's: it does not see tenant-a's data either
            with subtests.test(msg=f"listings: {name}"):
                shown = json.dumps(view)
                assert MARKERS["tenant-a"] not in shown and not {i for i in a_ids if i in shown}, shown[:500]
    # every id tenant-a's views show, but the platform's (which every tenant reads)
    a_secrets = (secrets_of(before, "tenant-a") | a_ids) - secrets_of(before, PLATFORM)
    sweep_listings(s, a_secrets)
    end_running_simulations(w)

    all_ops = {(r.method, r.path) for r in routes()}
    exercised = set().union(*(ops for scenario, ops in s.exercised.items() if scenario != "owner views"))
    assert all_ops - set(EXCLUDED) - exercised == set(), "routes no scenario attacked"
    assert not exercised & set(EXCLUDED)
    expected = {"auth": {r for r in routes() if r.access != "public"},
                "foreign": {r for r in routes() if r.access in ("tenant", "form") and owned_params(r)},
                "unknown": {r for r in routes() if params(r) and r.access != "public"}}
    for scenario, swept in expected.items():
        missing = {(r.method, r.path) for r in swept} - s.exercised[scenario]
        assert not missing, f"{scenario} did not attack {sorted(missing)}"
