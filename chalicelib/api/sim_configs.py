"""Simulation configs (AgentSociety's paths): LLM, agent, map and workflow configs, surveys, map upload."""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.http import FORM, JSON, MULTIPART, Api, Query, Request, redirect
from chalicelib.domain.simulation.models import ConfigBody, MapLinkRequest
from chalicelib.wiring import services

if TYPE_CHECKING:
    from chalice import Response

api = Api(__name__)
sim_configs_bp = api.blueprint
MAX_MAP_UPLOAD_BYTES = 4 * 1024 * 1024
PATHS = {"llm": "/api/llm-configs", "agent": "/api/agent-configs", "map": "/api/map-configs",
         "workflow": "/api/workflow-configs", "survey": "/api/surveys"}


def _register(kind: str, base: str) -> None:
    def list_configs(request: Request) -> dict:
        return {"data": [c.to_json() for c in services().configs.list_configs(request.tenant_id, kind)]}

    def create_config(request: Request) -> dict:
        return {"data": services().configs.create(request.principal, kind, request.body()).to_json()}

    def get_config(request: Request, config_id: str) -> dict:
        return {"data": services().configs.get(request.tenant_id, kind, config_id).to_json()}

    def update_config(request: Request, config_id: str) -> dict:
        body = request.body()
        return {"data": services().configs.update(request.principal, kind, config_id, body).to_json()}

    def delete_config(request: Request, config_id: str) -> dict:
        services().configs.delete(request.principal, kind, config_id)
        return {"data": {"message": f"{kind} config deleted"}}

    for view, path, method, status, body in ((list_configs, base, "GET", 200, None),
                                             (create_config, base, "POST", 201, ConfigBody),
                                             (get_config, base + "/{config_id}", "GET", 200, None),
                                             (update_config, base + "/{config_id}", "PUT", 200, ConfigBody),
                                             (delete_config, base + "/{config_id}", "DELETE", 200, None)):
        view.__name__ = f"{view.__name__}_{kind}"
        view.__doc__ = f"{method} a {kind} config" if path.endswith("}") else f"{method} {kind} configs"
        api.route(path, (method,), status=status, body=body)(view)


for _kind, _base in PATHS.items():
    _register(_kind, _base)


@api.route("/api/map-configs/-/upload", ("POST",), content_types=(MULTIPART,))
def upload_map(request: Request) -> dict:
    """Store a map file under the caller's map folder; reference it from a map config."""
    filename, data, _ = request.multipart_file("file", MAX_MAP_UPLOAD_BYTES)
    return {"data": {"file_path": services().configs.upload_map(request.tenant_id, filename, data)}}


# map downloads: the UI's "download" is a form POST, its "view" hands a temp link to a map editor
@api.route("/api/map-configs/{config_id}/export", ("POST",), access="form", content_types=(JSON, FORM))
def export_map(request: Request, config_id: str) -> Response:
    """303 to a short-lived download of the map file (an attachment named like the file)."""
    return redirect(services().configs.map_download(request.tenant_id, config_id))


@api.route("/api/map-configs/{config_id}/temp-link", ("POST",), body=MapLinkRequest)
def create_map_link(request: Request, config_id: str) -> dict:
    body = request.body()
    return {"data": {"token": services().configs.map_link(request.tenant_id, config_id, body.expire_seconds)}}


@api.route("/api/map-configs/{config_id}/temp-link", ("GET",), access="public", query=(Query("token", required=True),))
def open_map_link(request: Request, config_id: str) -> Response:
    """Without a key: the token alone grants this map until it expires (303 to the file)."""
    return redirect(services().configs.open_map_link(config_id, request.param("token")))
