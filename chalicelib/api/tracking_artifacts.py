"""Tracking API: run artifacts, direct (multipart) and presigned uploads, listing, downloads."""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.http import MULTIPART, Api, Query, Request, redirect
from chalicelib.domain import validation as rules
from chalicelib.domain.tracking.artifacts import MAX_ARTIFACT_PATH, artifact_path
from chalicelib.domain.tracking.models import ArtifactUploadRequest
from chalicelib.wiring import services

if TYPE_CHECKING:
    from chalice import Response

api = Api(__name__)
artifacts_bp = api.blueprint
RUNS = "/api/v1/experiments/runs"
# A Lambda proxy request is at most 6 MB and a binary body arrives base64-encoded (4/3 larger)
MAX_DIRECT_UPLOAD_BYTES = 4 * 1024 * 1024


@api.route(RUNS + "/{run_id}/log-artifact", ("POST",), content_types=(MULTIPART,),
           query=(Query("artifact_path", pattern=rules.FOLDER_PATTERN, max_length=MAX_ARTIFACT_PATH,
                        description="the folder of the run's artifacts to put the file in"),))
def log_artifact(request: Request, run_id: str) -> dict:
    filename, data, content_type = request.multipart_file("file", MAX_DIRECT_UPLOAD_BYTES)
    path = artifact_path(request.query("artifact_path"), filename)
    return services().artifacts.upload(request.tenant_id, run_id, path, data, content_type).to_json()


@api.route(RUNS + "/{run_id}/artifacts", ("GET",))
def list_artifacts(request: Request, run_id: str) -> dict:
    return {"artifacts": [a.to_json() for a in services().artifacts.list_artifacts(request.tenant_id, run_id)]}


DOWNLOAD_PATH = Query("path", required=True, pattern=rules.RELATIVE_PATH_PATTERN, max_length=MAX_ARTIFACT_PATH,
                      missing="query parameter 'path' is required")


@api.route(RUNS + "/{run_id}/artifacts/download", ("GET",), query=(DOWNLOAD_PATH,))
def download_artifact(request: Request, run_id: str) -> Response:
    path = request.param("path")
    return redirect(services().artifacts.download_url(request.tenant_id, run_id, path))


@api.route(RUNS + "/{run_id}/artifact-uploads", ("POST",), status=201, body=ArtifactUploadRequest)
def presign_artifact_upload(request: Request, run_id: str) -> dict:
    body = request.body()
    return services().artifacts.upload_form(request.tenant_id, run_id, body.path, body.content_type)
