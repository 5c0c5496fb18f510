"""Run artifacts: the objects in S3 under the run's prefix and their records in the run's partition."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.domain.tracking.records import Artifact, Run
from chalicelib.store import keys
from chalicelib.store.dynamo import SortRange, Table

if TYPE_CHECKING:
    from chalicelib.store.objects import ObjectInfo, ObjectStore, UploadForm


def _artifact(item: dict[str, Any]) -> Artifact:
    return Artifact(path=item["path"], size=int(item["size"]), last_modified=item["last_modified"],
                    checksum=item.get("checksum"))


@dataclass
class ArtifactStore:
    table: Table  # the runs table
    objects: ObjectStore

    @staticmethod
    def _object_key(run: Run, path: str) -> str:
        return keys.run_artifact_key(run.tenant_id, run.experiment_id, run.id, path)

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
        return self.objects.upload_form(self._object_key(run, path), content_type)

    @staticmethod
    def parse_object_key(object_key: str) -> Optional[tuple[str, str, str, str]]:
        """(tenant, experiment, run, path) of an object in the run artifact layout, else None."""
        return keys.parse_run_artifact_key(object_key)
