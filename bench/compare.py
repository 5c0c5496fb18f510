"""`make bench`: Agora side by side with MLflow and FastTrackML, one client interface, one workload.

    python -m bench.compare [--fast] [--systems agora,mlflow,fasttrackml] [--rounds N] [--out PATH]

Starts Agora's local stack, an MLflow server and a FastTrackML server (each in a temporary directory, on a free
loopback port, in its own process group), runs every operation of `bench.peers.workload.OPS` against each of them,
rounds interleaved, then stops them (also on Ctrl-C or failure). Then Agora's DynamoDB/S3 work per operation,
measured in-process, and the cold start of `import app`. Prints the tables as Markdown on stdout (progress goes to
stderr) and writes everything to bench/results/latest.json. See bench/README.md.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from bench.peers import coldstart, meter, report
from bench.peers.servers import ROOT, STARTERS, Server, ServerError, stop_all, wait_idle
from bench.peers.systems import DEFAULT_SYSTEMS, SYSTEMS
from bench.peers.workload import OPS, Context, Sample, Settings

if TYPE_CHECKING:
    from bench.peers.clients import TrackingClient

def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _stop_all() -> None:
    """Stop every server; a second Ctrl-C while they stop must not leave one behind."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop_all(progress)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gb": mem_gb, "platform": platform.platform(),
            "python": platform.python_version(), "load_before": list(os.getloadavg())}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", default=os.environ.get("FAST", "") not in ("", "0"),
                        help="one round, no 1M-point rows, fewer repetitions (also FAST=1)")
    parser.add_argument("--systems", default=os.environ.get("SYSTEMS", "") or ",".join(DEFAULT_SYSTEMS),
                        help=f"comma-separated, first is the reference of the ratios; of {', '.join(SYSTEMS)}")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one round: checks the harness and every server (its figures mean nothing)")
    parser.add_argument("--rounds", type=int, help="rounds of every operation (default 3, FAST: 1)")
    parser.add_argument("--rounds-1m", type=int, default=1, help="rounds that run the 1M-point rows (default 1)")
    parser.add_argument("--mlflow-workers", type=int, default=1, help="uvicorn workers of the MLflow server")
    parser.add_argument("--no-meter", action="store_true", help="skip Agora's in-process DynamoDB/S3 counts")
    parser.add_argument("--meter-1m", action="store_true", help="count the 1M-point rows in-process too")
    parser.add_argument("--no-coldstart", action="store_true", help="skip the `import app` cold start")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"), help="JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the servers' temporary directories (logs, data)")
    return parser.parse_args(argv)


def settings_for(args: argparse.Namespace) -> Settings:
    if args.smoke:
        return Settings(rounds=args.rounds or 1, rounds_1m=1, series_points=5_000, big_points=12_000, run_creates=5,
                        listed_runs=120, list_walks=1, compare_reps=2, downsample_reps=2, writer_batches=2,
                        wide_reps=2)
    if args.fast:
        return Settings(rounds=args.rounds or 1, rounds_1m=0, run_creates=50, list_walks=2, compare_reps=5,
                        downsample_reps=10, wide_reps=5)
    return Settings(rounds=args.rounds or 3, rounds_1m=max(0, args.rounds_1m))


def warm_up(ctx: Context) -> None:
    """Untimed: the first requests of a fresh server (imports, caches, connection set-up)."""
    for i in range(3):
        run = ctx.client.create_run(ctx.scratch())
        ctx.client.log_batch(run, [{"key": "warm", "value": 1.0, "step": s, "timestamp": 1_767_225_600_000 + s}
                                   for s in range(100 * i, 100 * i + 100)])
        ctx.client.history(run, "warm")
        ctx.client.list_runs(ctx.scratch(), 10)


