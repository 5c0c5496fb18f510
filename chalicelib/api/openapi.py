"""The OpenAPI 3.1 document of both APIs, generated from the route declarations and their pydantic models."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from chalicelib.api.http import FORM, JSON, MULTIPART, ROUTES, Api, Request, RouteDoc

api = Api(__name__)
openapi_bp = api.blueprint
ERROR = {"type": "object", "properties": {"detail": {}}, "required": ["detail"]}
ERRORS = {"400": "invalid input", "401": "no or unknown API key",
          "403": "another tenant's resource or a forbidden action",
          "404": "not found", "409": "conflict with the current state", "413": "payload too large"}
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "tenant": [{"bearer": []}], "admin": [{"bearer": []}], "form": [{"bearer": []}, {"formKey": []}], "public": []}


def _operation(route: RouteDoc, schemas: dict[str, Any]) -> dict[str, Any]:
    doc = (route.view.__doc__ or route.view.__name__.replace("_", " ")).strip()
    summary, _, description = doc.partition("\n")
    operation: dict[str, Any] = {
        "operationId": f"{route.view.__name__}_{route.method.lower()}",
        "summary": summary.strip(),
        "tags": ["tracking" if route.path.startswith("/api/v1/") else "simulation"],
        "security": SECURITY[route.access],
        "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                       for name in re.findall(r"{(\w+)}", route.path)]
        + [{"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in route.query],
        "responses": {str(route.status): {"description": "success"},
                      **{code: {"description": text, "content": {JSON: {"schema": ERROR}}}
                         for code, text in ERRORS.items()}},
    }
    if description.strip():
        operation["description"] = description.strip()
    if route.body is not None:
        schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
        schemas.update(schema.pop("$defs", {}))
        schemas[route.body.__name__] = schema
        operation["requestBody"] = {"required": True, "content": {
            JSON: {"schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}}}
    elif MULTIPART in route.content_types:
        operation["requestBody"] = {"required": True, "content": {MULTIPART: {"schema": {
            "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}}}}
    elif FORM in route.content_types:
        operation["requestBody"] = {"required": False, "content": {FORM: {"schema": {
            "type": "object", "properties": {"authorization": {"type": "string"}}}}}}
    return operation


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for route in sorted(ROUTES, key=lambda r: (r.path, r.method)):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Agora", "version": "1.0.0",
                 "description": "Experiment tracking (/api/v1/experiments) and agent-society simulations (/api, "
                                "compatible with AgentSociety's web API)."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
            "formKey": {"type": "apiKey", "in": "cookie", "name": "authorization",
                        "description": "browser downloads post `authorization=Bearer <key>` as a form field"}}},
    }


@api.route("/api/openapi.json", ("GET",), access="public")
def openapi_document(request: Request) -> dict:
    """This document."""
    return document()
