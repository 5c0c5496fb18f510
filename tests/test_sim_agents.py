"""Agents as AgentSociety's UI builds them: templates, profile files, look-ups, and map downloads."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest

from chalicelib.sim import catalog
from tests.conftest import KEYS, auth
from tests.pb_maps import city_bytes
from tests.sim_helpers import admin, call, download, multipart_file, upload_map

TEMPLATE = {  # what the UI's create form posts
    "name": "Thrifty citizens", "description": "save more", "agent_type": "citizen", "agent_class": "SocietyAgent",
    "memory_distributions": {
        "gender": {"type": "choice", "choices": ["male", "female"], "weights": [0.5, 0.5]},
        "age": {"type": "uniform_int", "min_value": 18, "max_value": 65},
        "income": {"type": "normal", "mean": 5000, "std": 1000}},
    "agent_params": {"thrift": 2.0, "sociability": 1.2, "news_sensitivity": 1.0, "bedtime_thoughts": True},
    "blocks": {"MobilityBlock": {"search_limit": 5}, "SocialBlock": {}},
}


def upload_profile(client, content: bytes, filename: str, tenant: str = "tenant-a", **fields: str):
    body, content_type = multipart_file(content, filename, content_type="application/json", fields=fields)
    return client.http.post("/api/agent-profiles/upload", body=body,
                            headers={"Authorization": auth(tenant)["Authorization"], "Content-Type": content_type})


# --- templates ---------------------------------------------------------------------------------
def test_template_crud_as_the_ui_does_it(client):
    created = call(client, "post", "/api/agent-templates", TEMPLATE)
    assert created.status_code == 200, created.body  # AgentSociety answers 200 with the template
    template = created.json_body["data"]
    assert set(template) == {"tenant_id", "id", "name", "description", "agent_type", "agent_class",
                             "memory_distributions", "agent_params", "blocks", "created_at", "updated_at"}
    assert template["tenant_id"] == "tenant-a" and template["memory_distributions"]["income"] == {
        "type": "normal", "mean": 5000.0, "std": 1000.0}
    assert template["blocks"] == {"MobilityBlock": {"speed_kmh": 18.0, "search_limit": 5},
                                  "SocialBlock": {"talk_chance": 0.015}}  # checked, with the engine's defaults
    tid = template["id"]
    assert call(client, "get", f"/api/agent-templates/{tid}").json_body["data"] == template
    assert [t["id"] for t in call(client, "get", "/api/agent-templates").json_body["data"]] == [tid]

    duplicate = call(client, "post", "/api/agent-templates", {**template, "name": "copy"})  # the UI re-posts it all
    assert duplicate.status_code == 200 and duplicate.json_body["data"]["id"] != tid
    changed = call(client, "put", f"/api/agent-templates/{tid}", {**TEMPLATE, "name": "renamed",
                                                                 "memory_distributions": {}})
    assert changed.status_code == 200 and changed.json_body["data"]["name"] == "renamed"
    assert changed.json_body["data"]["created_at"] == template["created_at"]

    gone = call(client, "delete", f"/api/agent-templates/{tid}")
    assert gone.json_body == {"data": {"message": "Template deleted successfully"}}
    assert call(client, "get", f"/api/agent-templates/{tid}").status_code == 404
    assert call(client, "delete", f"/api/agent-templates/{tid}").status_code == 404


@pytest.mark.parametrize(("change", "reason"), [
    ({"agent_class": "TrackTwoEnvCitizen"}, "Invalid agent_class"),
    ({"agent_type": "alien"}, "agent_type"),
    ({"agent_params": {"enable_cognition": True}}, "enable_cognition"),
    ({"blocks": {"OtherBlock": {}}}, "Invalid block type: OtherBlock"),
    ({"blocks": {"MobilityBlock": {"search_limit": 0}}}, "search_limit"),
    ({"memory_distributions": {"age": {"type": "uniform_int", "min_value": 9, "max_value": 1}}}, "min_value"),
    ({"memory_distributions": None}, "memory_distributions"),
    ({"agent_type": "supervisor", "agent_class": "ConversationModerator", "agent_params": {}},
     "supervisor template has no blocks"),
    ({"name": ""}, "name"),
])
def test_a_template_the_engine_could_not_use_is_400_with_the_reason(client, change, reason):
    response = call(client, "post", "/api/agent-templates", {**TEMPLATE, **change})
    assert response.status_code == 400 and reason in json.dumps(response.json_body["detail"])
    assert call(client, "get", "/api/agent-templates").json_body["data"] == []


def test_templates_are_the_tenants_own_and_the_platforms_are_shared_read_only(client):
    mine = call(client, "post", "/api/agent-templates", TEMPLATE).json_body["data"]["id"]
    shared = call(client, "post", "/api/agent-templates", TEMPLATE, admin()).json_body["data"]
    assert shared["tenant_id"] == ""  # the UI hides edit and delete on rows without a tenant
    b = auth("tenant-b")
    assert [t["id"] for t in call(client, "get", "/api/agent-templates", headers=b).json_body["data"]] == [shared["id"]]
    assert call(client, "get", f"/api/agent-templates/{mine}", headers=b).status_code == 403
    assert call(client, "put", f"/api/agent-templates/{mine}", TEMPLATE, b).status_code == 403
    assert call(client, "delete", f"/api/agent-templates/{mine}", headers=b).status_code == 403
    assert call(client, "delete", f"/api/agent-templates/{shared['id']}", headers=b).status_code == 403
    assert call(client, "get", f"/api/agent-templates/{shared['id']}", headers=b).status_code == 200
    assert client.http.get("/api/agent-templates").status_code == 401


# --- profiles ----------------------------------------------------------------------------------
def test_profile_upload_json_and_csv_list_get_delete(client, aws):
    people = [{"id": 5, "name": "Ann", "age": 30}, {"name": "Bo"}, {"id": "7", "name": "Cy"}, {"name": "Di"}]
    uploaded = upload_profile(client, json.dumps(people).encode(), "town.json", name="Town", description="four")
    assert uploaded.status_code == 200, uploaded.body
    profile = uploaded.json_body["data"]
    assert profile["name"] == "Town" and profile["record_count"] == 4 and profile["agent_type"] == ""
    assert profile["file_path"].startswith("agent_profiles/tenant-a/") and profile["file_path"].endswith(".json")
    records = call(client, "get", f"/api/agent-profiles/{profile['id']}").json_body["data"]
    # AgentSociety's rules: given ids kept as written, missing ones filled after the largest
    assert [r["id"] for r in records] == [5, 8, "7", 9]

    csv_text = "id,name,age,occupation\n1,Ed,41,teacher\n2,Flo,29,doctor\n"
    from_csv = upload_profile(client, csv_text.encode(), "PEOPLE.CSV")
    assert from_csv.status_code == 200 and from_csv.json_body["data"]["name"] == "PEOPLE"
    rows = call(client, "get", f"/api/agent-profiles/{from_csv.json_body['data']['id']}").json_body["data"]
    assert rows == [{"id": "1", "name": "Ed", "age": "41", "occupation": "teacher"},
                    {"id": "2", "name": "Flo", "age": "29", "occupation": "doctor"}]  # CSV values are text

    listed = call(client, "get", "/api/agent-profiles").json_body["data"]
    assert [p["id"] for p in listed] == [from_csv.json_body["data"]["id"], profile["id"]]  # newest first
    assert {"id", "name", "description", "record_count", "created_at", "file_path", "tenant_id"} <= set(listed[0])
    b = auth("tenant-b")
    assert call(client, "get", "/api/agent-profiles", headers=b).json_body["data"] == []
    assert call(client, "get", f"/api/agent-profiles/{profile['id']}", headers=b).status_code == 403
    assert call(client, "delete", f"/api/agent-profiles/{profile['id']}", headers=b).status_code == 403

    gone = call(client, "delete", f"/api/agent-profiles/{profile['id']}")
    assert gone.json_body == {"data": {"message": "Profile deleted successfully"}}
    assert call(client, "get", f"/api/agent-profiles/{profile['id']}").status_code == 404
    s3 = aws.client("s3")
    import os
    left = s3.list_objects_v2(Bucket=os.environ["AGORA_BUCKET"], Prefix=profile["file_path"]).get("KeyCount")
    assert left == 0, "the file goes with its row"


@pytest.mark.parametrize(("content", "filename", "reason"), [
    (b"[1, 2]", "p.json", "JSON data must be a list of objects"),
    (b"{not json", "p.json", "not valid UTF-8 JSON"),
    (b'[{"age": NaN}]', "p.json", "NaN is not a JSON number"),
    (b"[" * 5000 + b"]" * 5000, "p.json", "JSON"),
    (b"[]", "p.json", "1 to 10,000 records"),
    (json.dumps([{"id": "x1"}]).encode(), "p.json", "ID must be an integer"),
    (json.dumps([{"id": 1.5}]).encode(), "p.json", "ID must be an integer"),
    (json.dumps([{"id": 1}, {"id": "1"}]).encode(), "p.json", "Duplicate ID found: 1"),
    (json.dumps([{"id": 0}]).encode(), "p.json", "ID must be an integer from 1"),
    (b"name,age\nAnn,30,extra\n", "p.csv", "more values than the header"),
    (b"\xff\xfe", "p.csv", "not UTF-8"),
    (b"id,name\n,B\n", "p.csv", "ID must be an integer"),
    (b"a,b", "p.xlsx", "Unsupported file format"),
])
def test_unusable_profile_files_are_400_and_store_nothing(client, content, filename, reason):
    response = upload_profile(client, content, filename)
    assert response.status_code == 400, response.body
    assert reason in response.json_body["detail"]
    assert call(client, "get", "/api/agent-profiles").json_body["data"] == []


def test_an_upload_without_a_file_or_over_the_limit_is_4xx(client):
    body, content_type = multipart_file(b"[]", "p.json", field="other")
    response = client.http.post("/api/agent-profiles/upload", body=body,
                                headers={"Authorization": auth()["Authorization"], "Content-Type": content_type})
    assert response.status_code == 400 and "no file field named 'file'" in response.json_body["detail"]
    big = upload_profile(client, b"[" + b"{}," * (2 * 1024 * 1024) + b"{}]", "big.json")
    assert big.status_code == 413


def test_an_agent_config_names_only_its_tenants_or_the_platforms_profile_files(client):
    mine = upload_profile(client, b'[{"name": "A"}]', "a.json").json_body["data"]["file_path"]
    theirs = upload_profile(client, b'[{"name": "B"}]', "b.json", tenant="tenant-b").json_body["data"]["file_path"]
    ok = call(client, "post", "/api/agent-configs", {"name": "from file", "config": {"citizens": [
        {"agent_class": "SocietyAgent", "memory_from_file": mine, "number": 1}]}})
    assert ok.status_code == 201, ok.body
    for path, reason in ((theirs, "must be the file_path of one of your agent profiles"),
                         ("agent_profiles/tenant-a/missing.json", "does not exist"),
                         ("../agent_profiles/tenant-a/x.json", "must be the file_path")):
        refused = call(client, "post", "/api/agent-configs", {"name": "x", "config": {"citizens": [
            {"memory_from_file": path}]}})
        assert refused.status_code == 400 and reason in refused.json_body["detail"], refused.body
    both = call(client, "post", "/api/agent-configs", {"name": "x", "config": {"citizens": [
        {"memory_from_file": mine, "memory_distributions": {"age": {"dist_type": "constant", "value": 3}}}]}})
    assert both.status_code == 400 and "memory_distributions should not be set" in json.dumps(both.json_body)


# --- look-ups ----------------------------------------------------------------------------------
def test_look_ups_describe_the_engine_and_need_no_key(client):
    def get(path):
        response = client.http.get(path)  # AgentSociety's UI sends /agent-param without any header
        assert response.status_code == 200, (path, response.body)
        return response.json_body["data"]

    assert get("/api/agent-classes?agent_type=citizen") == [{"value": "SocietyAgent", "label": "SocietyAgent"}]
    assert get("/api/agent-classes?agent_type=supervisor") == [
        {"value": "ConversationModerator", "label": "ConversationModerator"}]
    param = get("/api/agent-param?agent_type=citizen&agent_class=SocietyAgent")
    assert [p["name"] for p in param["params_type"]] == list(catalog.CitizenParams.model_fields)
    assert {"name": "bedtime_thoughts", "required": False, "default": True, "type": "bool", "options": [],
            "description": catalog.CitizenParams.model_fields["bedtime_thoughts"].description} in param["params_type"]
    assert {a["name"] for a in param["status_attributes"]} >= set(catalog.SETTABLE_STATUS)
    moderator = get("/api/agent-param?agent_type=supervisor&agent_class=ConversationModerator")
    action = next(p for p in moderator["params_type"] if p["name"] == "action")
    assert action["type"] == "select" and [o["value"] for o in action["options"]] == ["block", "flag"]
    assert get("/api/agent-blocks") == ["MobilityBlock", "SocialBlock", "EconomyBlock"]
    mobility = get("/api/block-param/MobilityBlock")
    assert mobility["context"] == [] and {p["name"]: p["type"] for p in mobility["params_type"]} == {
        "speed_kmh": "float", "search_limit": "int"}
    assert get("/api/community/workflow/functions") == list(catalog.WORKFLOW_FUNCTIONS)
    for bad in ("/api/agent-classes?agent_type=firm", "/api/agent-classes",
                "/api/agent-param?agent_type=citizen&agent_class=AgreeAgent", "/api/block-param/OtherBlock"):
        response = client.http.get(bad)
        assert response.status_code == 400 and response.json_body["detail"], bad


# --- map downloads -----------------------------------------------------------------------------
def _map_config(client, headers=None):
    path = upload_map(client, headers, content=city_bytes(), filename="town.pb")
    created = call(client, "post", "/api/map-configs", {"name": "pb", "config": {"file_path": path}}, headers)
    return created.json_body["data"]["id"], path


def test_map_export_is_a_form_download_of_the_file(client):
    map_id, path = _map_config(client)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = client.http.post(f"/api/map-configs/{map_id}/export", headers=form,
                                body=f"authorization=Bearer+{KEYS['tenant-a']}")
    assert response.status_code == 303
    location = response.headers["Location"]
    disposition = parse_qs(urlparse(location).query)["response-content-disposition"][0]
    assert disposition == f'attachment; filename="{path.rsplit("/", 1)[-1]}"'
    assert download(location) == city_bytes()
    assert client.http.post(f"/api/map-configs/{map_id}/export", headers=form, body="").status_code == 401
    theirs = client.http.post(f"/api/map-configs/{map_id}/export", headers=form,
                              body=f"authorization=Bearer+{KEYS['tenant-b']}")
    assert theirs.status_code == 403


def test_a_temp_link_downloads_its_map_without_a_key_until_it_expires(client):
    from chalicelib import wiring

    map_id, _ = _map_config(client)
    other_id, _ = _map_config(client)
    created = call(client, "post", f"/api/map-configs/{map_id}/temp-link", {"expire_seconds": 600})
    assert created.status_code == 200, created.body
    token = created.json_body["data"]["token"]
    for _ in range(2):  # reusable until it expires, as AgentSociety's
        opened = client.http.get(f"/api/map-configs/{map_id}/temp-link?token={token}")
        assert opened.status_code == 303 and download(opened.headers["Location"]) == city_bytes()
    assert call(client, "post", f"/api/map-configs/{map_id}/temp-link", {}).status_code == 200  # 600 s default
    wrong = client.http.get(f"/api/map-configs/{other_id}/temp-link?token={token}")
    assert wrong.status_code == 404 and wrong.json_body["detail"] == "Download link not found"
    assert client.http.get(f"/api/map-configs/{map_id}/temp-link?token=x{token}").status_code == 404
    assert client.http.get(f"/api/map-configs/{map_id}/temp-link").status_code == 400
    assert client.http.get(f"/api/map-configs/01nosuchmap/temp-link?token={token}").status_code == 404

    configs = wiring.services().configs
    real_clock = configs.clock
    configs.clock = lambda: real_clock() + 601_000  # the container's clock, injected: ten minutes on
    expired = client.http.get(f"/api/map-configs/{map_id}/temp-link?token={token}")
    assert expired.status_code == 400 and expired.json_body["detail"].startswith("Download link expired. ")

    for body in ({"expire_seconds": 0}, {"expire_seconds": "600"}, {"expire_seconds": 10**9}):
        assert call(client, "post", f"/api/map-configs/{map_id}/temp-link", body).status_code == 400
    assert call(client, "post", f"/api/map-configs/{map_id}/temp-link", {}, auth("tenant-b")).status_code == 403
    assert client.http.post(f"/api/map-configs/{map_id}/temp-link", body="{}").status_code == 401
    call(client, "delete", f"/api/map-configs/{map_id}")
    configs.clock = real_clock
    assert client.http.get(f"/api/map-configs/{map_id}/temp-link?token={token}").status_code == 404
