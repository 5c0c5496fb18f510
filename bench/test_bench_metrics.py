"""Metric ingest and history benchmarks: Agora's chunked storage against one-item-per-point, same run.

Run with `make bench` (= `pytest -q -m bench -s bench`). Everything runs in-process against moto, so
latencies and throughputs are indicative only: they measure Python + moto + Chalice's test client,
not DynamoDB or API Gateway. Request counts and bytes per point are what carries over to AWS.
"""
from __future__ import annotations

import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Sequence
from urllib.parse import quote

import pytest

from bench.conftest import TENANT, DynamoMeter, Stack, item_size
from chalicelib import settings
from chalicelib.store import keys

pytestmark = pytest.mark.bench

EXPERIMENTS = "/api/v1/experiments"
RUNS = "/api/v1/experiments/runs"
KEY = "loss"
BATCHES, BATCH = 100, 1_000
TOTAL = BATCHES * BATCH
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
BASELINE_BATCH = 25  # BatchWriteItem's limit
BASELINE_RUN = "01kbench0baseline000000000"  # as long as a real run id (a ULID), so keys are as long
# a history walk stops after this many seconds, so that a bench stays under a minute on a busy machine
WALK_BUDGET_S = float(os.environ.get("AGORA_BENCH_WALK_BUDGET_S", "50"))
MOTO = ("moto in-process: latency and throughput are indicative only (Python + moto + Chalice test client, "
        "no network, no real DynamoDB); request counts and bytes carry over to AWS.")
MLFLOW = "MLflow 3.17.2 (measured elsewhere: trackers.md §4, SQLite, 4 uvicorn workers, a 2-vCPU AMD EPYC VM)"


# --- helpers ---------------------------------------------------------------------------------------------------------

def series(seed: int = 7) -> list[dict[str, Any]]:
    """100k points of one noisy decaying loss, full-precision doubles, explicit ms timestamps."""
    rng = random.Random(seed)
    return [{"key": KEY, "step": s, "timestamp": T0 + 37 * s,
             "value": 2.5 * math.exp(-s / 30_000) + 0.05 * rng.random()} for s in range(TOTAL)]


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (as trackers.md uses)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()) -> None:
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print(f"\n{title}\n{line}")
    for n, row in enumerate(cells):
        cells = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        print("| " + " | ".join(cells) + " |")
        if n == 0:
            print(line)
    print(line)
    for note in notes:
        print(f"  * {note}")


def ops(counter: Counter) -> str:
    return ", ".join(f"{name} {n:g}" for name, n in sorted(counter.items())) or "-"


def writes(counter: Counter) -> float:
    return sum(n for name, n in counter.items() if name in WRITES)


