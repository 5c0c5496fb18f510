"""Simulation throughput: the engine alone, and the same day through the local stack (run on demand).

    .venv/bin/python -m bench.sim_throughput                  # 50, 500, 5,000 citizens, one simulated day
    AGORA_BENCH_SIM_QUICK=1 .venv/bin/python -m bench.sim_throughput   # 36 ticks (3 simulated hours)
    AGORA_BENCH_SIM_SIZES=500,5000 AGORA_BENCH_SIM_MODES=stack .venv/bin/python -m bench.sim_throughput
    AGORA_BENCH_SIM_PROFILE=/tmp/stack.prof ...               # cProfile of the advance steps (largest size)

(a) engine: `chalicelib.sim.engine.Simulation.create` and its advance loop (RuleMind), in slices of
    `ticks_per_advance(n)` ticks, nothing stored.
(b) stack: `devstack.server.start()` in this process (a scratch data directory, persistence on, no
    pacing: `AGORA_SIM_STEP_PAUSE_SECONDS=0`); the configs and the launch go through the API over HTTP,
    then the experiment is polled until it has ended. DynamoDB and S3 requests are counted with
    botocore `before-call` hooks on the app's own clients (`wiring.services().dynamodb` / `.s3`): per
    advance step (the `advance_simulation` Lambda), by operation, and the bytes of the write requests
    (DynamoDB: the JSON request body; S3: the object body). Step Functions' own calls are not counted.

Times measure this machine (a shared 2-core VM at the time of writing): compare rows of one run only.
"""
from __future__ import annotations

import collections
import contextlib
import cProfile
import io
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUICK = os.environ.get("AGORA_BENCH_SIM_QUICK", "").strip() not in ("", "0")
TICKS = 36 if QUICK else 288  # ticks of 300 s: 288 is one simulated day
SIZES = [int(s) for s in os.environ.get("AGORA_BENCH_SIM_SIZES", "50,500,5000").split(",") if s.strip()]
MODES = [m.strip() for m in os.environ.get("AGORA_BENCH_SIM_MODES", "engine,stack").split(",") if m.strip()]
PROFILE = os.environ.get("AGORA_BENCH_SIM_PROFILE", "").strip()
KEY = "bench-sim-key"
TIMEOUT_SECONDS = 3_600
WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems", "PutObject",
             "UploadPart", "DeleteObject", "DeleteObjects"}


def workflow() -> list[dict]:
    return [{"type": "run", "days": 1}] if TICKS == 288 else [{"type": "step", "steps": TICKS}]


# ---- (a) the engine alone ------------------------------------------------------------------------
def engine_run(n: int) -> dict[str, Any]:
    from chalicelib.domain.simulation.runtime import ticks_per_advance
    from chalicelib.sim.engine import Simulation
    from chalicelib.sim.spec import SimulationSpec
    from chalicelib.sim.world import load_default_city

    spec = SimulationSpec.model_validate({
        "experiment_id": "bench", "name": "bench", "seed": 1, "llm": [{"provider": "builtin"}],
        "agents": {"citizens": [{"number": n}]}, "map": load_default_city().model_dump(), "workflow": workflow()})
    began = time.perf_counter()
    sim = Simulation.create(spec)
    ticks = steps = 0
    while not sim.done:
        ticks += len(sim.advance(max_ticks=ticks_per_advance(n)).ticks)
        steps += 1
    seconds = time.perf_counter() - began
    return {"n": n, "ticks": ticks, "steps": steps, "seconds": seconds}


# ---- (b) through the local stack ------------------------------------------------------------------
@dataclass
class Counts:
    """Requests and bytes of the app's DynamoDB and S3 clients, split by what the thread was doing."""

    by_phase: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(
        collections.Counter))
    bytes_by_phase: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(
        collections.Counter))
    steps: int = 0
    step_seconds: list[float] = field(default_factory=list)
    profiles: list[cProfile.Profile] = field(default_factory=list)
    seconds: collections.Counter = field(default_factory=collections.Counter)
    profiling: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    local: threading.local = field(default_factory=threading.local)

    def phase(self) -> str:
        return getattr(self.local, "phase", "other")

    def hook(self, model: Any, params: dict, **_: Any) -> None:
        name, size = model.name, 0
        if name in WRITE_OPS:
            body = params.get("body")
            if isinstance(body, (bytes, bytearray, str)):
                size = len(body)
            elif hasattr(body, "seek") and hasattr(body, "tell"):
                here = body.tell()
                body.seek(0, io.SEEK_END)
                size = body.tell() - here
                body.seek(here)
        service = model.service_model.service_name
        with self.lock:
            phase = self.phase()
            self.by_phase[phase][f"{service}:{name}"] += 1
            self.bytes_by_phase[phase][service] += size


