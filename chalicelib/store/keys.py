"""Every DynamoDB key and S3 key Agora writes, built here and nowhere else; the tenant id leads each of them.

Stores call these builders and readers; the domain never sees a prefix. Sort-key prefixes are
words (`PARAM#`, `TAG#`), never the one letter that the tenant prefix `T#` could be confused with.
"""
from __future__ import annotations

PLATFORM_FOLDER = "_platform"  # the platform's (tenant "") folder in S3 layouts


def _folder(tenant_id: str) -> str:
    return tenant_id or PLATFORM_FOLDER


def tenant_pk(tenant_id: str) -> str:
    return f"T#{tenant_id}"


# --- experiments table ------------------------------------------------------------------------------
EXPERIMENT_SK = "EXP#"


def experiment_key(tenant_id: str, experiment_id: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": f"{EXPERIMENT_SK}{experiment_id}"}


def experiment_tags_prefix(experiment_id: str) -> str:
    return f"{EXPERIMENT_SK}{experiment_id}#TAGS#"


def experiment_tags_key(tenant_id: str, experiment_id: str, page: int) -> dict[str, str]:
    """A page of an experiment's tags, sorting right after the experiment's own item."""
    return {"pk": tenant_pk(tenant_id), "sk": f"{experiment_tags_prefix(experiment_id)}{page:03d}"}


def experiment_of_tags_sk(sk: str) -> str:
    return sk[len(EXPERIMENT_SK):].split("#", 1)[0]


def experiment_name_key(tenant_id: str, name: str) -> dict[str, str]:
    """Guard item that makes active names unique per tenant, case-insensitively."""
    return {"pk": tenant_pk(tenant_id), "sk": f"NAME#{name.casefold()}"}


# --- runs table: a run's partition holds its run item, params, tags, latest values and artifacts --------
RUN_SK = "RUN"
ARTIFACT_SK = "ARTIFACT#"
LATEST_SK = "LATEST#"
PARAM_SK = "PARAM#"
TAG_SK = "TAG#"
UPLOAD_SK = "UPLOAD#"  # a presigned upload the run expects (registered when it lands, else expired by TTL)
RUN_ITEMS_FROM = LATEST_SK  # "ARTIFACT#" < "LATEST#" < "PARAM#" < "RUN" < "TAG#": from here on, all but artifacts
RUN_ITEM_KINDS = {ARTIFACT_SK: "artifact", LATEST_SK: "latest", PARAM_SK: "param", TAG_SK: "tag",
                  UPLOAD_SK: "upload"}
TTL_ATTRIBUTE = "expires_at"  # epoch seconds; the tables' TimeToLiveSpecification names it
BY_EXPERIMENT = "by_experiment"  # the index listing every item of every run of an experiment
AFTER_RUN = "$"  # sorts right after '#': `<run>$` is past every `<run>#...` index key of that run


def run_pk(tenant_id: str, run_id: str) -> str:
    return f"T#{tenant_id}#R#{run_id}"


def run_key(tenant_id: str, run_id: str) -> dict[str, str]:
    return {"pk": run_pk(tenant_id, run_id), "sk": RUN_SK}


def run_id_of(pk: str) -> str:
    return pk.rsplit("#R#", 1)[-1]


def param_key(tenant_id: str, run_id: str, key: str) -> dict[str, str]:
    return {"pk": run_pk(tenant_id, run_id), "sk": PARAM_SK + key}


def tag_key(tenant_id: str, run_id: str, key: str) -> dict[str, str]:
    return {"pk": run_pk(tenant_id, run_id), "sk": TAG_SK + key}


def latest_key(tenant_id: str, run_id: str, key: str) -> dict[str, str]:
    return {"pk": run_pk(tenant_id, run_id), "sk": LATEST_SK + key}


def artifact_key(tenant_id: str, run_id: str, path: str) -> dict[str, str]:
    return {"pk": run_pk(tenant_id, run_id), "sk": ARTIFACT_SK + path}


def expected_upload_key(tenant_id: str, run_id: str, path: str) -> dict[str, str]:
    return {"pk": run_pk(tenant_id, run_id), "sk": UPLOAD_SK + path}


def run_item_kind(sk: str) -> str:
    """What an item of a run partition is: "run", "param", "tag", "latest", "artifact" (or "other")."""
    if sk == RUN_SK:
        return "run"
    return next((kind for prefix, kind in RUN_ITEM_KINDS.items() if sk.startswith(prefix)), "other")


def runs_of_experiment_pk(tenant_id: str, experiment_id: str) -> str:
    return f"T#{tenant_id}#E#{experiment_id}"


def run_index_keys(tenant_id: str, experiment_id: str, run_id: str, sk: str) -> dict[str, str]:
    """The `by_experiment` index attributes of an item of a run: the run's items stay together, by run id."""
    return {"gsi1pk": runs_of_experiment_pk(tenant_id, experiment_id), "gsi1sk": f"{run_id}#{sk}"}


RUNS_OF_EXPERIMENT = "runs_of_experiment"  # the index of run items only: ids and status, to page through


def run_only_index_keys(tenant_id: str, experiment_id: str, run_id: str) -> dict[str, str]:
    """The `runs_of_experiment` index attributes, which only a run's RUN item carries."""
    return {"gsi2pk": runs_of_experiment_pk(tenant_id, experiment_id), "gsi2sk": run_id}


def run_of_index_sk(gsi1sk: str) -> str:
    return gsi1sk.split("#", 1)[0]


def runs_after_index_sk(run_id: str) -> str:
    """The first index sort key past every item of `run_id`."""
    return run_id + AFTER_RUN


# --- metrics table: chunks of one (run, key) series ----------------------------------------------
_STEP_OFFSET = 2**63


MIN_STEP, MAX_STEP = -(2**63), 2**63 - 1


def metric_pk(tenant_id: str, run_id: str, key: str) -> str:
    """The points of a series' larger chunks."""
    return f"T#{tenant_id}#R#{run_id}#M#{key}"


def metric_catalog_pk(tenant_id: str, run_id: str, key: str) -> str:
    """One entry per chunk of a series (metric keys never hold '#')."""
    return f"{metric_pk(tenant_id, run_id, key)}#C"


def metric_fine_pk(tenant_id: str, run_id: str, key: str) -> str:
    """The fine summaries of a series' larger chunks."""
    return f"{metric_pk(tenant_id, run_id, key)}#F"


def metric_partitions(tenant_id: str, run_id: str, key: str) -> tuple[str, ...]:
    """Every partition of a series, the catalog last (deleted together; a purge that stops half way
    empties the others first)."""
    return (metric_pk(tenant_id, run_id, key), metric_fine_pk(tenant_id, run_id, key),
            metric_catalog_pk(tenant_id, run_id, key))


def encode_step(step: int) -> str:
    """Steps are signed 64-bit (clamped there); shifted and zero-padded they sort as strings."""
    return f"{max(MIN_STEP, min(MAX_STEP, step)) + _STEP_OFFSET:020d}"


def metric_chunk_sk(max_step: int, min_step: int, digest: str) -> str:
    """Sorted by the chunk's last step, so "chunks that reach step s" is one key range."""
    return f"{encode_step(max_step)}#{encode_step(min_step)}#{digest}"


def chunks_reaching(step: int) -> str:
    """The first chunk sort key whose last step is `step` or later."""
    return encode_step(step)


def chunks_ending_by(step: int) -> str:
    """Past the last chunk sort key whose last step is `step` or earlier ('~' sorts after every digit)."""
    return encode_step(step) + "#~"


# --- directory table: API keys, owners of ids, system items --------------------------------------------
def api_key_key(key_hash: str) -> dict[str, str]:
    return {"pk": f"KEY#{key_hash}", "sk": "KEY"}


def owner_key(resource_id: str) -> dict[str, str]:
    """Who owns an id: lets a miss answer 403 (another tenant's) or 404 (nobody's)."""
    return {"pk": f"ID#{resource_id}", "sk": "OWNER"}


PURGE_CURSOR_KEY = {"pk": "SYS#PURGE", "sk": "CURSOR"}


# --- simulations table: configs, simulations, their control items, accounts and bills --------------
def config_prefix(kind: str) -> str:
    return f"CFG#{kind}#"


def config_key(tenant_id: str, kind: str, config_id: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": config_prefix(kind) + config_id}


SIMULATION_SK = "SIM#"


def simulation_key(tenant_id: str, experiment_id: str) -> dict[str, str]:
    return {"pk": tenant_pk(tenant_id), "sk": SIMULATION_SK + experiment_id}


def simulation_control_key(tenant_id: str, experiment_id: str) -> dict[str, str]:
    """Run control of a simulation: callback token hash, parked task token, sealed LLM keys."""
    return {"pk": tenant_pk(tenant_id), "sk": f"SIMCTL#{experiment_id}"}


def account_key(tenant_id: str) -> dict[str, str]:
    """A tenant's account: its balance (Decimal, CNY), beside its simulations in the simulations table."""
    return {"pk": tenant_pk(tenant_id), "sk": "ACCOUNT"}


BILL_SK = "BILL#"


def bill_key(tenant_id: str, bill_id: str) -> dict[str, str]:
    """One bill line; bill ids are ULIDs, so the lines of a tenant sort by creation time."""
    return {"pk": tenant_pk(tenant_id), "sk": BILL_SK + bill_id}


def experiment_billed_key(tenant_id: str, experiment_id: str) -> dict[str, str]:
    """Guard item: a simulation is billed once; written in the same transaction as its bill lines."""
    return {"pk": tenant_pk(tenant_id), "sk": f"BILLED#{experiment_id}"}


def recharge_request_key(tenant_id: str, request_id: str) -> dict[str, str]:
    """Guard item: a recharge with an idempotency key credits once."""
    return {"pk": tenant_pk(tenant_id), "sk": f"RECHARGE#{request_id}"}


# --- agent data table: per-instant and per-agent data of a simulation --------------------------------
TICK_SK = "TICK#"
PROFILE_SK = "PROFILE#"
INBOX_SK = "INBOX#"
LOG_SK = "LOG"
AGENT_STATUS_SK = "ST#"
AGENT_DIALOG_SK = "DLG#"
AGENT_SURVEY_SK = "SRV#"


def simulation_pk(tenant_id: str, experiment_id: str) -> str:
    """Partition of one simulation's per-instant data: ticks, profiles, log."""
    return f"T#{tenant_id}#X#{experiment_id}"


def inbox_pk(tenant_id: str, experiment_id: str) -> str:
    """Messages and surveys queued for running agents: apart, so reading them never touches the ticks."""
    return f"T#{tenant_id}#X#{experiment_id}#INBOX"


def agent_pk(tenant_id: str, experiment_id: str, agent_id: int) -> str:
    """Partition of one agent's history: status chunks, dialogs, survey answers."""
    return f"T#{tenant_id}#X#{experiment_id}#A#{agent_id}"


def _instant(day: int, t: float) -> str:
    return f"{day:06d}#{t:012.3f}"


def tick_key(tenant_id: str, experiment_id: str, day: int, t: float) -> dict[str, str]:
    return {"pk": simulation_pk(tenant_id, experiment_id), "sk": TICK_SK + _instant(day, t)}


def profile_key(tenant_id: str, experiment_id: str, agent_id: int) -> dict[str, str]:
    return {"pk": simulation_pk(tenant_id, experiment_id), "sk": f"{PROFILE_SK}{agent_id:08d}"}


def log_key(tenant_id: str, experiment_id: str) -> dict[str, str]:
    """The run's log as one item (the layout before log entries; still read)."""
    return {"pk": simulation_pk(tenant_id, experiment_id), "sk": LOG_SK}


def log_entry_key(tenant_id: str, experiment_id: str, entry_id: str) -> dict[str, str]:
    """Lines appended to the run's log at once; entry ids are ULIDs, so entries sort after `log_key` in time order."""
    return {"pk": simulation_pk(tenant_id, experiment_id), "sk": f"{LOG_SK}#{entry_id}"}


def inbox_key(tenant_id: str, experiment_id: str, message_id: str) -> dict[str, str]:
    return {"pk": inbox_pk(tenant_id, experiment_id), "sk": INBOX_SK + message_id}


def agent_statuses_key(tenant_id: str, experiment_id: str, agent_id: int, day: int, t: float,
                       part: str = "") -> dict[str, str]:
    """One agent's statuses, dialogs and survey answers of one step, keyed by the step's first instant;
    `part` names what did not fit in that item (or a step without instants), sorted right after it."""
    return {"pk": agent_pk(tenant_id, experiment_id, agent_id),
            "sk": AGENT_STATUS_SK + _instant(day, t) + (f"#{part}" if part else "")}


def agent_event_key(tenant_id: str, experiment_id: str, agent_id: int, prefix: str, day: int, t: float,
                    seq: int) -> dict[str, str]:
    """A dialog or survey answer of one agent: the `seq`-th one at that instant (the layout before they
    went into the agent's step items; still read)."""
    return {"pk": agent_pk(tenant_id, experiment_id, agent_id), "sk": f"{prefix}{_instant(day, t)}#{seq:06d}"}


# --- S3 ------------------------------------------------------------------------------------------------
ARTIFACT_UPLOAD_PREFIX = "tenants/"  # the EventBridge rule for uploads matches only keys under it


def tenant_artifact_root(tenant_id: str) -> str:
    """Everything under here is the tenant's artifact space; an experiment may put its artifacts anywhere in it."""
    return f"tenants/{tenant_id}/"


def experiment_prefix(tenant_id: str, experiment_id: str) -> str:
    """Where an experiment's artifacts go unless it was created with an `artifact_location` of its own."""
    return f"{tenant_artifact_root(tenant_id)}experiments/{experiment_id}/"


def run_artifact_prefix(experiment_location_prefix: str, run_id: str) -> str:
    """A run's artifacts, under its experiment's artifact location."""
    return f"{experiment_location_prefix}runs/{run_id}/artifacts/"


def parse_run_artifact_key(object_key: str) -> list[tuple[str, str, str]]:
    """The (tenant, run, path) an object key may stand for: `tenants/<tenant>/.../runs/<run>/artifacts/<path>`.

    An experiment's location may itself contain `runs/<x>/artifacts/`, so every reading is returned,
    the last one first; the caller keeps the one whose run really has that prefix.
    """
    parts = object_key.split("/")
    if len(parts) < 6 or parts[0] != "tenants" or not parts[1]:
        return []
    found = []
    for i in range(2, len(parts) - 3):
        if parts[i] == "runs" and parts[i + 2] == "artifacts" and parts[i + 1] and all(parts[i + 3:]):
            found.append((parts[1], parts[i + 1], "/".join(parts[i + 3:])))
    return found[::-1]


def simulation_prefix(tenant_id: str, experiment_id: str) -> str:
    """Internal objects of a simulation; outside `tenants/` so the artifact upload rule never sees them."""
    return f"simulations/{_folder(tenant_id)}/{experiment_id}/"


def simulation_spec_key(tenant_id: str, experiment_id: str) -> str:
    return simulation_prefix(tenant_id, experiment_id) + "spec.json"


def simulation_checkpoint_key(tenant_id: str, experiment_id: str) -> str:
    return simulation_prefix(tenant_id, experiment_id) + "checkpoint.bin"


def simulation_artifacts_key(tenant_id: str, experiment_id: str) -> str:
    return simulation_prefix(tenant_id, experiment_id) + "artifacts.json"


def tick_statuses_object_key(tenant_id: str, experiment_id: str, day: int, t: float) -> str:
    """Every agent's status at one instant, when too large for its tick item."""
    return f"{simulation_prefix(tenant_id, experiment_id)}ticks/{TICK_SK}{_instant(day, t)}.json.z"


def map_file_prefix(tenant_id: str) -> str:
    """Where a tenant's map files live (AgentSociety's `maps/<tenant>/`); platform maps use `_platform`."""
    return f"maps/{_folder(tenant_id)}/"


def map_file_key(tenant_id: str, name: str) -> str:
    return map_file_prefix(tenant_id) + name


def agent_profile_file_prefix(tenant_id: str) -> str:
    """Where a tenant's agent profile files live (AgentSociety's `agent_profiles/<tenant>/`)."""
    return f"agent_profiles/{_folder(tenant_id)}/"


def agent_profile_file_key(tenant_id: str, file_id: str) -> str:
    return f"{agent_profile_file_prefix(tenant_id)}{file_id}.json"


def export_prefix(tenant_id: str, experiment_id: str) -> str:
    """Export archives; a bucket lifecycle rule expires everything under `exports/`."""
    return f"exports/{_folder(tenant_id)}/{experiment_id}/"


def export_key(tenant_id: str, experiment_id: str, export_id: str) -> str:
    return f"{export_prefix(tenant_id, experiment_id)}{export_id}.zip"


def simulation_object_prefixes(tenant_id: str, experiment_id: str) -> tuple[str, ...]:
    """Every S3 prefix holding objects of one simulation (deleted with it)."""
    return simulation_prefix(tenant_id, experiment_id), export_prefix(tenant_id, experiment_id)
