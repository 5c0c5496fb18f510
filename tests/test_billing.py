"""Billing: accounts, bills, admin recharge, the balance check at launch, and one bill per run, exactly once."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import pytest

from tests.conftest import KEYS, SIM_CREDIT, auth
from tests.sim_helpers import admin, call, make_configs
from tests.test_sim_runs import finish, launch, report, wait_for_end, wait_until

MICRO = Decimal("0.000001")


# helpers ------------------------------------------------------------------------------------------
def headers_for(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def add_tenant(tenant: str) -> dict[str, str]:
    """A tenant with a key and no account (the fixtures credit tenant-a and tenant-b only)."""
    from chalicelib import wiring
    from chalicelib.domain.principals import Principal, hash_api_key

    key = f"key-{tenant}"
    wiring.services().directory.put_api_key(hash_api_key(key), Principal(tenant, "tenant"))
    return headers_for(key)


def balance(client, headers=None) -> Decimal:
    response = client.http.get("/api/account", headers=headers or auth())
    assert response.status_code == 200, response.body
    return Decimal(response.json_body["data"]["balance"])


def bills(client, headers=None, query="limit=1000") -> list[dict]:
    response = client.http.get(f"/api/bills?{query}", headers=headers or auth())
    assert response.status_code == 200, response.body
    return response.json_body["data"]


def lines_of(client, exp_id, headers=None) -> dict[str, dict]:
    """The bill lines of one experiment by item; fails if an item was billed twice."""
    lines = [b for b in bills(client, headers) if b["related_exp_id"] == exp_id]
    by_item = {line["item"]: line for line in lines}
    assert len(by_item) == len(lines), f"an item was billed twice: {lines}"
    return by_item


def recharge(client, tenant, body, headers=None, extra_headers=None):
    return client.http.post(f"/api/admin/accounts/{tenant}/recharge", headers={**(headers or admin()),
                                                                                **(extra_headers or {})},
                            body=json.dumps(body) if not isinstance(body, str) else body)


def cut(value: Decimal) -> str:
    """The expected amount: truncated toward zero to 6 places, as text."""
    text = format(value.quantize(MICRO, rounding=ROUND_DOWN), "f")
    return "0.000000" if Decimal(text).is_zero() else text


def expected_run_time(exp, billed_at: str, rate: Decimal = Decimal("0.001")) -> tuple[str, Decimal]:
    """(amount, seconds) of the run time line: from the start to the moment of billing (the line's created_at)."""
    start = datetime.fromisoformat(exp.started_at or exp.created_at)
    millis = (datetime.fromisoformat(billed_at) - start) // timedelta(milliseconds=1)
    seconds = Decimal(max(millis, 0)) / 1000
    return cut(-seconds * rate), seconds


def platform_llm(client, base_url: str) -> dict:
    body = {"name": "platform llm", "config": [{"provider": "openai", "model": "m", "api_key": "sk-platform",
                                                "base_url": base_url}]}
    response = call(client, "post", "/api/llm-configs", body, admin())
    assert response.status_code == 201, response.body
    return {"tenant_id": "", "id": response.json_body["data"]["id"]}


def sim(exp_id, tenant="tenant-a"):
    from chalicelib import wiring

    return wiring.services().control.get(tenant, exp_id)


def wait_end(exp_id, tenant="tenant-a", timeout=30.0):
    return wait_until(lambda: (e := sim(exp_id, tenant)).status in (2, 3, 4) and e, timeout)


def assert_billed_once(client, exp_id, items, before: Decimal, headers=None) -> dict[str, dict]:
    lines = lines_of(client, exp_id, headers)
    assert set(lines) == set(items)
    total = sum(Decimal(line["amount"]) for line in lines.values())
    assert balance(client, headers) == before + total
    return lines


# pure functions ----------------------------------------------------------------------------------
def test_trunc6_truncates_toward_zero_exactly():
    from chalicelib.domain.billing import money_text, price, trunc6

    cases = {
        "-0.0000019": "-0.000001",  # toward zero, never floor
        "0.0000019": "0.000001",
        "-0.0000009": "0.000000",  # no negative zero
        "-0": "0.000000",
        "1E-7": "0.000000",
        "2.9999999999": "2.999999",
        "-2.9999999999": "-2.999999",
        "0.1": "0.100000",
        "123456789012345678901234.1234569": "123456789012345678901234.123456",  # beyond the default precision
        "1E+3": "1000.000000",
    }
    for given, expected in cases.items():
        assert money_text(trunc6(Decimal(given))) == expected, given
    assert str(trunc6(Decimal("-0.0000009"))) == "0.000000"
    # AgentSociety's float trunc6 gives -0.001004 for 1.005 s at 0.001/s (1.005 * 0.001 * 1e6 = 1004.99...)
    assert price(Decimal("1.005"), Decimal("0.001")) == Decimal("-0.001005")
    assert price(Decimal("0.000033"), Decimal("2.5")) == Decimal("-0.000082")
    assert price(Decimal("3.703701"), Decimal("3.0")) == Decimal("-11.111103")
    assert price(Decimal("0"), Decimal("3.0")) == Decimal("0") and str(price(Decimal("0"), Decimal("3"))) == "0.000000"
    with pytest.raises(TypeError):
        trunc6(0.1)
    with pytest.raises(TypeError):
        trunc6(Decimal("NaN"))


def _exp(**changes):
    from chalicelib.domain.simulation.records import SimExperiment, SimStatus

    base = dict(tenant_id="t", id="e1", name="n", status=SimStatus.RUNNING, cur_day=0, cur_t=0.0, config="{}", error="",
                input_tokens=1_234_567, output_tokens=89, created_at="2025-01-01T00:00:00.000+00:00",
                updated_at="2025-01-01T00:00:00.000+00:00", engine="builtin", tracking_run_id="r", llm_billed=True,
                started_at="2025-01-01T00:00:10.000+00:00")
    return SimExperiment(**{**base, **changes})


def test_bill_lines_price_each_item_by_the_rates():
    from chalicelib.domain.billing import BillingRates, bill_lines, run_seconds

    at = "2025-01-01T00:01:11.005+00:00"
    lines = {line.item: line for line in bill_lines(_exp(), BillingRates(), at)}
    assert set(lines) == {"llm_input_token", "llm_output_token", "run_time"}
    assert lines["llm_input_token"].quantity == Decimal("1.234567")
    assert lines["llm_input_token"].amount == Decimal("-3.703701")
    assert lines["llm_output_token"].quantity == Decimal("0.000089")
    assert lines["llm_output_token"].amount == Decimal("-0.000267")
    assert lines["run_time"].quantity == Decimal("61.005")  # from started_at, not created_at
    assert lines["run_time"].amount == Decimal("-0.061005")
    assert all(line.related_exp_id == "e1" and line.created_at == at for line in lines.values())
    assert all(isinstance(v, Decimal) for line in lines.values() for v in (line.amount, line.quantity, line.unit_price))

    own_llm = bill_lines(_exp(llm_billed=False), BillingRates(), at)
    assert [line.item for line in own_llm] == ["run_time"]
    # never started: from created_at; ended: to ended_at; a clock going backwards bills nothing
    assert run_seconds(_exp(started_at=None), at) == Decimal("71.005")
    assert run_seconds(_exp(ended_at="2025-01-01T00:00:12.500+00:00"), at) == Decimal("2.5")
    assert run_seconds(_exp(), "2025-01-01T00:00:09.000+00:00") == 0

    rates = BillingRates(llm_input_token=Decimal("2.5"), llm_output_token=Decimal("0.7"), run_time=Decimal("0.0015"))
    custom = {line.item: line.amount for line in bill_lines(_exp(input_tokens=33, output_tokens=21), rates, at)}
    assert custom == {"llm_input_token": Decimal("-0.000082"), "llm_output_token": Decimal("-0.000014"),
                      "run_time": Decimal("-0.091507")}  # 61.005 s x 0.0015 = 0.0915075


def test_rates_come_from_json_with_defaults(aws, monkeypatch):
    from chalicelib.domain.billing import BillingRates
    from chalicelib.settings import BILLING_RATES, Settings, SettingsError

    assert BillingRates.parse("") == BillingRates(Decimal("3.0"), Decimal("3.0"), Decimal("0.001"))
    rates = BillingRates.parse('{"llm_input_token": 1.5, "runtime": "0.002"}')
    assert rates == BillingRates(Decimal("1.5"), Decimal("3.0"), Decimal("0.002"))
    assert isinstance(rates.llm_input_token, Decimal) and str(rates.llm_input_token) == "1.5"
    for bad in ('{"gpu": 1}', '{"run_time": -1}', '{"run_time": 0.0000001}', '{"run_time": true}', "[1]", "{",
                '{"run_time": "NaN"}', '{"run_time": "x"}'):
        with pytest.raises(ValueError):
            BillingRates.parse(bad)
    monkeypatch.setenv(BILLING_RATES, '{"gpu": 1}')
    with pytest.raises(SettingsError, match=BILLING_RATES):
        Settings.from_environ()


# account and bills endpoints ---------------------------------------------------------------------
def test_account_and_bills_need_a_valid_key(client):
    bad = headers_for("no-such-key")
    for path in ("/api/account", "/api/bills"):
        response = client.http.get(path, headers=bad)
        assert response.status_code == 401 and response.json_body["detail"]
    assert recharge(client, "tenant-a", {"amount": "1"}, headers=bad).status_code == 401


def test_a_tenant_without_an_account_reads_a_zero_balance_and_nothing_is_created(client):
    from chalicelib import wiring

    response = client.http.get("/api/account", headers=auth())
    assert response.status_code == 200
    assert response.json_body == {"data": {"balance": "0.000000", "currency": "CNY", "created_at": None,
                                           "updated_at": None}}
    assert client.http.get("/api/bills", headers=auth()).json_body == {"total": 0, "data": []}
    assert wiring.services().billing.store.get_account("tenant-a") is None


def test_admin_recharge_credits_the_tenant_with_a_bill_line(client):
    answer = recharge(client, "tenant-a", {"amount": "100.00", "description": "invoice 7"})
    assert answer.status_code == 200, answer.body
    data = answer.json_body["data"]
    assert data["account"]["balance"] == "100.000000" and data["account"]["currency"] == "CNY"
    bill = data["bill"]
    assert {k: bill[k] for k in ("related_exp_id", "item", "amount", "unit_price", "quantity", "description")} == {
        "related_exp_id": None, "item": "recharge", "amount": "100.000000", "unit_price": "1.000000",
        "quantity": "100", "description": "invoice 7"}
    assert recharge(client, "tenant-a", {"amount": 0.5}).status_code == 200
    assert recharge(client, "tenant-a", {"amount": 2}).status_code == 200
    assert recharge(client, "tenant-a", {"amount": " 0.000001 "}).status_code == 200

    account = client.http.get("/api/account", headers=auth()).json_body["data"]
    assert account["balance"] == "102.500001"
    assert account["created_at"] == bill["created_at"] and account["updated_at"] >= account["created_at"]
    listed = client.http.get("/api/bills", headers=auth()).json_body
    assert listed["total"] == 4 and listed["data"][-1] == bill
    assert [b["amount"] for b in listed["data"]] == ["0.000001", "2.000000", "0.500000", "100.000000"]
    # tenants are apart
    assert balance(client, auth("tenant-b")) == 0
    assert client.http.get("/api/bills", headers=auth("tenant-b")).json_body == {"total": 0, "data": []}


def test_recharge_is_admin_only_and_checks_its_input(client):
    forbidden = recharge(client, "tenant-a", {"amount": "100"}, headers=auth())
    assert forbidden.status_code == 403 and forbidden.json_body["detail"]
    for bad in ({"amount": "0"}, {"amount": "-1"}, {"amount": 0}, {"amount": -5}, {"amount": "abc"}, {"amount": ""},
                {"amount": "1.0000001"}, {"amount": 0.0000001}, {"amount": "1e3"}, {"amount": "NaN"},
                {"amount": "Infinity"}, {"amount": True}, {"amount": None}, {"amount": ["1"]}, {},
                {"amount": "1000000.000001"}, {"amount": 1e7}, {"amount": "1", "other": 1},
                {"amount": "1", "request_id": "has space"}, {"amount": "1", "description": "x" * 256}):
        response = recharge(client, "tenant-a", bad)
        assert response.status_code == 400, (bad, response.body)
        assert response.json_body["detail"]
    assert recharge(client, "tenant-a", "not json").status_code == 400
    assert recharge(client, "Not_A_Tenant", {"amount": "1"}).status_code == 400
    assert recharge(client, "tenant-a", {"amount": "1000000"}).status_code == 200  # the upper bound itself
    assert balance(client) == Decimal("1000000")
    assert client.http.get("/api/bills", headers=auth()).json_body["total"] == 1


def test_a_retried_recharge_with_the_same_idempotency_key_credits_once(client):
    first = recharge(client, "tenant-a", {"amount": "25.5"}, extra_headers={"Idempotency-Key": "inv-42"})
    again = recharge(client, "tenant-a", {"amount": "25.50"}, extra_headers={"Idempotency-Key": "inv-42"})
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    assert again.json_body["data"]["bill"] == first.json_body["data"]["bill"]
    assert again.json_body["data"]["account"]["balance"] == "25.500000"
    # the body field works the same way and shares the key space
    assert recharge(client, "tenant-a", {"amount": "25.5", "request_id": "inv-42"}).status_code == 200
    assert balance(client) == Decimal("25.5")
    # the same key with another amount is a conflict; header and body disagreeing is a bad request
    conflict = recharge(client, "tenant-a", {"amount": "26"}, extra_headers={"Idempotency-Key": "inv-42"})
    assert conflict.status_code == 409 and "inv-42" in conflict.json_body["detail"]
    mixed = recharge(client, "tenant-a", {"amount": "1", "request_id": "a"}, extra_headers={"Idempotency-Key": "b"})
    assert mixed.status_code == 400
    # keys are per tenant; a new key credits again
    assert recharge(client, "tenant-b", {"amount": "1"}, extra_headers={"Idempotency-Key": "inv-42"}).status_code == 200
    assert recharge(client, "tenant-a", {"amount": "1"}, extra_headers={"Idempotency-Key": "inv-43"}).status_code == 200
    assert balance(client) == Decimal("26.5") and balance(client, auth("tenant-b")) == 1
    assert client.http.get("/api/bills", headers=auth()).json_body["total"] == 2


def test_bills_are_paginated_newest_first_and_filtered_by_item(client):
    for amount in range(1, 6):
        assert recharge(client, "tenant-a", {"amount": str(amount)}).status_code == 200
    page = client.http.get("/api/bills?skip=1&limit=2", headers=auth()).json_body
    assert page["total"] == 5 and [b["amount"] for b in page["data"]] == ["4.000000", "3.000000"]
    assert set(page["data"][0]) == {"id", "related_exp_id", "item", "amount", "unit_price", "quantity",
                                    "description", "created_at"}
    assert client.http.get("/api/bills?skip=5", headers=auth()).json_body == {"total": 5, "data": []}
    assert len(bills(client, query="item=recharge&limit=1000")) == 5
    assert client.http.get("/api/bills?item=run_time", headers=auth()).json_body == {"total": 0, "data": []}
    assert client.http.get("/api/bills?item=", headers=auth()).json_body["total"] == 5
    for bad in ("item=gpu", "item=RECHARGE", "skip=-1", "limit=0", "limit=1001", "limit=x", "skip=1.5"):
        response = client.http.get(f"/api/bills?{bad}", headers=auth())
        assert response.status_code == 400, bad
        assert response.json_body["detail"]
    assert len(bills(client, query="limit=1000")) == 5


# the balance check at launch ----------------------------------------------------------------------
def test_a_launch_without_balance_is_400_and_creates_nothing(sim_client):
    from chalicelib import wiring

    headers = add_tenant("tenant-c")
    refs = make_configs(sim_client, headers, agents=3, workflow=[{"type": "step", "steps": 2}])
    response = launch(sim_client, refs, headers=headers)
    assert response.status_code == 400 and response.json_body == {"detail": "Insufficient balance"}

    container = wiring.services()
    assert container.simulation_store.list_experiments("tenant-c") == []
    assert call(sim_client, "get", "/api/experiments", headers=headers).json_body["total"] == 0
    assert container.experiments.active_by_name("tenant-c", "simulations") is None
    executions = container.step_functions.client.list_executions(stateMachineArn=container.settings.state_machine_arn)
    assert executions["executions"] == []
    assert balance(sim_client, headers) == 0 and bills(sim_client, headers) == []
    assert container.billing.store.get_account("tenant-c") is None

    # a positive balance, however small, lets the launch through
    assert recharge(sim_client, "tenant-c", {"amount": "0.000001"}).status_code == 200
    exp_id = launch(sim_client, refs, headers=headers).json_body["data"]["id"]
    wait_end(exp_id, "tenant-c")


# billing at the end of every run ----------------------------------------------------------------
def test_a_finished_run_on_the_platform_llm_is_billed_tokens_and_run_time(sim_client, monkeypatch):
    from chalicelib import wiring
    from chalicelib.settings import BILLING_RATES
    from tests.llm_stub import StubLLM

    monkeypatch.setenv(BILLING_RATES, json.dumps({"llm_input_token": "2.5", "llm_output_token": "0.7",
                                                  "run_time": "0.0015"}))
    wiring.reset()
    with StubLLM(usage=(11, 7)) as stub:
        refs = make_configs(sim_client, agents=3, workflow=[{"type": "interview", "question": "How are you?"},
                                                            {"type": "step", "steps": 2}])
        refs["llm"] = platform_llm(sim_client, stub.base_url)
        exp_id = launch(sim_client, refs).json_body["data"]["id"]
        exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 2 and exp.llm_billed
    assert (exp.input_tokens, exp.output_tokens) == (33, 21)  # three agents answer once each
    lines = assert_billed_once(sim_client, exp_id, {"llm_input_token", "llm_output_token", "run_time"}, SIM_CREDIT)
    assert {k: lines["llm_input_token"][k] for k in ("amount", "unit_price", "quantity")} == {
        "amount": "-0.000082", "unit_price": "2.500000", "quantity": "0.000033"}  # 0.0000825 truncated
    assert {k: lines["llm_output_token"][k] for k in ("amount", "unit_price", "quantity")} == {
        "amount": "-0.000014", "unit_price": "0.700000", "quantity": "0.000021"}  # 0.0000147 truncated
    amount, seconds = expected_run_time(exp, lines["run_time"]["created_at"], Decimal("0.0015"))
    assert lines["run_time"]["amount"] == amount and Decimal(lines["run_time"]["quantity"]) == seconds
    assert lines["run_time"]["unit_price"] == "0.001500"
    assert exp.started_at <= lines["run_time"]["created_at"] <= exp.ended_at  # billed after the run, before Finalize
    assert len({line["created_at"] for line in lines.values()}) == 1


def test_a_run_on_the_tenants_own_llm_is_billed_run_time_only(sim_client):
    refs = make_configs(sim_client, agents=3, workflow=[{"type": "step", "steps": 3}])
    exp_id = launch(sim_client, refs).json_body["data"]["id"]
    exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 2 and not exp.llm_billed
    lines = assert_billed_once(sim_client, exp_id, {"run_time"}, SIM_CREDIT)
    amount, seconds = expected_run_time(exp, lines["run_time"]["created_at"])
    assert lines["run_time"]["amount"] == amount and Decimal(lines["run_time"]["quantity"]) == seconds
    assert Decimal(amount) < 0 and lines["run_time"]["unit_price"] == "0.001000"


def external_run_on_the_platform_llm(sim_client, fake_engine) -> tuple[str, str]:
    """An external run on a platform LLM config (so its tokens are billed): (experiment id, callback token)."""
    from tests.llm_stub import StubLLM

    with StubLLM() as stub:
        refs = make_configs(sim_client, agents=3)
        refs["llm"] = platform_llm(sim_client, stub.base_url)
    exp_id = launch(sim_client, refs, engine="external").json_body["data"]["id"]
    return exp_id, fake_engine()


def test_a_stopped_external_run_is_billed_its_reported_tokens(sim_client, fake_engine):
    exp_id, token = external_run_on_the_platform_llm(sim_client, fake_engine)
    answer = report(sim_client, exp_id, token, {"cur_day": 0, "cur_t": 29100.0, "input_tokens": 1_000_001,
                                                 "output_tokens": 2, "ticks_done": 1})
    assert answer.status_code == 200, answer.body
    assert call(sim_client, "delete", f"/api/run-experiments/{exp_id}").status_code == 200
    exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 4
    lines = assert_billed_once(sim_client, exp_id, {"llm_input_token", "llm_output_token", "run_time"}, SIM_CREDIT)
    assert lines["llm_input_token"]["amount"] == "-3.000003" and lines["llm_input_token"]["quantity"] == "1.000001"
    assert lines["llm_output_token"]["amount"] == "-0.000006" and lines["llm_output_token"]["quantity"] == "0.000002"
    assert lines["run_time"]["amount"] == expected_run_time(exp, lines["run_time"]["created_at"])[0]


def test_an_external_run_ending_in_error_is_billed(sim_client, fake_engine):
    exp_id, token = external_run_on_the_platform_llm(sim_client, fake_engine)
    assert report(sim_client, exp_id, token, {"cur_day": 0, "cur_t": 29100.0, "input_tokens": 333_333,
                                              "output_tokens": 1_234_567, "ticks_done": 1}).status_code == 200
    assert finish(sim_client, exp_id, token, {"status": "error", "error": "out of memory"}).status_code == 200
    exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 3
    lines = assert_billed_once(sim_client, exp_id, {"llm_input_token", "llm_output_token", "run_time"}, SIM_CREDIT)
    assert lines["llm_input_token"]["amount"] == "-0.999999"
    assert lines["llm_output_token"]["amount"] == "-3.703701"
    assert lines["run_time"]["amount"] == expected_run_time(exp, lines["run_time"]["created_at"])[0]


def test_a_builtin_run_ending_in_error_is_billed(sim_client):
    from tests.llm_stub import StubLLM

    with StubLLM(status=500) as stub:
        refs = make_configs(sim_client, agents=4, workflow=[{"type": "interview", "question": "Hello?"},
                                                            {"type": "step", "steps": 3}])
        refs["llm"] = platform_llm(sim_client, stub.base_url)
        exp_id = launch(sim_client, refs).json_body["data"]["id"]
        exp = wait_for_end(sim_client, exp_id)
    assert exp.status == 3 and "LLMError" in exp.error
    lines = assert_billed_once(sim_client, exp_id, {"llm_input_token", "llm_output_token", "run_time"}, SIM_CREDIT)
    assert lines["llm_input_token"]["amount"] == lines["llm_output_token"]["amount"] == "0.000000"
    assert lines["llm_input_token"]["quantity"] == "0"
    assert lines["run_time"]["amount"] == expected_run_time(exp, lines["run_time"]["created_at"])[0]


# exactly once -----------------------------------------------------------------------------------
def test_a_retried_bill_step_bills_nothing_more(sim_client):
    refs = make_configs(sim_client, agents=3, workflow=[{"type": "step", "steps": 2}])
    exp_id = launch(sim_client, refs).json_body["data"]["id"]
    exp = wait_for_end(sim_client, exp_id)
    before_lines, before_balance = bills(sim_client), balance(sim_client)
    line_ids = [b["id"] for b in before_lines if b["related_exp_id"] == exp_id]
    assert len(line_ids) == 1

    event = {"tenant_id": "tenant-a", "experiment_id": exp_id, "engine": "builtin", "heartbeat_seconds": 300,
             "pause_seconds": 0, "correlation_id": "",
             "run": {"done": True, "outcome": "finished", "engine": "builtin"}}
    for _ in range(2):
        retried = sim_client.lambda_.invoke("bill_simulation", event).payload
        assert retried["billed"] is False and retried["already_billed"] is True
        assert retried["bill_ids"] == line_ids and retried["experiment_id"] == exp_id
        assert Decimal(retried["total"]) == before_balance - SIM_CREDIT
    # the ERROR path's input too (a Catch result instead of a run)
    errored = {**{k: v for k, v in event.items() if k != "run"}, "error": {"Error": "X", "Cause": "y"}}
    assert sim_client.lambda_.invoke("bill_simulation", errored).payload["already_billed"] is True
    assert bills(sim_client) == before_lines and balance(sim_client) == before_balance
    assert exp.status == 2


def test_concurrent_bill_attempts_on_one_run_bill_once(sim_client):
    """Eight bill attempts at once (retries, a second execution path): one transaction wins, the rest bill nothing."""
    from chalicelib import wiring
    from chalicelib.domain.clock import new_id
    from chalicelib.domain.simulation.records import SimExperiment, SimStatus

    container = wiring.services()
    exp = SimExperiment(tenant_id="tenant-a", id=new_id(), name="orphan", status=SimStatus.RUNNING,
                        cur_day=0, cur_t=0.0, config="{}", error="", input_tokens=500_000, output_tokens=250_000,
                        created_at="2025-01-01T00:00:00.000+00:00", updated_at="2025-01-01T00:00:00.000+00:00",
                        engine="external", tracking_run_id="none", llm_billed=True,
                        started_at="2025-01-01T00:00:00.000+00:00", ended_at="2025-01-01T00:01:40.000+00:00")
    from chalicelib.domain.simulation.records import RunControl

    container.simulation_store.create_experiment(exp, RunControl())
    barrier = threading.Barrier(8)
    results = []

    def attempt() -> None:
        barrier.wait()
        results.append(container.billing.bill_experiment("tenant-a", exp.id))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["billed"] for r in results) == 1 and len(results) == 8
    assert len({tuple(r["bill_ids"]) for r in results}) == 1
    lines = assert_billed_once(sim_client, exp.id, {"llm_input_token", "llm_output_token", "run_time"}, SIM_CREDIT)
    assert {item: line["amount"] for item, line in lines.items()} == {
        "llm_input_token": "-1.500000", "llm_output_token": "-0.750000", "run_time": "-0.100000"}
    assert balance(sim_client) == Decimal("97.65")


