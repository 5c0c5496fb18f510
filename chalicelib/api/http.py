"""The one way a route is declared: authentication, body parsing and error mapping written once."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional
from urllib.parse import parse_qs

from chalice import Blueprint, Response

from chalicelib.api.auth import api_key_authorizer, principal_context
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
from chalicelib.domain.principals import ANONYMOUS, Principal
from chalicelib.domain.validation import MAX_JSON_BODY_BYTES, parse_json_body, validated

if TYPE_CHECKING:
    from pydantic import BaseModel

JSON = "application/json"
MULTIPART = "multipart/form-data"
FORM = "application/x-www-form-urlencoded"

STATUS = {InvalidInput: 400, Unauthenticated: 401, Forbidden: 403, NotFound: 404, Conflict: 409, PayloadTooLarge: 413,
          Throttled: 503, Unavailable: 503}
RETRY_AFTER_SECONDS = "1"


def json_response(body: Any, status: int = 200, headers: Optional[dict[str, str]] = None) -> Response:
    return Response(body=json.dumps(body, allow_nan=False), status_code=status,
                    headers={"Content-Type": JSON, **(headers or {})})


def error_response(exc: AgoraError) -> Response:
    status = STATUS[type(exc)]
    return json_response({"detail": exc.detail}, status,
                         {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None)


def redirect(location: str) -> Response:
    return Response(body="", status_code=303, headers={"Location": location, "Cache-Control": "no-store"})


@dataclass(frozen=True)
class Query:
    """One query parameter as a route declares it (`query=`): the OpenAPI document describes it from this
    (`schema`), and `Request.param` parses it by the same declaration, so the two cannot drift.

    `type` is "string", "integer" (a whole number, else 400 "<name> must be a whole number") or "number".
    A parameter that is absent (or a string left empty) is `required`'s 400 (`missing`) or the view's default; an
    empty number is a 400. The bounds,
    `enum` and `pattern` say what the view's service checks (from the same constants); they are not
    checked a second time here, so each keeps its own message.
    """

    name: str
    type: Literal["string", "integer", "number"] = "string"
    required: bool = False
    minimum: Optional[int] = None
    maximum: Optional[int] = None
    enum: tuple[str, ...] = ()
    pattern: Optional[str] = None
    max_length: Optional[int] = None
    description: str = ""
    missing: str = ""  # the 400's detail when a required one is left out (default: query parameter <name> is required)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type}
        for keyword, value in (("minimum", self.minimum), ("maximum", self.maximum), ("pattern", self.pattern),
                               ("maxLength", self.max_length)):
            if value is not None:
                schema[keyword] = value
        if self.enum:  # left empty (`item=`), an optional one counts as left out
            schema["enum"] = list(self.enum) + ([] if self.required else [""])
        if self.required and self.type == "string" and not self.enum:
            schema["minLength"] = 1  # an empty value counts as left out
        return schema

    def parse(self, text: Optional[str]) -> Any:
        """The value of `text` by the declared type: None when absent (or an empty string parameter left empty);
        an empty number is no number (400)."""
        if text == "" and self.type != "string":
            raise InvalidInput(f"{self.name} must be a {'whole number' if self.type == 'integer' else 'number'}, "
                               "got an empty value")
        if text is None or text == "":
            if self.required:
                raise InvalidInput(self.missing or f"query parameter {self.name} is required")
            return None
        if self.type == "integer":
            try:
                return int(text)
            except ValueError as exc:
                raise InvalidInput(f"{self.name} must be a whole number, got {text!r}") from exc
        if self.type == "number":
            try:
                return float(text)
            except ValueError as exc:
                raise InvalidInput(f"{self.name} must be a number, got {text!r}") from exc
        return text


def page_query(max_limit: int, offset_name: str = "offset") -> tuple[Query, Query]:
    """A list route's paging parameters, with the bounds `paging.check_page` holds it to."""
    return (Query(offset_name, "integer", minimum=0, description="how many items to skip"),
            Query("limit", "integer", minimum=1, maximum=max_limit, description="the page's size"))


