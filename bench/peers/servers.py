"""The three servers as process groups: Agora's local stack, an MLflow tracking server, a FastTrackML server.

Each one runs in its own session (`start_new_session`, i.e. setsid), so a Ctrl-C in the terminal reaches only
the harness, which then stops them itself; `stop()` ends the whole group (MLflow's CLI -> uvicorn -> worker),
with SIGKILL for whatever is left after the grace period. Everything they write (databases, artifacts, Agora's
data dir, their logs) lives in one temporary directory per server. CPU time and RSS are read from /proc for the
whole group, so a measurement can say how much CPU the server itself spent.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import requests

ROOT = Path(__file__).resolve().parents[2]
VENVS = ROOT / "bench" / ".venvs"
MLFLOW_VENV = VENVS / "mlflow"
FASTTRACKML_VENV = VENVS / "fasttrackml"
TENANT, API_KEY = "bench", "bench-key"  # Agora's local tenant for the harness (AGORA_LOCAL_TENANTS)
HOST = "127.0.0.1"
_CLK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


LAUNCHED: list[Server] = []  # every server started and not yet stopped, registered before it is ready


class ServerError(RuntimeError):
    """A server did not start or died; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _proc_stat(pid: int) -> Optional[tuple[int, float, int]]:
    """(process group, CPU seconds user+system, RSS bytes) of a live process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 of proc(5): state, ppid, pgrp, ..., utime (14), stime (15), ..., rss (24)
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / _CLK, int(fields[21]) * _PAGE


def group_members(pgid: int) -> list[tuple[int, float, int]]:
    """(pid, CPU seconds, RSS bytes) of every live process of the group."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _proc_stat(int(name))
            if stat is not None and stat[0] == pgid:
                found.append((int(name), stat[1], stat[2]))
    return found


