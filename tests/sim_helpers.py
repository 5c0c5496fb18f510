"""Helpers for simulation tests: configs through the API, a small map, the default city."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

from tests.conftest import ADMIN_KEY, auth

DEFAULT_CITY = Path(__file__).resolve().parent.parent / "chalicelib" / "sim" / "data" / "default_city.json"


def download(url: str) -> bytes:
    """The object a presigned S3 URL points to (read through the store's client, as the browser would GET it)."""
    from chalicelib import wiring

    container = wiring.services()
    key = unquote(urlparse(url).path.lstrip("/"))
    if key.startswith(container.settings.bucket + "/"):
        key = key[len(container.settings.bucket) + 1:]
    return container.s3.get_object(Bucket=container.settings.bucket, Key=key)["Body"].read()


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}


def call(client, method: str, path: str, body=None, headers=None):
    return getattr(client.http, method)(path, headers=headers or auth(),
                                        body=json.dumps(body) if body is not None else None)


def multipart_file(content: bytes, filename: str, field: str = "file",
                   content_type: str = "application/octet-stream", boundary: str = "agora-boundary",
                   fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data upload of one file and some text fields."""
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
                    for name, value in (fields or {}).items())
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
             f"Content-Type: {content_type}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_map(client, content: bytes, filename: str, headers=None):
    body, content_type = multipart_file(content, filename)
    return client.http.post("/api/map-configs/-/upload", headers={**(headers or auth()), "Content-Type": content_type},
                            body=body)


def upload_map(client, headers=None, content: bytes | None = None, filename: str = "city.json") -> str:
    response = post_map(client, DEFAULT_CITY.read_bytes() if content is None else content, filename, headers)
    assert response.status_code == 200, response.body
    return response.json_body["data"]["file_path"]


def make_configs(client, headers=None, *, agents: int = 20, workflow=None, llm=None,
                 map_file: tuple[bytes, str] | None = None) -> dict[str, dict]:
    """One config of each kind for the caller; returns kind -> {"tenant_id", "id"}."""
    headers = headers or auth()
    path = upload_map(client, headers, *(map_file or ()))
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
