"""The Lambda functions of the simulation state machine (infra/simulation.asl.json)."""
from __future__ import annotations

import logging
import secrets
from typing import Any

from chalice import Blueprint

from chalicelib.domain.simulations import hash_token
from chalicelib.wiring import services
from chalicelib.workflows.launchers import ProcessLauncher

logger = logging.getLogger(__name__)
simulation_bp = Blueprint(__name__)


def _ids(event: dict[str, Any]) -> tuple[str, str]:
    return event["tenant_id"], event["experiment_id"]


@simulation_bp.lambda_function(name="prepare_simulation")
def prepare_simulation(event: dict[str, Any], context: Any) -> dict:
    return services().runtime.prepare(*_ids(event))


@simulation_bp.lambda_function(name="step_simulation")
def step_simulation(event: dict[str, Any], context: Any) -> dict:
    return services().runtime.step(*_ids(event))


@simulation_bp.lambda_function(name="launch_engine")
def launch_engine(event: dict[str, Any], context: Any) -> dict:
    """Park the task token, mint the engine's callback token, start the engine; the engine resumes the task."""
    tenant_id, experiment_id = _ids(event)
    wired = services()
    token = secrets.token_urlsafe(32)
    wired.controls.park(tenant_id, experiment_id, event["task_token"], hash_token(token))
    where = ProcessLauncher(wired.settings.public_api_url, wired.settings.engine_command).launch(experiment_id, token)
    wired.agent_data.append_log(tenant_id, experiment_id, [f"external engine started ({where})"])
    return {"launched": where}


@simulation_bp.lambda_function(name="bill_simulation")
def bill_simulation(event: dict[str, Any], context: Any) -> dict:
    """The billing seam: nothing is charged until the billing capability lands."""
    return {"billed": False}


@simulation_bp.lambda_function(name="finalize_simulation")
def finalize_simulation(event: dict[str, Any], context: Any) -> dict:
    run = event.get("run") or {}
    return services().runtime.finalize(*_ids(event), run.get("outcome"), event.get("error"))
