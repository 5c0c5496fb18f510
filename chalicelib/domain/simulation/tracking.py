"""A simulation's environment metrics live in a tracking run of its own: this is that run, seen from a simulation.

Every tenant's simulations log into one tracking experiment named `simulations` (created on first
use), so history, compare and exports read the same chunks as the tracking API.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from chalicelib.domain.errors import AgoraError, Throttled, Unavailable
from chalicelib.domain.tracking.models import MetricIn, RunCreate
from chalicelib.logs import module_logger

if TYPE_CHECKING:
    from chalicelib.domain.tracking.experiments import ExperimentService
    from chalicelib.domain.tracking.metrics import MetricPoint
    from chalicelib.domain.tracking.runs import RunService

logger = module_logger(__name__)
SIMULATIONS_EXPERIMENT = "simulations"
SIMULATION_TAG = "agora.simulation_id"


@dataclass
class SimulationTracking:
    experiments: ExperimentService
    runs: RunService

    def open_run(self, tenant_id: str, simulation_id: str, name: str) -> str:
        """A new run in the tenant's `simulations` experiment; returns its id."""
        exp = self.experiments.ensure(tenant_id, SIMULATIONS_EXPERIMENT,
                                      "Environment metrics of agent-society simulations")
        run = self.runs.create(tenant_id, RunCreate(experiment_id=exp.id, name=name[:255],
                                                    tags={SIMULATION_TAG: simulation_id}))
        return run.id

    def log(self, tenant_id: str, run_id: str, metrics: Sequence[MetricIn], simulation_id: str) -> None:
        """Log metrics. A run the user made unwritable (deleted its `simulations` experiment) never stops the
        simulation; a passing failure of the store does (it is raised, and the step is retried)."""
        try:
            self.runs.log(tenant_id, run_id, metrics=metrics)
        except (Throttled, Unavailable):
            raise
        except AgoraError as exc:
            logger.warning("metrics of simulation %s not logged: %s", simulation_id, exc.detail)

    def end(self, tenant_id: str, run_id: str, status: str, simulation_id: str) -> None:
        try:
            self.runs.end(tenant_id, run_id, status)
        except (Throttled, Unavailable):
            raise
        except AgoraError as exc:
            logger.warning("tracking run of simulation %s not ended: %s", simulation_id, exc.detail)

    def series(self, tenant_id: str, run_id: str) -> dict[str, list[MetricPoint]]:
        return self.runs.history(tenant_id, run_id)

    def discard(self, tenant_id: str, run_id: str) -> int:
        """Remove the run for good (a failed launch, a deleted simulation); returns the items removed."""
        return self.runs.remove(tenant_id, run_id)
