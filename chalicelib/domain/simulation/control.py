"""Following and controlling a launched simulation: status, log, stop, and the external engine's callback.

The engine's side is authenticated by its callback token (stored as a hash, compared in constant
time), never by a tenant key; the token dies with the run, whichever way the run ended.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from chalicelib.domain.clock import now_iso
from chalicelib.domain.errors import Conflict, Forbidden
from chalicelib.domain.ownership import Owners, not_found_or_forbidden
from chalicelib.domain.principals import PLATFORM
from chalicelib.domain.simulation.records import ERROR, RunControl, SimExperiment, SimStatus

if TYPE_CHECKING:
    from chalicelib.domain.simulation.launch import Orchestrator
    from chalicelib.store.agent_data import AgentDataStore
    from chalicelib.store.simulations import SimulationStore

STOPPED_ERROR = "Agora.Stopped"
ENGINE_ERROR = "Agora.EngineError"


def readable_experiment(store: SimulationStore, owners: Owners, tenant_id: str, experiment_id: str) -> SimExperiment:
    """The tenant's simulation, or the platform's (readable by everyone); 403/404 otherwise."""
    for owner in ([tenant_id] if tenant_id == PLATFORM else [tenant_id, PLATFORM]):
        exp = store.get_experiment(owner, experiment_id)
        if exp is not None:
            return exp
    raise not_found_or_forbidden(owners, tenant_id, experiment_id, "experiment", readable=(PLATFORM,))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class SimulationControl:
    store: SimulationStore
    owners: Owners
    agent_data: AgentDataStore
    orchestrator: Orchestrator

    def get(self, tenant_id: str, experiment_id: str) -> SimExperiment:
        """The caller's own simulation (runs are controlled only by their tenant)."""
        exp = self.store.get_experiment(tenant_id, experiment_id)
        if exp is None:
            raise not_found_or_forbidden(self.owners, tenant_id, experiment_id, "experiment")
        return exp

    def readable(self, tenant_id: str, experiment_id: str) -> SimExperiment:
        """The caller's simulation, or the platform's (which everyone may follow, as they may read it)."""
        return readable_experiment(self.store, self.owners, tenant_id, experiment_id)

    def stop(self, tenant_id: str, experiment_id: str) -> SimExperiment:
        exp = self.get(tenant_id, experiment_id)
        stopped = self.store.update_experiment(tenant_id, experiment_id, {"stop_requested": True,
                                                                          "updated_at": now_iso()})
        if stopped is None:
            raise Conflict(f"experiment {experiment_id} is not running (status {int(exp.status)}); nothing to stop")
        control = self.store.get_control(tenant_id, experiment_id)
        if control and control.task_token and not control.callback_used:
            # an external engine is parked on its task token: end the wait now rather than at its next
            # report, and revoke its callback token so it can neither report nor finish any more
            self.store.revoke_callback(tenant_id, experiment_id)
            self.orchestrator.fail(control.task_token, STOPPED_ERROR, "stopped by user")
        return stopped

    def status_words(self, tenant_id: str, experiment_id: str) -> str:
        """AgentSociety's UI vocabulary: "Running" while under way, "Failed" on error, "Terminated" after."""
        exp = self.readable(tenant_id, experiment_id)
        if exp.status == SimStatus.ERROR:
            return "Failed"
        if exp.status.ended:
            return "Terminated"
        state = self.orchestrator.describe(exp.execution_arn) if exp.execution_arn else "RUNNING"
        return {"RUNNING": "Running", "SUCCEEDED": "Terminated"}.get(state or "", "Failed")

    def log_text(self, tenant_id: str, experiment_id: str) -> str:
        exp = self.readable(tenant_id, experiment_id)
        return "\n".join(self.agent_data.log(exp.tenant_id, exp.id))

    # the engine's side ------------------------------------------------------------------------------
    def engine_experiment(self, experiment_id: str, token: Optional[str]) -> tuple[SimExperiment, RunControl]:
        """The simulation a callback token stands for; 403 for a wrong, spent or missing token."""
        tenant_id = self.owners.owner_of(experiment_id)
        exp = self.store.get_experiment(tenant_id, experiment_id) if tenant_id is not None else None
        control = self.store.get_control(tenant_id, experiment_id) if exp is not None and tenant_id is not None \
            else None
        if exp is None or not token or control is None or control.callback_token_hash is None \
                or control.callback_used or not hmac.compare_digest(hash_token(token), control.callback_token_hash):
            raise Forbidden("invalid, used or missing callback_auth_token")
        return exp, control

    def finish(self, experiment_id: str, token: Optional[str], outcome: str, error: str) -> None:
        exp, _ = self.engine_experiment(experiment_id, token)
        if exp.status.ended:  # e.g. its heartbeat timed out: there is no waiting task left to resume
            raise Conflict(f"experiment {experiment_id} already ended (status {int(exp.status)})")
        task_token = self.store.use_callback(exp.tenant_id, experiment_id, hash_token(token or ""))
        if task_token is None:
            raise Forbidden("invalid, used or missing callback_auth_token")
        if outcome == ERROR:
            message = error or "the engine reported an error"
            self.store.update_experiment(exp.tenant_id, experiment_id, {"error": message[:10_000]})
            self.orchestrator.fail(task_token, ENGINE_ERROR, message)
        else:
            self.orchestrator.succeed(task_token, {"done": True, "outcome": outcome})
