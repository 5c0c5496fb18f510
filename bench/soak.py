"""The local stack's promise under a real workload (`make soak`): 1,000,000 points in one series and
3,000 runs, written over HTTP against `python -m devstack` as it ships, stopped half way and started
again on the same data. Prints the stack's resident memory as it goes and fails if it passes the
limit, if anything acknowledged is missing after the restart, or if the series is not whole.

    make soak                                  # 1,000,000 points, 3,000 runs, 2 GB
    SOAK_POINTS=200000 SOAK_RUNS=600 make soak # a shorter round
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Optional

import requests

ROOT = Path(__file__).resolve().parent.parent
KEY = "soak-key"
H = {"Authorization": f"Bearer {KEY}"}
BATCH = 1_000
WRITERS = 4


class Stack:
    """`python -m devstack` in a subprocess, on a given data directory."""

    def __init__(self, data_dir: Path) -> None:
        env = {**os.environ, "PORT": "0", "MOTO_PORT": "0", "PYTHONUNBUFFERED": "1", "AGORA_DATA_DIR": str(data_dir),
               "AGORA_LOCAL_TENANTS": f"soak:{KEY}", "AGORA_ADMIN_KEY": "soak-admin"}
        env.pop("AWS_ENDPOINT_URL", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "devstack"], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                if not line.startswith("{"):
                    self.lines.append(line)
                if line.startswith("Ctrl-C stops"):
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        ready.wait(120)
        found = re.search(r"^\s*API\s+(http://\S+)", "".join(self.lines), re.MULTILINE)
        if not found:
            raise SystemExit("soak: the local stack did not start:\n" + "".join(self.lines))
        self.url = found.group(1)

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)


def batches(points: int, start: int = 0) -> Iterator[list[dict[str, Any]]]:
    for first in range(start, points, BATCH):
        yield [{"key": "loss", "value": 1.0 / (s + 1), "step": s, "timestamp": 1_700_000_000_000 + s}
               for s in range(first, min(points, first + BATCH))]


class Soak:
    def __init__(self, points: int, runs: int, limit_mb: float) -> None:
        self.points, self.runs, self.limit_mb = points, runs, limit_mb
        self.peak_mb = 0.0
        self.created: list[str] = []
        self.series_run: Optional[str] = None

    def watch(self, stack: Stack, label: str) -> None:
        rss = stack.rss_mb()
        self.peak_mb = max(self.peak_mb, rss)
        print(f"  {label:<42} RSS {rss:7.0f} MB", flush=True)
        if rss > self.limit_mb:
            raise SystemExit(f"soak: the stack holds {rss:.0f} MB, over the {self.limit_mb:.0f} MB limit")

    def write(self, stack: Stack, part: int, parts: int) -> None:
        api = stack.url
        if self.series_run is None:
            exp = requests.post(f"{api}/api/v1/experiments", json={"name": "the long series"}, headers=H,
                                timeout=30).json()
            self.series_run = requests.post(f"{api}/api/v1/experiments/runs", json={"experiment_id": exp["id"]},
                                            headers=H, timeout=30).json()["id"]
        share = self.points // parts
        todo = list(batches(share * (part + 1), share * part))
        with ThreadPoolExecutor(WRITERS) as pool:
            for n, answer in enumerate(pool.map(lambda b: requests.post(
                    f"{api}/api/v1/experiments/runs/{self.series_run}/log-batch", json={"metrics": b}, headers=H,
                    timeout=120), todo)):
                answer.raise_for_status()
                if n % 100 == 99:
                    self.watch(stack, f"series: {share * part + (n + 1) * BATCH:,} points")
        runs_share = self.runs // parts
        experiments = [requests.post(f"{api}/api/v1/experiments", json={"name": f"part {part} group {g}"},
                                     headers=H, timeout=30).json()["id"] for g in range(max(1, runs_share // 100))]

        def one_run(n: int) -> str:
            run = requests.post(f"{api}/api/v1/experiments/runs", headers=H, timeout=60, json={
                "experiment_id": experiments[n % len(experiments)], "tags": {"n": str(n)}}).json()["id"]
            requests.post(f"{api}/api/v1/experiments/runs/{run}/log-batch", headers=H, timeout=60, json={
                "metrics": [{"key": f"m{k}", "value": float(k), "step": 0, "timestamp": 1} for k in range(10)],
                "params": [{"key": "lr", "value": str(n)}]}).raise_for_status()
            return run

        with ThreadPoolExecutor(WRITERS) as pool:
            for n, run in enumerate(pool.map(one_run, range(runs_share))):
                self.created.append(run)
                if n % 500 == 499:
                    self.watch(stack, f"runs: {len(self.created):,}")

    def check(self, stack: Stack) -> None:
        api = stack.url
        for run in self.created[:: max(1, len(self.created) // 200)]:
            answer = requests.get(f"{api}/api/v1/experiments/runs/{run}", headers=H, timeout=30)
            if answer.status_code != 200 or len(answer.json()["metrics"]) != 10:
                raise SystemExit(f"soak: run {run} is not whole after the restart: {answer.text[:200]}")
        seen, token = 0, None
        while True:
            page = requests.get(f"{api}/api/v1/experiments/runs/{self.series_run}/metrics/loss", headers=H,
                                params={"limit": 25_000, **({"page_token": token} if token else {})},
                                timeout=120).json()
            steps = [p["step"] for p in page["points"]]
            if steps != list(range(seen, seen + len(steps))):
                raise SystemExit(f"soak: the series has a gap or a repeat after step {seen}")
            seen += len(steps)
            token = page.get("next_page_token")
            if not token:
                break
        if seen != self.points:
            raise SystemExit(f"soak: the series holds {seen:,} points, not {self.points:,}")
        self.watch(stack, f"read back {seen:,} points, {len(self.created):,} runs")


def main() -> int:
    points = int(os.environ.get("SOAK_POINTS", 1_000_000))
    runs = int(os.environ.get("SOAK_RUNS", 3_000))
    limit_mb = float(os.environ.get("SOAK_LIMIT_MB", 2048))
    soak = Soak(points, runs, limit_mb)
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        print(f"soak: {points:,} points in one series and {runs:,} runs, a restart half way, limit {limit_mb:.0f} MB")
        stack = Stack(data)
        soak.watch(stack, "started")
        soak.write(stack, 0, 2)
        stack.stop()
        print(f"  stopped after {time.monotonic() - began:.0f} s; starting again on the same data", flush=True)
        stack = Stack(data)
        soak.watch(stack, "restarted: " + next((line.split("(")[1].split(";")[0] for line in stack.lines
                                               if line.strip().startswith("data")), ""))
        soak.write(stack, 1, 2)
        soak.check(stack)
        size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
        stack.stop()
    print(f"soak: passed in {time.monotonic() - began:.0f} s; peak RSS {soak.peak_mb:.0f} MB "
          f"(limit {limit_mb:.0f} MB); data directory {size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
