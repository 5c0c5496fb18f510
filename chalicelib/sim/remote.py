"""The reference engine as an external process: it reaches Agora only through the API, with its callback token.

Run by the engine launcher (chalicelib/workflows/launchers.py), never by hand: it reads the API URL,
the experiment id and the callback token from its environment, fetches its spec, advances the
simulation, reports each step (which is also its heartbeat), and finishes with the callback.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
from typing import Any, Optional

from chalicelib.sim.engine import Inbox, PendingDialog, PendingSurvey, Simulation
from chalicelib.sim.spec import SimulationSpec

TICKS_PER_REPORT = 12
RETRIES = 5


class EngineClient:
    def __init__(self, api_url: str, experiment_id: str, token: str) -> None:
        self.base = f"{api_url.rstrip('/')}/api/run-experiments/{experiment_id}"
        self.token = token

    def _call(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        url = f"{self.base}{path}?callback_auth_token={self.token}"
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(RETRIES):
            request = urllib.request.Request(url, data=data, method=method,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == RETRIES - 1:
                    raise
            except urllib.error.URLError:
                if attempt == RETRIES - 1:
                    raise
            time.sleep(0.5 * 2**attempt)
        raise RuntimeError("unreachable")

    def spec(self) -> SimulationSpec:
        return SimulationSpec.model_validate(self._call("GET", "/engine/spec")["data"])

    def progress(self, report: dict) -> dict:
        return self._call("POST", "/engine/progress", report)["data"]

    def finish(self, status: str, error: str = "") -> None:
        self._call("POST", "/finish", {"status": status, "error": error})


def inbox_from(messages: list[dict]) -> Inbox:
    dialogs = [PendingDialog(id=m["id"], agent_id=m["agent_id"], day=m["day"], t=m["t"], content=m["content"])
               for m in messages if m["kind"] == "dialog"]
    surveys = [PendingSurvey(id=m["id"], agent_id=m["agent_id"], day=m["day"], t=m["t"], survey_id=m["survey_id"],
                             survey=m["survey"]) for m in messages if m["kind"] == "survey"]
    return Inbox(dialogs=dialogs, surveys=surveys)


def run(client: EngineClient) -> None:
    sim = Simulation.create(client.spec())
    tokens = [0, 0]
    ticks_done = 0
    answer = client.progress({
        "cur_day": sim.cur_day, "cur_t": sim.cur_t, "input_tokens": 0, "output_tokens": 0, "ticks_done": 0,
        "profiles": [p.to_json() for p in sim.profiles()],
        "ticks": [{"day": sim.cur_day, "t": sim.cur_t, "statuses": [s.to_json() for s in sim.statuses()],
                   "prompt": sim.global_prompt, "metrics": {}}],
        "log_lines": [f"external engine (pid {os.getpid()}) started with {len(sim.profiles())} agents"]})
    while not sim.done:
        if answer["stop"]:
            client.finish("stopped")
            return
        result = sim.advance(max_ticks=TICKS_PER_REPORT, inbox=inbox_from(answer["inbox"]))
        tokens[0] += result.input_tokens
        tokens[1] += result.output_tokens
        ticks_done += len(result.ticks)
        answer = client.progress({
            "cur_day": sim.cur_day, "cur_t": sim.cur_t, "input_tokens": tokens[0], "output_tokens": tokens[1],
            "ticks_done": ticks_done, "ticks": [t.to_json() for t in result.ticks],
            "dialogs": [d.to_json() for d in result.dialogs], "surveys": [s.to_json() for s in result.survey_answers],
            "artifacts": result.artifacts or None, "log_lines": result.log_lines,
            "processed_inbox_ids": result.processed_inbox_ids})
    client.finish("finished")


def main() -> int:
    from chalicelib.settings import ENGINE_API_URL, ENGINE_CALLBACK_TOKEN, ENGINE_EXPERIMENT_ID

    client = EngineClient(os.environ[ENGINE_API_URL], os.environ[ENGINE_EXPERIMENT_ID],
                          os.environ.pop(ENGINE_CALLBACK_TOKEN))
    try:
        run(client)
    except Exception as exc:  # noqa: BLE001 - any failure is reported through the callback, then exit 1
        traceback.print_exc()
        try:
            client.finish("error", f"{type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the API is unreachable: the heartbeat timeout ends the run
            traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
