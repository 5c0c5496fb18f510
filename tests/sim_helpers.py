"""Helpers for simulation tests: configs through the API, a small map, the default city."""
from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ADMIN_KEY, auth

DEFAULT_CITY = Path(__file__).resolve().parent.parent / "chalicelib" / "sim" / "data" / "default_city.json"


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}


def call(client, method: str, path: str, body=None, headers=None):
    return getattr(client.http, method)(path, headers=headers or auth(),
                                        body=json.dumps(body) if body is not None else None)


def upload_map(client, headers=None) -> str:
    boundary = "agora-boundary"
    content = DEFAULT_CITY.read_bytes()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"city.json\"\r\n"
            f"Content-Type: application/json\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    hdrs = {**(headers or auth()), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    response = client.http.post("/api/map-configs/-/upload", headers=hdrs, body=body)
    assert response.status_code == 200, response.body
    return response.json_body["data"]["file_path"]


def make_configs(client, headers=None, *, agents: int = 20, workflow=None, llm=None) -> dict[str, dict]:
    """One config of each kind for the caller; returns kind -> {"tenant_id", "id"}."""
    headers = headers or auth()
    path = upload_map(client, headers)
    bodies = {
        "llm": {"name": "rules", "config": llm or [{"provider": "builtin", "model": "builtin", "api_key": ""}]},
        "agents": {"name": "town", "config": {"citizens": [{"number": agents}]}},
        "map": {"name": "city", "config": {"file_path": path}},
        "workflow": {"name": "wf", "config": workflow or [{"type": "step", "steps": 24}]},
    }
    paths = {"llm": "/api/llm-configs", "agents": "/api/agent-configs", "map": "/api/map-configs",
             "workflow": "/api/workflow-configs"}
    refs = {}
    for kind, body in bodies.items():
        response = call(client, "post", paths[kind], body, headers)
        assert response.status_code == 201, response.body
        refs[kind] = {"tenant_id": response.json_body["data"]["tenant_id"], "id": response.json_body["data"]["id"]}
    return refs