def test_a_stop_racing_the_finish_bills_once(sim_client):
    refs = make_configs(sim_client, agents=3, workflow=[{"type": "step", "steps": 3}])
    exp_id = launch(sim_client, refs).json_body["data"]["id"]
    answers = []
    while sim(exp_id).status not in (2, 3, 4):  # stop again and again while the run finishes
        answers.append(call(sim_client, "delete", f"/api/run-experiments/{exp_id}").status_code)
    exp = wait_for_end(sim_client, exp_id)
    assert exp.status in (2, 4) and set(answers) <= {200, 409}
    lines = assert_billed_once(sim_client, exp_id, {"run_time"}, SIM_CREDIT)
    assert lines["run_time"]["amount"] == expected_run_time(exp, lines["run_time"]["created_at"])[0]


def test_an_external_stop_racing_its_finish_callback_bills_once(sim_client, fake_engine):
    from chalicelib import wiring
    from chalicelib.domain.errors import AgoraError

    refs = make_configs(sim_client, agents=3)
    exp_id = launch(sim_client, refs, engine="external").json_body["data"]["id"]
    token = fake_engine()
    assert report(sim_client, exp_id, token, {"cur_day": 0, "cur_t": 29100.0, "input_tokens": 5, "output_tokens": 5,
                                              "ticks_done": 1}).status_code == 200
    container = wiring.services()
    barrier = threading.Barrier(2)
    outcomes = []

    def race(action) -> None:
        barrier.wait()
        try:
            action()
            outcomes.append("ok")
        except AgoraError as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=race, args=(lambda: container.control.finish(exp_id, token, "finished", ""),)),
               threading.Thread(target=race, args=(lambda: container.control.stop("tenant-a", exp_id),))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "ok" in outcomes
    exp = wait_for_end(sim_client, exp_id)
    assert exp.status in (2, 4)
    wait_until(lambda: container.step_functions.describe(exp.execution_arn) == "SUCCEEDED")
    assert_billed_once(sim_client, exp_id, {"run_time"}, SIM_CREDIT)


