"""Every DynamoDB and S3 key Agora writes, built in one place; the tenant id leads each of them."""
from __future__ import annotations


def tenant_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}"


def experiment_key(tenant_id: str, experiment_id: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": f"EXP#{experiment_id}"}


def experiment_name_key(tenant_id: str, name: str) -> dict[str, str]:
    """Guard item that makes active names unique per tenant, case-insensitively."""
    return {"pk": tenant_pk(tenant_id), "sk": f"NAME#{name.casefold()}"}


def run_pk(tenant_id: str, run_id: str) -> str:
    return f"T#{tenant_id}#R#{run_id}"


def run_key(tenant_id: str, run_id: str) -> dict[str, str]:
    return {"pk": run_pk(tenant_id, run_id), "sk": "RUN"}


def artifact_key(tenant_id: str, run_id: str, path: str) -> dict[str, str]:
    return {"pk": run_pk(tenant_id, run_id), "sk": f"A#{path}"}


def runs_of_experiment_pk(tenant_id: str, experiment_id: str) -> str:
    return f"T#{tenant_id}#E#{experiment_id}"


def metric_pk(tenant_id: str, run_id: str, key: str) -> str:
    return f"T#{tenant_id}#R#{run_id}#M#{key}"


_STEP_OFFSET = 2**63


def encode_step(step: int) -> str:
    """Steps are signed 64-bit; shifted and zero-padded they sort as strings."""
    return f"{step + _STEP_OFFSET:020d}"


def metric_chunk_sk(max_step: int, min_step: int, digest: str) -> str:
    """Sorted by the chunk's last step, so "chunks that reach step s" is one key range."""
    return f"{encode_step(max_step)}#{encode_step(min_step)}#{digest}"


def api_key_key(key_hash: str) -> dict[str, str]:
    return {"pk": f"KEY#{key_hash}", "sk": "KEY"}


def owner_key(resource_id: str) -> dict[str, str]:
    """Who owns an id: lets a miss answer 403 (another tenant's) or 404 (nobody's)."""
    return {"pk": f"ID#{resource_id}", "sk": "OWNER"}


def experiment_prefix(tenant_id: str, experiment_id: str) -> str:
    return f"tenants/{tenant_id}/experiments/{experiment_id}/"


def run_artifact_prefix(tenant_id: str, experiment_id: str, run_id: str) -> str:
    return f"{experiment_prefix(tenant_id, experiment_id)}runs/{run_id}/artifacts/"


def run_artifact_key(tenant_id: str, experiment_id: str, run_id: str, path: str) -> str:
    return run_artifact_prefix(tenant_id, experiment_id, run_id) + path


def parse_run_artifact_key(object_key: str) -> tuple[str, str, str, str] | None:
    """(tenant, experiment, run, path) of an object in the run artifact layout, else None."""
    parts = object_key.split("/", 7)
    if len(parts) != 8 or parts[0] != "tenants" or parts[2] != "experiments" or parts[4] != "runs" \
            or parts[6] != "artifacts" or not all(parts[1:8:2]) or not parts[7]:
        return None
    return parts[1], parts[3], parts[5], parts[7]


def config_key(tenant_id: str, kind: str, config_id: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": f"CFG#{kind}#{config_id}"}


def simulation_key(tenant_id: str, experiment_id: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": f"SIM#{experiment_id}"}


def simulation_pk(tenant_id: str, experiment_id: str) -> str:
    """Partition of one simulation's per-instant data: ticks, profiles, inbox, log."""
    return f"T#{tenant_id}#X#{experiment_id}"


def inbox_pk(tenant_id: str, experiment_id: str) -> str:
    """Messages and surveys queued for running agents: apart, so reading them never touches the ticks."""
    return f"T#{tenant_id}#X#{experiment_id}#INBOX"


def agent_pk(tenant_id: str, experiment_id: str, agent_id: int) -> str:
    """Partition of one agent's history: status chunks, dialogs, survey answers."""
    return f"T#{tenant_id}#X#{experiment_id}#A#{agent_id}"


def instant_sk(prefix: str, day: int, t: float) -> str:
    return f"{prefix}#{day:06d}#{t:012.3f}"


def simulation_prefix(tenant_id: str, experiment_id: str) -> str:
    """Internal objects of a simulation; outside `tenants/` so the artifact upload rule never sees them."""
    return f"simulations/{tenant_id or '_platform'}/{experiment_id}/"


def map_file_prefix(tenant_id: str) -> str:
    """Where a tenant's map files live (AgentSociety's `maps/<tenant>/`); platform maps use `_platform`."""
    return f"maps/{tenant_id or '_platform'}/"


ARTIFACT_UPLOAD_PREFIX = "tenants/"  # the EventBridge rule for uploads matches only keys under it


def simulation_control_key(tenant_id: str, experiment_id: str) -> dict[str, str]:
    """Run control of a simulation: callback token hash, parked task token, sealed LLM keys."""
    return {"pk": tenant_pk(tenant_id), "sk": f"SIMCTL#{experiment_id}"}


def export_prefix(tenant_id: str, experiment_id: str) -> str:
    """Export archives; a bucket lifecycle rule expires everything under `exports/`."""
    return f"exports/{tenant_id or '_platform'}/{experiment_id}/"


def account_key(tenant_id: str) -> dict[str, str]:
    """A tenant's account: its balance (Decimal, CNY), beside its simulations in the simulations table."""
    return {"pk": tenant_pk(tenant_id), "sk": "ACCOUNT"}


BILL_SK_PREFIX = "BILL#"


def bill_key(tenant_id: str, bill_id: str) -> dict[str, str]:
    """One bill line; bill ids are ULIDs, so the lines of a tenant sort by creation time."""
    return {"pk": tenant_pk(tenant_id), "sk": f"{BILL_SK_PREFIX}{bill_id}"}


def experiment_billed_key(tenant_id: str, experiment_id: str) -> dict[str, str]:
    """Guard item: a simulation is billed once; written in the same transaction as its bill lines."""
    return {"pk": tenant_pk(tenant_id), "sk": f"BILLED#{experiment_id}"}


def recharge_request_key(tenant_id: str, request_id: str) -> dict[str, str]:
    """Guard item: a recharge with an idempotency key credits once."""
    return {"pk": tenant_pk(tenant_id), "sk": f"RECHARGE#{request_id}"}
