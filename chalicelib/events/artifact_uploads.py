"""Registers artifacts uploaded straight to S3 (presigned POST) when EventBridge reports them."""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_plus

from chalice import Blueprint

from chalicelib.store.keys import ARTIFACT_UPLOAD_PREFIX
from chalicelib.wiring import services

logger = logging.getLogger(__name__)
uploads_bp = Blueprint(__name__)

# only run artifacts: maps, checkpoints and exports live under other prefixes and cost no invocation
OBJECT_CREATED = {"source": ["aws.s3"], "detail-type": ["Object Created"],
                  "detail": {"object": {"key": [{"prefix": ARTIFACT_UPLOAD_PREFIX}]}}}


@uploads_bp.on_cw_event(OBJECT_CREATED, name="register_artifact_upload")
def register_artifact_upload(event: Any) -> dict[str, str]:
    """Untrusted input: the key is re-parsed and the run checked before anything is recorded."""
    detail = event.detail or {}
    bucket = (detail.get("bucket") or {}).get("name")
    key = unquote_plus((detail.get("object") or {}).get("key", ""))
    wired = services()
    if bucket != wired.settings.bucket:
        outcome = "ignored: another bucket"
    else:
        outcome = wired.artifacts.register_object(key)
    logger.info("artifact upload %s: %s", key, outcome)
    return {"key": key, "outcome": outcome}
