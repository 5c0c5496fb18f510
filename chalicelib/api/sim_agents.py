"""Agents as AgentSociety's UI builds them: agent templates, agent profile files, and the look-ups that
describe what Agora's engine offers (its agent classes, their parameters, its blocks and functions)."""
from __future__ import annotations

from typing import Callable, TypeVar

from chalicelib.api.http import MULTIPART, Api, Query, QueryGroup, Request
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.simulation.models import AgentTemplateBody
from chalicelib.sim import catalog
from chalicelib.wiring import services

api = Api(__name__)
sim_agents_bp = api.blueprint
TEMPLATES = "/api/agent-templates"
PROFILES = "/api/agent-profiles"
MAX_PROFILE_UPLOAD_BYTES = 4 * 1024 * 1024
T = TypeVar("T")


# --- agent templates ---------------------------------------------------------------------------
@api.route(TEMPLATES, ("GET",))
def list_agent_templates(request: Request) -> dict:
    return {"data": [t.to_json() for t in services().configs.list_configs(request.tenant_id, "agent_template")]}


@api.route(TEMPLATES, ("POST",), body=AgentTemplateBody)
def create_agent_template(request: Request) -> dict:
    """200 with the new template (AgentSociety answers so; its UI's edit and duplicate post new ones)."""
    body = request.body().config_body()
    return {"data": services().configs.create(request.principal, "agent_template", body).to_json()}


@api.route(TEMPLATES + "/{template_id}", ("GET",))
def get_agent_template(request: Request, template_id: str) -> dict:
    return {"data": services().configs.get(request.tenant_id, "agent_template", template_id).to_json()}


@api.route(TEMPLATES + "/{template_id}", ("PUT",), body=AgentTemplateBody)
def update_agent_template(request: Request, template_id: str) -> dict:
    body = request.body().config_body()
    return {"data": services().configs.update(request.principal, "agent_template", template_id, body).to_json()}


@api.route(TEMPLATES + "/{template_id}", ("DELETE",))
def delete_agent_template(request: Request, template_id: str) -> dict:
    services().configs.delete(request.principal, "agent_template", template_id)
    return {"data": {"message": "Template deleted successfully"}}


# --- agent profile files -----------------------------------------------------------------------
@api.route(PROFILES + "/upload", ("POST",), content_types=(MULTIPART,))
def upload_agent_profile(request: Request) -> dict:
    """A JSON list or a CSV of people (`file`), with an optional `name` and `description`."""
    filename, data, _ = request.multipart_file("file", MAX_PROFILE_UPLOAD_BYTES)
    name = request.multipart_text("name", MAX_PROFILE_UPLOAD_BYTES)
    description = request.multipart_text("description", MAX_PROFILE_UPLOAD_BYTES)
    profile = services().configs.upload_profile(request.principal, filename, data, name, description)
    return {"data": profile.to_json()}


@api.route(PROFILES, ("GET",))
def list_agent_profiles(request: Request) -> dict:
    return {"data": [p.to_json() for p in services().configs.list_configs(request.tenant_id, "agent_profile")]}


@api.route(PROFILES + "/{profile_id}", ("GET",))
def get_agent_profile(request: Request, profile_id: str) -> dict:
    """The file's records, as the UI saves them."""
    return {"data": services().configs.profile_records(request.tenant_id, profile_id)}


@api.route(PROFILES + "/{profile_id}", ("DELETE",))
def delete_agent_profile(request: Request, profile_id: str) -> dict:
    services().configs.delete(request.principal, "agent_profile", profile_id)
    return {"data": {"message": "Profile deleted successfully"}}


# --- look-ups: public, as in AgentSociety (its UI asks /agent-param without a key) ----------------
AGENT_TYPE = Query("agent_type", required=True, enum=catalog.AGENT_TYPES)
# the classes of each type: the combinations /agent-param answers
AGENT_CLASS = QueryGroup("agent", (AGENT_TYPE, Query("agent_class", required=True)), rule={"oneOf": [
    {"properties": {"agent_type": {"const": agent_type}, "agent_class": {"enum": catalog.classes_of(agent_type)}}}
    for agent_type in catalog.AGENT_TYPES]})


def _catalog(call: Callable[[], T]) -> T:
    """A catalog answer; its ValueError (an unknown class, type or block) is the client's 400."""
    try:
        return call()
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


@api.route("/api/agent-classes", ("GET",), access="public", query=(AGENT_TYPE,))
def agent_classes(request: Request) -> dict:
    agent_type = request.param("agent_type")
    names = _catalog(lambda: catalog.classes_of(agent_type))
    return {"data": [{"value": name, "label": name} for name in names]}


@api.route("/api/agent-param", ("GET",), access="public", query=(AGENT_CLASS,))
def agent_param(request: Request) -> dict:
    agent_type, agent_class = request.param("agent_type"), request.param("agent_class")
    return {"data": _catalog(lambda: catalog.agent_param(agent_type, agent_class))}


@api.route("/api/block-param/{block_type}", ("GET",), access="public",
           path_params=(Query("block_type", enum=tuple(catalog.BLOCKS)),))
def block_param(request: Request, block_type: str) -> dict:
    return {"data": _catalog(lambda: catalog.block_param(block_type))}


@api.route("/api/agent-blocks", ("GET",), access="public")
def agent_blocks(request: Request) -> dict:
    return {"data": list(catalog.BLOCKS)}


@api.route("/api/community/workflow/functions", ("GET",), access="public")
def workflow_functions(request: Request) -> dict:
    return {"data": list(catalog.WORKFLOW_FUNCTIONS)}
