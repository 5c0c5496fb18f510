"""The Lambda functions of the simulation state machine (infra/simulation.asl.json): thin adapters to the domain."""
from __future__ import annotations

import secrets
from typing import Any

from chalice import Blueprint

from chalicelib.domain.simulation.control import hash_token
from chalicelib.observability import count
from chalicelib.wiring import Services, services
from chalicelib.workflows.launchers import EcsLauncher, EngineLauncher, ProcessLauncher

simulation_bp = Blueprint(__name__)


def _ids(event: dict[str, Any]) -> tuple[str, str]:
    return event["tenant_id"], event["experiment_id"]


@simulation_bp.lambda_function(name="prepare_simulation")
def prepare_simulation(event: dict[str, Any], context: Any) -> dict:
    return services().runtime.prepare(*_ids(event)).to_state()


@simulation_bp.lambda_function(name="advance_simulation")
def advance_simulation(event: dict[str, Any], context: Any) -> dict:
    return services().runtime.advance(*_ids(event)).to_state()


@simulation_bp.lambda_function(name="launch_engine")
def launch_engine(event: dict[str, Any], context: Any) -> dict:
    """Park the task token, mint the engine's callback token, start the engine; the engine resumes the task."""
    tenant_id, experiment_id = _ids(event)
    token = secrets.token_urlsafe(32)
    services().simulation_store.park(tenant_id, experiment_id, event["task_token"], hash_token(token))
    where = engine_launcher(services()).launch(experiment_id, token)
    services().agent_data.append_log(tenant_id, experiment_id, [f"external engine started ({where})"])
    return {"launched": where}


def engine_launcher(container: Services) -> EngineLauncher:
    """`AGORA_ENGINE_LAUNCHER`: "process" (local stack, tests) or "ecs" (a Fargate task in production)."""
    cfg = container.settings
    if cfg.engine_launcher == "ecs":
        if not (cfg.engine_cluster and cfg.engine_task_definition and cfg.engine_subnets):
            raise RuntimeError("AGORA_ENGINE_LAUNCHER=ecs needs AGORA_ENGINE_CLUSTER, AGORA_ENGINE_TASK_DEFINITION "
                               "and AGORA_ENGINE_SUBNETS")
        return EcsLauncher(container.client("ecs"), cfg.engine_cluster, cfg.engine_task_definition,
                           cfg.engine_container, list(cfg.engine_subnets), cfg.public_api_url,
                           list(cfg.engine_security_groups))
    return ProcessLauncher(cfg.public_api_url, cfg.engine_command)


@simulation_bp.lambda_function(name="bill_simulation")
def bill_simulation(event: dict[str, Any], context: Any) -> dict:
    """Bill the ended run once (FINISHED, STOPPED and ERROR alike); a retry or a second path bills nothing more."""
    summary = services().billing.bill_experiment(*_ids(event))
    if summary.get("billed"):  # a repeated bill step writes nothing and counts nothing
        count("BillsWritten", len(summary["bill_ids"]))
    return summary


@simulation_bp.lambda_function(name="finalize_simulation")
def finalize_simulation(event: dict[str, Any], context: Any) -> dict:
    run = event.get("run") or {}
    return services().runtime.finalize(*_ids(event), run.get("outcome"), event.get("error"))