def wcu(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def scan_items(client: Any, table_name: str, pk: str) -> list[dict[str, Any]]:
    """Every item of one partition, read back with Scan through an unobserved client."""
    found = []
    for page in client.get_paginator("scan").paginate(TableName=table_name):
        found.extend(i for i in page["Items"] if i["pk"]["S"] == pk)
    return found


def new_run(stack: Stack, name: str) -> str:
    exp = stack.post(EXPERIMENTS, {"name": name})["id"]
    return stack.post(RUNS, {"experiment_id": exp})["id"]


@dataclass
class Measured:
    latencies: list[float] = field(default_factory=list)
    calls: list[Counter] = field(default_factory=list)
    read_bytes: list[int] = field(default_factory=list)
    rcu: list[int] = field(default_factory=list)
    points: int = 0
    elapsed: float = 0.0

    def per_request(self) -> Counter:
        total: Counter = Counter()
        for c in self.calls:
            total.update(c)
        return Counter({k: v / len(self.calls) for k, v in total.items()})


def metered(meter: DynamoMeter, out: Measured, action: Callable[[], Any]) -> Any:
    meter.reset()
    started = time.perf_counter()
    result = action()
    out.latencies.append(time.perf_counter() - started)
    out.calls.append(Counter(meter.calls))
    out.read_bytes.append(meter.bytes_read)
    out.rcu.append(meter.rcu)
    return result


# --- the one-item-per-point baseline --

@dataclass
class Baseline:
    """The design Agora did not take: one DynamoDB item per point (pk = the series, sk = step#timestamp, v = value).

    Reads use `Select=COUNT`: DynamoDB (and moto) cut Query pages at 1 MB of items *read* either way,
    so the requests are those of a real read, while moto skips its slow per-item JSON serialization.
    Bytes read are the sizes of the items each page covered, from the items as written.
    """

    client: Any
    meter: DynamoMeter
    name: str
    pk: str
    sizes: list[int] = field(default_factory=list)  # item sizes in sort-key (= step) order
    sks: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, stack: Stack, pk: str) -> Baseline:
        client = stack.session.client("dynamodb")
        name = "bench-one-item-per-point"
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}])
        meter = DynamoMeter(observe_reads=False)  # reads are Select=COUNT: `query` reports their bytes
        meter.attach(client, "baseline")
        return cls(client, meter, name, pk)

    def log(self, batch: list[dict[str, Any]]) -> None:
        """What a log-batch of `batch` costs this design: BatchWriteItem, 25 items a request."""
        items = [{"pk": {"S": self.pk}, "sk": {"S": f"{keys.encode_step(p['step'])}#{p['timestamp']:013d}"},
                  "v": {"N": str(Decimal(repr(p["value"])))}} for p in batch]
        for start in range(0, len(items), BASELINE_BATCH):
            pending = [{"PutRequest": {"Item": i}} for i in items[start : start + BASELINE_BATCH]]
            while pending:
                pending = self.client.batch_write_item(RequestItems={self.name: pending}).get(
                    "UnprocessedItems", {}).get(self.name, [])
        self.sizes.extend(item_size(i) for i in items)  # steps arrive in order, so this is sort-key order
        self.sks.extend(i["sk"]["S"] for i in items)

    def item_count(self) -> int:
        return self.client.describe_table(TableName=self.name)["Table"]["ItemCount"]

    def query(self, position: int, limit: int | None) -> tuple[int, bool]:
        """One Query from item index `position`; returns (items read, more to come)."""
        kwargs: dict[str, Any] = {"TableName": self.name, "KeyConditionExpression": "pk = :pk", "Select": "COUNT",
                                  "ExpressionAttributeValues": {":pk": {"S": self.pk}}, "ConsistentRead": True}
        if limit:
            kwargs["Limit"] = limit
        if position:
            kwargs["ExclusiveStartKey"] = {"pk": {"S": self.pk}, "sk": {"S": self.sks[position - 1]}}
        result = self.client.query(**kwargs)
        read = result["ScannedCount"]
        self.meter.add_read(sum(self.sizes[position : position + read]))
        return read, "LastEvaluatedKey" in result

    def page(self, position: int, limit: int) -> int:
        """One API page of `limit` points from index `position`: Queries (1 MB each at most) until it is full."""
        got, more = 0, True
        while got < limit and more:
            read, more = self.query(position + got, limit - got)
            got += read
        return got

    def read_all(self) -> int:
        """The whole series in DynamoDB's own 1 MB Query pages."""
        got, more = 0, True
        while more:
            read, more = self.query(got, None)
            got += read
        return got


# --- the 100k-point series, built once per module in both designs --

@dataclass
class Series:
    run_id: str
    ingest: Measured
    chunk_items: list[dict]


@pytest.fixture(scope="module")
def batches() -> list[list[dict[str, Any]]]:
    points = series()
    return [points[i : i + BATCH] for i in range(0, TOTAL, BATCH)]


@pytest.fixture(scope="module")
def agora(stack: Stack, batches: list[list[dict[str, Any]]]) -> Series:
    """100 log-batches through the HTTP route, each timed and its DynamoDB requests counted."""
    run_id = new_run(stack, "bench-ingest")
    measured = Measured(points=TOTAL)
    started = time.perf_counter()
    for batch in batches:
        result = metered(stack.meter, measured, lambda: stack.post(f"{RUNS}/{run_id}/log-batch", {"metrics": batch}))
        assert result["metrics"] == BATCH
    measured.elapsed = time.perf_counter() - started
    reader = stack.session.client("dynamodb")
    chunk_items = scan_items(reader, stack.env[settings.METRICS_TABLE], keys.metric_pk(TENANT, run_id, KEY))
    return Series(run_id, measured, chunk_items)


@pytest.fixture(scope="module")
def baseline(stack: Stack, batches: list[list[dict[str, Any]]]) -> tuple[Baseline, Measured]:
    """The same 100 batches as one item per point into a scratch table of the same moto."""
    store = Baseline.create(stack, keys.metric_pk(TENANT, BASELINE_RUN, KEY))
    measured = Measured(points=TOTAL)
    started = time.perf_counter()
    for batch in batches:
        metered(store.meter, measured, lambda: store.log(batch))
    measured.elapsed = time.perf_counter() - started
    return store, measured