def run_rounds(cfg: Settings, names: list[str], servers: dict[str, Server], contexts: dict[str, Context],
               records: list[dict[str, Any]]) -> None:
    all_servers = list(servers.values())
    for rnd in range(cfg.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for op in OPS:
            if op.big and rnd >= cfg.rounds_1m:
                continue
            for name in order:
                ctx = contexts[name]
                ctx.round = rnd
                server = servers[SYSTEMS[name].server]
                record: dict[str, Any] = {"op": op.id, "system": name, "round": rnd, "unit": op.unit}
                if not server.alive():
                    record["error"] = f"{server.label} is not running (exit code {server.proc.returncode})"
                    records.append(record)
                    continue
                sample: Optional[Sample] = None
                try:
                    t0 = time.perf_counter()
                    prepared = op.prepare(ctx)
                    record["prepare_s"] = round(time.perf_counter() - t0, 2)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    record["error"] = f"prepare: {type(exc).__name__}: {str(exc)[:400]}"
                    records.append(record)
                    progress(f"[round {rnd + 1}/{cfg.rounds}] {op.id:<16} {name:<12} ERROR {record['error']}")
                    continue
                record["settle_s"] = round(wait_idle(all_servers), 2)
                record["load1"] = round(os.getloadavg()[0], 2)
                cpu0, client_cpu0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
                try:
                    sample = op.run(ctx, prepared)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    record["error"] = f"{type(exc).__name__}: {str(exc)[:400]}"
                    if not server.alive():
                        record["error"] += f"\n{server.label} died; its log ends:\n{server.log_tail(20)}"
                record["wall_s"] = round(time.perf_counter() - t0, 3)
                record["server_cpu_s"] = round(server.cpu_seconds() - cpu0, 2)
                record["client_cpu_s"] = round(time.process_time() - client_cpu0, 2)
                if sample is not None:
                    record.update(value=sample.value, capped=sample.capped, unsupported=sample.unsupported,
                                  detail=sample.detail)
                records.append(record)
                if sample is not None and sample.value is not None:
                    shown = f"{report.number(sample.value, op.unit)} {op.unit}" + (" (capped)" if sample.capped else "")
                elif sample is not None and sample.unsupported:
                    shown = f"(none): {sample.unsupported}"
                else:
                    shown = f"ERROR {record.get('error', '')}"
                progress(f"[round {rnd + 1}/{cfg.rounds}] {op.id:<16} {name:<12} {shown}  "
                         f"(wall {record['wall_s']:.1f} s, server CPU {record['server_cpu_s']:.1f} s, "
                         f"load {record['load1']:.1f})")


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.systems.split(",") if n.strip()]
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown or not names or len(set(names)) != len(names):
        print(f"--systems: give distinct names of {', '.join(SYSTEMS)}; got {args.systems!r}", file=sys.stderr)
        return 2
    cfg = settings_for(args)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    atexit.register(_stop_all)

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    began = time.perf_counter()
    results: dict[str, Any] = {"started": started, "fast": args.fast, "systems": names, "machine": machine(),
                               "settings": cfg.__dict__ | {"compare_keys": list(cfg.compare_keys),
                                                           "mlflow_workers": args.mlflow_workers},
                               "versions": {}, "servers": {}, "notes": []}
    workdir = Path(tempfile.mkdtemp(prefix="agora-bench-"))
    servers: dict[str, Server] = {}
    records: list[dict[str, Any]] = []
    clients: list[TrackingClient] = []
    failed = False
    try:
        for kind in dict.fromkeys(SYSTEMS[n].server for n in names):
            progress(f"starting {kind} in {workdir / kind}")
            kwargs = {"workers": args.mlflow_workers} if kind == "mlflow" else {}
            server = STARTERS[kind](workdir / kind, **kwargs)
            servers[kind] = server
            progress(f"{server.label} {server.version} ready at {server.url} in {server.startup_s:.1f} s")
        titles = {}
        for n in names:
            srv = servers[SYSTEMS[n].server]
            version = srv.version if n != "agora-mlflow" else ""
            titles[n] = f"{SYSTEMS[n].title} {version}".strip() if n != "agora" else SYSTEMS[n].title
        results["titles"] = titles
        results["versions"] = {kind: servers[kind].version for kind in ("agora", "mlflow", "fasttrackml")
                               if kind in servers}
        contexts: dict[str, Context] = {}
        for n in names:
            system, srv = SYSTEMS[n], servers[SYSTEMS[n].server]

            def new_client(system: Any = system, srv: Server = srv) -> TrackingClient:
                client = system.make_client(srv)
                clients.append(client)
                return client

            contexts[n] = Context(n, new_client(), new_client, cfg)
            progress(f"warming up {n}")
            warm_up(contexts[n])
        run_rounds(cfg, names, servers, contexts, records)
        for kind, srv in servers.items():
            results["servers"][kind] = {"url": srv.url, "startup_s": round(srv.startup_s, 2),
                                        "rss_mb_end": round(srv.rss_mb(), 1), "cpu_s_end": round(srv.cpu_seconds(), 1),
                                        "processes": srv.processes(), "notes": srv.notes}
    except ServerError as exc:
        progress(f"ERROR: {exc}")
        failed = True
    except KeyboardInterrupt:
        progress("interrupted: stopping the servers")
        _stop_all()
        return 130
    except Exception:  # noqa: BLE001 - the servers are stopped below, then the failure is reported
        progress("ERROR:\n" + traceback.format_exc())
        failed = True
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
        _stop_all()
        if args.keep:
            progress(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        return 1

    try:
        if "agora" in names and not args.no_meter:
            progress("Agora in-process: DynamoDB and S3 work per operation")
            results["agora_storage"] = meter.measure(cfg, args.meter_1m, progress)
        if not args.no_coldstart:
            progress("cold start: import app vs import boto3")
            results["cold_start"] = coldstart.measure()
    except KeyboardInterrupt:
        return 130

    results["versions"].update({"python": platform.python_version(), "moto": _version("moto"),
                                "boto3": _version("boto3"), "chalice": _version("chalice"),
                                "requests": _version("requests")})
    results["machine"]["load_after"] = list(os.getloadavg())
    results["duration_s"] = round(time.perf_counter() - began, 1)
    results["rows"] = {}
    for op in OPS:
        per = {n: report.summarise([r for r in records if r["op"] == op.id and r["system"] == n]) for n in names}
        if any(p["n"] or p["errors"] or p["unsupported"] for p in per.values()):
            results["rows"][op.id] = {
                "label": op.label, "unit": op.unit, "better": op.better, "systems": per,
                f"{names[0]}_vs": {n: report.ratio(per[names[0]], per[n], op.better) for n in names[1:]}}
    errors = [r for r in records if r.get("error")]
    for r in errors[:10]:
        results["notes"].append(f"{r['system']} {r['op']} round {r['round'] + 1} failed: "
                                f"{r['error'].splitlines()[0][:200]}")
    unsupported = {(r["system"], r["unsupported"]) for r in records if r.get("unsupported")}
    for system, why in sorted(unsupported):
        results["notes"].append(f"(none): {results['titles'][system]} — {why}")
    if any(r.get("capped") for r in records):
        results["notes"].append(f"(capped): the ingest stopped after {cfg.op_budget_s:.0f} s; the rate is of what "
                                "it sent, the history read covers those points")
    results["samples"] = records
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(report.render(results))
    progress(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
