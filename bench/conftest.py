"""Benchmark fixtures: one in-process moto stack per module, the app's own DynamoDB client observed.

Self-contained on purpose (nothing imported from tests/): the same setup as tests/conftest.py —
moto's `mock_aws`, tables and bucket from infra/ via `devstack.resources.create_resources`, one
tenant API key, `wiring.reset()` and Chalice's test client.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import boto3
import botocore.loaders
import botocore.session
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import settings, wiring
from chalicelib.domain.principals import Principal, hash_api_key
from devstack.resources import create_resources

# botocore would re-read its service models for every new session; share one loader (as tests/ do).
_LOADER = botocore.loaders.create_loader()
botocore.session.Session._register_data_loader = (
    lambda self: self._components.register_component("data_loader", _LOADER))

TENANT, API_KEY = "tenant-bench", "bench-key"
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
READS = {"GetItem", "Query", "Scan", "BatchGetItem"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def item_size(item: dict[str, Any]) -> int:
    """Bytes of a low-level DynamoDB item by DynamoDB's sizing rules (numbers approximated as AWS documents)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").lower().split("e")[0].replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(e) for k, e in v.items())
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: e}) for e in v)
    raise ValueError(kind)


@dataclass
class DynamoMeter:
    """Observes a DynamoDB client: requests per operation and bytes of items returned.

    Registered as botocore `before-call`/`after-call` handlers that return nothing, so botocore
    proceeds exactly as without them. The authorizer's API-key GetItem is counted apart: deployed,
    the authorizer is a separate Lambda whose answer API Gateway caches for 300 s.
    """

    directory_table: str = ""
    calls: Counter = field(default_factory=Counter)
    key_lookups: int = 0
    bytes_read: int = 0
    rcu: int = 0
    observe_reads: bool = True  # False: the owner reports read bytes itself through `add_read`

    def before(self, model: Any, params: dict, **_: Any) -> None:
        body = json.loads(params.get("body") or b"{}")
        key = body.get("Key", {}).get("pk", {}).get("S", "")
        self._key_lookup = (model.name == "GetItem" and body.get("TableName") == self.directory_table
                            and key.startswith("KEY#"))
        if self._key_lookup:
            self.key_lookups += 1
        else:
            self.calls[model.name] += 1

    def after(self, parsed: dict, model: Any, **_: Any) -> None:
        # calls are sequential in these benches: `after` pairs with the last `before`
        if self._key_lookup or model.name not in READS or not self.observe_reads:
            return
        items = list(parsed.get("Items", [])) + ([parsed["Item"]] if "Item" in parsed else [])
        self.add_read(sum(item_size(i) for i in items))

    def add_read(self, size: int) -> None:
        """Bytes DynamoDB read for one request, and its strongly consistent read units (1 per started 4 KB)."""
        self.bytes_read += size
        self.rcu += max(1, math.ceil(size / 4096))

    _key_lookup = False

    def attach(self, client: Any, name: str) -> None:
        client.meta.events.register("before-call.dynamodb", self.before, unique_id=f"bench-before-{name}")
        client.meta.events.register("after-call.dynamodb", self.after, unique_id=f"bench-after-{name}")

    def detach(self, client: Any, name: str) -> None:
        client.meta.events.unregister("before-call.dynamodb", unique_id=f"bench-before-{name}")
        client.meta.events.unregister("after-call.dynamodb", unique_id=f"bench-after-{name}")

    def reset(self) -> None:
        self.calls.clear()
        self.key_lookups = 0
        self.bytes_read = 0
        self.rcu = 0


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


_DISCARD = _Discard()


@dataclass
class Stack:
    session: Any
    client: Client
    meter: DynamoMeter
    env: dict[str, str]

    def post(self, path: str, body: Any) -> dict:
        with contextlib.redirect_stdout(_DISCARD):  # the app's EMF metric line per request, as in Lambda
            response = self.client.http.post(path, headers=HEADERS, body=json.dumps(body))
        assert response.status_code in (200, 201), response.body
        return json.loads(response.body)

    def get(self, path: str) -> dict:
        with contextlib.redirect_stdout(_DISCARD):
            response = self.client.http.get(path, headers=HEADERS)
        assert response.status_code == 200, response.body
        return json.loads(response.body)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv(settings.TOKEN_SECRET, "bench-token-secret")
        mp.setenv("POWERTOOLS_TRACE_DISABLED", "1")
        with mock_aws():
            session = boto3.session.Session()
            env = create_resources(session)
            for name, value in env.items():
                mp.setenv(name, value)
            wiring.reset()
            services = wiring.services()
            services.directory.put_api_key(hash_api_key(API_KEY), Principal(TENANT, "tenant"))
            meter = DynamoMeter(directory_table=services.settings.directory_table)
            meter.attach(services.dynamodb, "app")
            from app import app

            # the app logs one JSON line per request (Powertools logger "agora", configured when app.py is
            # imported); with -s they would drown the tables
            app_logger = logging.getLogger("agora")
            level = app_logger.level
            app_logger.setLevel(logging.WARNING)
            with Client(app, stage_name="dev", project_dir=ROOT) as client:
                yield Stack(session, client, meter, env)
            meter.detach(services.dynamodb, "app")
            app_logger.setLevel(level)
            wiring.reset()


_TIMES: dict[str, tuple[float, float]] = {}
_LOAD: dict[str, float] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Iterator[None]:
    """Wall and CPU seconds per bench (setup + call + teardown): CPU far below wall means a busy machine."""
    _LOAD.setdefault("start", os.getloadavg()[0])
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    if item.get_closest_marker("bench"):
        _TIMES[item.name] = (time.perf_counter() - wall, time.process_time() - cpu)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _TIMES:
        terminalreporter.write_line(f"\nBENCH TIME per test (module fixtures count for their first user; "
                                    f"1-min load average {_LOAD['start']:.2f} at start, "
                                    f"{os.getloadavg()[0]:.2f} at end, "
                                    f"{os.cpu_count()} CPUs)")
        for name, (wall, cpu) in _TIMES.items():
            terminalreporter.write_line(f"  {wall:6.1f} s wall {cpu:6.1f} s CPU  {name}")
