"""Schemathesis against the local stack, with every check, authenticated as a tenant.

    python -m fuzz.run --max-time 600          # `make fuzz` (FUZZ_SECONDS=600)
    python -m fuzz.run --max-examples 8        # tests/test_fuzz.py's short round: bounded by example count
    python -m fuzz.run --max-time 60 -- --include-path-regex '^/api/v1/'   # extra schemathesis options

The local stack runs as `python -m devstack` (free ports, its own data directory, the tenant `fuzz`
with the key `fuzz-key`; a fresh process per attempt, so a start that fails while devstack is being
edited is simply retried). Before fuzzing, `seed` creates through the API what identifiers point at (a
tracking experiment and run with metrics and an artifact, the tenant's own sim configs, a map link, a
launched simulation), and half of the values of those path, query and body parameters are these
identifiers (schemathesis dictionaries), so that operations get past their 404. Schemathesis runs
against `/api/openapi.json` with every check (its default) and fuzz/schemathesis.toml plus those
dictionaries; no example database and no crash cache, so a seed replays a run (up to the identifiers
and the simulation's pace). The exit status is schemathesis's: 0 only when no check failed. The
reports (report.json, junit.xml, events.ndjson) and the stack's log (stack.log: the traceback of any
500) go to --report-dir (a new temporary directory unless given).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Path(__file__).resolve().parent / "schemathesis.toml"
TENANT, KEY = "fuzz", "fuzz-key"
DEFAULT_SEED = 20240601
START_ATTEMPTS = 4
START_RETRY_SECONDS = 15
STARTUP_TIMEOUT = 60
STOP_TIMEOUT = 15
JSON_REPORT = "report.json"
JUNIT_REPORT = "junit.xml"
NDJSON_REPORT = "events.ndjson"
STACK_LOG = "stack.log"
DATA_DIR = "AGORA_DATA_DIR"  # the local stack's data (devstack/persistence.py)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n\n")[0])
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--max-time", type=int, metavar="SECONDS", help="wall-clock budget of the whole run")
    budget.add_argument("--max-examples", type=int, metavar="N", help="test cases per operation and phase")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--workers", type=int, default=2, help="concurrent schemathesis workers")
    parser.add_argument("--report-dir", type=Path, help="for the reports, the events and the stack's log")
    parser.add_argument("extra", nargs="*", help="after --: more schemathesis `run` options")
    return parser.parse_args(argv)


class LocalStack:
    """`python -m devstack` in a subprocess on free ports, keeping its data in `data_dir` (logs: `log_path`)."""

    def __init__(self, log_path: Path, data_dir: Path) -> None:
        from chalicelib import settings

        # a data directory of its own: a run starts empty and leaves `make run`'s data (.agora/) alone
        env = {**os.environ, "PORT": "0", "MOTO_PORT": "0", "PYTHONUNBUFFERED": "1",
               settings.LOCAL_TENANTS: f"{TENANT}:{KEY}", DATA_DIR: str(data_dir)}
        for name in (settings.OPEN_TENANT, "AWS_ENDPOINT_URL", "AWS_PROFILE"):
            env.pop(name, None)
        self.log = log_path.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "devstack"], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=self.log)
        self.banner: list[str] = []
        self.api_url: Optional[str] = None
        ready = threading.Event()
        threading.Thread(target=self._read, args=(ready,), daemon=True).start()
        ready.wait(STARTUP_TIMEOUT)
        match = re.search(r"^\s*API\s+(http://\S+)", "".join(self.banner), re.MULTILINE)
        if match is None or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("".join(self.banner)[-2000:] or f"no banner within {STARTUP_TIMEOUT} s")
        self.api_url = match.group(1)

    def _read(self, ready: threading.Event) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not ready.is_set():
                self.banner.append(line)
                if line.startswith("Ctrl-C stops"):
                    ready.set()
            self.log.write(line)
            self.log.flush()
        ready.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # what Ctrl-C does: the stack stops itself
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_stack(report_dir: Path) -> LocalStack:
    """devstack is being worked on by others: a start that fails (say, mid-edit) is retried a little later."""
    log_path = report_dir / STACK_LOG
    last: Optional[BaseException] = None
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return LocalStack(log_path, Path(tempfile.mkdtemp(prefix="data-", dir=report_dir)))
        except RuntimeError as exc:
            last = exc
            print(f"fuzz: the local stack did not start (attempt {attempt}/{START_ATTEMPTS}), see {log_path}",
                  file=sys.stderr, flush=True)
            if attempt < START_ATTEMPTS:
                time.sleep(START_RETRY_SECONDS)
    raise SystemExit(f"fuzz: the local stack did not start: {last}")


SIM_KINDS = {"llm-configs": "config", "agent-configs": "config", "map-configs": "config",
             "workflow-configs": "config", "surveys": "data"}
# where a seeded identifier is used: (location.name, dictionary)
BINDINGS = [("path.experiment_id", "experiment_id"), ("path.run_id", "run_id"), ("path.config_id", "config_id"),
            ("path.agent_id", "agent_id"), ("path.key", "metric_key"), ("query.experiment_id", "tracking_experiment"),
            ("body.experiment_id", "tracking_experiment"), ("body.run_ids[*]", "run_id"),
            ("query.path", "artifact_path"), ("query.token", "map_token")]
SEED_PROBABILITY = 0.5  # half the values are real identifiers, half schema-derived (mostly unknown: 404)


def seed(api_url: str) -> dict[str, list[str]]:
    """Resources for the fuzzer to find, created as the tenant through the API: without them almost every
    operation on an identifier stops at its 404. Returns identifiers by dictionary; a step that fails (the
    API changed) is reported and skipped, so that the fuzzing still runs."""
    import requests

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {KEY}"
    found: dict[str, list[str]] = {}

    def call(method: str, path: str, **kwargs: object) -> dict:
        response = http.request(method, api_url + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else {}

    def step(name: str, action: Callable[[], None]) -> None:
        try:
            action()
        except (requests.RequestException, KeyError, IndexError, TypeError, ValueError) as exc:
            print(f"fuzz: seeding {name} failed, fuzzing without it: {exc!r}", file=sys.stderr, flush=True)

    def tracking() -> None:
        experiment = call("POST", "/api/v1/experiments", json={"name": "fuzz", "tags": {"seeded": "yes"}})["id"]
        run = call("POST", "/api/v1/experiments/runs", json={"experiment_id": experiment, "name": "fuzz"})["id"]
        found.update(tracking_experiment=[experiment], run_id=[run], metric_key=["loss"])
        found.setdefault("experiment_id", []).append(experiment)
        for step_number in range(3):
            call("POST", f"/api/v1/experiments/runs/{run}/log-metrics",
                 json={"metrics": {"loss": 1.0 / (step_number + 1)}, "step": step_number})
        call("POST", f"/api/v1/experiments/runs/{run}/log-params", json={"params": {"lr": "0.1"}})
        call("POST", f"/api/v1/experiments/runs/{run}/log-artifact",
             files={"file": ("model.txt", b"weights", "text/plain")})
        found["artifact_path"] = ["model.txt"]

    def configs() -> None:
        ids = found.setdefault("config_id", [])
        for kind, field in SIM_KINDS.items():
            platform = call("GET", f"/api/{kind}")["data"][0]
            ids.append(platform["id"])
            body = platform[field]
            if kind == "map-configs":  # a tenant's map config names a map file of its own: upload the platform's
                download = http.post(f"{api_url}/api/map-configs/{platform['id']}/export", allow_redirects=False,
                                     timeout=30)
                data = requests.get(download.headers["Location"], timeout=30).content
                body = call("POST", "/api/map-configs/-/upload",
                            files={"file": ("fuzz_city.json", data, "application/json")})["data"]
            own = call("POST", f"/api/{kind}", json={"name": f"fuzz {kind}", field: body})["data"]
            ids.append(own["id"])
            found.setdefault(kind, []).append(own["id"])

    def map_link() -> None:
        config = found["map-configs"][0]
        found["map_token"] = [call("POST", f"/api/map-configs/{config}/temp-link",
                                   json={"expire_seconds": 3600})["data"]["token"]]

    def simulation() -> None:
        refs = {name: {"id": found[kind][0], "tenant_id": TENANT} for name, kind in (
            ("llm", "llm-configs"), ("agents", "agent-configs"), ("map", "map-configs"),
            ("workflow", "workflow-configs"))}
        experiment = call("POST", "/api/run-experiments", json={**refs, "exp_name": "fuzz"})["data"]["id"]
        found.setdefault("experiment_id", []).append(experiment)
        found["agent_id"] = ["1"]

    for name, action in (("tracking", tracking), ("configs", configs), ("map link", map_link),
                         ("simulation", simulation)):
        step(name, action)
    return found


def write_config(report_dir: Path, found: dict[str, list[str]]) -> Path:
    """fuzz/schemathesis.toml, plus dictionaries of the seeded identifiers bound to their parameters."""
    lines = [CONFIG.read_text(), "", "# --- written by fuzz/run.py: the identifiers it seeded"]
    for name, values in sorted(found.items()):
        lines += [f"[dictionaries.{json.dumps(name)}]", f"values = {json.dumps(values)}"]
    lines.append("[parameters]")
    lines += [f"{json.dumps(key)} = {{ dictionary = {json.dumps(name)}, probability = {SEED_PROBABILITY} }}"
              for key, name in BINDINGS if found.get(name)]
    path = report_dir / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def schemathesis_command(api_url: str, args: argparse.Namespace, report_dir: Path, config: Path) -> list[str]:
    command = [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "--no-color",
               "run", f"{api_url}/api/openapi.json",
               "--header", f"Authorization: Bearer {KEY}",
               "--seed", str(args.seed),
               "--workers", str(args.workers),
               "--report", "json,junit,ndjson", "--report-dir", str(report_dir),
               "--report-json-path", str(report_dir / JSON_REPORT),
               "--report-junit-path", str(report_dir / JUNIT_REPORT),
               "--report-ndjson-path", str(report_dir / NDJSON_REPORT)]
    if args.max_time is not None:
        command += ["--max-time", str(args.max_time)]
    else:
        command += ["--max-examples", str(args.max_examples)]
    return command + list(args.extra)


def failures(report_dir: Path) -> set[tuple[str, str]]:
    """(failure code, "METHOD /path") of every failed check, from the events of the run.

    The JSON report groups failures by code with operation labels, except the stateful phase's, which it
    files under "Stateful tests"; the recorded cases say which operation each failed check was on."""
    found: set[tuple[str, str]] = set()
    with (report_dir / NDJSON_REPORT).open(encoding="utf-8") as events:
        for line in events:
            if not line.startswith('{"ScenarioFinished"'):
                continue
            recorder = json.loads(line)["ScenarioFinished"]["recorder"]  # a skipped scenario has no checks
            for case_id, checks in recorder.get("checks", {}).items():
                case = recorder["cases"][case_id]["value"]
                found.update((check["failure_info"]["failure"]["code"], f"{case['method']} {case['path']}")
                             for check in checks if check["status"] == "failure")
    return found


def summary(report_dir: Path) -> str:
    """One line per failure kind: its code, title and the operations it was seen on."""
    try:
        report = json.loads((report_dir / JSON_REPORT).read_text())
    except (OSError, ValueError):
        return "fuzz: no JSON report was written"
    lines = [f"fuzz: {report['test_cases']['generated']} test cases, "
             f"{report['test_cases']['unique_failures']} unique failures, stop reason {report['stop_reason']}"]
    for failure in report["failures"]:
        lines.append(f"  {failure['code']} {failure['title']} ({failure['count']}): "
                     + ", ".join(sorted(failure["operations"])))
    lines += [f"  error: {error['title']} ({error['count']})" for error in report["errors"]]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    report_dir = (args.report_dir or Path(tempfile.mkdtemp(prefix="agora-fuzz-"))).resolve()
    report_dir.mkdir(parents=True, exist_ok=True)
    stack = start_stack(report_dir)
    try:
        print(f"fuzz: local stack at {stack.api_url}", flush=True)
        config = write_config(report_dir, seed(str(stack.api_url)))
        command = schemathesis_command(str(stack.api_url), args, report_dir, config)
        # its own working directory: nothing of schemathesis or hypothesis lands in the checkout
        returncode = subprocess.call(command, cwd=report_dir)
    finally:
        stack.stop()
    print(summary(report_dir), flush=True)
    print(f"fuzz: reports in {report_dir}; schemathesis exited {returncode}", flush=True)
    return returncode


if __name__ == "__main__":
    sys.exit(main())
