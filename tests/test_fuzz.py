"""A short round of `make fuzz`: schemathesis, every check, against the local stack, bounded by examples.

The round is fuzz/run.py itself (the local stack in its own process, schemathesis in another), with its
fixed seed, one worker and few examples per operation, so that it replays the same requests every time
(60-120 s on a loaded 2-core machine). Its verdict is the set of failed checks, each on its operation:
none may appear beyond the defects below. Each of those is reported and kept as a strict expected
failure until it is fixed; then its test passes, strict xfail fails it, and the mark goes (the entry
stays, as a guard).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from fuzz import run as fuzz_run

ROOT = Path(__file__).resolve().parent.parent
SEED = fuzz_run.DEFAULT_SEED
MAX_EXAMPLES = 6
TIMEOUT_SECONDS = 600  # a hung stack, not a slow machine: the round takes 1-2 minutes

SERVER_ERROR, SCHEMA_VIOLATING_ACCEPTED, SCHEMA_VALID_REJECTED, UNDECLARED_METHOD = "ST101", "ST201", "ST202", "ST204"


@dataclass(frozen=True)
class Defect:
    """Failures of a reported defect: one of `codes` on an operation `matches` accepts."""

    name: str
    reason: str
    codes: frozenset[str]
    matches: Callable[[str], bool]
    fixed: bool = False  # a fixed defect stays as a guard: its failures must not come back

    def covers(self, code: str, operation: str) -> bool:
        return code in self.codes and self.matches(operation)


def among(*operations: str) -> Callable[[str], bool]:
    return frozenset(operations).__contains__


DEFECTS = [
    # all fixed: kept as guards (the rules no schema can state are allowed their 400 in fuzz/schemathesis.toml)
    Defect("trace-501", "the local stack answered TRACE (and QUERY, CONNECT) with 501 text/html "
           "(BaseHTTPRequestHandler has no do_TRACE), where every other undeclared method gets 405, an Allow "
           "header and {detail}", frozenset({SERVER_ERROR, UNDECLARED_METHOD}),
           lambda operation: operation.split(" ", 1)[0] in ("TRACE", "QUERY", "CONNECT"), fixed=True),
    Defect("parameter-declarations", "route declarations named query parameters but not their type, bounds, "
           "values or whether they are required, nor the values a path parameter takes: schema-valid values "
           "got 400", frozenset({SCHEMA_VALID_REJECTED, SCHEMA_VIOLATING_ACCEPTED}), among(
               "GET /api/agent-classes", "GET /api/agent-param", "GET /api/block-param/{block_type}",
               "GET /api/bills", "GET /api/experiments", "GET /api/experiments/{experiment_id}/agents/-/status",
               "GET /api/experiments/{experiment_id}/prompt", "GET /api/map-configs/{config_id}/temp-link",
               "GET /api/experiments/{experiment_id}/agents/{agent_id}/dialog",
               "GET /api/experiments/{experiment_id}/agents/{agent_id}/profile",
               "GET /api/experiments/{experiment_id}/agents/{agent_id}/status",
               "GET /api/experiments/{experiment_id}/agents/{agent_id}/survey",
               "GET /api/v1/experiments", "GET /api/v1/experiments/runs",
               "GET /api/v1/experiments/runs/{run_id}/artifacts/download",
               "POST /api/v1/experiments/runs/{run_id}/log-artifact"), fixed=True),
    Defect("body-schemas", "body schemas left out what the models check: key patterns (patternProperties let "
           "any other key through), at least one field, media types", frozenset({SCHEMA_VALID_REJECTED}), among(
               "PATCH /api/v1/experiments/{experiment_id}",
               "POST /api/v1/experiments/runs", "POST /api/v1/experiments/runs/{run_id}/artifact-uploads",
               "POST /api/v1/experiments/runs/{run_id}/log-metrics",
               "POST /api/v1/experiments/runs/{run_id}/log-params"), fixed=True),
    Defect("strict-integers", "StrictInt fields refused integral JSON numbers such as 3.0, which JSON Schema's "
           "integer accepts", frozenset({SCHEMA_VALID_REJECTED}), among(
               "POST /api/experiments/{experiment_id}/agents/{agent_id}/dialog",
               "POST /api/experiments/{experiment_id}/agents/{agent_id}/survey",
               "POST /api/map-configs/{config_id}/temp-link"), fixed=True),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    report_dir = tmp_path_factory.mktemp("fuzz")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "fuzz.run", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
               "--workers", "1", "--report-dir", str(report_dir)]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    path = report_dir / "report.json"
    if not path.is_file():
        pytest.fail(f"the fuzzing round wrote no report (exit {run.returncode}):\n{run.stdout[-4000:]}\n"
                    f"{run.stderr[-4000:]}")
    document = json.loads(path.read_text())
    document["output"] = run.stdout
    document["failed_checks"] = fuzz_run.failures(report_dir)  # each on its operation, the stateful ones too
    assert bool(document["failed_checks"]) == bool(document["failures"]), "the events and the report disagree"
    return document


def failures(report: dict) -> set[tuple[str, str]]:
    return report["failed_checks"]


def test_the_round_tests_every_operation(report: dict) -> None:
    assert report["complete"] and report["stop_reason"] == "completed", report["output"][-4000:]
    operations = report["operations"]
    assert operations["tested"] == operations["selected"] == operations["total"] > 80
    assert operations["errored"] == 0 and not report["errors"], report["output"][-4000:]
    assert all(phase["status"] != "error" for phase in report["phases"].values())


def test_no_failure_beyond_the_reported_defects(report: dict) -> None:
    unreported = sorted((code, operation) for code, operation in failures(report)
                        if not any(defect.covers(code, operation) for defect in DEFECTS if not defect.fixed))
    assert not unreported, f"{unreported}\n{report['output'][-8000:]}"


@pytest.mark.parametrize("defect", [
    pytest.param(defect, id=defect.name,
                 marks=() if defect.fixed else pytest.mark.xfail(strict=True, reason=defect.reason))
    for defect in DEFECTS])
def test_reported_defect_is_fixed(report: dict, defect: Defect) -> None:
    found = sorted(operation for code, operation in failures(report) if defect.covers(code, operation))
    assert not found, f"{defect.name}: {found}"
