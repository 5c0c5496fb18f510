"""Helpers for export tests (no tests here): synthetic simulations and a sink that only counts."""
from __future__ import annotations

import random

from chalicelib.domain.clock import new_id, now_iso
from chalicelib.domain.simulation.records import RunControl, SimExperiment, SimStatus


class CountingSink:
    """A write-only stream that keeps nothing: what the export itself holds is all tracemalloc sees."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def complete(self) -> int:
        return self.size

    def abort(self) -> None:
        pass


def synthetic_simulation(container, *, agents: int, ticks: int, tenant: str = "tenant-a") -> SimExperiment:
    """An ended simulation with `ticks` instants of `agents` agents written straight through the store."""
    rng = random.Random(ticks)
    exp_id = new_id()
    now = now_iso()
    exp = SimExperiment(tenant_id=tenant, id=exp_id, name="synthetic", status=SimStatus.FINISHED, cur_day=0,
                        cur_t=28800.0, config="{}", error="", input_tokens=0, output_tokens=0, created_at=now,
                        updated_at=now, engine="builtin", tracking_run_id="none", llm_billed=False)
    container.simulation_store.create_experiment(exp, RunControl())
    profiles = [{"id": a, "name": f"agent {a}", "profile": {"age": rng.randint(18, 80)}} for a in range(agents)]
    for start in range(0, ticks, 12):
        batch = []
        for tick in range(start, min(ticks, start + 12)):
            t = 28800.0 + 300 * tick
            batch.append({"day": 0, "t": t, "prompt": "a town", "statuses": [
                {"id": a, "day": 0, "t": t, "lng": rng.random(), "lat": rng.random(), "parent_id": a % 7,
                 "action": "work", "status": {"happiness": rng.random(), "money": rng.randint(0, 999)}}
                for a in range(agents)]})
        container.agent_data.write_step(tenant, exp_id, ticks=batch, dialogs=[], surveys=[],
                                    profiles=profiles if start == 0 else None)
    return exp
