"""Billing (AgentSociety's commercial `/api/account` and `/api/bills`) and the admin's recharge."""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.http import Api, Query, Request, json_response, page_query
from chalicelib.domain.billing import ITEMS, MAX_LIST_LIMIT, RechargeRequest, parse_amount
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.principals import check_tenant_id
from chalicelib.wiring import services

if TYPE_CHECKING:
    from chalice import Response

api = Api(__name__)
billing_bp = api.blueprint
IDEMPOTENCY_HEADER = "Idempotency-Key"


@api.route("/api/account", ("GET",))
def get_account(request: Request) -> dict:
    return {"data": services().billing.account(request.tenant_id).to_json()}


@api.route("/api/bills", ("GET",), query=(Query("item", enum=ITEMS),
                                               *page_query(MAX_LIST_LIMIT, "skip")))
def list_bills(request: Request) -> dict:
    item = request.param("item")
    total, lines = services().billing.bills(request.tenant_id, item, request.param("skip", 0),
                                            request.param("limit", 100))
    return {"total": total, "data": [line.to_json() for line in lines]}


@api.route("/api/admin/accounts/{tenant_id}/recharge", ("POST",), access="admin", body=RechargeRequest)
def recharge(request: Request, tenant_id: str) -> Response:
    try:
        check_tenant_id(tenant_id)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    body = request.body()
    amount = parse_amount(body.amount)
    header = (request.raw.headers or {}).get(IDEMPOTENCY_HEADER.lower())
    if header is not None and body.request_id is not None and header != body.request_id:
        raise InvalidInput(f"the {IDEMPOTENCY_HEADER} header and request_id differ; send one of them")
    request_id = header if header is not None else body.request_id
    account, bill, replayed = services().billing.recharge(tenant_id, amount, request_id, body.description)
    return json_response({"data": {"account": account.to_json(), "bill": bill.to_json()}},
                         headers={"Idempotent-Replayed": "true"} if replayed else None)
