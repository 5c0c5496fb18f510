"""Runs over HTTP (DESIGN.md section 4): create, list per experiment, get, end, compare."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, assert_error, created, data, get_ok, new_experiment, send

RUN_FIELDS = {"id", "experiment_id", "name", "description", "status", "start_time", "end_time", "tags", "params",
              "metrics", "artifact_uri"}


def new_run(client, experiment_id: str, tenant: str = "tenant-a", **fields: Any) -> dict:
    return created(client, RUNS, {"experiment_id": experiment_id, **fields}, tenant)


def get_run(client, run_id: str) -> dict:
    return get_ok(client, f"{RUNS}/{run_id}")


def list_runs(client, query: str) -> dict:
    return get_ok(client, f"{RUNS}?{query}")


def log_metrics(client, run_id: str, key: str, values: list[tuple[int, Any]], ts: int = 1_000) -> None:
    metrics = [{"key": key, "value": v, "step": step, "timestamp": ts + step} for step, v in values]
    response = send(client, "post", f"{RUNS}/{run_id}/log-batch", {"metrics": metrics})
    assert response.status_code == 200, response.body


def log_params(client, run_id: str, params: dict[str, str]) -> None:
    response = send(client, "post", f"{RUNS}/{run_id}/log-params", {"params": params})
    assert response.status_code == 200, response.body


def compare(client, run_ids: list[str], tenant: str = "tenant-a", **extra: Any):
    return send(client, "post", f"{RUNS}/compare", {"run_ids": run_ids, **extra}, tenant)


# --- create and get -----------------------------------------------------------------------------

def test_create_run_returns_201_running_with_the_full_shape_reads_back_and_names_itself(client):
    exp_id = new_experiment(client)

    response = send(client, "post", RUNS,
                    {"experiment_id": exp_id, "name": "lr-0.1", "description": "first try", "tags": {"git": "abc"}})

    assert response.status_code == 201
    run = data(response)
    assert set(run) == RUN_FIELDS
    assert (run["experiment_id"], run["name"], run["description"]) == (exp_id, "lr-0.1", "first try")
    assert (run["status"], run["end_time"]) == ("RUNNING", None)
    assert (run["tags"], run["params"], run["metrics"]) == ({"git": "abc"}, {}, {})
    assert datetime.fromisoformat(run["start_time"]).utcoffset() is not None
    assert run["id"] in run["artifact_uri"] and exp_id in run["artifact_uri"]
    assert get_run(client, run["id"]) == run

    unnamed, another = new_run(client, exp_id), new_run(client, exp_id)
    assert unnamed["name"] and isinstance(unnamed["name"], str), "a run without a name gets a default one"
    assert len({run["id"], unnamed["id"], another["id"]}) == 3


def test_create_run_errors_and_unknown_run(client, subtests):
    exp_id = new_experiment(client)
    other_tenants = new_experiment(client, tenant="tenant-b")
    deleted = new_experiment(client, "deleted")
    send(client, "delete", f"{EXPERIMENTS}/{deleted}")
    cases = [
        ("unknown experiment is 404", {"experiment_id": "no-such-experiment"}, 404),
        ("another tenant's experiment is 403", {"experiment_id": other_tenants}, 403),
        ("deleted experiment is 409", {"experiment_id": deleted}, 409),
        ("missing experiment_id is 400", {"name": "x"}, 400),
        ("unknown field is 400", {"experiment_id": exp_id, "status": "FINISHED"}, 400),
        ("blank name is 400", {"experiment_id": exp_id, "name": " "}, 400),
        ("256-character name is 400", {"experiment_id": exp_id, "name": "n" * 256}, 400),
        ("1001-character description is 400", {"experiment_id": exp_id, "description": "d" * 1001}, 400),
        ("bad tag key is 400", {"experiment_id": exp_id, "tags": {"/abs": "v"}}, 400),
    ]
    for case, body, status in cases:
        with subtests.test(case):
            assert_error(send(client, "post", RUNS, body), status)
    assert list_runs(client, f"experiment_id={exp_id}")["total"] == 0
    with subtests.test("get of an unknown run is 404"):
        assert_error(client.http.get(f"{RUNS}/no-such-run", headers=auth()), 404)


# --- list ---------------------------------------------------------------------------------------

def test_runs_are_listed_per_experiment_newest_first_with_total_limit_offset(client):
    exp_id = new_experiment(client, "mine")
    other_exp = new_experiment(client, "other")
    created = [new_run(client, exp_id, name=f"run-{i}")["id"] for i in range(5)]
    new_run(client, other_exp)

    page = list_runs(client, f"experiment_id={exp_id}")

    assert set(page) == {"runs", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"]) == (5, 100, 0)
    assert [r["id"] for r in page["runs"]] == created[::-1]
    assert all(set(r) == RUN_FIELDS for r in page["runs"])

    pages = [list_runs(client, f"experiment_id={exp_id}&limit=2&offset={o}") for o in (0, 2, 4)]
    assert [(p["total"], p["limit"], p["offset"]) for p in pages] == [(5, 2, 0), (5, 2, 2), (5, 2, 4)]
    assert [r["id"] for p in pages for r in p["runs"]] == created[::-1]


def test_runs_list_filters_by_status(client):
    exp_id = new_experiment(client)
    running, finished, failed = (new_run(client, exp_id)["id"] for _ in range(3))
    send(client, "post", f"{RUNS}/{finished}/end", {"status": "FINISHED"})
    send(client, "post", f"{RUNS}/{failed}/end", {"status": "FAILED"})

    def ids(status: str) -> list[str]:
        return [r["id"] for r in list_runs(client, f"experiment_id={exp_id}&status={status}")["runs"]]

    assert ids("RUNNING") == [running]
    assert ids("FINISHED") == [finished]
    assert ids("FAILED") == [failed]
    assert ids("KILLED") == []
    assert list_runs(client, f"experiment_id={exp_id}&status=FAILED")["total"] == 1


def test_runs_list_errors(client, subtests):
    exp_id = new_experiment(client)
    other_tenants = new_experiment(client, tenant="tenant-b")
    cases = [
        ("experiment_id missing is 400", "", 400),
        ("experiment_id empty is 400", "experiment_id=", 400),
        ("invalid status is 400", f"experiment_id={exp_id}&status=DONE", 400),
        ("lower-case status is 400", f"experiment_id={exp_id}&status=running", 400),
        ("limit 0 is 400", f"experiment_id={exp_id}&limit=0", 400),
        ("limit 1001 is 400", f"experiment_id={exp_id}&limit=1001", 400),
        ("negative offset is 400", f"experiment_id={exp_id}&offset=-1", 400),
        ("non-integer limit is 400", f"experiment_id={exp_id}&limit=x", 400),
        ("unknown experiment is 404", "experiment_id=no-such-experiment", 404),
        ("another tenant's experiment is 403", f"experiment_id={other_tenants}", 403),
    ]
    for case, query, status in cases:
        with subtests.test(case):
            assert_error(client.http.get(f"{RUNS}?{query}", headers=auth()), status)


# --- end ----------------------------------------------------------------------------------------

def test_end_run_defaults_to_finished_even_without_a_body_and_repeating_the_same_end_is_200(client):
    run = new_run(client, new_experiment(client))

    ended = send(client, "post", f"{RUNS}/{run['id']}/end", {})
    again = send(client, "post", f"{RUNS}/{run['id']}/end", {"status": "FINISHED"})

    assert ended.status_code == 200
    body = data(ended)
    assert body["status"] == "FINISHED"
    assert datetime.fromisoformat(body["end_time"]) >= datetime.fromisoformat(body["start_time"])
    assert again.status_code == 200 and data(again) == body
    assert get_run(client, run["id"]) == body

    no_body = client.http.post(f"{RUNS}/{new_run(client, run['experiment_id'])['id']}/end", headers=auth())
    assert no_body.status_code == 200 and data(no_body)["status"] == "FINISHED"


def test_end_run_as_failed_or_killed_and_a_different_second_end_is_409(client):
    exp_id = new_experiment(client)
    for status in ("FAILED", "KILLED"):
        run = new_run(client, exp_id)
        response = send(client, "post", f"{RUNS}/{run['id']}/end", {"status": status})
        assert response.status_code == 200 and data(response)["status"] == status

        other = "FINISHED"
        assert_error(send(client, "post", f"{RUNS}/{run['id']}/end", {"status": other}), 409)
        assert get_run(client, run["id"])["status"] == status


def test_end_run_errors(client, subtests):
    run = new_run(client, new_experiment(client))
    cases = [
        ("unknown status", {"status": "DONE"}, 400),
        ("RUNNING is not an end status", {"status": "RUNNING"}, 400),
        ("lower-case status", {"status": "finished"}, 400),
        ("unknown field", {"status": "FINISHED", "reason": "x"}, 400),
    ]
    for case, body, status in cases:
        with subtests.test(case):
            assert_error(send(client, "post", f"{RUNS}/{run['id']}/end", body), status)
    assert get_run(client, run["id"])["status"] == "RUNNING"
    assert_error(send(client, "post", f"{RUNS}/no-such-run/end", {}), 404)


# --- compare ------------------------------------------------------------------------------------

def test_compare_reports_latest_min_max_count_per_metric_and_params_differing(client):
    exp_id = new_experiment(client)
    a = new_run(client, exp_id, name="a")["id"]
    b = new_run(client, exp_id, name="b")["id"]
    log_metrics(client, a, "loss", [(0, 0.9), (1, 0.2), (2, 0.5)])
    log_metrics(client, b, "loss", [(0, 0.8), (1, 0.7)])
    log_metrics(client, a, "acc", [(0, 0.5)])
    log_params(client, a, {"lr": "0.1", "batch": "32", "only_a": "x"})
    log_params(client, b, {"lr": "0.01", "batch": "32"})
    send(client, "post", f"{RUNS}/{b}/end", {"status": "FAILED"})

    response = compare(client, [a, b])

    assert response.status_code == 200
    body = data(response)
    by_id = {r["id"]: r for r in body["runs"]}
    assert [r["id"] for r in body["runs"]] == [a, b]
    assert {k: by_id[a][k] for k in ("name", "experiment_id", "status")} == {
        "name": "a", "experiment_id": exp_id, "status": "RUNNING"}
    assert by_id[b]["status"] == "FAILED"
    assert by_id[a]["params"] == {"lr": "0.1", "batch": "32", "only_a": "x"}
    assert by_id[a]["metrics"]["loss"] == {"latest": 0.5, "min": 0.2, "max": 0.9, "count": 3}
    assert by_id[b]["metrics"]["loss"] == {"latest": 0.7, "min": 0.7, "max": 0.8, "count": 2}
    assert by_id[a]["metrics"]["acc"] == {"latest": 0.5, "min": 0.5, "max": 0.5, "count": 1}
    assert sorted(body["params_differing"]) == ["lr", "only_a"]

    only_loss = data(compare(client, [a, b], metrics=["loss"]))
    assert [set(r["metrics"]) for r in only_loss["runs"]] == [{"loss"}, {"loss"}]
    assert only_loss["runs"][1]["metrics"]["loss"]["count"] == 2


def test_compare_accepts_2_to_10_distinct_runs(client, subtests):
    exp_id = new_experiment(client)
    ids = [new_run(client, exp_id)["id"] for _ in range(11)]

    assert compare(client, ids[:2]).status_code == 200
    ten = compare(client, ids[:10])
    assert ten.status_code == 200 and [r["id"] for r in data(ten)["runs"]] == ids[:10]
    cases = {"one run": {"run_ids": ids[:1]}, "no runs": {"run_ids": []}, "eleven runs": {"run_ids": ids},
             "duplicates": {"run_ids": [ids[0], ids[0]]},
             "duplicate among others": {"run_ids": [ids[0], ids[1], ids[0]]},
             "run_ids missing": {}, "run_ids not a list": {"run_ids": f"{ids[0]},{ids[1]}"},
             "bad metric key": {"run_ids": ids[:2], "metrics": ["../x"]},
             "metric_keys (not the reference's name)": {"run_ids": ids[:2], "metric_keys": ["loss"]}}
    for case, body in cases.items():
        with subtests.test(case):
            assert_error(send(client, "post", f"{RUNS}/compare", body), 400)


def test_compare_with_an_unknown_run_is_404_and_another_tenants_run_is_403(client):
    mine = new_run(client, new_experiment(client))["id"]
    theirs = new_run(client, new_experiment(client, tenant="tenant-b"), tenant="tenant-b")["id"]

    assert_error(compare(client, [mine, "no-such-run"]), 404)
    assert_error(compare(client, [mine, theirs]), 403)
    assert_error(compare(client, [theirs, mine], tenant="tenant-b"), 403)


def test_compare_reports_non_finite_values_as_strings(client):
    exp_id = new_experiment(client)
    a, b = new_run(client, exp_id)["id"], new_run(client, exp_id)["id"]
    log_metrics(client, a, "loss", [(0, 1.0), (1, "NaN")])
    log_metrics(client, b, "loss", [(0, 2.0)])

    response = compare(client, [a, b])

    assert response.status_code == 200, response.body
    summary = data(response)["runs"][0]["metrics"]["loss"]
    assert summary["latest"] == "NaN"
    assert summary["count"] == 2


def test_compare_with_infinite_values_reports_them_as_strings(client):
    exp_id = new_experiment(client)
    a, b = new_run(client, exp_id)["id"], new_run(client, exp_id)["id"]
    log_metrics(client, a, "loss", [(0, "-Infinity"), (1, 1.0), (2, "Infinity")])
    log_metrics(client, b, "loss", [(0, 2.0)])

    response = compare(client, [a, b])

    assert response.status_code == 200, response.body
    summary = data(response)["runs"][0]["metrics"]["loss"]
    assert summary == {"latest": "Infinity", "min": "-Infinity", "max": "Infinity", "count": 3}


def test_compare_count_matches_the_history_when_batches_overlap(client):
    exp_id = new_experiment(client)
    a, b = new_run(client, exp_id)["id"], new_run(client, exp_id)["id"]
    log_metrics(client, a, "loss", [(0, 1.0)])
    log_metrics(client, a, "loss", [(0, 1.0), (1, 0.5)])  # a client resending its buffer plus one new point
    log_metrics(client, b, "loss", [(0, 2.0)])

    history = data(client.http.get(f"{RUNS}/{a}/metrics/loss", headers=auth()))["points"]
    summary = data(compare(client, [a, b]))["runs"][0]["metrics"]["loss"]

    assert len(history) == 2
    assert summary["count"] == len(history)
