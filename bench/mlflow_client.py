"""The same training workload through MLflow's own Python client (`mlflow`, pinned) against MLflow's server and
against Agora: what a user's unchanged script sees (run by `make bench` after bench/compare.py).

    .venv/bin/python -m bench.mlflow_client [--runs 20] [--steps 2000]

Each round, for each system: `--runs` runs, each logging 2 params, 2 tags and a metric series of `--steps`
points with `MlflowClient.log_batch` (1,000 a call, as autologging batches), ending the run; then
`search_runs` with a filter and an order over them, and `get_metric_history` of every run. The figures are
wall-clock seconds of the client, medians of the rounds, systems interleaved.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from bench.peers.servers import API_KEY, Server, start_agora, start_mlflow, stop_all


def workload(url: str, token: str | None, runs: int, steps: int) -> dict[str, float]:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    if token:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    else:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    client = MlflowClient(url)
    timings: dict[str, float] = {}
    began = time.perf_counter()
    experiment_id = client.create_experiment(f"bench-{time.time_ns()}")
    run_ids = []
    for n in range(runs):
        run_id = client.create_run(experiment_id, run_name=f"r{n}").info.run_id
        client.log_batch(run_id, params=[Param("lr", str(10 ** -(n % 4))), Param("seed", str(n))],
                         tags=[RunTag("team", "bench"), RunTag("n", str(n))])
        now = int(time.time() * 1000)
        for start in range(0, steps, 1_000):
            client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (s + 1 + n), now, s)
                                              for s in range(start, min(steps, start + 1_000))])
        client.set_terminated(run_id)
        run_ids.append(run_id)
    timings["log runs"] = time.perf_counter() - began
    began = time.perf_counter()
    found = client.search_runs([experiment_id], "params.lr = '0.1' and metrics.loss < 1", order_by=["metrics.loss"])
    assert found and all(r.data.params["lr"] == "0.1" for r in found)
    timings["search runs"] = time.perf_counter() - began
    began = time.perf_counter()
    for run_id in run_ids:
        assert len(client.get_metric_history(run_id, "loss")) == steps
    timings["read histories"] = time.perf_counter() - began
    return timings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mlflow_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    systems: dict[str, tuple[Callable[[Path], Server], str | None]] = {
        "Agora (mlflow client)": (start_agora, API_KEY), "MLflow 3.17.2 (mlflow client)": (start_mlflow, None)}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
    with tempfile.TemporaryDirectory(prefix="agora-bench-client-") as scratch, contextlib.ExitStack() as stack:
        stack.callback(stop_all)
        servers = {name: start(Path(scratch) / name.split()[0].lower()) for name, (start, _) in systems.items()}
        for round_number in range(args.rounds):
            order = list(systems)[round_number % 2:] + list(systems)[:round_number % 2]
            for name in order:
                with contextlib.redirect_stdout(io.StringIO()):  # the client prints a "View run" link per run
                    timings = workload(servers[name].url, systems[name][1], args.runs, args.steps)
                results[name].append(timings)
                print(f"[round {round_number + 1}/{args.rounds}] {name}: "
                      + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()), file=sys.stderr, flush=True)
    operations = list(next(iter(results.values()))[0])
    names = list(systems)
    print(f"\n## Through MLflow's own client: {args.runs} runs x {args.steps:,} points, medians of {args.rounds} "
          "rounds (s, lower is better)\n")
    print("| operation | " + " | ".join(names) + " | Agora vs MLflow |")
    print("| --- | " + " | ".join("---:" for _ in names) + " | ---: |")
    for op in operations:
        medians = [statistics.median(r[op] for r in results[name]) for name in names]
        ratio = medians[1] / medians[0] if medians[0] else float("inf")
        verdict = f"{ratio:.1f}x better" if ratio >= 1 else f"{1 / ratio:.1f}x worse"
        print(f"| {op} | " + " | ".join(f"{m:.2f}" for m in medians) + f" | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

