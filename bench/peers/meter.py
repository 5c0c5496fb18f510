"""Agora's DynamoDB and S3 work per operation, counted in-process.

The devstack subprocess cannot be observed from outside (and chalicelib/ and devstack/ stay untouched), so the
same operations of `workload.OPS` run a second time in this process: `AgoraClient` over `ChaliceTransport`
(chalice.test.Client) on moto's `mock_aws`, with tables and bucket from infra/ (`devstack.resources`), as the
storage benches do (bench/conftest.py), with devstack's moto fixes installed as the local stack and the tests
install them (`devstack.moto_hardening`). botocore `before-call` / `after-call` handlers on the app's own clients
(`wiring.services().dynamodb` and `.s3`) count requests per operation, items and bytes; they only observe.

- items / bytes written: the items of PutItem, BatchWriteItem and TransactWriteItems puts (DynamoDB's item-size
  rules, bench.conftest.item_size), plus key and values sent with UpdateItem (1 item each);
- items / bytes read: the items DynamoDB returned (GetItem, BatchGetItem, Query, Scan, TransactGetItems), as
  projected; DynamoDB bills reads on the whole item, so read capacity can be higher;
- the authorizer's API-key GetItem is counted apart ("key look-ups"): deployed, API Gateway caches it.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional
from urllib.parse import urlencode

from bench.peers.clients import AgoraClient, ApiError
from bench.peers.workload import OPS, Context, Op, Settings

TENANT, API_KEY = "tenant-bench", "bench-key"
HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
_WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


@dataclass
class Counts:
    requests: Counter = field(default_factory=Counter)
    items_read: int = 0
    items_written: int = 0
    bytes_read: int = 0
    bytes_written: int = 0

    def as_json(self, divide: float = 1.0) -> dict[str, Any]:
        return {"requests": {k: round(v / divide, 2) for k, v in sorted(self.requests.items())},
                "requests_total": round(sum(self.requests.values()) / divide, 2),
                "items_read": round(self.items_read / divide, 2),
                "items_written": round(self.items_written / divide, 2),
                "bytes_read": round(self.bytes_read / divide), "bytes_written": round(self.bytes_written / divide)}


class Meter:
    """Thread-safe request, item and byte counters for one DynamoDB and one S3 client."""

    def __init__(self, directory_table: str) -> None:
        from bench.conftest import item_size  # DynamoDB's item-size rules, as the storage benches use them

        self._size = item_size
        self.directory_table = directory_table
        self.lock = threading.Lock()
        self.dynamodb = Counts()
        self.s3 = Counts()
        self.key_lookups = 0
        self._attached: list[tuple[Any, str]] = []

    def reset(self) -> None:
        with self.lock:
            self.dynamodb, self.s3, self.key_lookups = Counts(), Counts(), 0

    # DynamoDB ---------------------------------------------------------------------------------------------------
    def _ddb_before(self, model: Any, params: dict, context: dict, **_: Any) -> None:
        body = json.loads(params.get("body") or b"{}")
        name = model.name
        key = body.get("Key", {}).get("pk", {}).get("S", "")
        if name == "GetItem" and body.get("TableName") == self.directory_table and key.startswith("KEY#"):
            context["bench_key_lookup"] = True
            with self.lock:
                self.key_lookups += 1
            return
        items, size = 0, 0
        if name == "PutItem":
            items, size = 1, self._size(body["Item"])
        elif name == "UpdateItem":
            items = 1
            size = self._size(body.get("Key", {})) + self._size(body.get("ExpressionAttributeValues", {}))
        elif name == "BatchWriteItem":
            for requests in body.get("RequestItems", {}).values():
                for request in requests:
                    if "PutRequest" in request:
                        items += 1
                        size += self._size(request["PutRequest"]["Item"])
        elif name == "TransactWriteItems":
            for action in body.get("TransactItems", []):
                if "Put" in action:
                    items += 1
                    size += self._size(action["Put"]["Item"])
                elif "Update" in action:
                    items += 1
                    size += (self._size(action["Update"].get("Key", {}))
                             + self._size(action["Update"].get("ExpressionAttributeValues", {})))
        with self.lock:
            self.dynamodb.requests[name] += 1
            self.dynamodb.items_written += items
            self.dynamodb.bytes_written += size

    def _ddb_after(self, parsed: dict, model: Any, context: dict, **_: Any) -> None:
        if context.get("bench_key_lookup") or model.name in _WRITE_OPS:
            return
        items = list(parsed.get("Items", []))
        if "Item" in parsed:
            items.append(parsed["Item"])
        for found in parsed.get("Responses", {}).values() if isinstance(parsed.get("Responses"), dict) else ():
            items.extend(found)
        if isinstance(parsed.get("Responses"), list):  # TransactGetItems
            items.extend(r["Item"] for r in parsed["Responses"] if "Item" in r)
        size = sum(self._size(i) for i in items)
        with self.lock:
            self.dynamodb.items_read += len(items)
            self.dynamodb.bytes_read += size

    # S3 -----------------------------------------------------------------------------------------------------------
    def _s3_before(self, model: Any, params: dict, **_: Any) -> None:
        body = params.get("body")
        size = 0
        if isinstance(body, (bytes, bytearray)):
            size = len(body)
        elif hasattr(body, "seek") and hasattr(body, "tell"):
            with contextlib.suppress(OSError, ValueError):
                here = body.tell()
                body.seek(0, os.SEEK_END)
                size = body.tell() - here
                body.seek(here)
        with self.lock:
            self.s3.requests[model.name] += 1
            if size:
                self.s3.items_written += 1
                self.s3.bytes_written += size

    def _s3_after(self, parsed: dict, model: Any, **_: Any) -> None:
        if model.name == "GetObject":
            with self.lock:
                self.s3.items_read += 1
                self.s3.bytes_read += int(parsed.get("ContentLength") or 0)

    def attach(self, dynamodb: Any, s3: Any) -> None:
        for client, service, before, after in ((dynamodb, "dynamodb", self._ddb_before, self._ddb_after),
                                               (s3, "s3", self._s3_before, self._s3_after)):
            client.meta.events.register(f"before-call.{service}", before, unique_id=f"bench-peers-before-{service}")
            client.meta.events.register(f"after-call.{service}", after, unique_id=f"bench-peers-after-{service}")
            self._attached.append((client, service))

    def detach(self) -> None:
        for client, service in self._attached:
            client.meta.events.unregister(f"before-call.{service}", unique_id=f"bench-peers-before-{service}")
            client.meta.events.unregister(f"after-call.{service}", unique_id=f"bench-peers-after-{service}")
        self._attached.clear()


class ChaliceTransport:
    """The `clients.Transport` interface over chalice.test.Client: the same app, no HTTP server in between."""

    def __init__(self, client: Any, counter: Optional[Counter] = None) -> None:
        self.client = client
        self.bytes_received = 0
        self.requests = 0
        self.counter = counter if counter is not None else Counter()  # shared by every client of one session

    def request(self, method: str, path: str, params: Optional[dict[str, Any]] = None, body: Any = None) -> Any:
        if params:
            path = f"{path}?{urlencode(params)}"
        kwargs: dict[str, Any] = {"headers": HEADERS}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        response = getattr(self.client.http, method.lower())(path, **kwargs)
        self.requests += 1
        self.counter["requests"] += 1
        self.bytes_received += len(response.body or b"")
        if response.status_code >= 300:
            raise ApiError(response.status_code, method, path, response.body.decode(errors="replace"))
        return json.loads(response.body) if response.body else {}

    def close(self) -> None:
        pass


@dataclass
class InProcess:
    client: Any  # chalice.test.Client
    meter: Meter
    services: Any
    session: Any


@contextlib.contextmanager
def agora_in_process() -> Iterator[InProcess]:
    """The app on moto's mock_aws in this process (as bench/conftest.py's `stack` fixture); environment restored."""
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib import settings, wiring
    from chalicelib.domain.principals import Principal, hash_api_key
    from devstack import moto_hardening
    from devstack.resources import ROOT, create_resources

    # what the local stack and the tests install: item-level transaction undo (moto 5.2.5 deep-copies every
    # table a transaction names), a Query reads its partition only, one lock per DynamoDB request
    moto_hardening.install()

    saved = dict(os.environ)
    meter: Optional[Meter] = None
    try:
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
            os.environ.pop(name, None)
        os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", settings.TOKEN_SECRET: "bench-token-secret",
                           "POWERTOOLS_TRACE_DISABLED": "1"})
        with mock_aws():
            session = boto3.session.Session()
            os.environ.update(create_resources(session))
            wiring.reset()
            services = wiring.services()
            services.directory.put_api_key(hash_api_key(API_KEY), Principal(TENANT, "tenant"))
            meter = Meter(directory_table=services.settings.table("directory"))
            meter.attach(services.dynamodb, services.s3)
            from app import app

            app_logger = logging.getLogger("agora")  # one JSON line per request otherwise
            level = app_logger.level
            app_logger.setLevel(logging.WARNING)
            try:
                with Client(app, stage_name="dev", project_dir=str(ROOT)) as client:
                    yield InProcess(client, meter, services, session)
            finally:
                app_logger.setLevel(level)
    finally:
        if meter is not None:
            meter.detach()
        from chalicelib import wiring as _wiring

        _wiring.reset()
        os.environ.clear()
        os.environ.update(saved)


def meter_settings(base: Settings, include_1m: bool) -> Settings:
    """The workload's sizes, one repetition of each timed request (the counts are per unit anyway);
    the concurrent writers one after the other (chalice's test client is not meant for threads)."""
    return Settings(rounds=1, rounds_1m=1 if include_1m else 0, series_points=base.series_points,
                    big_points=base.big_points, run_creates=10, listed_runs=base.listed_runs, list_page=base.list_page,
                    list_walks=1, compare_runs=base.compare_runs, compare_keys=base.compare_keys,
                    compare_steps=base.compare_steps, compare_reps=1, downsample_to=base.downsample_to,
                    downsample_reps=1, writers=base.writers, writer_batches=base.writer_batches,
                    writers_concurrent=False, wide_reps=1, setup_threads=1, op_budget_s=base.op_budget_s)


def stored_bytes(inproc: InProcess, run_id: str, key: str) -> tuple[int, int]:
    """(items, bytes) of one series in the metrics table, read back with Scan through an unobserved client."""
    from bench.conftest import item_size
    from chalicelib.store import keys

    client = inproc.session.client("dynamodb")
    pk = keys.metric_pk(TENANT, run_id, key)
    items = size = 0
    for page in client.get_paginator("scan").paginate(TableName=inproc.services.settings.table("metrics")):
        for item in page["Items"]:
            if item["pk"]["S"] == pk:
                items += 1
                size += item_size(item)
    return items, size


def measure(base: Settings, include_1m: bool, progress: Any) -> dict[str, Any]:
    """Every operation once in-process; counts per unit of the operation (`Op.per`)."""
    cfg = meter_settings(base, include_1m)
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"rows": rows, "tenant": TENANT}
    began = time.perf_counter()
    # the app prints its EMF metrics line per request on stdout, as in Lambda: not into the report
    api_requests: Counter = Counter()
    with contextlib.redirect_stdout(_Discard()), agora_in_process() as inproc:
        def new_client() -> AgoraClient:
            return AgoraClient(ChaliceTransport(inproc.client, api_requests))

        ctx = Context("agora-inprocess", new_client(), new_client, cfg)
        ctx.scratch()
        op: Op
        for op in OPS:
            if op.big and not include_1m:
                continue
            error = None
            sample = None
            wall = 0.0
            requests_before = api_requests["requests"]
            try:
                prepared = op.prepare(ctx)  # set-up data and fresh runs: not counted
                inproc.meter.reset()
                requests_before = api_requests["requests"]
                t = time.perf_counter()
                sample = op.run(ctx, prepared)
                wall = time.perf_counter() - t
            except Exception as exc:  # noqa: BLE001 - reported in the row
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
            units = float((sample.detail.get("units") if sample else None) or 1)
            meter = inproc.meter
            row = {"id": op.id, "label": op.label, "per": op.per.format(cfg=cfg), "units": units,
                   "wall_s": round(wall, 2),
                   "api_requests": round((api_requests["requests"] - requests_before) / units, 2),
                   "dynamodb": meter.dynamodb.as_json(units), "s3": meter.s3.as_json(units),
                   "key_lookups": round(meter.key_lookups / units, 2), "error": error}
            if sample is not None and sample.unsupported:
                row["error"] = f"unsupported: {sample.unsupported}"
            rows.append(row)
            progress(f"[meter] {op.id}: {row['api_requests']:g} API requests, "
                     f"{row['dynamodb']['requests_total']:g} DynamoDB requests per {row['per']} ({wall:.1f} s)"
                     + (f" ERROR {error}" if error else ""))
            if op.id in ("ingest_100k", "ingest_1m") and sample is not None:
                slot = "series" if op.id == "ingest_100k" else "big"
                run, points = ctx.state[slot]
                items, size = stored_bytes(inproc, run, "loss")
                out.setdefault("stored", {})[op.id] = {
                    "points": points, "items": items, "bytes": size,
                    "bytes_per_point": round(size / points, 2),
                    "billed_bytes_per_point": round((size + 100 * items) / points, 2)}
    out["wall_s"] = round(time.perf_counter() - began, 1)
    return out
