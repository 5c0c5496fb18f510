"""The API Gateway authorizer: resolves `Authorization: Bearer <key>` to a principal.

It never denies: an unknown key resolves to the anonymous principal and the route answers 401
with a `{"detail"}` body. Raising "Unauthorized" would give API Gateway's own 401 when deployed
but a 500 under `chalice local`, so one behaviour everywhere wins (docs/decisions.md).
"""
from __future__ import annotations

from chalice import AuthResponse, Blueprint

from chalicelib.domain.principals import ANONYMOUS, bearer_key, hash_api_key
from chalicelib.wiring import services

CACHE_SECONDS = 300

auth = Blueprint(__name__)


def principal_context(header_value: str | None) -> dict[str, str]:
    key = bearer_key(header_value)
    principal = services().directory.principal_for(hash_api_key(key)) if key else None
    if principal is None:
        return {"tenant_id": "", "role": ANONYMOUS}
    return {"tenant_id": principal.tenant_id, "role": principal.role}


@auth.authorizer(ttl_seconds=CACHE_SECONDS)
def api_key_authorizer(auth_request):
    context = principal_context(auth_request.token)
    principal_id = context["tenant_id"] if context["role"] != ANONYMOUS else ANONYMOUS
    return AuthResponse(routes=["*"], principal_id=principal_id or "platform", context=context)
