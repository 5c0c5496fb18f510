"""The workload: every operation (a row of the table), written once against `clients.TrackingClient`.

Each operation takes a `Context` (one system's client and the data earlier operations left for it) and returns a
`Sample` (the row's figure in the row's unit plus details). Operations that need fresh data make it themselves
(a new run per ingest, a new experiment per run-creation round); the listing and comparison data are made once
per system, untimed, and only read afterwards.
"""
from __future__ import annotations

import math
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from bench.peers.clients import Metric, TrackingClient, Unsupported

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms: explicit timestamps, as MLflow clients send them
BATCH = 1_000  # MLflow's limit of entities per log-batch
SERIES_KEY = "loss"


class BenchError(RuntimeError):
    """The system answered, but not what the operation needs (e.g. a history with points missing)."""


@dataclass
class Settings:
    rounds: int = 3
    rounds_1m: int = 1  # rounds that also run the 1M-point rows (0: skip them)
    series_points: int = 100_000
    big_points: int = 1_000_000
    run_creates: int = 100
    listed_runs: int = 1_000
    list_page: int = 100
    list_walks: int = 3
    compare_runs: int = 10
    compare_keys: tuple[str, ...] = ("acc", SERIES_KEY)
    compare_steps: int = 100
    compare_reps: int = 10
    downsample_to: int = 1_000
    downsample_reps: int = 20
    writers: int = 8
    writer_batches: int = 12
    writers_concurrent: bool = True
    wide_reps: int = 10
    setup_threads: int = 4
    op_budget_s: float = 900.0  # an ingest stops (and says "capped") after this long


@dataclass
class Sample:
    value: Optional[float] = None
    detail: dict[str, Any] = field(default_factory=dict)
    unsupported: Optional[str] = None
    capped: bool = False


@dataclass
class Context:
    system: str
    client: TrackingClient
    new_client: Callable[[], TrackingClient]  # another client with its own session (concurrent writers, setup)
    cfg: Settings
    tag: str = field(default_factory=lambda: f"{time.time_ns():x}")
    experiment: str = ""  # scratch experiment for fresh runs
    round: int = 0
    state: dict[str, Any] = field(default_factory=dict)

    def scratch(self) -> str:
        if not self.experiment:
            self.experiment = self.client.create_experiment(f"bench-{self.system}-{self.tag}")
        return self.experiment


def series(key: str, start: int, count: int, salt: int = 0) -> list[Metric]:
    """`count` points of a noisy decaying curve from step `start`: full-precision doubles, explicit timestamps."""
    rng = random.Random(start * 7_919 + salt)
    return [{"key": key, "value": 2.5 * math.exp(-s / 30_000) + 0.05 * rng.random(), "step": s,
             "timestamp": T0 + 37 * s} for s in range(start, start + count)]


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --- operations: prepare (untimed, not counted) then run -----------------------------------------------------

def new_run(ctx: Context) -> str:
    return ctx.client.create_run(ctx.scratch())


def nothing(ctx: Context) -> None:
    return None


def ingest(ctx: Context, run: str, points: int, slot: str) -> Sample:
    """`points` points of one key into a new run, log-batches of 1,000 -> points/s."""
    client = ctx.client
    ctx.state.pop(slot, None)
    latencies: list[float] = []
    sent = 0
    capped = False
    began = time.perf_counter()
    for start in range(0, points, BATCH):
        if time.perf_counter() - began > ctx.cfg.op_budget_s:
            capped = True
            break
        batch = series(SERIES_KEY, start, min(BATCH, points - start))
        t = time.perf_counter()
        client.log_batch(run, batch)
        latencies.append(time.perf_counter() - t)
        sent += len(batch)
        ctx.state[slot] = (run, sent)
    wall = time.perf_counter() - began
    return Sample(sent / wall, {"points": sent, "requests": len(latencies), "wall_s": round(wall, 3),
                                "batch_p50_ms": _ms(pct(latencies, 50)), "batch_p95_ms": _ms(pct(latencies, 95)),
                                "units": 1}, capped=capped)


