"""The OpenAPI 3.1 document of both APIs, generated from the route declarations and their pydantic models.

Everything an operation says comes from its declaration (`RouteDoc`): the success status, the body model,
the request media types, the query names and the access. What a declaration does not carry is described
the same way for every route, so that nothing here is a per-route table that could drift:

- a view returning a value, or calling `http.json_response`, answers JSON (an object) with the declared
  status; another view that builds its own `Response` chooses its media type (not documented);
- a redirecting route (declared `status=303`, or whose view calls `http.redirect`) answers 303 with a
  `Location` (a short-lived download, usually presigned S3) and no body;
- every route may answer each status of `http.STATUS` (described by its errors' docstrings) and Chalice's
  415, with the `{"detail": ...}` body; 401 only where a key is needed (public routes have no authorizer);
  503 with `Retry-After`.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable

from chalicelib.api import http
from chalicelib.api.http import (
    FORM,
    JSON,
    MULTIPART,
    RETRY_AFTER_SECONDS,
    ROUTES,
    Api,
    Query,
    QueryGroup,
    Request,
    RouteDoc,
)

api = Api(__name__)
openapi_bp = api.blueprint
ERROR_SCHEMA = "Error"
ERROR = {"type": "object", "properties": {"detail": {"description": "a message, or a list of validation errors"}},
         "required": ["detail"]}
UNSUPPORTED_MEDIA_TYPE = "415"  # Chalice's own: a Content-Type the route does not declare
NEEDS_KEY = ("tenant", "admin", "form")
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "tenant": [{"bearer": []}], "admin": [{"bearer": []}], "form": [{"bearer": []}], "public": []}
FORM_KEY = ("browser downloads may instead post the key as the form field `authorization=Bearer <key>` "
            "(no Authorization header)")
REDIRECT_HEADERS = {
    "Location": {"required": True, "description": "the download; a short-lived (presigned) URL",
                 "schema": {"type": "string"}},
    "Cache-Control": {"required": True, "schema": {"type": "string", "const": "no-store"}}}


def _calls(route: RouteDoc, helper: Callable[..., Any]) -> bool:
    """The view's own code calls `helper` (one of chalicelib.api.http's response builders)."""
    view: Callable[..., Any] = route.view
    return helper.__name__ in view.__code__.co_names and view.__globals__.get(helper.__name__) is helper


def _is_redirect(route: RouteDoc) -> bool:
    return route.status == 303 or _calls(route, http.redirect)


def _answers_json(route: RouteDoc) -> bool:
    """A view returning a value (not a Response) is answered with json_response; so is one that calls it."""
    returns = route.view.__annotations__.get("return")
    return getattr(returns, "__name__", returns) != "Response" or _calls(route, http.json_response)


def _success(route: RouteDoc) -> dict[str, Any]:
    if _is_redirect(route):
        return {"303": {"description": "see Location (no body)", "headers": REDIRECT_HEADERS}}
    if _answers_json(route):
        return {str(route.status): {"description": "success", "content": {JSON: {"schema": {"type": "object"}}}}}
    return {str(route.status): {"description": "success (the media type is the route's own)"}}


def _error_descriptions() -> dict[str, str]:
    """Each status of http.STATUS, described by the docstrings of the errors that map to it, and 415."""
    texts: dict[str, list[str]] = {}
    for error, status in sorted(http.STATUS.items(), key=lambda item: item[1]):
        texts.setdefault(str(status), []).append((error.__doc__ or error.__name__).strip().split("\n")[0])
    texts[UNSUPPORTED_MEDIA_TYPE] = ["The request's Content-Type is none of the route's (those of its request "
                                     "body, else application/json)."]
    return {code: " ".join(texts[code]) for code in sorted(texts)}


def _errors(route: RouteDoc) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
    errors: dict[str, Any] = {}
    for code, text in _error_descriptions().items():
        if code == "401" and route.access not in NEEDS_KEY:
            continue  # public routes have no authorizer; their tokens are refused with 403
        errors[code] = {"description": text, "content": {JSON: {"schema": ref}}}
        if code == "503":  # http.error_response adds it
            errors[code]["headers"] = {"Retry-After": {"required": True, "schema": {"type": "string"},
                                                       "example": RETRY_AFTER_SECONDS}}
    return errors


def _closed_keys(schema: Any) -> Any:
    """Pydantic writes a dict whose keys have a pattern as `patternProperties`, which lets any other key through;
    the models refuse those keys, so the pattern goes into `propertyNames` and the values into
    `additionalProperties` (in place, through the whole schema)."""
    if isinstance(schema, dict):
        patterns = schema.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1 and "additionalProperties" not in schema:
            (pattern, values), = patterns.items()
            del schema["patternProperties"]
            schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": pattern}
            schema["additionalProperties"] = values
        for value in schema.values():
            _closed_keys(value)
    elif isinstance(schema, list):
        for value in schema:
            _closed_keys(value)
    return schema


def _request_body(route: RouteDoc, schemas: dict[str, Any]) -> dict[str, Any] | None:
    content: dict[str, Any] = {}
    if route.body is not None:
        schema = _closed_keys(route.body.model_json_schema(ref_template="#/components/schemas/{model}",
                                                           mode="validation"))
        schemas.update(schema.pop("$defs", {}))
        schemas[route.body.__name__] = schema
        content[JSON] = {"schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}
    if MULTIPART in route.content_types:
        content[MULTIPART] = {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "a file part (with a filename)"}}}}
    if FORM in route.content_types:
        content[FORM] = {"schema": {"type": "object", "properties": {
            "authorization": {"type": "string", "description": FORM_KEY}}}}
        if JSON in route.content_types and JSON not in content:  # taken, and its body ignored
            content[JSON] = {"schema": {}}
    if not content:
        return None
    # a JSON body model or a multipart file is required; a form (the key of a browser download) is not
    return {"required": route.body is not None or MULTIPART in route.content_types, "content": content}


def _query_parameter(param: Query | QueryGroup) -> dict[str, Any]:
    """A declared query parameter; a group is one object exploded in the form style (`day=1&t=3600`)."""
    parameter: dict[str, Any] = {"name": param.name, "in": "query", "required": param.required,
                                 "schema": param.schema()}
    if isinstance(param, QueryGroup):
        parameter.update(style="form", explode=True)
    if param.description:
        parameter["description"] = param.description
    return parameter


def _operation(route: RouteDoc, schemas: dict[str, Any]) -> dict[str, Any]:
    doc = (route.view.__doc__ or route.view.__name__.replace("_", " ")).strip()
    summary, _, description = doc.partition("\n")
    description = description.strip()
    if route.access == "form":
        description = f"{description}\n\n{FORM_KEY[0].upper()}{FORM_KEY[1:]}.".strip()
    declared = {param.name: param for param in route.path_params}
    operation: dict[str, Any] = {
        "operationId": f"{route.view.__name__}_{route.method.lower()}",
        "summary": summary.strip(),
        "tags": ["tracking" if route.path.startswith("/api/v1/") else "simulation"],
        "security": SECURITY[route.access],
        "parameters": [{"name": name, "in": "path", "required": True,
                        "schema": declared[name].schema() if name in declared else {"type": "string"}}
                       for name in re.findall(r"{(\w+)}", route.path)]
        + [_query_parameter(param) for param in route.params],
        "responses": {**_success(route), **_errors(route)},
    }
    if description:
        operation["description"] = description
    body = _request_body(route, schemas)
    if body is not None:
        operation["requestBody"] = body
    return operation


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {ERROR_SCHEMA: ERROR}
    for route in sorted(ROUTES, key=lambda r: (r.path, r.method)):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Agora", "version": "1.0.0",
                 "description": "Experiment tracking (/api/v1/experiments) and agent-society simulations (/api, "
                                "compatible with AgentSociety's web API)."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"}}},
    }


@api.route("/api/openapi.json", ("GET",), access="public")
def openapi_document(request: Request) -> dict:
    """This document."""
    return document()
