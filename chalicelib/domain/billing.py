"""Billing: a Decimal balance per tenant, one bill line per item at the end of every run, exactly once.

Money is `Decimal` throughout (never float), in CNY, with 6 decimal places. Amounts are truncated
toward zero to 6 places (AgentSociety's `trunc6`), so a charge is never larger than the exact price.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext
from typing import TYPE_CHECKING, Any, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from chalicelib.domain.clock import new_id, now_iso, parse_iso
from chalicelib.domain.errors import Conflict, InvalidInput
from chalicelib.domain.paging import check_page
from chalicelib.domain.principals import PLATFORM

if TYPE_CHECKING:
    from chalicelib.domain.simulation.records import SimExperiment
    from chalicelib.store.billing import BillingStore
    from chalicelib.store.simulations import SimulationStore

CURRENCY = "CNY"

RECHARGE = "recharge"
LLM_INPUT_TOKEN = "llm_input_token"
LLM_OUTPUT_TOKEN = "llm_output_token"
RUN_TIME = "run_time"
ITEMS = (RECHARGE, LLM_INPUT_TOKEN, LLM_OUTPUT_TOKEN, RUN_TIME)

MICRO = Decimal("0.000001")
ZERO = Decimal("0.000000")
TOKENS_PER_UNIT = Decimal(1_000_000)  # token rates are per million tokens
MAX_RECHARGE = Decimal("1000000")  # one recharge credits at most 1,000,000 CNY
MAX_RATE = Decimal("1000000")
MAX_LIST_LIMIT = 1000
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_AMOUNT_TEXT = re.compile(r"^\d{1,16}(\.\d+)?$")


def trunc6(value: Decimal) -> Decimal:
    """`value` truncated toward zero to 6 decimal places, exactly (never a negative zero)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"trunc6 takes a finite Decimal, got {value!r}")
    with localcontext() as ctx:
        ctx.prec = 80  # enough digits that quantize never rounds on its own
        result = value.quantize(MICRO, rounding=ROUND_DOWN)
    return ZERO if result.is_zero() else result


def money_text(value: Decimal) -> str:
    """A money amount as JSON text: a decimal string with exactly 6 places, e.g. "-0.000300"."""
    return format(trunc6(Decimal(value)), "f")


def decimal_text(value: Decimal) -> str:
    """A quantity as a plain decimal string (no exponent), e.g. "0.000066" or "12.345"."""
    value = Decimal(value)
    if value.is_zero():
        return "0"
    with localcontext() as ctx:
        ctx.prec = 80
        return format(value.normalize(), "f")  # the same text before and after a round trip through DynamoDB


# rates ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BillingRates:
    """CNY per million input tokens, per million output tokens, and per second of run time."""

    llm_input_token: Decimal = Decimal("3.0")
    llm_output_token: Decimal = Decimal("3.0")
    run_time: Decimal = Decimal("0.001")

    @classmethod
    def parse(cls, text: str) -> BillingRates:
        """From JSON; missing items keep AgentSociety's defaults. `runtime` is accepted for `run_time`.

        A ValueError says what is wrong (the settings report it as a deployment error).
        """
        if not text.strip():
            return cls()
        try:
            data = json.loads(text, parse_float=Decimal, parse_int=Decimal)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("must be a JSON object of item -> rate")
        rates: dict[str, Decimal] = {}
        for name, raw in data.items():
            item = RUN_TIME if name == "runtime" else name
            if item not in (LLM_INPUT_TOKEN, LLM_OUTPUT_TOKEN, RUN_TIME):
                raise ValueError(f"unknown item {name!r}")
            try:
                rate = Decimal(raw) if isinstance(raw, (Decimal, str)) and not isinstance(raw, bool) else None
            except InvalidOperation:
                rate = None
            if rate is None or not rate.is_finite() or rate < 0 or rate > MAX_RATE or rate != trunc6(rate):
                raise ValueError(f"{name} must be a number from 0 to {MAX_RATE} with at most 6 decimal places, "
                                 f"got {raw!r}")
            rates[item] = rate
        return cls(**rates)


# records ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    tenant_id: str
    balance: Decimal
    created_at: Optional[str] = None  # None: the tenant has no account yet (balance 0)
    updated_at: Optional[str] = None

    def to_json(self) -> dict:
        return {"balance": money_text(self.balance), "currency": CURRENCY, "created_at": self.created_at,
                "updated_at": self.updated_at}


