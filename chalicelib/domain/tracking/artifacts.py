"""Run artifacts: direct uploads, presigned uploads registered when they land, listing, downloads."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Optional

from chalicelib.domain import validation as rules
from chalicelib.domain.clock import iso
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.principals import TENANT_ID_PATTERN
from chalicelib.domain.tracking.records import Artifact, Run

if TYPE_CHECKING:
    from chalicelib.domain.tracking.runs import RunService
    from chalicelib.store.artifacts import ArtifactStore


MAX_ARTIFACT_PATH = 1024
_RECORD_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # run ids are lower-case ULIDs


def artifact_path(directory: Optional[str], filename: str) -> str:
    """Join the optional artifact directory and the file name, refusing anything that escapes the run."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    path = f"{directory.rstrip('/')}/{name}" if directory else name
    try:
        rules.check_relative_path(path, "artifact path")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    if len(path) > MAX_ARTIFACT_PATH:
        raise InvalidInput(f"artifact path is longer than {MAX_ARTIFACT_PATH} characters")
    return path


@dataclass
class ArtifactService:
    runs: RunService
    store: ArtifactStore  # the artifact records of runs and their objects in S3

    def upload(self, tenant_id: str, run_id: str, path: str, data: bytes, content_type: str) -> Artifact:
        return self.upload_to(self.runs.get(tenant_id, run_id), path, data, content_type)

    def upload_to(self, run: Run, path: str, data: bytes, content_type: str) -> Artifact:
        """`upload` to a run the caller has read already."""
        self.runs.check_writable(run)
        info = self.store.put_object(run, path, data, content_type)
        artifact = Artifact(path=path, size=info.size, last_modified=iso(info.last_modified_ms), checksum=info.checksum)
        self.store.record(run, artifact)
        return artifact

    def list_artifacts(self, tenant_id: str, run_id: str) -> list[Artifact]:
        return self.artifacts_of(self.runs.get(tenant_id, run_id))

    def artifacts_of(self, run: Run) -> list[Artifact]:
        return sorted(self.store.records(run), key=lambda a: a.path)

    def download_url(self, tenant_id: str, run_id: str, path: str) -> str:
        return self.download_url_of(self.runs.get(tenant_id, run_id), path)

    def download_url_of(self, run: Run, path: str) -> str:
        if self.store.find(run, path) is None:
            raise NotFound(f"run {run.id} has no artifact {path!r}")
        return self.store.download_url(run, path)

    def upload_form(self, tenant_id: str, run_id: str, path: str, content_type: str) -> dict:
        run = self.runs.require_writable(tenant_id, run_id)
        form = self.store.upload_form(run, path, content_type)
        expires = datetime.now(UTC) + timedelta(seconds=form.expires_in)
        return {"url": form.url, "fields": form.fields, "path": path,
                "expires_at": expires.isoformat(timespec="seconds")}

    def register_object(self, object_key: str) -> str:
        """Record an object that landed in S3; returns what was done, for the log. Never raises for bad keys.

        The key is untrusted: tenant and run are re-derived from it and must name an existing run of
        that tenant whose artifact prefix the key really has, and whose experiment is active
        (uploading to a run of a deleted experiment is refused through the API too, and a purged
        run has no RUN item left). Size and checksum come from S3 itself, not from the event. A
        repeated event finds the same record and writes nothing.
        """
        readings = self.store.readings(object_key)
        if not readings:
            return "ignored: outside the run artifact layout"
        outcome = "ignored: not a tenant or run id"
        for tenant_id, run_id, path in readings:
            if not TENANT_ID_PATTERN.match(tenant_id) or not _RECORD_ID.match(run_id):
                continue
            try:
                rules.check_relative_path(path)
            except ValueError:
                return "ignored: path escapes the run"
            if len(path) > MAX_ARTIFACT_PATH or any(ch < " " or ch == "\x7f" for ch in path):
                return "ignored: not a valid artifact path"
            run = self.runs.find(tenant_id, run_id)
            if run is None or not self.store.holds(run, object_key, path):
                outcome = "ignored: no such run for that tenant and experiment"
                continue
            return self._register(run, object_key, path)
        return outcome

    def _register(self, run: Run, object_key: str, path: str) -> str:
        if not self.runs.writable(run):
            return "ignored: the run's experiment is deleted"
        info = self.store.head_object(run, path)
        if info is None:
            return "ignored: object is gone"
        artifact = Artifact(path=path, size=info.size, last_modified=iso(info.last_modified_ms), checksum=info.checksum)
        if self.store.find(run, path) == artifact:
            return "already registered"
        if not self.store.expects(run, object_key, path):
            return "ignored: no presigned upload was given for this run and path"
        self.store.record(run, artifact)  # the form may be used again until it expires, as S3 allows
        return "registered"