def test_concurrent_launches_on_a_small_balance_all_pass_and_each_is_billed_once(sim_client):
    """No amount is held at launch (AgentSociety's rule): all pass the check and the balance may go negative."""
    from chalicelib import wiring
    from chalicelib.domain.simulation.models import LaunchRequest

    headers = add_tenant("tenant-c")
    refs = make_configs(sim_client, headers, agents=3, workflow=[{"type": "step", "steps": 2}])
    assert recharge(sim_client, "tenant-c", {"amount": "0.000001"}).status_code == 200
    container = wiring.services()
    barrier = threading.Barrier(4)
    launched, errors = [], []

    def launch_one(n: int) -> None:
        request = LaunchRequest.model_validate({"exp_name": f"run {n}", **refs})
        barrier.wait()
        try:
            launched.append(container.launcher.launch("tenant-c", request).id)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=launch_one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(launched) == 4
    for exp_id in launched:
        wait_end(exp_id, "tenant-c")

    all_lines = bills(sim_client, headers)
    spent = Decimal(0)
    for exp_id in launched:
        lines = lines_of(sim_client, exp_id, headers)
        assert set(lines) == {"run_time"}
        spent += Decimal(lines["run_time"]["amount"])
    assert len(all_lines) == 4 + 1  # one line per run and the recharge
    final = balance(sim_client, headers)
    assert final == Decimal("0.000001") + spent and final < 0
    # once the balance is not positive, the next launch is refused
    response = launch(sim_client, refs, headers=headers)
    assert response.status_code == 400 and response.json_body["detail"] == "Insufficient balance"


def test_the_sim_client_tenants_start_with_credit(sim_client):
    for tenant in KEYS:
        assert balance(sim_client, auth(tenant)) == SIM_CREDIT
        assert [b["item"] for b in bills(sim_client, auth(tenant))] == ["recharge"]


def test_the_platforms_own_runs_are_neither_checked_nor_charged(sim_client):
    refs = make_configs(sim_client, admin(), agents=3, workflow=[{"type": "step", "steps": 2}])
    exp_id = launch(sim_client, refs, headers=admin()).json_body["data"]["id"]
    exp = wait_end(exp_id, "")
    assert exp.status == 2
    assert balance(sim_client, admin()) == 0 and bills(sim_client, admin()) == []
    event = {"tenant_id": "", "experiment_id": exp_id, "run": {"done": True, "outcome": "finished"}}
    assert sim_client.lambda_.invoke("bill_simulation", event).payload["billed"] is False
    assert all(b["related_exp_id"] != exp_id for tenant in KEYS for b in bills(sim_client, auth(tenant)))
