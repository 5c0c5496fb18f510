"""Deleting a simulation with everything it produced; a running one must be stopped first (409)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.domain.records import Principal
    from chalicelib.domain.sim_views import SimulationViews
    from chalicelib.store.agent_data import AgentDataStore
    from chalicelib.store.metric_chunks import MetricChunkStore
    from chalicelib.store.objects import ObjectStore
    from chalicelib.store.runs import RunStore
    from chalicelib.store.simulations import ControlStore, SimulationStore


@dataclass
class SimulationDeletion:
    views: SimulationViews
    store: SimulationStore
    controls: ControlStore
    agent_data: AgentDataStore
    run_store: RunStore
    chunks: MetricChunkStore
    objects: ObjectStore
    prefixes: "list"  # functions (tenant, experiment) -> S3 prefixes holding the simulation's objects

    def delete(self, principal: Principal, experiment_id: str) -> dict:
        """Remove data first and the experiment item last, so an interrupted delete can simply be repeated."""
        exp = self.views.require_deletable(principal, experiment_id)
        agent_ids = [int(p["id"]) for p in self.agent_data.profiles(exp.tenant_id, exp.id)]
        removed = {"items": self.agent_data.delete_all(exp.tenant_id, exp.id, agent_ids), "objects": 0}
        for prefix in self.prefixes:
            removed["objects"] += self.objects.delete_prefix(prefix(exp.tenant_id, exp.id))
        for key in self.run_store.remove(exp.tenant_id, exp.tracking_run_id):
            removed["items"] += self.chunks.remove(exp.tenant_id, exp.tracking_run_id, key)
        self.controls.delete(exp.tenant_id, exp.id)
        self.store.delete_experiment(exp.tenant_id, exp.id)
        return removed
