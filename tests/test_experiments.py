"""Experiments over HTTP (DESIGN.md section 4): create, list and search, get, patch, soft delete, restore.

Each test pays for a fresh moto world (about half a second), so related inputs are checked as
subtests of one scenario rather than as separate parametrized tests.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, assert_error, created, data, get_ok, send

EXPERIMENT_FIELDS = {"id", "name", "description", "artifact_location", "lifecycle_stage", "tags", "created_at",
                     "updated_at"}


def create(client, name: str, tenant: str = "tenant-a", **fields: Any) -> dict:
    return created(client, EXPERIMENTS, {"name": name, **fields}, tenant)


def fetch(client, experiment_id: str) -> dict:
    return get_ok(client, f"{EXPERIMENTS}/{experiment_id}")


def listing(client, query: str = "", tenant: str = "tenant-a") -> dict:
    response = client.http.get(f"{EXPERIMENTS}{query}", headers=auth(tenant))
    assert response.status_code == 200, response.body
    return data(response)


def names(page: dict) -> set[str]:
    return {e["name"] for e in page["experiments"]}


# --- create -----------------------------------------------------------------------------------

def test_create_returns_201_with_the_full_experiment_shape_and_reads_back(client):
    response = send(client, "post", EXPERIMENTS,
                    {"name": "churn model", "description": "weekly retrain", "tags": {"team": "growth"}})

    assert response.status_code == 201
    exp = data(response)
    assert set(exp) == EXPERIMENT_FIELDS
    assert (exp["name"], exp["description"], exp["tags"]) == ("churn model", "weekly retrain", {"team": "growth"})
    assert exp["lifecycle_stage"] == "active"
    assert isinstance(exp["id"], str) and exp["id"]
    assert exp["id"] in exp["artifact_location"]
    for stamp in ("created_at", "updated_at"):
        assert datetime.fromisoformat(exp[stamp]).utcoffset() is not None, "times carry a UTC offset"
    assert fetch(client, exp["id"]) == exp


def test_create_defaults_and_the_length_bounds(client):
    first, second = create(client, "one"), create(client, "two")

    assert (first["description"], first["tags"]) == ("", {})
    assert first["id"] != second["id"]
    assert create(client, "n")["name"] == "n"
    assert create(client, "n" * 255)["name"] == "n" * 255
    assert create(client, "long description", description="d" * 1000)["description"] == "d" * 1000


def test_invalid_create_bodies_are_400_and_create_nothing(client, subtests):
    cases = {
        "empty name": {"name": ""},
        "blank name": {"name": "   "},
        "256-character name": {"name": "x" * 256},
        "missing name": {"description": "no name"},
        "1001-character description": {"name": "x", "description": "d" * 1001},
        "unknown field": {"name": "x", "owner": "someone"},
        "name not a string": {"name": 7},
        "description not a string": {"name": "x", "description": 5},
        "tags not an object": {"name": "x", "tags": ["a"]},
        "tag value not a string": {"name": "x", "tags": {"k": 1}},
        "tag key with a bad character": {"name": "x", "tags": {"bad*key": "v"}},
        "tag value over 8000 characters": {"name": "x", "tags": {"k": "v" * 8001}},
    }
    for case, body in cases.items():
        with subtests.test(case):
            assert_error(send(client, "post", EXPERIMENTS, body), 400)
    assert listing(client)["total"] == 0


def test_malformed_json_bodies_are_400_and_a_wrong_content_type_is_415(client, subtests):
    cases = {
        "truncated": '{"name": "x"',
        "not json": "not json",
        "trailing comma": '{"name": "x",}',
        "array": "[]",
        "string": '"just a string"',
        "null": "null",
        "bare NaN": '{"name": "x", "tags": {"v": NaN}}',
        "bare Infinity": '{"name": "x", "tags": {"v": Infinity}}',
        "bare -Infinity": '{"name": "x", "tags": {"v": -Infinity}}',
        "invalid UTF-8": b'{"name": "\xff\xfe"}',
    }
    for case, raw in cases.items():
        with subtests.test(case):
            assert_error(send(client, "post", EXPERIMENTS, raw), 400)
    with subtests.test("wrong content type is 415"):
        response = client.http.post(EXPERIMENTS, headers={**auth(), "Content-Type": "text/plain"},
                                    body=json.dumps({"name": "x"}))
        assert_error(response, 415)
    assert listing(client)["total"] == 0


def test_deeply_nested_json_is_400_not_500(client):
    assert_error(send(client, "post", EXPERIMENTS, "[" * 100_000), 400)


# --- unique active names ------------------------------------------------------------------------

def test_duplicate_active_name_is_409_case_insensitively_but_free_for_another_tenant(client):
    create(client, "Baseline")

    for name in ("Baseline", "baseline", "BASELINE"):
        assert_error(send(client, "post", EXPERIMENTS, {"name": name}), 409)
    assert listing(client)["total"] == 1
    assert create(client, "baseline", tenant="tenant-b")["name"] == "baseline"


def test_name_of_a_deleted_experiment_can_be_reused(client):
    old = create(client, "reusable")
    assert send(client, "delete", f"{EXPERIMENTS}/{old['id']}").status_code == 200

    new = create(client, "REUSABLE")

    assert new["id"] != old["id"]
    assert names(listing(client)) == {"REUSABLE"}


def test_restore_is_409_while_an_active_experiment_holds_the_name_and_succeeds_once_freed(client):
    old = create(client, "contested")
    send(client, "delete", f"{EXPERIMENTS}/{old['id']}")
    squatter = create(client, "Contested")

    assert_error(send(client, "post", f"{EXPERIMENTS}/{old['id']}/restore"), 409)
    assert fetch(client, old["id"])["lifecycle_stage"] == "deleted"

    assert send(client, "patch", f"{EXPERIMENTS}/{squatter['id']}", {"name": "moved away"}).status_code == 200
    response = send(client, "post", f"{EXPERIMENTS}/{old['id']}/restore")
    assert response.status_code == 200
    assert data(response)["lifecycle_stage"] == "active"


def test_rename_to_a_taken_name_is_409_a_rename_frees_the_old_name_and_recasing_is_allowed(client):
    create(client, "taken")
    exp = create(client, "before")

    assert_error(send(client, "patch", f"{EXPERIMENTS}/{exp['id']}", {"name": "TAKEN"}), 409)
    assert fetch(client, exp["id"])["name"] == "before"

    assert send(client, "patch", f"{EXPERIMENTS}/{exp['id']}", {"name": "after"}).status_code == 200
    assert create(client, "before")["name"] == "before"
    assert_error(send(client, "post", EXPERIMENTS, {"name": "After"}), 409)

    # changing only the case of its own name is no conflict, and the name stays guarded
    recased = send(client, "patch", f"{EXPERIMENTS}/{exp['id']}", {"name": "AFTER"})
    assert recased.status_code == 200 and data(recased)["name"] == "AFTER"
    assert_error(send(client, "post", EXPERIMENTS, {"name": "after"}), 409)


# --- list and search ----------------------------------------------------------------------------

def test_list_reports_experiments_total_limit_and_offset_with_defaults(client):
    create(client, "a")
    create(client, "b")

    page = listing(client)

    assert set(page) == {"experiments", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"]) == (2, 100, 0)
    assert names(page) == {"a", "b"}
    assert all(set(e) == EXPERIMENT_FIELDS for e in page["experiments"])


def test_search_is_a_case_insensitive_substring_match_on_the_name_only(client):
    for name in ("ResNet-50 baseline", "resnet-101", "BERT fine-tune", "my RESNET sweep"):
        create(client, name)
    create(client, "plain", description="resnet", tags={"resnet": "resnet"})

    page = listing(client, "?search=ResNet")

    assert names(page) == {"ResNet-50 baseline", "resnet-101", "my RESNET sweep"}
    assert page["total"] == 3
    assert listing(client, "?search=nothing-like-this")["total"] == 0


def test_lifecycle_stage_filter_separates_active_and_deleted_and_combines_with_search(client):
    keep = create(client, "sweep-keep")
    gone = [create(client, name) for name in ("sweep-gone", "other-gone")]
    for exp in gone:
        send(client, "delete", f"{EXPERIMENTS}/{exp['id']}")

    assert [e["id"] for e in listing(client)["experiments"]] == [keep["id"]]
    assert [e["id"] for e in listing(client, "?lifecycle_stage=active")["experiments"]] == [keep["id"]]
    deleted = listing(client, "?lifecycle_stage=deleted")
    assert {e["id"] for e in deleted["experiments"]} == {e["id"] for e in gone}
    assert {e["lifecycle_stage"] for e in deleted["experiments"]} == {"deleted"}
    assert names(listing(client, "?search=SWEEP&lifecycle_stage=deleted")) == {"sweep-gone"}


def test_invalid_list_parameters_are_400(client, subtests):
    for query in ("lifecycle_stage=all", "lifecycle_stage=ACTIVE", "lifecycle_stage=archived",
                  "limit=0", "limit=1001", "limit=-5", "offset=-1",
                  "limit=abc", "limit=2.5", "offset=ten", "offset=1e3"):
        with subtests.test(query):
            assert_error(client.http.get(f"{EXPERIMENTS}?{query}", headers=auth()), 400)


def test_limit_and_offset_page_through_everything_once(client):
    created = {create(client, f"page-{i}")["id"] for i in range(7)}

    seen: list[str] = []
    for offset in range(0, 9, 3):
        page = listing(client, f"?limit=3&offset={offset}")
        assert (page["total"], page["limit"], page["offset"]) == (7, 3, offset)
        seen += [e["id"] for e in page["experiments"]]

    assert len(seen) == 7 and set(seen) == created
    assert listing(client, "?offset=7")["experiments"] == []
    assert listing(client, "?offset=50")["total"] == 7
    assert len(listing(client, "?limit=1")["experiments"]) == 1
    assert listing(client, "?limit=1000")["limit"] == 1000


# --- get and patch ------------------------------------------------------------------------------

def test_get_patch_delete_and_restore_of_an_unknown_experiment_are_404(client):
    assert_error(client.http.get(f"{EXPERIMENTS}/no-such-id", headers=auth()), 404)
    assert_error(send(client, "patch", f"{EXPERIMENTS}/no-such-id", {"description": "x"}), 404)
    assert_error(send(client, "delete", f"{EXPERIMENTS}/no-such-id"), 404)
    assert_error(send(client, "post", f"{EXPERIMENTS}/no-such-id/restore"), 404)


def test_patch_renames_and_changes_the_description_keeping_the_rest(client):
    exp = create(client, "draft", description="old", tags={"a": "1"})

    response = send(client, "patch", f"{EXPERIMENTS}/{exp['id']}", {"name": "final", "description": "new"})

    assert response.status_code == 200
    patched = data(response)
    assert (patched["name"], patched["description"], patched["tags"]) == ("final", "new", {"a": "1"})
    assert (patched["id"], patched["created_at"]) == (exp["id"], exp["created_at"])
    assert datetime.fromisoformat(patched["updated_at"]) >= datetime.fromisoformat(exp["updated_at"])
    assert fetch(client, exp["id"]) == patched

    only_description = data(send(client, "patch", f"{EXPERIMENTS}/{exp['id']}", {"description": "newer"}))
    assert (only_description["name"], only_description["description"]) == ("final", "newer")


def test_patch_merges_tags_and_a_null_value_removes_a_tag(client):
    exp = create(client, "tagged", tags={"keep": "1", "change": "old", "drop": "x"})

    response = send(client, "patch", f"{EXPERIMENTS}/{exp['id']}",
                    {"tags": {"change": "new", "drop": None, "add": "2", "absent": None}})

    expected = {"keep": "1", "change": "new", "add": "2"}
    assert response.status_code == 200
    assert data(response)["tags"] == expected
    assert fetch(client, exp["id"])["tags"] == expected


def test_empty_or_invalid_patch_is_400_and_changes_nothing(client, subtests):
    exp = create(client, "unchanged")
    cases = {
        "empty object": {},
        "only nulls": {"name": None, "description": None, "tags": None},
        "empty name": {"name": ""},
        "blank name": {"name": "  "},
        "256-character name": {"name": "x" * 256},
        "1001-character description": {"description": "d" * 1001},
        "lifecycle_stage is not patchable": {"lifecycle_stage": "deleted"},
        "id is not patchable": {"id": "other"},
        "bad tag key": {"tags": {"../escape": "v"}},
    }
    for case, body in cases.items():
        with subtests.test(case):
            assert_error(send(client, "patch", f"{EXPERIMENTS}/{exp['id']}", body), 400)
    assert fetch(client, exp["id"]) == exp


# --- soft delete and restore --------------------------------------------------------------------

def test_delete_is_soft_readable_afterwards_a_retry_is_harmless_and_patching_it_is_409(client):
    exp = create(client, "soft", tags={"k": "v"})

    first = send(client, "delete", f"{EXPERIMENTS}/{exp['id']}")
    second = send(client, "delete", f"{EXPERIMENTS}/{exp['id']}")

    assert first.status_code == 200
    deleted = data(first)
    assert deleted["lifecycle_stage"] == "deleted"
    assert (deleted["name"], deleted["tags"]) == ("soft", {"k": "v"})
    assert second.status_code == 200 and data(second) == deleted
    assert fetch(client, exp["id"])["lifecycle_stage"] == "deleted"
    assert_error(send(client, "patch", f"{EXPERIMENTS}/{exp['id']}", {"description": "late"}), 409)
    assert fetch(client, exp["id"]) == deleted


def test_restore_brings_it_back_active_and_listed_and_a_retry_is_harmless(client):
    exp = create(client, "phoenix")
    send(client, "delete", f"{EXPERIMENTS}/{exp['id']}")

    first = send(client, "post", f"{EXPERIMENTS}/{exp['id']}/restore")
    second = send(client, "post", f"{EXPERIMENTS}/{exp['id']}/restore")

    assert first.status_code == 200 and data(first)["lifecycle_stage"] == "active"
    assert second.status_code == 200 and data(second) == data(first)
    assert [e["id"] for e in listing(client)["experiments"]] == [exp["id"]]
    assert listing(client, "?lifecycle_stage=deleted")["total"] == 0
    assert_error(send(client, "post", EXPERIMENTS, {"name": "phoenix"}), 409)