@dataclass(frozen=True, eq=False)  # compared and hashed as the one declaration it is (its rule is a dict)
class QueryGroup:
    """Query parameters that depend on each other: documented as one object parameter, exploded in the form
    style (each property is a query parameter of its own, `day=1&t=3600`), whose schema adds `rule` (e.g.
    `dependentRequired`: given together; `oneOf`: the combinations allowed). Each member is parsed as a
    `Query`; the rule is the service's to check (with its own message), the group only documents it."""

    name: str
    members: tuple[Query, ...]
    rule: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def required(self) -> bool:
        return any(member.required for member in self.members)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object",
                                  "properties": {m.name: m.schema() for m in self.members}, **self.rule}
        required = [m.name for m in self.members if m.required]
        if required:
            schema["required"] = required
        return schema


@dataclass(frozen=True)
class RouteDoc:
    """What the OpenAPI document says of a route; recorded where the route is declared."""

    path: str
    method: str
    view: Callable[..., Any]
    access: str
    status: int
    body: Optional[type[BaseModel]]
    params: tuple[Query | QueryGroup, ...]
    content_types: tuple[str, ...]
    path_params: tuple[Query, ...] = ()  # the path parameters whose values are narrower than any string

    @property
    def query(self) -> tuple[str, ...]:
        """The names of the declared query parameters (a group's members each)."""
        return tuple(q.name for q in _flat(self.params))


def _flat(params: tuple[Query | QueryGroup, ...]) -> list[Query]:
    return [m for p in params for m in (p.members if isinstance(p, QueryGroup) else (p,))]


ROUTES: list[RouteDoc] = []  # Agora's API, in its OpenAPI document
OTHER_APIS: list[RouteDoc] = []  # MLflow's API and web UI: documented by MLflow, tested with its client and UI


class Request:
    """What a view reads of a request: the principal, parsed query and body."""

    def __init__(self, raw: Any, principal: Principal, body_model: Optional[type[BaseModel]] = None,
                 body_limit: int = MAX_JSON_BODY_BYTES, params: tuple[Query | QueryGroup, ...] = ()) -> None:
        self.raw = raw
        self.principal = principal
        self._body_model = body_model
        self._body_limit = body_limit
        self._params = {q.name: q for q in _flat(params)}
        self._parts: Optional[list[tuple[str, Optional[str], bytes, str]]] = None

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    def _declared(self, name: str) -> Query:
        try:
            return self._params[name]
        except KeyError:
            raise TypeError(f"this route declares no query parameter {name!r} (query=)") from None

    def query(self, name: str) -> Optional[str]:
        """The raw text of a declared query parameter (None when absent)."""
        self._declared(name)
        return (self.raw.query_params or {}).get(name)

    def param(self, name: str, default: Any = None) -> Any:
        """A declared query parameter parsed by its declaration (`Query.parse`); `default` when left out."""
        value = self._declared(name).parse(self.query(name))
        return default if value is None else value

    def body(self) -> Any:
        """The JSON body validated by the model the route declares (`body=`), so the docs cannot drift."""
        if self._body_model is None:
            raise TypeError("this route declares no body model")
        return validated(self._body_model, parse_json_body(self.raw.raw_body, self._body_limit))

    def multipart_file(self, field: str, max_bytes: int) -> tuple[str, bytes, str]:
        """(filename, content, content type) of one file field of a multipart/form-data body."""
        for name, filename, payload, content_type in self._multipart_parts(field, max_bytes):
            if name == field and filename is not None:
                if not filename:
                    raise InvalidInput(f"multipart field {field!r} has no filename")
                return filename, payload, content_type
        raise InvalidInput(f"multipart body has no file field named {field!r}")

    def multipart_text(self, field: str, max_bytes: int) -> Optional[str]:
        """A text field of a multipart/form-data body (None when absent)."""
        for name, filename, payload, _ in self._multipart_parts(field, max_bytes):
            if name == field and filename is None:
                try:
                    return payload.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInput(f"multipart field {field!r} is not UTF-8 text") from exc
        return None

    def _multipart_parts(self, field: str, max_bytes: int) -> list[tuple[str, Optional[str], bytes, str]]:
        """(field name, filename or None for a text field, content, content type) of every part, parsed once."""
        if self._parts is not None:
            return self._parts
        body = self.raw.raw_body or b""
        if len(body) > max_bytes:
            raise PayloadTooLarge(
                f"upload is {len(body)} bytes; this route takes at most {max_bytes} bytes (API Gateway's limit). "
                "For larger files ask POST /api/v1/experiments/runs/{id}/artifact-uploads for a presigned upload.")
        content_type = self.raw.headers.get("content-type", "")
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        if not message.is_multipart():
            raise InvalidInput(f"body must be multipart/form-data with a file field named {field!r}")
        parts = []
        for part in message.iter_parts():
            payload = part.get_payload(decode=True)
            parts.append((str(part.get_param("name", header="content-disposition") or ""), part.get_filename(),
                          payload if isinstance(payload, bytes) else b"", part.get_content_type()))
        self._parts = parts
        return parts