# --- 1. ingest --

def test_ingest_baseline_one_item_per_point(baseline: tuple[Baseline, Measured]) -> None:
    """The baseline's own ingest (its 4,000 BatchWriteItem calls take moto ~20 s): figures in the next table."""
    store, b = baseline
    table(
        f"INGEST BASELINE: {TOTAL:,} points as one item per point, {BATCHES} x {BATCH:,} (store only)",
        ["design", "points/s", "p50 / 1k pts", "p99 / 1k pts", "DynamoDB requests per 1k points", "items"],
        [["one item per point", f"{TOTAL / b.elapsed:,.0f}", ms(pct(b.latencies, 50)), ms(pct(b.latencies, 99)),
          ops(b.per_request()), f"{store.item_count():,}"]],
        [MOTO],
    )
    assert store.item_count() == TOTAL


def test_ingest_100k_points_chunked_vs_one_item_per_point(agora: Series, baseline: tuple[Baseline, Measured]) -> None:
    store, b = baseline
    a = agora.ingest
    a_bytes = sum(item_size(i) for i in agora.chunk_items)
    b_bytes = sum(store.sizes)
    a_items, b_items = len(agora.chunk_items), store.item_count()
    a_stored = sum(int(i["n"]["N"]) for i in agora.chunk_items)
    small_writes = sum(n for name, n in a.per_request().items() if name in WRITES - {"BatchWriteItem"}) * BATCHES
    a_wcu = sum(wcu(item_size(i)) for i in agora.chunk_items) + small_writes  # small items: 1 WCU each
    b_wcu = sum(wcu(size) for size in store.sizes)
    a_writes, b_writes = writes(a.per_request()), writes(b.per_request())
    a_billed, b_billed = a_bytes + 100 * a_items, b_bytes + 100 * b_items

    table(
        f"INGEST: {TOTAL:,} points of one metric, {BATCHES} x log-batch of {BATCH:,}",
        ["design", "points/s", "p50 / 1k pts", "p99 / 1k pts", "DynamoDB requests per 1k points",
         "writes / 1k", "WCU / 1k", "items", "B/pt raw", "B/pt billed"],
        [
            ["Agora chunks (HTTP route)", f"{TOTAL / a.elapsed:,.0f}", ms(pct(a.latencies, 50)),
             ms(pct(a.latencies, 99)), ops(a.per_request()), f"{a_writes:g}", f"{a_wcu / BATCHES:,.0f}",
             f"{a_items:,}", f"{a_bytes / TOTAL:.1f}", f"{a_billed / TOTAL:.1f}"],
            ["one item per point (store only)", f"{TOTAL / b.elapsed:,.0f}", ms(pct(b.latencies, 50)),
             ms(pct(b.latencies, 99)), ops(b.per_request()), f"{b_writes:g}", f"{b_wcu / BATCHES:,.0f}",
             f"{b_items:,}", f"{b_bytes / TOTAL:.1f}", f"{b_billed / TOTAL:.1f}"],
            ["MLflow 3.17.2 [measured elsewhere]", "2,535-2,870", "307-327 ms", "539-1,932 ms", "n/a (SQLite)",
             "n/a", "n/a", "n/a", "n/a", "~245 (file)"],
        ],
        [MOTO,
         "'one item per point' times only its 40 BatchWriteItem calls per 1k points (no HTTP, validation or run "
         "lookup); the Agora row is the whole route through Chalice's test client.",
         "B/pt raw = DynamoDB item size (attribute names + values, AWS sizing rules) / points; billed adds "
         "DynamoDB's 100-byte per-item storage overhead. MLflow's ~245 B is its SQLite file incl. indexes.",
         "WCU = write capacity units (1 per started KB of each item written), incl. Agora's latest-value "
         "UpdateItem. Not counted: the authorizer's API-key GetItem (API Gateway caches it when deployed).",
         f"{MLFLOW}: trackers.md section 4 (a); not measured in this run.",
         f"Agora: {a_stored:,} points in {a_items} chunk items of {a_bytes / a_items / 1024:.1f} KB. Baseline/Agora: "
         f"write requests {b_writes / a_writes:.0f}x, WCU {b_wcu / a_wcu:.0f}x, "
         f"bytes billed {b_billed / a_billed:.1f}x."],
    )

    assert a_stored == TOTAL and b_items == TOTAL
    assert b_writes >= 10 * a_writes, "chunked ingest should need at least 10x fewer DynamoDB write requests"
    assert b_wcu >= 10 * a_wcu, "chunked ingest should consume at least 10x fewer write capacity units"
    assert sum(a.per_request().values()) <= 6, "a 1k-point log-batch of one key should stay a handful of requests"
    assert a_billed * 2 <= b_billed, "chunks should store at most half the billed bytes per point of one item per point"


