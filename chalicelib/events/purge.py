"""The daily purge of archived experiments: a thin scheduled handler over `chalicelib.domain.purge`.

Scheduled invocations carry EventBridge's own event. An operator may invoke the function by hand
with `{"max_deletes": N}` to change this one invocation's deletion budget.
"""
from __future__ import annotations

from typing import Any, Optional

from chalice import Blueprint, Cron

from chalicelib.observability import count, logger
from chalicelib.wiring import services

purge_bp = Blueprint(__name__)


@purge_bp.schedule(Cron(17, 3, "*", "*", "?", "*"), name="purge_archived_experiments")  # daily, 03:17 UTC
def purge_archived_experiments(event: Any) -> dict[str, Any]:
    remaining = getattr(event.context, "get_remaining_time_in_millis", None)
    report = services().purge.run(remaining_ms=remaining, max_deletes=_max_deletes(event.to_dict()))
    logger.info("purge report", extra={"report": report})
    count("ExperimentsPurged", len(report["experiments_purged"]))
    count("ItemsDeleted", report["items_deleted"])
    count("ObjectsDeleted", report["objects_deleted"])
    return report


def _max_deletes(payload: dict[str, Any]) -> Optional[int]:
    value = payload.get("max_deletes")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_deletes must be a positive whole number, got {value!r}")
    return value