class Api:
    """Declares routes on a blueprint so that every one authenticates and maps errors the same way.

    `access` is "tenant" (any valid key), "admin" (the admin key), "form" (key in the header or, for
    browser downloads, in an `authorization` form field; no API Gateway authorizer) or "public".
    """

    def __init__(self, import_name: str, *, errors: Callable[[AgoraError], Response] = error_response,
                 documented: bool = True) -> None:
        """`errors` renders a domain error (MLflow's API has its own bodies); `documented`: whether the routes
        belong to Agora's OpenAPI document (MLflow's API is MLflow's, documented there)."""
        self.blueprint = Blueprint(import_name)
        self.errors = errors
        self.documented = documented

    def route(self, path: str, methods: tuple[str, ...] = ("GET",), *, access: str = "tenant",
              content_types: tuple[str, ...] = (JSON,), status: int = 200, body: Optional[type[BaseModel]] = None,
              body_limit: int = MAX_JSON_BODY_BYTES, query: tuple[Query | QueryGroup | str, ...] = (),
              path_params: tuple[Query, ...] = ()) -> Callable:
        """`query`: the query parameters the view reads, each a `Query` or `QueryGroup` (a bare name: an
        optional string). `path_params`: what the OpenAPI document says of a path parameter that is not
        any string (the view parses it)."""
        params = tuple(Query(q) if isinstance(q, str) else q for q in query)

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)
            def handler(**path_params: str) -> Response:
                raw = self.blueprint.current_request
                try:
                    request = Request(raw, _principal(raw, access), body, body_limit, params)
                    result = view(request, **path_params)
                except AgoraError as exc:
                    return self.errors(exc)
                return result if isinstance(result, Response) else json_response(result, status)

            self.blueprint.route(path, methods=list(methods), content_types=list(content_types),
                                 authorizer=api_key_authorizer if access in ("tenant", "admin") else None)(handler)
            (ROUTES if self.documented else OTHER_APIS).extend(
                RouteDoc(path, m, view, access, status, body, params, content_types, path_params) for m in methods)
            return view

        return decorator


def form_fields(raw: Any) -> dict[str, str]:
    """An urlencoded form's fields (first value of each)."""
    parsed = parse_qs((raw.raw_body or b"").decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _principal(raw: Any, access: str) -> Principal:
    if access == "public":
        return Principal(tenant_id="", role=ANONYMOUS)
    if access == "form":
        header = raw.headers.get("authorization")
        if header is None and raw.headers.get("content-type", "").startswith(FORM):
            header = form_fields(raw).get("authorization")
        context = principal_context(header)
    else:
        context = (raw.context or {}).get("authorizer") or {}
    role = context.get("role", ANONYMOUS)
    if role == ANONYMOUS:
        raise Unauthenticated("missing or unknown API key: send 'Authorization: Bearer <key>' (or HTTP Basic with "
                              "the key as the password)")
    principal = Principal(tenant_id=context.get("tenant_id", ""), role=role)
    if access == "admin" and not principal.is_admin:
        raise Forbidden("this action needs the admin key")
    return principal


def rewrite_chalice_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """HTTP middleware: Chalice's own errors (415, 405, 500 ...) answer `{"detail": ...}` like ours."""
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Message" in body and "Code" in body:
        response.body = json.dumps({"detail": body["Message"]})
        response.headers["Content-Type"] = JSON
    return response
