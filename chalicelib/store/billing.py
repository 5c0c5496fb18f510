"""Accounts, bill lines and their exactly-once guards, in the simulations table under each tenant.

Every write is one TransactWriteItems: the guard item (condition: it does not exist yet), the bill
lines and the balance change. Either all of it happens once, or nothing does.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any, Optional

from chalicelib.domain.billing import CURRENCY, ZERO, Account, AlreadyRecorded, BillLine, Charge
from chalicelib.store import keys
from chalicelib.store.dynamo import Table, TransactionCancelled
from chalicelib.store.expressions import Condition, SortRange, Update
from chalicelib.store.items import from_item, to_item


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
        bills = SortRange.prefix(keys.BILL_SK)
        only = Condition.equals("item", item) if item is not None else None
        total = self.table.count(keys.tenant_pk(tenant_id), bills, filter=only)
        if skip >= total:
            return total, []
        rows = self.table.query(keys.tenant_pk(tenant_id), bills, forward=False, filter=only, consistent=True)
        return total, [_bill(row) for row in islice(rows, skip, skip + limit)]

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
            actions.append(self.table.put_action(guard, condition=Condition.absent()))
        balance = (Update().increment("balance", charge.total, start=ZERO)
                   .assign({"tenant_id": charge.tenant_id, "currency": CURRENCY, "updated_at": charge.created_at,
                            "kind": "account"})
                   .set("created_at", charge.created_at, if_absent=True))
        actions.append(self.table.update_action(keys.account_key(charge.tenant_id), balance))
        actions += [self.table.put_action(_bill_values(line), condition=Condition.absent()) for line in charge.lines]
        try:
            self.table.transact(actions)  # concurrent charges of one account conflict: transact retries them
        except TransactionCancelled as exc:
            if guard is not None and exc.failed(0):
                recorded = self.table.get({"pk": guard["pk"], "sk": guard["sk"]})
                if recorded is not None:
                    raise AlreadyRecorded(recorded) from exc
            raise
