"""Registers artifacts uploaded straight to S3 (presigned POST) when EventBridge reports them."""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from chalice import Blueprint

from chalicelib.logs import module_logger
from chalicelib.store.keys import ARTIFACT_UPLOAD_PREFIX
from chalicelib.wiring import services

logger = module_logger(__name__)
uploads_bp = Blueprint(__name__)

# only run artifacts: maps, checkpoints and exports live under other prefixes and cost no invocation
OBJECT_CREATED = {"source": ["aws.s3"], "detail-type": ["Object Created"],
                  "detail": {"object": {"key": [{"prefix": ARTIFACT_UPLOAD_PREFIX}]}}}


@uploads_bp.on_cw_event(OBJECT_CREATED, name="register_artifact_upload")
def register_artifact_upload(event: Any) -> dict[str, Any]:
    """Untrusted input: the key is re-parsed and the run checked before anything is recorded."""
    detail = event.detail if isinstance(event.detail, dict) else {}
    bucket = (detail.get("bucket") or {}).get("name")
    raw_key = (detail.get("object") or {}).get("key")
    if bucket != services().settings.bucket:
        key, outcome = raw_key, "ignored: another bucket"
    elif not isinstance(raw_key, str) or not raw_key:
        key, outcome = raw_key, "ignored: no object key"
    else:
        attempts: list[tuple[str, str]] = []
        for candidate in object_keys(raw_key):
            attempts.append((candidate, services().artifacts.register_object(candidate)))
            if not attempts[-1][1].startswith("ignored"):
                break
        # report the key that was registered, else the one S3 has (its refusal says why), else the first
        key, outcome = next((a for a in attempts if not a[1].startswith("ignored")), None) \
            or next((a for a in attempts if a[1] != "ignored: object is gone"), attempts[0])
    logger.info("artifact upload %r in %r: %s", key, bucket, outcome)  # %r: a key may hold control characters
    return {"key": key, "outcome": outcome}


def object_keys(raw_key: str) -> list[str]:
    """The object keys an event's key may stand for, most likely first.

    S3 reports keys URL-encoded, a space as '+' ("red flower.jpg" -> "red+flower.jpg"), so the
    decoded key comes first; the key as sent is tried next, so that an unencoded key holding a
    literal '+' or '%' is still found. Each one is checked on its own against S3 and the tables, so
    trying both can register only an object that exists under a valid key.
    """
    decoded = unquote_plus(raw_key)
    return [decoded] if decoded == raw_key else [decoded, raw_key]
