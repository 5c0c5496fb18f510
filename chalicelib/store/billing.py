"""Accounts, bill lines and their exactly-once guards, in the simulations table under each tenant.

Every write is one TransactWriteItems: the guard item (condition: it does not exist yet), the bill
lines and the balance change. Either all of it happens once, or nothing does.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any, Optional

from chalicelib.domain.billing import CURRENCY, ZERO, Account, AlreadyRecorded, BillLine, Charge
from chalicelib.store import keys
from chalicelib.store.dynamo import Table, TransactionCancelled, from_item, to_item, transact

CONFLICT_ATTEMPTS = 10  # concurrent transactions on one account (two runs ending at once) are retried


def _account(item: dict[str, Any]) -> Account:
    return Account(tenant_id=item["tenant_id"], balance=Decimal(item.get("balance", 0)),
                   created_at=item.get("created_at"), updated_at=item.get("updated_at"))


def _bill_values(line: BillLine) -> dict[str, Any]:
    return {**keys.bill_key(line.tenant_id, line.id), "kind": "bill", "tenant_id": line.tenant_id, "id": line.id,
            "related_exp_id": line.related_exp_id, "item": line.item, "amount": line.amount,
            "unit_price": line.unit_price, "quantity": line.quantity, "description": line.description,
            "created_at": line.created_at}


def _bill(item: dict[str, Any]) -> BillLine:
    return BillLine(tenant_id=item["tenant_id"], id=item["id"], related_exp_id=item.get("related_exp_id"),
                    item=item["item"], amount=Decimal(item["amount"]), unit_price=Decimal(item["unit_price"]),
                    quantity=Decimal(item["quantity"]), description=item.get("description", ""),
                    created_at=item["created_at"])


@dataclass
class BillingStore:
    table: Table

    # reads ----------------------------------------------------------------------------------------
    def get_account(self, tenant_id: str) -> Optional[Account]:
        item = self.table.get(keys.account_key(tenant_id))
        return _account(item) if item else None

    def get_bill(self, tenant_id: str, bill_id: str) -> Optional[BillLine]:
        item = self.table.get(keys.bill_key(tenant_id, bill_id))
        return _bill(item) if item else None

    def get_experiment_guard(self, tenant_id: str, experiment_id: str) -> Optional[dict[str, Any]]:
        return self.table.get(keys.experiment_billed_key(tenant_id, experiment_id))

    def list_bills(self, tenant_id: str, item: Optional[str], skip: int, limit: int) -> tuple[int, list[BillLine]]:
        """(total, one page newest first): a COUNT query, then a query that stops once the page is full."""
        condition = "pk = :pk AND begins_with(sk, :prefix)"
        params: dict[str, Any] = {":pk": keys.tenant_pk(tenant_id), ":prefix": keys.BILL_SK_PREFIX}
        names: dict[str, str] = {}
        filter_expression = None
        if item is not None:
            filter_expression, names["#item"], params[":item"] = "#item = :item", "item", item
        total = self._count(condition, names, params, filter_expression)
        if skip >= total:
            return total, []
        rows = self.table.query(condition, names, params, forward=False, filter_expression=filter_expression,
                                consistent=True)
        return total, [_bill(row) for row in islice(rows, skip, skip + limit)]

    def _count(self, condition: str, names: dict[str, str], params: dict[str, Any],
               filter_expression: Optional[str]) -> int:
        kwargs: dict[str, Any] = {"TableName": self.table.name, "KeyConditionExpression": condition,
                                  "ExpressionAttributeValues": to_item(params), "Select": "COUNT",
                                  "ConsistentRead": True}
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if filter_expression:
            kwargs["FilterExpression"] = filter_expression
        total = 0
        while True:
            page = self.table.client.query(**kwargs)
            total += page.get("Count", 0)
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # writes ---------------------------------------------------------------------------------------
    def record_experiment_bill(self, charge: Charge, experiment_id: str) -> dict[str, Any]:
        """Bill a simulation once: guard `BILLED#<experiment>` + lines + debit. Raises AlreadyRecorded."""
        guard = {**keys.experiment_billed_key(charge.tenant_id, experiment_id), "kind": "billed",
                 "tenant_id": charge.tenant_id, "experiment_id": experiment_id,
                 "bill_ids": [line.id for line in charge.lines], "total": charge.total, "created_at": charge.created_at}
        self._apply(charge, guard)
        return from_item(to_item(guard))

    def record_recharge(self, charge: Charge, request_id: Optional[str]) -> None:
        """Credit a recharge; with a request id, guard `RECHARGE#<id>` makes it once. Raises AlreadyRecorded."""
        guard = None
        if request_id is not None:
            guard = {**keys.recharge_request_key(charge.tenant_id, request_id), "kind": "recharge_request",
                     "tenant_id": charge.tenant_id, "request_id": request_id, "bill_id": charge.lines[0].id,
                     "amount": charge.total, "created_at": charge.created_at}
        self._apply(charge, guard)

    def _apply(self, charge: Charge, guard: Optional[dict[str, Any]]) -> None:
        actions = []
        if guard is not None:
            actions.append(self.table.put_action(guard, condition="attribute_not_exists(pk)"))
        actions.append(self.table.update_action(
            keys.account_key(charge.tenant_id),
            "SET #balance = if_not_exists(#balance, :zero) + :delta, #tenant = :tenant, #currency = :currency, "
            "#created = if_not_exists(#created, :now), #updated = :now, #kind = :kind",
            names={"#balance": "balance", "#tenant": "tenant_id", "#currency": "currency", "#created": "created_at",
                   "#updated": "updated_at", "#kind": "kind"},
            params={":zero": ZERO, ":delta": charge.total, ":tenant": charge.tenant_id, ":currency": CURRENCY,
                    ":now": charge.created_at, ":kind": "account"}))
        actions += [self.table.put_action(_bill_values(line), condition="attribute_not_exists(pk)")
                    for line in charge.lines]
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                transact(self.table.client, actions)
                return
            except TransactionCancelled as exc:
                if guard is not None and exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                    recorded = self.table.get({"pk": guard["pk"], "sk": guard["sk"]})
                    if recorded is not None:
                        raise AlreadyRecorded(recorded) from exc
                if "TransactionConflict" not in exc.reasons or attempt == CONFLICT_ATTEMPTS - 1:
                    raise
                time.sleep(min(0.02 * 2**attempt, 1.0) * (0.5 + random.random()))