TIMED = (  # (module, class, method): where an advance step's time goes, summed over the run
    ("chalicelib.sim.engine", "Simulation", "advance"),
    ("chalicelib.sim.engine", "Simulation", "checkpoint"),
    ("chalicelib.domain.simulation.runtime", "SimulationRuntime", "_restore"),
    ("chalicelib.store.agent_data", "AgentDataStore", "write_step"),
    ("chalicelib.store.dynamo", "Table", "batch_put"),
    ("chalicelib.domain.simulation.tracking", "SimulationTracking", "log"),
    ("chalicelib.store.sim_objects", "SimulationObjects", "save_checkpoint"),
    ("devstack.persistence", "Persistence", "flush"),
)


@contextlib.contextmanager
def timed_methods(totals: collections.Counter) -> Iterator[None]:
    """Seconds spent in each of TIMED (wall time on the calling thread; nested calls count in both)."""
    import importlib

    saved = []
    for module_name, class_name, method in TIMED:
        cls = getattr(importlib.import_module(module_name), class_name)
        original = getattr(cls, method)

        def timed(*args: Any, __original: Any = original, __name: str = f"{class_name}.{method}",
                  **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return __original(*args, **kwargs)
            finally:
                totals[__name] += time.perf_counter() - began

        saved.append((cls, method, original))
        setattr(cls, method, timed)
    try:
        yield
    finally:
        for cls, method, original in saved:
            setattr(cls, method, original)


@contextlib.contextmanager
def counted_phases(counts: Counts) -> Iterator[None]:
    """Mark the work of each Step Functions task (the advance steps above all) on its thread."""
    from chalicelib.domain.simulation.runtime import SimulationRuntime

    originals = {name: getattr(SimulationRuntime, name) for name in ("prepare", "advance", "finalize")}

    def wrap(name: str, original: Any) -> Any:
        def marked(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts.local.phase = name
            began = time.perf_counter()
            profiler = cProfile.Profile() if counts.profiling and name == "advance" else None
            try:
                if profiler is None:
                    return original(self, *args, **kwargs)
                return profiler.runcall(original, self, *args, **kwargs)
            finally:
                counts.local.phase = "other"
                if profiler is not None:
                    with counts.lock:
                        counts.profiles.append(profiler)
                if name == "advance":
                    with counts.lock:
                        counts.steps += 1
                        counts.step_seconds.append(time.perf_counter() - began)

        return marked

    for name, original in originals.items():
        setattr(SimulationRuntime, name, wrap(name, original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(SimulationRuntime, name, original)


def start_stack(data_dir: Path) -> Any:
    os.environ.update({"AGORA_SIM_STEP_PAUSE_SECONDS": "0", "AGORA_LOCAL_TENANTS": f"bench:{KEY}",
                       "AGORA_ADMIN_KEY": "bench-admin", "AGORA_DATA_DIR": str(data_dir)})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # one JSON line per request otherwise
    import http.server
    import logging

    logging.basicConfig(level=logging.WARNING)
    http.server.BaseHTTPRequestHandler.log_message = lambda self, *args: None  # type: ignore[method-assign]
    from devstack.server import start

    return start(api_port=0, moto_port=0, data_dir=data_dir)


def stack_run(stack: Any, n: int, counts: Counts) -> dict[str, Any]:
    import requests

    headers = {"Authorization": f"Bearer {KEY}"}
    api = stack.api_url + "/api"

    def post(path: str, body: dict) -> dict:
        answer = requests.post(f"{api}/{path}", json=body, headers=headers, timeout=120)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["data"]

    refs = {kind: {"tenant_id": "", "id": requests.get(f"{api}/{plural}-configs", headers=headers, timeout=30)
                   .json()["data"][0]["id"]} for kind, plural in (("llm", "llm"), ("map", "map"))}
    agents = post("agent-configs", {"name": f"bench {n}", "config": {"citizens": [{"number": n}]}})
    flow = post("workflow-configs", {"name": f"bench {TICKS} ticks", "config": workflow()})
    refs["agents"] = {"tenant_id": agents["tenant_id"], "id": agents["id"]}
    refs["workflow"] = {"tenant_id": flow["tenant_id"], "id": flow["id"]}
    with counts.lock:
        counts.by_phase.clear()
        counts.bytes_by_phase.clear()
        counts.seconds.clear()
        counts.steps, counts.step_seconds = 0, []
    began = time.perf_counter()
    exp_id = post("run-experiments", {"exp_name": f"bench {n}", **refs})["id"]
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        exp = requests.get(f"{api}/experiments/{exp_id}", headers=headers, timeout=60).json()["data"]
        if exp["status"] in (2, 3, 4):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: simulation of {n} citizens did not end in {TIMEOUT_SECONDS} s")
        time.sleep(0.05 if n <= 500 else 0.25)
    seconds = time.perf_counter() - began
    if exp["status"] != 2:
        raise SystemExit(f"bench: simulation of {n} citizens ended with status {exp['status']}: {exp.get('error')}")
    ticks = len(requests.get(f"{api}/experiments/{exp_id}/timeline", headers=headers, timeout=60).json()["data"])
    with counts.lock:
        advance = dict(counts.by_phase.get("advance", {}))
        advance_bytes = dict(counts.bytes_by_phase.get("advance", {}))
        prepare = dict(counts.by_phase.get("prepare", {}))
        steps, step_seconds = counts.steps, list(counts.step_seconds)
        where = {name: round(value, 2) for name, value in counts.seconds.items()}
    return {"n": n, "ticks": ticks, "seconds": seconds, "steps": steps, "advance": advance,
            "advance_bytes": advance_bytes, "prepare": prepare, "step_seconds": step_seconds,
            "advance_total": round(sum(step_seconds), 2), "where": where}


# ---- the table ----------------------------------------------------------------------------------
def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |", line]
    out += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(out + [line])


def per_step(ops: dict[str, int], steps: int, service: str) -> str:
    total = sum(v for k, v in ops.items() if k.startswith(service + ":"))
    parts = ", ".join(f"{k.split(':', 1)[1]} {v / steps:.1f}" for k, v in sorted(ops.items())
                      if k.startswith(service + ":"))
    return f"{total / steps:.1f} ({parts})" if steps else "-"


def main() -> int:
    load = os.getloadavg()[0]
    print(f"simulation throughput: {TICKS} ticks of 300 s, sizes {SIZES}, modes {MODES}"
          f"{' (quick)' if QUICK else ''}; 1-min load {load:.2f}, {os.cpu_count()} CPUs", flush=True)
    engine: dict[int, dict] = {}
    stack_rows: dict[int, dict] = {}
    if "engine" in MODES:
        for n in SIZES:
            engine[n] = engine_run(n)
            print(f"  engine {n}: {engine[n]['seconds']:.1f} s", flush=True)
    if "stack" in MODES:
        counts = Counts()
        with tempfile.TemporaryDirectory(prefix="agora-bench-sim-") as scratch, counted_phases(counts), \
                timed_methods(counts.seconds):
            began = time.perf_counter()
            stack = start_stack(Path(scratch) / "data")
            print(f"  stack started in {time.perf_counter() - began:.1f} s", flush=True)
            try:
                from chalicelib import wiring

                container = wiring.services()
                for client in (container.dynamodb, container.s3):
                    client.meta.events.register("before-call", counts.hook, unique_id="agora-bench-sim")
                for n in SIZES:
                    counts.profiling = bool(PROFILE) and n == max(SIZES)
                    stack_rows[n] = stack_run(stack, n, counts)
                    if counts.profiling and counts.profiles:
                        import pstats

                        merged = pstats.Stats(counts.profiles[0])
                        for more in counts.profiles[1:]:
                            merged.add(more)
                        merged.dump_stats(PROFILE)
                        print(f"  cProfile of {len(counts.profiles)} advance steps ({n} citizens) in {PROFILE}")
                    print(f"  stack {n}: {stack_rows[n]['seconds']:.1f} s", flush=True)
            finally:
                stack.stop()
    rows = []
    for n in SIZES:
        e, s = engine.get(n), stack_rows.get(n)
        rows.append([
            f"{n:,}", f"{(e or s)['ticks']}",
            f"{e['seconds']:.1f} s" if e else "-", f"{n * e['ticks'] / e['seconds']:,.0f}" if e else "-",
            f"{s['seconds']:.1f} s" if s else "-", f"{n * s['ticks'] / s['seconds']:,.0f}" if s else "-",
            f"{s['seconds'] / e['seconds']:.2f}x" if e and s else "-",
            f"{s['steps']}" if s else "-",
        ])
    print()
    print(table(["citizens", "ticks", "engine", "engine agent-ticks/s", "stack", "stack agent-ticks/s",
                 "stack / engine", "advance steps"], rows))
    if stack_rows:
        detail = []
        for n, s in stack_rows.items():
            steps = max(1, s["steps"])
            step_ms = sorted(s["step_seconds"])
            detail.append([f"{n:,}", per_step(s["advance"], steps, "dynamodb"), per_step(s["advance"], steps, "s3"),
                           f"{s['advance_bytes'].get('dynamodb', 0) / steps / 1024:,.1f}",
                           f"{s['advance_bytes'].get('s3', 0) / steps / 1024:,.1f}",
                           f"{step_ms[len(step_ms) // 2] * 1000:,.0f} ms" if step_ms else "-"])
        print(table(["citizens", "DynamoDB requests / advance step", "S3 requests / advance step",
                     "DynamoDB KB written / step", "S3 KB written / step", "p50 step"], detail))
        for n, s in stack_rows.items():
            ranked = sorted(s["where"].items(), key=lambda kv: -kv[1])
            where = ", ".join(f"{name} {value:.1f}" for name, value in ranked)
            print(f"  {n:,} citizens, seconds: advance steps {s['advance_total']:.1f} of {s['seconds']:.1f}; {where}")
        print("  * counted on the app's own clients (botocore before-call); bytes: DynamoDB write request bodies "
              "(JSON, binary base64), S3 object bodies; prepare, finalize and the API's polling are left out.")
    print(json.dumps({"ticks": TICKS, "engine": engine,
                      "stack": {n: {k: v for k, v in s.items() if k != "step_seconds"} for n, s in stack_rows.items()}},
                     default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
