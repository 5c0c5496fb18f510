"""Cold start: `python -c "import app"` (what a Lambda container does first) against `import boto3`.

Fresh interpreters (this venv's python, cwd = the checkout, the dev stage's environment variables), interleaved,
one warm-up each that is not counted; wall time and peak RSS per run, medians reported. The peak RSS is the
child's own VmHWM (/proc/self/status, read at its end): ru_maxrss would carry the harness's size over the exec.
Byte-code caches (__pycache__) are warm after the warm-up, as they are in a package that ships them.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.peers.servers import ROOT

PROGRAMS = {"python": "pass", "boto3": "import boto3", "app": "import app"}


def _env() -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "PYTHONHASHSEED": "0"})
    try:
        stage = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]
        env.update(stage.get("environment_variables", {}))
    except (OSError, KeyError, ValueError):
        pass
    return env


_PEAK = "\nfor _l in open('/proc/self/status'):\n    if _l.startswith('VmHWM:'):\n        print(_l.split()[1])\n"


def _once(code: str, env: dict[str, str]) -> tuple[float, float]:
    with tempfile.TemporaryFile() as stderr, tempfile.TemporaryFile() as stdout:
        began = time.perf_counter()
        returncode = subprocess.call([sys.executable, "-c", code + _PEAK], cwd=ROOT, env=env,
                                     stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        wall = time.perf_counter() - began
        if returncode != 0:
            stderr.seek(0)
            raise RuntimeError(f"python -c {code!r} failed: {stderr.read().decode(errors='replace')[-2000:]}")
        stdout.seek(0)
        peak_kib = int(stdout.read().split()[-1])
    return wall, peak_kib / 1024


def measure(repeats: int = 7) -> dict[str, Any]:
    env = _env()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in PROGRAMS}
    for code in PROGRAMS.values():
        _once(code, env)  # warm-up: byte-code caches, page cache
    for _ in range(repeats):
        for name, code in PROGRAMS.items():
            samples[name].append(_once(code, env))
    out: dict[str, Any] = {"repeats": repeats, "python": sys.executable}
    for name, runs in samples.items():
        out[name] = {"median_s": round(statistics.median(w for w, _ in runs), 4),
                     "median_rss_mb": round(statistics.median(r for _, r in runs), 1),
                     "wall_s": [round(w, 4) for w, _ in runs]}
    out["app_vs_boto3_time"] = round(out["app"]["median_s"] / out["boto3"]["median_s"], 2)
    out["app_vs_boto3_rss"] = round(out["app"]["median_rss_mb"] / out["boto3"]["median_rss_mb"], 2)
    return out