# --- 2. history read --

def avg(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def read_pages(stack: Stack, run_id: str, limit: int) -> tuple[Measured, list[dict]]:
    """Every page of the history through the HTTP route, following next_page_token (within WALK_BUDGET_S)."""
    out = Measured()
    points: list[dict] = []
    token = None
    started = time.perf_counter()
    while time.perf_counter() - started < WALK_BUDGET_S:
        path = f"{RUNS}/{run_id}/metrics/{KEY}?limit={limit}" + (f"&page_token={quote(token)}" if token else "")
        page = metered(stack.meter, out, lambda: stack.get(path))
        points.extend(page["points"])
        token = page["next_page_token"]
        if not token:
            break
    out.elapsed = time.perf_counter() - started
    out.points = len(points)
    return out, points


def read_baseline_pages(store: Baseline, limit: int, pages: Sequence[int]) -> Measured:
    """The given API pages (by number) of the one-item-per-point table."""
    out = Measured()
    for n in pages:
        out.points += metered(store.meter, out, lambda: store.page(n * limit, limit))
    out.elapsed = sum(out.latencies)
    return out


def history_row(label: str, m: Measured, timed: bool = True) -> list[str]:
    n = len(m.calls)
    tenth = max(1, n // 10)
    reqs = [sum(c.values()) for c in m.calls]
    timing = ([f"{n / m.elapsed:,.1f}", f"{m.points / m.elapsed:,.0f}", ms(pct(m.latencies, 50)),
               ms(pct(m.latencies, 99)), f"{ms(m.latencies[0])} / {ms(m.latencies[-1])}",
               f"{ms(avg(m.latencies[:tenth]))} / {ms(avg(m.latencies[-tenth:]))}"]
              if timed else ["(moto)"] * 6)
    return [label, f"{n}", *timing, f"{reqs[0]} / {reqs[-1]}", f"{avg(reqs):.2f}",
            f"{m.read_bytes[0] / 1024:,.0f} / {m.read_bytes[-1] / 1024:,.0f}",
            f"{avg(m.rcu):,.0f}", f"{sum(m.read_bytes) / 2**20:,.1f}"]


HISTORY_HEADER = ["read", "pages", "pages/s", "points/s", "p50 / page", "p99 / page", "first / last page",
                  "avg first / last 10%", "DDB reqs first / last", "DDB reqs / page", "KB read first / last",
                  "RCU / page", "MB read"]
HISTORY_NOTES = [
    MOTO,
    "Agora's DDB reqs include its run lookup (1 Query per page); "
    "KB read = item bytes DynamoDB returned (charged as read "
    "capacity: RCU = 1 per started 4 KB per request, strongly consistent). The authorizer's key lookup is not counted.",
    "'one item per point' rows: store-only Query loops (Limit = page size; DynamoDB cuts pages at 1 MB) with "
    "Select=COUNT; their moto timings are not comparable (moto sorts and walks the whole 100k-item partition "
    "and deep-copies every item it returns, O(partition) per Query, unlike DynamoDB) and are not shown.",
    f"{MLFLOW}: trackers.md section 4 (b2, b3, b3', b4); not measured in this run.",
]


@dataclass
class BaselinePages:
    pages_1000: Measured
    pages_25000: Measured


@pytest.fixture(scope="module")
def baseline_pages(baseline: tuple[Baseline, Measured]) -> BaselinePages:
    """API-sized pages of the one-item-per-point table. moto's Queries cost O(partition) (~2-3 s each on 100k
    items), so only the first and last pages are read: the items are uniform, so every page costs the same."""
    store, _ = baseline
    return BaselinePages(read_baseline_pages(store, 1_000, [0, TOTAL // 1_000 - 1]),
                         read_baseline_pages(store, 25_000, [0, TOTAL // 25_000 - 1]))


@pytest.fixture(scope="module")
def baseline_full(baseline: tuple[Baseline, Measured]) -> Measured:
    """The whole one-item-per-point series in DynamoDB's own 1 MB Query pages."""
    store, _ = baseline
    full = Measured()
    full.points = metered(store.meter, full, store.read_all)
    return full


def test_history_baseline_pages(baseline_pages: BaselinePages) -> None:
    table(
        f"HISTORY READ BASELINE: one item per point, the same {TOTAL:,} points, first and last API page",
        HISTORY_HEADER,
        [history_row("pages of 1,000, first+last", baseline_pages.pages_1000, timed=False),
         history_row("pages of 25,000, first+last", baseline_pages.pages_25000, timed=False)],
        HISTORY_NOTES[1:3],
    )
    assert baseline_pages.pages_1000.points == 2_000 and baseline_pages.pages_25000.points == 50_000
    assert all(sum(c.values()) == 1 for c in baseline_pages.pages_1000.calls), "a 1k-item page (~100 KB) is one Query"


def test_history_baseline_full_read(baseline_full: Measured) -> None:
    table(
        f"HISTORY READ BASELINE: one item per point, all {TOTAL:,} points in 1 MB Query pages",
        HISTORY_HEADER, [history_row("whole series, 1 MB Query pages", baseline_full, timed=False)],
        HISTORY_NOTES[1:3],
    )
    assert baseline_full.points == TOTAL


def test_history_pages_of_1000(stack: Stack, agora: Series, baseline_pages: BaselinePages) -> None:
    m, points = read_pages(stack, agora.run_id, 1_000)
    assert [p["step"] for p in points] == list(range(len(points))), "pages must return every point once, in order"
    complete = len(points) == TOTAL
    walked = (f"walked all {len(m.calls)} pages" if complete else
              f"WALK STOPPED after {len(m.calls)} of {TOTAL // 1_000} pages "
              f"({WALK_BUDGET_S:.0f} s budget, busy machine?): "
              "its figures cover the pages walked; the last 10 pages were read by step window instead")
    series_bytes = sum(item_size(i) for i in agora.chunk_items)
    rows = [history_row("Agora chunks (HTTP)", m)]
    if not complete:  # the walk did not reach the end: read the last 10 pages by step window (same read path)
        tail = Measured()
        for start in range(TOTAL - 10_000, TOTAL, 1_000):
            page = metered(stack.meter, tail, lambda: stack.get(f"{RUNS}/{agora.run_id}/metrics/{KEY}?limit=1000"
                                                                f"&start_step={start}"))
            tail.points += len(page["points"])
        tail.elapsed = sum(tail.latencies)
        rows.append(history_row("Agora, last 10 pages via start_step", tail))
    table(
        f"HISTORY READ, pages of 1,000: the {TOTAL:,}-point series via GET .../metrics/{KEY}?limit=1000 "
        "+ next_page_token",
        HISTORY_HEADER,
        rows + [history_row("one item per point, first+last page", baseline_pages.pages_1000, timed=False),
                ["MLflow 3.17.2 [measured elsewhere]", "100", "-", "4.7k-6.4k", "145-197 ms", "339-437 ms", "-",
                 "93-137 / 216-273 ms", "n/a", "n/a", "n/a", "n/a", "n/a"]],
        HISTORY_NOTES + [
            f"Agora {walked}; read amplification: {sum(m.read_bytes) / 2**20:,.1f} MB read for "
            f"{len(points) / TOTAL * series_bytes / 2**20:,.1f} MB of points returned "
            f"({sum(m.read_bytes) / (len(points) / TOTAL * series_bytes):.0f}x); each page reads every chunk from its "
            "cursor to the end of the series (see bench/README.md)."],
    )
    chunk_bytes = max(item_size(i) for i in agora.chunk_items)
    last_page_read = m.read_bytes[-1] if complete else tail.read_bytes[-1]
    assert last_page_read <= 3 * chunk_bytes + 4096, \
        "a later page must start at its cursor's chunk, not re-read the series from its beginning"
    assert max(sum(c.values()) for c in m.calls) <= 1 + math.ceil(series_bytes / 2**20) + 1, \
        "no page should need more requests than one run lookup plus reading the whole series in 1 MB pages"


def test_history_pages_of_25000_and_downsampled(stack: Stack, agora: Series, baseline_pages: BaselinePages,
                                                baseline_full: Measured) -> None:
    m, points = read_pages(stack, agora.run_id, 25_000)
    assert [p["step"] for p in points] == list(range(TOTAL)), "pages must return every point once, in order"
    table(
        f"HISTORY READ, pages of 25,000: the {TOTAL:,}-point series via GET .../metrics/{KEY}?limit=25000 "
        "+ next_page_token",
        HISTORY_HEADER,
        [history_row("Agora chunks (HTTP)", m),
         history_row("one item per point, first+last page", baseline_pages.pages_25000, timed=False),
         ["MLflow 3.17.2 [measured elsewhere]", "4", "-", "9.9k-10.9k", "2.0-2.6 s", "-", "-", "-",
          "n/a", "n/a", "n/a", "n/a", "n/a"]],
        HISTORY_NOTES,
    )

    down = Measured()
    for _ in range(5):
        result = metered(stack.meter, down, lambda: stack.get(f"{RUNS}/{agora.run_id}/metrics/{KEY}?max_points=2500"))
    kept = result["points"]
    full = baseline_full
    table(
        f"DOWNSAMPLED READ: max_points=2500 of {TOTAL:,} (Agora: 5 repetitions)",
        ["read", "points returned", "p50", "max", "DynamoDB requests", "KB read", "RCU"],
        [["Agora chunks (HTTP; bucket min/max)", f"{len(kept):,}", ms(pct(down.latencies, 50)),
          ms(max(down.latencies)), ops(down.per_request()), f"{avg(down.read_bytes) / 1024:,.0f}",
          f"{avg(down.rcu):,.0f}"],
         ["one item per point: must read all 100k items (1 MB Query pages)", "-", "(moto)", "(moto)",
          ops(full.per_request()), f"{full.read_bytes[0] / 1024:,.0f}", f"{full.rcu[0]:,}"],
         ["MLflow 3.17.2 bulk-interval [measured elsewhere]", "2,500", "852-1,054 ms", "876-1,267 ms",
          "n/a", "n/a", "n/a"]],
        [MOTO, "a downsampled read has to see every point (a bucket's min and max), in either design; "
               "Agora reads ~40 KB chunks, the baseline ~100 B items.",
         f"{MLFLOW}: trackers.md section 4 (b4); not measured in this run."],
    )
    assert 2 <= len(kept) <= 2_500
    assert [p["step"] for p in kept] == sorted(p["step"] for p in kept)
    assert sum(down.per_request().values()) < sum(full.per_request().values()), \
        "a downsampled read of chunks should need fewer requests than reading every point item"
    assert avg(down.rcu) * 2 <= full.rcu[0], "and at most half the read capacity"


# --- 3. retry de-duplication --

def test_retried_log_batch_writes_no_new_chunk_items(stack: Stack) -> None:
    reader = stack.session.client("dynamodb")
    metrics_table = stack.env[settings.METRICS_TABLE]
    rows = []
    for label, with_ts in (("explicit timestamps (MLflow clients send them)", True),
                           ("no timestamps (server stamps each request)", False)):
        run_id = new_run(stack, f"bench-retry-{with_ts}")
        pk = keys.metric_pk(TENANT, run_id, KEY)
        batch = {"metrics": [{k: v for k, v in p.items() if with_ts or k != "timestamp"} for p in series()[:BATCH]]}
        sent = Measured()
        counts, sizes = [], []
        for _ in range(2):
            metered(stack.meter, sent, lambda: stack.post(f"{RUNS}/{run_id}/log-batch", batch))
            items = scan_items(reader, metrics_table, pk)
            counts.append(len(items))
            sizes.append(sum(item_size(i) for i in items))
            time.sleep(0.002)  # a server timestamp of the retry would differ
        history = stack.get(f"{RUNS}/{run_id}/metrics/{KEY}?limit=25000")["points"]
        rows.append([label, counts[0], counts[1] - counts[0], f"{sizes[1] - sizes[0]:,}", ops(sent.calls[0]),
                     ops(sent.calls[1]), len(history)])
        if with_ts:
            assert counts[1] == counts[0], "a retried batch with timestamps must not add chunk items"
            assert sizes[1] == sizes[0]
            assert len(history) == BATCH, "the history shows each point once"
            assert sum(sent.calls[1].values()) <= sum(sent.calls[0].values())
    table(
        f"RETRY: the same log-batch of {BATCH:,} points sent twice",
        ["request", "chunk items after 1st", "new items after 2nd", "new bytes", "DDB requests 1st",
         "DDB requests 2nd", "history points"],
        rows,
        ["the retry rewrites the same content-addressed chunk item (same key, same bytes): it still costs its "
         "BatchWriteItem and WCU, but stores nothing new.",
         "without timestamps the retry is a different set of points (new server timestamp) and is kept "
         "by design (docs/decisions.md, 'Metric storage')."],
    )