def _series_of(ctx: Context, slot: str) -> tuple[str, int]:
    if slot not in ctx.state:
        raise BenchError("no series to read: its ingest failed")
    run, points = ctx.state[slot]
    return str(run), int(points)


def history(ctx: Context, slot: str) -> Sample:
    """The whole series, following every page -> seconds."""
    run, expected = _series_of(ctx, slot)
    received = ctx.client.transport.bytes_received
    t = time.perf_counter()
    found = ctx.client.history(run, SERIES_KEY)
    wall = time.perf_counter() - t
    if found.points != expected or found.first_step != 0 or found.last_step != expected - 1:
        raise BenchError(f"history returned {found.points} points (steps {found.first_step}..{found.last_step}), "
                         f"expected {expected} (steps 0..{expected - 1})")
    return Sample(wall, {"points": found.points, "pages": found.pages,
                         "mb_received": round((ctx.client.transport.bytes_received - received) / 1e6, 2),
                         "units": 1})


def downsampled(ctx: Context, slot: str) -> Sample:
    """The series reduced to 1,000 points, repeated -> p95 ms."""
    run, _ = _series_of(ctx, slot)
    latencies: list[float] = []
    returned = 0
    for _ in range(ctx.cfg.downsample_reps):
        t = time.perf_counter()
        try:
            returned = ctx.client.downsampled(run, SERIES_KEY, ctx.cfg.downsample_to)
        except Unsupported as exc:
            return Sample(unsupported=str(exc))
        latencies.append(time.perf_counter() - t)
    return Sample(_ms(pct(latencies, 95)), {"p50_ms": _ms(pct(latencies, 50)), "points_returned": returned,
                                             "requests": len(latencies), "units": len(latencies)})


def new_experiment(ctx: Context) -> str:
    return ctx.client.create_experiment(f"bench-{ctx.system}-{ctx.tag}-runs-{ctx.round}")


def create_runs(ctx: Context, experiment: str) -> Sample:
    """A run and one log-batch with 1 param, 1 tag, 1 metric (2 requests), in a new experiment -> runs/s."""
    client = ctx.client
    latencies: list[float] = []
    began = time.perf_counter()
    for i in range(ctx.cfg.run_creates):
        t = time.perf_counter()
        run = client.create_run(experiment)
        client.log_batch(run, metrics=[{"key": "acc", "value": 0.5 + i / 1e4, "step": 0, "timestamp": T0 + i}],
                         params=[{"key": "lr", "value": str(0.001 * (i + 1))}],
                         tags=[{"key": "group", "value": f"g{i % 10}"}])
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - began
    return Sample(len(latencies) / wall, {"runs": len(latencies), "wall_s": round(wall, 3),
                                          "per_run_p50_ms": _ms(pct(latencies, 50)), "units": len(latencies)})


