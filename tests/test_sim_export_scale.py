"""Exports at scale: a 200-agent, 2-day run checked file by file, and memory that does not grow with the data."""
from __future__ import annotations

import csv
import io
import json
import time
import tracemalloc
import zipfile

from tests.conftest import auth
from tests.sim_helpers import download, make_configs
from tests.test_sim_export_helpers import CountingSink, synthetic_simulation
from tests.test_sim_runs import launch, wait_for_end


def test_export_of_200_agents_over_2_days_file_by_file(sim_client):
    refs = make_configs(sim_client, agents=200, workflow=[
        {"type": "run", "days": 2},
        {"type": "survey", "survey": {"id": "s1", "title": "t", "pages": [{"name": "p", "elements": [
            {"name": "mood", "type": "rating", "title": "Mood?"}]}]}},
        {"type": "save_context", "save_as": "end", "target": "status"}])
    started = time.monotonic()
    exp_id = launch(sim_client, refs, name="big").json_body["data"]["id"]
    exp = wait_for_end(sim_client, exp_id, timeout=240)
    assert exp.status == 2, exp.error
    ran = time.monotonic() - started

    response = sim_client.http.post(f"/api/experiments/{exp_id}/export", headers=auth())
    assert response.status_code == 303
    archive = zipfile.ZipFile(io.BytesIO(download(response.headers["Location"])))
    assert archive.namelist() == ["experiment.yaml", "metrics.json", "artifacts.json", "agent_profile.csv",
                                  "agent_status.csv", "agent_survey.csv", "agent_dialog.csv", "global_prompt.csv",
                                  "metric.csv"]

    def rows(name):
        with archive.open(name) as raw:
            return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))

    ticks = 2 * 288 + 1  # and the snapshot at the end, where the survey's answers are stamped
    assert "status: 2" in archive.read("experiment.yaml").decode()
    metrics = json.loads(archive.read("metrics.json"))
    assert all(len(points) == ticks for points in metrics.values())
    assert len(json.loads(archive.read("artifacts.json"))["end"]["agents"]) == 200
    profiles = rows("agent_profile.csv")
    assert sorted(int(p["id"]) for p in profiles) == sorted({int(p["id"]) for p in profiles}) and len(profiles) == 200
    statuses = rows("agent_status.csv")
    assert len(statuses) == 200 * ticks
    assert {(r["day"], r["t"]) for r in statuses[:200]} == {("0", "28800.0")}
    assert all(json.loads(r["status"]) is not None for r in statuses[:1000])
    surveys = rows("agent_survey.csv")
    assert len(surveys) == 200 and all(isinstance(json.loads(s["result"]), dict) for s in surveys)
    last = (statuses[-1]["day"], statuses[-1]["t"])
    assert last == ("2", "28800.0") and {(s["day"], s["t"]) for s in surveys} == {last}  # on the timeline
    dialogs = rows("agent_dialog.csv")
    assert dialogs and set(dialogs[0]) == {"id", "day", "t", "type", "speaker", "content", "created_at"}
    assert len(rows("global_prompt.csv")) == ticks
    assert len(rows("metric.csv")) == sum(len(p) for p in metrics.values())
    print(f"\n200 agents x 2 days: run {ran:.1f} s, export {len(statuses)} status rows")


def _export_peak(wired, exp) -> tuple[int, int]:
    sink = CountingSink()
    tracemalloc.start()
    try:
        wired.sim_exports.write_zip(exp, sink)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, sink.size


def test_export_peak_memory_does_not_grow_with_the_data(aws):
    from chalicelib import wiring

    wired = wiring.services()
    # both exports span several pages of the instant stream (16 instants a page)
    small = synthetic_simulation(wired, agents=100, ticks=48)
    large = synthetic_simulation(wired, agents=100, ticks=192)
    small_peak, small_size = _export_peak(wired, small)
    large_peak, large_size = _export_peak(wired, large)
    print(f"\nexport peak memory: {small_peak / 1e6:.1f} MB for {small_size / 1e6:.1f} MB of zip, "
          f"{large_peak / 1e6:.1f} MB for {large_size / 1e6:.1f} MB of zip")
    assert large_size > 3.5 * small_size
    assert large_peak < 1.25 * small_peak
