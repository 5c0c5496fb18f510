"""Deleting a simulation with everything it produced; a running one must be stopped first (409)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chalicelib.domain.principals import Principal
    from chalicelib.domain.simulation.tracking import SimulationTracking
    from chalicelib.domain.simulation.views import SimulationViews
    from chalicelib.store.agent_data import AgentDataStore
    from chalicelib.store.sim_objects import SimulationObjects
    from chalicelib.store.simulations import SimulationStore


@dataclass
class SimulationDeletion:
    views: SimulationViews
    store: SimulationStore
    agent_data: AgentDataStore
    objects: SimulationObjects
    tracking: SimulationTracking

    def delete(self, principal: Principal, experiment_id: str) -> dict:
        """Remove data first and the experiment item last, so an interrupted delete can simply be repeated."""
        exp = self.views.require_deletable(principal, experiment_id)
        agent_ids = [int(p["id"]) for p in self.agent_data.profiles(exp.tenant_id, exp.id)]
        removed = {"items": self.agent_data.delete_all(exp.tenant_id, exp.id, agent_ids),
                   "objects": self.objects.delete_all(exp.tenant_id, exp.id)}
        removed["items"] += self.tracking.discard(exp.tenant_id, exp.tracking_run_id)
        self.store.delete_experiment(exp.tenant_id, exp.id)
        return removed