@dataclass(frozen=True)
class BillLine:
    tenant_id: str
    id: str
    related_exp_id: Optional[str]
    item: str
    amount: Decimal  # negative: spend; positive: recharge
    unit_price: Decimal
    quantity: Decimal  # tokens in millions, seconds, or CNY for a recharge
    description: str
    created_at: str

    def to_json(self) -> dict:
        return {"id": self.id, "related_exp_id": self.related_exp_id, "item": self.item,
                "amount": money_text(self.amount), "unit_price": money_text(self.unit_price),
                "quantity": decimal_text(self.quantity), "description": self.description,
                "created_at": self.created_at}


@dataclass(frozen=True)
class Charge:
    """What one transaction writes: bill lines and the balance change by their sum."""

    tenant_id: str
    lines: list[BillLine]
    created_at: str

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


class AlreadyRecorded(Exception):
    """The guard item exists: this bill or recharge was written before; `guard` is what was recorded."""

    def __init__(self, guard: dict[str, Any]) -> None:
        super().__init__("already recorded")
        self.guard = guard


# the pure part: what a run costs ---------------------------------------------------------------
def _instant(text: str) -> datetime:
    moment = parse_iso(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_seconds(exp: SimExperiment, billed_at: str) -> Decimal:
    """From the start (`started_at`, else `created_at`) to the end (`ended_at`, else the billing moment); >= 0."""
    start = _instant(exp.started_at or exp.created_at)
    end = _instant(exp.ended_at or billed_at)
    delta = end - start
    seconds = Decimal(delta.days * 86_400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(1_000_000)
    return max(seconds, Decimal(0))


def price(quantity: Decimal, unit_price: Decimal) -> Decimal:
    """The (negative) amount of a spend line: -(quantity x unit price), truncated toward zero to 6 places."""
    with localcontext() as ctx:
        ctx.prec = 80
        return trunc6(-(quantity * unit_price))


def bill_lines(exp: SimExperiment, rates: BillingRates, billed_at: str,
               make_id: Callable[[], str] = new_id) -> list[BillLine]:
    """One line per item: tokens only when the LLM config is the platform's, run time always."""
    lines = []

    def line(item: str, quantity: Decimal, unit_price: Decimal, description: str) -> None:
        lines.append(BillLine(tenant_id=exp.tenant_id, id=make_id(), related_exp_id=exp.id, item=item,
                              amount=price(quantity, unit_price), unit_price=unit_price, quantity=quantity,
                              description=description, created_at=billed_at))

    if exp.llm_billed:
        line(LLM_INPUT_TOKEN, Decimal(int(exp.input_tokens)) / TOKENS_PER_UNIT, rates.llm_input_token,
             f"{int(exp.input_tokens)} LLM input tokens of experiment {exp.name!r} (per million tokens)")
        line(LLM_OUTPUT_TOKEN, Decimal(int(exp.output_tokens)) / TOKENS_PER_UNIT, rates.llm_output_token,
             f"{int(exp.output_tokens)} LLM output tokens of experiment {exp.name!r} (per million tokens)")
    seconds = run_seconds(exp, billed_at)
    line(RUN_TIME, seconds, rates.run_time, f"run time of experiment {exp.name!r} (per second)")
    return lines


# input checks -----------------------------------------------------------------------------------
class RechargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Any  # a decimal string ("100.00") or a JSON number; checked by parse_amount
    request_id: Optional[StrictStr] = None  # the same as the Idempotency-Key header
    description: StrictStr = Field(default="", max_length=255)


def parse_amount(value: Any) -> Decimal:
    """A recharge amount: a decimal string or a JSON number, > 0, at most 6 places, at most MAX_RECHARGE."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInput("amount must be a decimal string such as \"100.00\" (or a number)")
    text = value.strip() if isinstance(value, str) else repr(value)
    if isinstance(value, str) and not _AMOUNT_TEXT.match(text):
        raise InvalidInput(f"amount must be a plain decimal such as \"100.00\", got {value!r}")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise InvalidInput(f"amount is not a number: {value!r}") from exc
    if not amount.is_finite() or amount <= 0:
        raise InvalidInput(f"amount must be greater than 0, got {value!r}")
    if amount != trunc6(amount):
        raise InvalidInput(f"amount has more than 6 decimal places: {value!r}")
    if amount > MAX_RECHARGE:
        raise InvalidInput(f"amount must be at most {MAX_RECHARGE} per recharge, got {value!r}")
    return trunc6(amount)


def check_request_id(request_id: str) -> str:
    if not REQUEST_ID_PATTERN.match(request_id):
        raise InvalidInput("Idempotency-Key (or request_id) must be 1-128 characters of A-Z, a-z, 0-9, '.', '_', ':' "
                           "and '-'")
    return request_id


# the service ------------------------------------------------------------------------------------
@dataclass
class BillingService:
    """The billing capability: balance check at launch, one bill per run, accounts, bills and recharges."""

    store: BillingStore
    simulations: SimulationStore
    rates: BillingRates = field(default_factory=BillingRates)
    clock: Callable[[], str] = now_iso

    def account(self, tenant_id: str) -> Account:
        return self.store.get_account(tenant_id) or Account(tenant_id=tenant_id, balance=ZERO)

    def can_launch(self, tenant_id: str) -> bool:
        """The balance must be positive. No amount is held: concurrent launches all pass (AgentSociety's rule)."""
        if tenant_id == PLATFORM:
            return True  # the platform's own runs are not charged
        return self.account(tenant_id).balance > 0

    def bills(self, tenant_id: str, item: Optional[str], skip: int, limit: int) -> tuple[int, list[BillLine]]:
        if item is not None and item not in ITEMS:
            raise InvalidInput(f"item must be one of {', '.join(ITEMS)}, got {item!r}")
        check_page(limit, skip, max_limit=MAX_LIST_LIMIT, offset_name="skip")
        return self.store.list_bills(tenant_id, item, skip, limit)

    def bill_experiment(self, tenant_id: str, experiment_id: str) -> dict:
        """Write the run's bill lines and debit the balance in one transaction, once per experiment."""
        if tenant_id == PLATFORM:
            return {"billed": False, "reason": "the platform's own runs are not charged"}
        recorded = self.store.get_experiment_guard(tenant_id, experiment_id)
        if recorded is not None:
            return _summary(recorded, already=True)
        exp = self.simulations.get_experiment(tenant_id, experiment_id)
        if exp is None:
            return {"billed": False, "reason": f"simulation {experiment_id} does not exist"}
        billed_at = self.clock()
        lines = bill_lines(exp, self.rates, billed_at)
        charge = Charge(tenant_id=tenant_id, lines=lines, created_at=billed_at)
        try:
            guard = self.store.record_experiment_bill(charge, experiment_id)
        except AlreadyRecorded as exc:  # a concurrent or earlier attempt won
            return _summary(exc.guard, already=True)
        return _summary(guard, already=False)

    def recharge(self, tenant_id: str, amount: Decimal, request_id: Optional[str] = None,
                 description: str = "") -> tuple[Account, BillLine, bool]:
        """Credit `amount`; with a request id the same request credits once. Returns (account, bill, replayed)."""
        if request_id is not None:
            check_request_id(request_id)
        now = self.clock()
        line = BillLine(tenant_id=tenant_id, id=new_id(), related_exp_id=None, item=RECHARGE, amount=amount,
                        unit_price=Decimal(1), quantity=amount, description=description or "recharge",
                        created_at=now)
        try:
            self.store.record_recharge(Charge(tenant_id=tenant_id, lines=[line], created_at=now), request_id)
            replayed = False
        except AlreadyRecorded as exc:
            if Decimal(exc.guard["amount"]) != amount:
                raise Conflict(f"the idempotency key {request_id!r} was used for a recharge of "
                               f"{money_text(Decimal(exc.guard['amount']))}, not {money_text(amount)}") from exc
            line = self.store.get_bill(tenant_id, exc.guard["bill_id"]) or line
            replayed = True
        return self.account(tenant_id), line, replayed


def _summary(guard: dict[str, Any], *, already: bool) -> dict:
    """A JSON-able account of one experiment's bill (the Bill state's output)."""
    return {"billed": not already, "already_billed": already, "experiment_id": guard["experiment_id"],
            "bill_ids": list(guard.get("bill_ids", [])), "total": money_text(Decimal(guard["total"])),
            "billed_at": guard["created_at"]}
