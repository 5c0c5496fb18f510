"""What the local stack's HTTP front does that `chalice local` alone does not.

1. API Gateway's own errors answer like the deployed stack's gateway responses (infra/template.json
   `x-amazon-apigateway-gateway-responses`): a request without a key is 401 `{"detail": ...}` and an
   unknown route 404 `{"detail": "Not Found"}`, where `chalice local` sends `{"message": ...}` and 403.
2. Open mode (`AGORA_OPEN_TENANT=<tenant>`, local only): a request that carries no credentials at
   all, neither an `Authorization` header nor the `authorization` form field of a download, acts as
   that tenant. It is given the open tenant's key, which exists only in this process's memory; a
   request with a key of its own keeps it, so it acts as that key's tenant (or is refused with it).
3. Every method goes through the same handling: `chalice local` handles only the methods API Gateway
   routes (GET ... OPTIONS), so BaseHTTPRequestHandler answered TRACE, CONNECT or QUERY with its own 501
   text/html; here an undeclared method answers 405 with an Allow header and `{"detail"}`, as any other.
"""
from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import parse_qs

from chalice.local import ChaliceRequestHandler, LocalGatewayException

UNAUTHORIZED = "missing or unknown API key: send 'Authorization: Bearer <key>'"  # as the deployed gateway says
FORM = "application/x-www-form-urlencoded"


def handler_class(open_key: Optional[str]) -> type[ChaliceRequestHandler]:
    """The request handler of one local server; `open_key` is the open tenant's key, or None."""

    class LocalGatewayHandler(ChaliceRequestHandler):
        # the status line, the headers and the body leave in separate writes: with Nagle's algorithm on, the
        # body waited for the client's delayed ACK, 40 ms a response on a kept-alive connection (measured:
        # GET an experiment 52 ms over HTTP, 3 ms in-process)
        disable_nagle_algorithm = True

        def __getattr__(self, name: str) -> Any:
            """Every method BaseHTTPRequestHandler has no do_<METHOD> for (TRACE, CONNECT, QUERY, ...) goes
            through the app like the others, instead of the base class's 501 text/html."""
            if name.startswith("do_"):
                return self._generic_handle
            raise AttributeError(name)

        def _parse_payload(self) -> tuple[dict[str, Any], Optional[bytes]]:
            headers, body = super()._parse_payload()
            if open_key is not None and not carries_credentials(headers, body):
                headers["Authorization"] = f"Bearer {open_key}"
            return headers, body

        def _send_error_response(self, error: LocalGatewayException) -> None:
            status, detail = gateway_error(error.CODE, error.body)
            headers = {k: v for k, v in error.headers.items() if k.lower() != "content-type"}
            body: dict[str, str] = {"detail": detail}
            if status == 401:  # as the UNAUTHORIZED gateway response: MLflow's words too, and a browser's prompt
                body.update(error_code="UNAUTHENTICATED", message=detail)
                headers["WWW-Authenticate"] = 'Basic realm="Agora", charset="UTF-8"'
            self._send_http_response(status, {**headers, "Content-Type": "application/json"}, json.dumps(body))

    return LocalGatewayHandler


def carries_credentials(headers: dict[str, Any], body: Optional[bytes]) -> bool:
    """An Authorization header, or a form body with an `authorization` field (the UI's downloads)."""
    if any(name.lower() == "authorization" for name in headers):
        return True
    content_type = next((str(v) for k, v in headers.items() if k.lower() == "content-type"), "")
    if body and content_type.startswith(FORM):
        return "authorization" in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return False


def gateway_error(status: int, body: Optional[bytes]) -> tuple[int, str]:
    """(status, detail) of one of `chalice local`'s own errors, as the deployed gateway answers it."""
    try:
        parsed = json.loads(body or b"{}")
        message = str(parsed.get("message") or parsed.get("Message") or "")
    except (ValueError, AttributeError):
        message = ""
    if status == 401:
        return 401, UNAUTHORIZED
    if status == 403 and message.startswith(("Missing Authentication Token", "Authorization header requires")):
        return 404, "Not Found"  # API Gateway's answer to a route it does not have
    return status, message or "the gateway refused the request"
