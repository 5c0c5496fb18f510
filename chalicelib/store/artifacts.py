"""Run artifacts: the objects in S3 under the run's prefix and their records in the run's partition.

An experiment's `artifact_location` is an `s3://<bucket>/tenants/<tenant>/...` prefix (Agora picks
`.../experiments/<id>/` unless the client chose another place in its own tenant's space); a run's
artifacts live under `<location>runs/<run>/artifacts/`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.domain.tracking.records import Artifact, Run
from chalicelib.domain.validation import check_relative_path
from chalicelib.store import keys
from chalicelib.store.expressions import SortRange

if TYPE_CHECKING:
    from chalicelib.store.dynamo import Table
    from chalicelib.store.objects import ObjectInfo, ObjectStore, UploadForm

MAX_LOCATION_LENGTH = 512
UPLOAD_GRACE_SECONDS = 86_400  # an expected upload is forgotten a day after its form expired


def _artifact(item: dict[str, Any]) -> Artifact:
    return Artifact(path=item["path"], size=int(item["size"]), last_modified=item["last_modified"],
                    checksum=item.get("checksum"))


@dataclass(frozen=True)
class ArtifactLayout:
    """Artifact locations as URIs (what clients see) and as object keys (what S3 holds)."""

    bucket: str

    def _uri(self, key_prefix: str) -> str:
        return f"s3://{self.bucket}/{key_prefix}"

    def key_prefix(self, uri: str) -> str:
        """The object-key prefix of a location URI of this bucket."""
        return uri.removeprefix(f"s3://{self.bucket}/")

    def experiment_location(self, tenant_id: str, experiment_id: str, requested: Optional[str]) -> str:
        """The experiment's location: Agora's default, or `requested` if it lies in the tenant's own space.

        A ValueError says why a requested location cannot be used.
        """
        if requested is None:
            return self._uri(keys.experiment_prefix(tenant_id, experiment_id))
        root = self._uri(keys.tenant_artifact_root(tenant_id))
        if not requested.startswith(root):
            raise ValueError(f"artifact_location must lie in this tenant's artifact space, {root}...; "
                             f"got {requested!r}")
        inside = requested[len(root):].rstrip("/")
        if not inside:
            raise ValueError(f"artifact_location must name a folder inside {root}, not the root itself")
        if len(requested) > MAX_LOCATION_LENGTH or any(ch < " " or ch == "\x7f" for ch in inside):
            raise ValueError(f"artifact_location must be a printable path of at most {MAX_LOCATION_LENGTH} "
                             "characters")
        check_relative_path(inside, "artifact_location")
        return f"{root}{inside}/"

    def run_location(self, experiment_location: str, run_id: str) -> str:
        return self._uri(keys.run_artifact_prefix(self.key_prefix(experiment_location), run_id))


@dataclass
class ArtifactStore:
    table: Table  # the runs table
    objects: ObjectStore
    layout: ArtifactLayout

    def _object_key(self, run: Run, path: str) -> str:
        return self.layout.key_prefix(run.artifact_uri) + path

    # records ------------------------------------------------------------------------------------
    def record(self, run: Run, artifact: Artifact) -> None:
        self.table.put({**keys.artifact_key(run.tenant_id, run.id, artifact.path), "kind": "artifact",
                        "path": artifact.path, "size": artifact.size, "last_modified": artifact.last_modified,
                        "checksum": artifact.checksum})

    def find(self, run: Run, path: str) -> Optional[Artifact]:
        item = self.table.get(keys.artifact_key(run.tenant_id, run.id, path))
        return _artifact(item) if item else None

    def records(self, run: Run) -> list[Artifact]:
        items = self.table.query(keys.run_pk(run.tenant_id, run.id), SortRange.prefix(keys.ARTIFACT_SK))
        return [_artifact(item) for item in items]

    # objects ------------------------------------------------------------------------------------
    def put_object(self, run: Run, path: str, data: bytes, content_type: str) -> ObjectInfo:
        return self.objects.put(self._object_key(run, path), data, content_type)

    def head_object(self, run: Run, path: str) -> Optional[ObjectInfo]:
        return self.objects.head(self._object_key(run, path))

    def download_url(self, run: Run, path: str) -> str:
        return self.objects.download_url(self._object_key(run, path), path.rsplit("/", 1)[-1])

    def upload_form(self, run: Run, path: str, content_type: str) -> UploadForm:
        """A presigned POST for the run's artifact `path`, noted as expected until a day after it expires."""
        form = self.objects.upload_form(self._object_key(run, path), content_type)
        self.table.put({**keys.expected_upload_key(run.tenant_id, run.id, path), "kind": "upload",
                        "object_key": self._object_key(run, path),
                        keys.TTL_ATTRIBUTE: int(time.time()) + form.expires_in + UPLOAD_GRACE_SECONDS})
        return form

    def expects(self, run: Run, object_key: str, path: str) -> bool:
        """Whether the run was given a presigned upload for exactly this object (S3's POST policy binds
        the key, but nothing here relies on S3 having enforced it)."""
        item = self.table.get(keys.expected_upload_key(run.tenant_id, run.id, path))
        return item is not None and item.get("object_key") == object_key

    def readings(self, object_key: str) -> list[tuple[str, str, str]]:
        """(tenant, run, path) readings of an uploaded object's key (see keys.parse_run_artifact_key)."""
        return keys.parse_run_artifact_key(object_key)

    def holds(self, run: Run, object_key: str, path: str) -> bool:
        """Whether `object_key` is exactly the run's artifact `path`."""
        return self._object_key(run, path) == object_key
