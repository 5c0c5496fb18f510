"""Test fixtures: moto in-process, resources from infra/, tenants with keys, chalice's test client."""
from __future__ import annotations

import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import boto3
import botocore.loaders
import botocore.session
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import settings, wiring
from chalicelib.domain.principals import Principal, hash_api_key
from devstack import moto_hardening
from devstack.resources import create_resources

# moto as the local stack ships it: DynamoDB requests isolated like DynamoDB's, no leaking models
moto_hardening.install()

# Every boto3 session would re-read botocore's service models from disk (~0.3 s per test); one
# shared loader keeps the suite fast. Only the loading of the models is shared, nothing else.
_LOADER = botocore.loaders.create_loader()
botocore.session.Session._register_data_loader = (
    lambda self: self._components.register_component("data_loader", _LOADER))

KEYS = {"tenant-a": "key-a", "tenant-b": "key-b"}
SIM_CREDIT = Decimal("100")  # CNY credited to each tenant by `sim_client`
ADMIN_KEY = "admin-key"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(settings.TOKEN_SECRET, "test-token-secret")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "1")


def seed_keys() -> None:
    """The test tenants' keys and the admin key, stored hashed as in production."""
    directory = wiring.services().directory
    for tenant, key in KEYS.items():
        directory.put_api_key(hash_api_key(key), Principal(tenant, "tenant"))
    directory.put_api_key(hash_api_key(ADMIN_KEY), Principal("", "admin"))


@pytest.fixture
def aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    with mock_aws():
        session = boto3.session.Session()
        for name, value in create_resources(session).items():
            monkeypatch.setenv(name, value)
        wiring.reset()
        seed_keys()
        yield session
        wiring.reset()


@pytest.fixture
def client(aws: boto3.session.Session) -> Iterator[Client]:
    from app import app

    with Client(app, stage_name="dev", project_dir=os.path.dirname(os.path.dirname(__file__))) as test_client:
        yield test_client


def auth(tenant: str = "tenant-a") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}", "Content-Type": "application/json"}


@pytest.fixture
def sim_client(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """Like `client`, with Step Functions executing for real and Lambda tasks dispatched to the app."""
    from app import app
    from devstack import moto_bridge
    from devstack.server import create_state_machines

    monkeypatch.setenv(settings.SIM_STEP_PAUSE_SECONDS, "0")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        session = boto3.session.Session()
        for name, value in create_resources(session).items():
            monkeypatch.setenv(name, value)
        moto_bridge.install(app)
        functions = moto_bridge.register_functions(session, app)
        _, machine_env = create_state_machines(session, functions)
        for name, value in machine_env.items():
            monkeypatch.setenv(name, value)
        wiring.reset()
        seed_keys()
        for tenant in KEYS:  # launching needs a positive balance
            wiring.services().billing.recharge(tenant, SIM_CREDIT, request_id="test-credit")
        try:
            with Client(app, stage_name="dev", project_dir=os.path.dirname(os.path.dirname(__file__))) as test_client:
                yield test_client
        finally:
            moto_bridge.uninstall()
            wiring.reset()


@pytest.fixture
def fake_engine(tmp_path, monkeypatch):
    """Launch `tests/fake_engine.py` as the external engine; returns a function waiting for its token."""
    from chalicelib import settings, wiring

    token_file = tmp_path / "token"
    script = Path(__file__).with_name("fake_engine.py")
    monkeypatch.setenv(settings.ENGINE_COMMAND, f"{sys.executable} {script} {token_file}")
    monkeypatch.setenv(settings.PUBLIC_API_URL, "http://127.0.0.1:9")
    wiring.reset()
    def token() -> str:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if token_file.exists():
                return token_file.read_text().split("\n")[0]
            time.sleep(0.05)
        raise AssertionError("the external engine was not launched")

    return token