def _make_runs(ctx: Context, experiment: str, count: int, fill: Optional[Callable[[TrackingClient, str, int], None]],
               ) -> list[str]:
    """`count` runs in `experiment` with `setup_threads` clients (untimed set-up data)."""
    made: list[Optional[str]] = [None] * count
    errors: list[BaseException] = []

    def work(part: int) -> None:
        client = ctx.new_client() if ctx.cfg.setup_threads > 1 else ctx.client
        try:
            for i in range(part, count, ctx.cfg.setup_threads):
                run = client.create_run(experiment)
                if fill is not None:
                    fill(client, run, i)
                made[i] = run
        except Exception as exc:  # noqa: BLE001 - reported below, with the others
            errors.append(exc)
        finally:
            if client is not ctx.client:
                client.close()

    threads = [threading.Thread(target=work, args=(p,), daemon=True) for p in range(ctx.cfg.setup_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"set-up failed: {errors[0]}")
    return [r for r in made if r is not None]


def listing_experiment(ctx: Context) -> str:
    """An experiment of `listed_runs` runs, made once per system."""
    if "list_experiment" not in ctx.state:
        experiment = ctx.client.create_experiment(f"bench-{ctx.system}-{ctx.tag}-list")
        t = time.perf_counter()
        _make_runs(ctx, experiment, ctx.cfg.listed_runs, None)
        ctx.state["list_experiment"] = experiment
        ctx.state["list_setup_s"] = round(time.perf_counter() - t, 1)
    return str(ctx.state["list_experiment"])


def list_runs(ctx: Context, experiment: str) -> Sample:
    """Every run of the experiment of 1,000, pages of 100, walked `list_walks` times -> ms per page."""
    cfg = ctx.cfg
    pages = math.ceil(cfg.listed_runs / cfg.list_page)
    walks: list[float] = []
    requests_made = 0
    for _ in range(cfg.list_walks):
        t = time.perf_counter()
        found = ctx.client.list_runs(experiment, cfg.list_page)
        walks.append(time.perf_counter() - t)
        requests_made = found.requests
        if found.runs != cfg.listed_runs:
            raise BenchError(f"listed {found.runs} runs, expected {cfg.listed_runs}")
    walk = statistics.median(walks)
    return Sample(_ms(walk / pages), {"walk_s": [round(w, 3) for w in walks], "requests_per_walk": requests_made,
                                      "pages_needed": pages, "setup_s": ctx.state.get("list_setup_s"),
                                      "units": len(walks)})


def compared_runs(ctx: Context) -> list[str]:
    """10 runs with 2 keys of 100 steps each and 1 param, made once per system."""
    cfg = ctx.cfg
    if "compare_runs" not in ctx.state:
        experiment = ctx.client.create_experiment(f"bench-{ctx.system}-{ctx.tag}-compare")

        def fill(client: TrackingClient, run: str, i: int) -> None:
            metrics = [m for key in cfg.compare_keys for m in series(key, 0, cfg.compare_steps, salt=i)]
            client.log_batch(run, metrics=metrics, params=[{"key": "lr", "value": str(0.01 * (i + 1))}])

        ctx.state["compare_runs"] = _make_runs(ctx, experiment, cfg.compare_runs, fill)
    return list(ctx.state["compare_runs"])


def compare(ctx: Context, runs: list[str]) -> Sample:
    """The runs compared on both keys, repeated -> p50 ms."""
    latencies: list[float] = []
    requests_before = ctx.client.transport.requests
    for _ in range(ctx.cfg.compare_reps):
        t = time.perf_counter()
        compared = ctx.client.compare(runs, ctx.cfg.compare_keys)
        latencies.append(time.perf_counter() - t)
        if compared != len(runs):
            raise BenchError(f"compared {compared} runs, expected {len(runs)}")
    return Sample(_ms(pct(latencies, 50)), {
        "p95_ms": _ms(pct(latencies, 95)), "units": len(latencies),
        "requests_per_compare": (ctx.client.transport.requests - requests_before) // len(latencies)})


def writer_runs(ctx: Context) -> tuple[list[str], list[TrackingClient]]:
    """A run and a client (its own session) per writer."""
    return ([ctx.client.create_run(ctx.scratch()) for _ in range(ctx.cfg.writers)],
            [ctx.new_client() for _ in range(ctx.cfg.writers)])


def writers(ctx: Context, prepared: tuple[list[str], list[TrackingClient]]) -> Sample:
    """`writers` threads, each with its own client and run, log-batches of 1,000 -> total points/s."""
    cfg = ctx.cfg
    runs, clients = prepared
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    written = [0]
    start = threading.Barrier(cfg.writers + 1) if cfg.writers_concurrent else None

    def write(w: int) -> None:
        if start is not None:
            start.wait()
        for b in range(cfg.writer_batches):
            batch = series(SERIES_KEY, b * BATCH, BATCH, salt=w)
            t = time.perf_counter()
            try:
                clients[w].log_batch(runs[w], batch)
            except Exception as exc:  # noqa: BLE001 - counted; the others go on
                with lock:
                    errors.append(str(exc)[:200])
                continue
            with lock:
                latencies.append(time.perf_counter() - t)
                written[0] += len(batch)

    try:
        if start is None:  # in-process metering: one writer after the other
            began = time.perf_counter()
            for w in range(cfg.writers):
                write(w)
        else:
            threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(cfg.writers)]
            for thread in threads:
                thread.start()
            start.wait()
            began = time.perf_counter()
            for thread in threads:
                thread.join()
        wall = time.perf_counter() - began
    finally:
        for client in clients:
            client.close()
    if not written[0]:
        raise BenchError(f"every batch failed: {errors[:1]}")
    return Sample(written[0] / wall, {"points": written[0], "wall_s": round(wall, 3), "errors": len(errors),
                                      "error_samples": sorted(set(errors))[:3],
                                      "batch_p50_ms": _ms(pct(latencies, 50)),
                                      "batch_p95_ms": _ms(pct(latencies, 95)), "units": 1})


def wide_batch(ctx: Context, run: str, keys: int) -> Sample:
    """log-batches of 1,000 points spread over `keys` keys (1,000 / keys steps each) into a new run -> p50 ms."""
    per_key = BATCH // keys
    latencies: list[float] = []
    rng = random.Random(keys)
    for rep in range(ctx.cfg.wide_reps):
        metrics = [{"key": f"k{k:04d}", "value": rng.random(), "step": rep * per_key + s,
                    "timestamp": T0 + rep * per_key + s} for k in range(keys) for s in range(per_key)]
        t = time.perf_counter()
        ctx.client.log_batch(run, metrics)
        latencies.append(time.perf_counter() - t)
    return Sample(_ms(pct(latencies, 50)), {"p95_ms": _ms(pct(latencies, 95)), "units": len(latencies)})


@dataclass(frozen=True)
class Op:
    id: str
    label: str
    unit: str
    better: str  # "higher" | "lower"
    prepare: Callable[[Context], Any]  # untimed, not counted: fresh runs, set-up data
    run: Callable[[Context, Any], Sample]
    per: str  # what one unit of the in-process counts is (bench.peers.meter); formatted with cfg=Settings
    big: bool = False  # a 1M-point row: only in the first `rounds_1m` rounds, never with FAST=1


OPS: tuple[Op, ...] = (
    Op("ingest_100k", "ingest 100k points, log-batches of 1,000", "points/s", "higher", new_run,
       lambda c, run: ingest(c, run, c.cfg.series_points, "series"), "{cfg.series_points:,} points"),
    Op("history_100k", "full history read, 100k points", "s", "lower", nothing,
       lambda c, _: history(c, "series"), "full read (all pages)"),
    Op("downsample_100k", "downsampled read, 100k -> 1,000 points (p95)", "ms", "lower", nothing,
       lambda c, _: downsampled(c, "series"), "request"),
    Op("ingest_1m", "ingest 1M points, log-batches of 1,000", "points/s", "higher", new_run,
       lambda c, run: ingest(c, run, c.cfg.big_points, "big"), "{cfg.big_points:,} points", big=True),
    Op("history_1m", "full history read, 1M points", "s", "lower", nothing,
       lambda c, _: history(c, "big"), "full read (all pages)", big=True),
    Op("create_run", "create a run + log 1 param, 1 tag, 1 metric", "runs/s", "higher", new_experiment,
       create_runs, "run (2 requests)"),
    Op("list_runs", "list 1,000 runs in pages of 100", "ms/page", "lower", listing_experiment, list_runs,
       "walk of {cfg.listed_runs:,} runs"),
    Op("compare", "compare 10 runs on 2 metrics (p50)", "ms", "lower", compared_runs, compare, "comparison"),
    Op("writers_8", "8 concurrent writers, log-batches of 1,000", "points/s", "higher", writer_runs, writers,
       "{cfg.writers} x {cfg.writer_batches} log-batches of 1,000"),
    Op("wide_100", "one log-batch of 1,000 points over 100 keys (p50)", "ms", "lower", new_run,
       lambda c, run: wide_batch(c, run, 100), "log-batch"),
    Op("wide_1000", "one log-batch of 1,000 points over 1,000 keys (p50)", "ms", "lower", new_run,
       lambda c, run: wide_batch(c, run, 1_000), "log-batch"),
)