@dataclass
class Server:
    kind: str  # "agora" | "mlflow" | "fasttrackml"
    label: str
    proc: subprocess.Popen
    workdir: Path
    log_path: Path
    stop_signal: int = signal.SIGTERM
    signal_group: bool = True  # False: the stop signal goes to the leader only (it stops its own children)
    url: str = ""
    version: str = ""
    startup_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    _log: Optional[object] = None

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session: the leader's pid is the group's id

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """CPU seconds of the live processes of the group (a worker that exited and was reaped counts no more)."""
        return sum(cpu for _, cpu, _ in group_members(self.pgid))

    def rss_mb(self) -> float:
        return sum(rss for _, _, rss in group_members(self.pgid)) / 2**20

    def processes(self) -> int:
        return len(group_members(self.pgid))

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def check(self) -> None:
        if not self.alive():
            raise ServerError(f"{self.label} exited with code {self.proc.returncode}; "
                              f"last lines of {self.log_path}:\n{self.log_tail()}")

    def stop(self, grace_s: float = 60.0) -> None:
        """Stop signal, then SIGKILL for the whole group after `grace_s`; idempotent, never raises."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.alive():
                if self.signal_group:
                    os.killpg(self.pgid, self.stop_signal)
                else:
                    self.proc.send_signal(self.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        deadline = time.monotonic() + 10
        while group_members(self.pgid) and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
            time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()  # type: ignore[attr-defined]
            self._log = None


def _launch(kind: str, label: str, cmd: list[str], env: dict[str, str], workdir: Path, cwd: Path,
            **extra: object) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed by Server.stop
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    server = Server(kind=kind, label=label, proc=proc, workdir=workdir, log_path=log_path, _log=log,
                    **extra)  # type: ignore[arg-type]
    LAUNCHED.append(server)
    return server


def stop_all(progress: Callable[[str], None] = lambda _: None) -> None:
    """Stop every server launched and not stopped yet, the last started first."""
    while LAUNCHED:
        server = LAUNCHED.pop()
        progress(f"stopping {server.label} (process group {server.pgid})")
        server.stop()


def _wait_ready(server: Server, ready: Callable[[], bool], timeout_s: float, began: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        server.check()
        with contextlib.suppress(requests.RequestException, OSError):
            if ready():
                server.startup_s = time.monotonic() - began
                return
        if time.monotonic() > deadline:
            raise ServerError(f"{server.label} was not ready after {timeout_s:.0f} s; "
                              f"last lines of {server.log_path}:\n{server.log_tail()}")
        time.sleep(0.2)


def _health(url: str) -> Callable[[], bool]:
    return lambda: requests.get(url + "/health", timeout=5).status_code == 200


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AGORA_OPEN_TENANT", "AGORA_DATA_DIR", "MLFLOW_TRACKING_URI",
                 "VIRTUAL_ENV", "PYTHONPATH", "PORT", "MOTO_PORT"):
        env.pop(name, None)
    return env


def start_agora(workdir: Path, timeout_s: float = 300.0) -> Server:
    """`python -m devstack` on free ports (PORT=0 / MOTO_PORT=0: the stack binds port 0 itself, no race)."""
    env = _base_env()
    env.update({"PORT": "0", "MOTO_PORT": "0", "PYTHONUNBUFFERED": "1", "AGORA_DATA_DIR": str(workdir / "data"),
                "AGORA_LOCAL_TENANTS": f"{TENANT}:{API_KEY}", "AGORA_ADMIN_KEY": secrets.token_urlsafe(24),
                "AGORA_SIM_STEP_PAUSE_SECONDS": "0"})
    began = time.monotonic()
    # devstack handles SIGINT (Ctrl-C) and SIGTERM by stopping and flushing its data dir: signal the leader only
    server = _launch("agora", "Agora (local stack)", [sys.executable, "-m", "devstack"], env, workdir, ROOT,
                     stop_signal=signal.SIGINT, signal_group=False)

    def ready() -> bool:
        text = server.log_path.read_text(errors="replace")
        if "Ctrl-C stops." not in text:
            return False
        match = re.search(r"^\s*API\s+(http://\S+)", text, re.MULTILINE)
        if not match:
            raise ServerError(f"Agora's banner has no API line:\n{server.log_tail()}")
        server.url = match.group(1).rstrip("/")
        return True

    _wait_ready(server, ready, timeout_s, began)
    server.version = agora_version()
    return server


def start_mlflow(workdir: Path, workers: int = 1, timeout_s: float = 300.0) -> Server:
    """`mlflow server` on SQLite with a local artifact root, loopback, no job runner, `--workers` uvicorn workers."""
    exe = MLFLOW_VENV / "bin" / "mlflow"
    if not exe.exists():
        raise ServerError(f"{exe} is missing: `make bench` creates {MLFLOW_VENV} (bench/peers/requirements-mlflow.txt)")
    port = free_port()
    (workdir / "artifacts").mkdir(parents=True, exist_ok=True)
    env = _base_env()
    env.update({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # else 8 more processes (~1.9 GB)
                "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
                "PATH": f"{MLFLOW_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                "VIRTUAL_ENV": str(MLFLOW_VENV)})
    cmd = [str(exe), "server", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
           "--default-artifact-root", str(workdir / "artifacts"), "--host", HOST, "--port", str(port),
           "--workers", str(workers)]
    began = time.monotonic()
    server = _launch("mlflow", "MLflow", cmd, env, workdir, workdir, url=f"http://{HOST}:{port}")
    server.version = _run([str(MLFLOW_VENV / "bin" / "python"), "-c",
                           "import importlib.metadata as m; print(m.version('mlflow'))"])
    server.notes.append(f"uvicorn --workers {workers}, SQLite {workdir / 'mlflow.db'}, job execution off")
    _wait_ready(server, _health(server.url), timeout_s, began)
    return server


def start_fasttrackml(workdir: Path, timeout_s: float = 120.0) -> Server:
    """`fml server` (the Go binary from FastTrackML's wheel) on SQLite, loopback."""
    exe = FASTTRACKML_VENV / "bin" / "fml"
    if not exe.exists():
        raise ServerError(f"{exe} is missing: `make bench` creates {FASTTRACKML_VENV} "
                          "(bench/peers/requirements-fasttrackml.txt, installed with --no-deps)")
    port = free_port()
    (workdir / "artifacts").mkdir(parents=True, exist_ok=True)
    cmd = [str(exe), "server", "--listen-address", f"{HOST}:{port}",
           "--database-uri", f"sqlite://{workdir / 'fasttrackml.db'}",  # sqlite:///abs/path is absolute
           "--default-artifact-root", str(workdir / "artifacts"), "--log-level", "warn"]
    began = time.monotonic()
    server = _launch("fasttrackml", "FastTrackML", cmd, _base_env(), workdir, workdir, url=f"http://{HOST}:{port}")
    version = _run([str(exe), "--version"])  # "FastTrackML version 0.6.0"
    server.version = version.rsplit(" ", 1)[-1] if version else ""
    server.notes.append(f"SQLite {workdir / 'fasttrackml.db'} (WAL, one writer connection)")
    _wait_ready(server, _health(server.url), timeout_s, began)
    return server


STARTERS: dict[str, Callable[..., Server]] = {"agora": start_agora, "mlflow": start_mlflow,
                                               "fasttrackml": start_fasttrackml}


def _run(cmd: list[str], cwd: Optional[Path] = None) -> str:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def agora_version() -> str:
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"], ROOT)
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], ROOT)
    return f"{commit}{' + uncommitted changes' if dirty else ''}" if commit else "unknown"


def wait_idle(servers: list[Server], max_wait_s: float = 30.0, window_s: float = 0.5,
              busy_cores: float = 0.05) -> float:
    """Wait until no server uses more than `busy_cores` of CPU (e.g. Agora flushing its data dir after an
    ingest, FastTrackML checkpointing its WAL), so one system's leftovers are not billed to the next.
    Returns the seconds waited (at most `max_wait_s`)."""
    began = time.monotonic()
    before = [s.cpu_seconds() for s in servers]
    while time.monotonic() - began < max_wait_s:
        time.sleep(window_s)
        now = [s.cpu_seconds() for s in servers]
        if all((b - a) / window_s < busy_cores for a, b in zip(before, now, strict=True)):
            break
        before = now
    return time.monotonic() - began
