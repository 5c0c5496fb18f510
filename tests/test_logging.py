"""Logging to runs over HTTP: log-metrics, log-params (write-once), log-batch limits, values, retries."""
from __future__ import annotations

import json
from typing import Any

from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, assert_error, data, send


def new_experiment(client, name: str = "exp") -> str:
    response = send(client, "post", EXPERIMENTS, {"name": name})
    assert response.status_code == 201, response.body
    return data(response)["id"]


def new_run(client, experiment_id: str | None = None) -> str:
    response = send(client, "post", RUNS, {"experiment_id": experiment_id or new_experiment(client)})
    assert response.status_code == 201, response.body
    return data(response)["id"]


def get_run(client, run_id: str) -> dict:
    response = client.http.get(f"{RUNS}/{run_id}", headers=auth())
    assert response.status_code == 200, response.body
    return data(response)


def history(client, run_id: str, key: str) -> list[dict]:
    response = client.http.get(f"{RUNS}/{run_id}/metrics/{key}?limit=25000", headers=auth())
    assert response.status_code == 200, response.body
    body = data(response)
    assert body["next_page_token"] is None
    return body["points"]


def log_batch(client, run_id: str, **parts: Any):
    return send(client, "post", f"{RUNS}/{run_id}/log-batch", parts)


def point(key: str, value: Any, step: int = 0, timestamp: int = 1_000) -> dict:
    return {"key": key, "value": value, "step": step, "timestamp": timestamp}


# --- log-metrics: the reference's shape, {name: value} at one step and timestamp ----------------

def test_log_metrics_logs_each_name_at_the_step_and_timestamp_given_with_defaults(client):
    run_id = new_run(client)

    response = send(client, "post", f"{RUNS}/{run_id}/log-metrics",
                    {"metrics": {"loss": 0.9, "acc": 0.5}, "step": 10, "timestamp": 1707723600000})

    assert response.status_code == 200
    assert data(response) == {"logged": 2}
    metrics = get_run(client, run_id)["metrics"]
    assert {k: (m["value"], m["step"], m["timestamp"]) for k, m in metrics.items()} == {
        "loss": (0.9, 10, 1707723600000), "acc": (0.5, 10, 1707723600000)}

    # step and timestamp are optional: step 0 and the server's clock
    bare = send(client, "post", f"{RUNS}/{run_id}/log-metrics", {"metrics": {"m": 3}})
    assert bare.status_code == 200
    [stored] = history(client, run_id, "m")
    assert stored["step"] == 0 and stored["value"] == 3
    assert stored["timestamp"] > 1_600_000_000_000, "epoch milliseconds of the server clock"
    assert data(send(client, "post", f"{RUNS}/{run_id}/log-metrics", {"metrics": {}})) == {"logged": 0}


def test_log_metrics_rejects_the_list_shape_and_bad_values_with_400_and_stores_nothing(client, subtests):
    run_id = new_run(client)
    cases = {
        "a list (log-batch's shape)": {"metrics": [{"key": "m", "value": 1.0}]},
        "a bad key": {"metrics": {"../m": 1.0}},
        "a boolean value": {"metrics": {"m": True}},
        "a lower-case nan": {"metrics": {"m": "nan"}},
        "a float step": {"metrics": {"m": 1.0}, "step": 1.5},
        "a negative timestamp": {"metrics": {"m": 1.0}, "timestamp": -1},
        "an unknown field": {"metrics": {"m": 1.0}, "unit": "s"},
        "no metrics": {"step": 1},
        "1,001 names": {"metrics": {f"m{i}": 1.0 for i in range(1001)}},
    }
    for case, body in cases.items():
        with subtests.test(case):
            assert_error(send(client, "post", f"{RUNS}/{run_id}/log-metrics", body), 400)
    assert get_run(client, run_id)["metrics"] == {}


# --- points with their own steps (log-batch) ---------------------------------------------------

def test_log_batch_stores_points_and_the_latest_value_per_key(client):
    run_id = new_run(client)

    response = log_batch(client, run_id, metrics=[
        point("loss", 0.9, step=0, timestamp=100), point("loss", 0.4, step=1, timestamp=200),
        point("acc", 0.5, step=1, timestamp=200)])

    assert response.status_code == 200
    assert data(response) == {"metrics": 3, "params": 0, "tags": 0}
    metrics = get_run(client, run_id)["metrics"]
    assert {k: (m["value"], m["step"], m["timestamp"]) for k, m in metrics.items()} == {
        "loss": (0.4, 1, 200), "acc": (0.5, 1, 200)}
    assert [(p["step"], p["value"], p["timestamp"]) for p in history(client, run_id, "loss")] == [
        (0, 0.9, 100), (1, 0.4, 200)]

    # step and timestamp are optional per point too
    assert log_batch(client, run_id, metrics=[{"key": "m", "value": 3}]).status_code == 200
    [stored] = history(client, run_id, "m")
    assert stored["step"] == 0 and stored["timestamp"] > 1_600_000_000_000


def test_latest_value_is_the_point_with_the_greatest_step_then_timestamp(client):
    run_id = new_run(client)

    def log(*points: dict) -> dict:
        assert log_batch(client, run_id, metrics=list(points)).status_code == 200
        latest = get_run(client, run_id)["metrics"]["m"]
        return {k: latest[k] for k in ("value", "step", "timestamp")}

    assert log(point("m", 1.0, step=5, timestamp=100)) == {"value": 1.0, "step": 5, "timestamp": 100}
    # logged later but at an earlier step: not the latest
    assert log(point("m", 2.0, step=3, timestamp=900)) == {"value": 1.0, "step": 5, "timestamp": 100}
    # same step, later timestamp: the latest
    assert log(point("m", 3.0, step=5, timestamp=200)) == {"value": 3.0, "step": 5, "timestamp": 200}
    # same step, earlier timestamp, even in a later request: not the latest
    assert log(point("m", 4.0, step=5, timestamp=150)) == {"value": 3.0, "step": 5, "timestamp": 200}
    # inside one request the order of the list does not matter either
    assert log(point("m", 6.0, step=7, timestamp=1), point("m", 5.0, step=6, timestamp=999)) == {
        "value": 6.0, "step": 7, "timestamp": 1}


def test_non_finite_values_sent_as_strings_are_stored_and_returned_faithfully(client):
    run_id = new_run(client)
    sent = [point("nan", "NaN"), point("inf", "Infinity"), point("ninf", "-Infinity"),
            point("mixed", 1.5, step=0), point("mixed", "NaN", step=1), point("mixed", "-Infinity", step=2),
            point("mixed", -2.0, step=3)]

    assert log_batch(client, run_id, metrics=sent).status_code == 200
    assert send(client, "post", f"{RUNS}/{run_id}/log-metrics",
                {"metrics": {"dict_nan": "NaN", "dict_inf": "Infinity"}}).status_code == 200

    latest = get_run(client, run_id)["metrics"]
    assert {k: latest[k]["value"] for k in ("nan", "inf", "ninf", "mixed", "dict_nan", "dict_inf")} == {
        "nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "mixed": -2.0, "dict_nan": "NaN",
        "dict_inf": "Infinity"}
    assert history(client, run_id, "nan")[0]["value"] == "NaN"
    assert history(client, run_id, "inf")[0]["value"] == "Infinity"
    assert history(client, run_id, "ninf")[0]["value"] == "-Infinity"
    assert [p["value"] for p in history(client, run_id, "mixed")] == [1.5, "NaN", "-Infinity", -2.0]


def test_invalid_metric_values_and_fields_are_400_and_store_nothing(client, subtests):
    run_id = new_run(client)
    cases = {
        "boolean true": point("m", True),
        "boolean false": point("m", False),
        "lower-case nan": point("m", "nan"),
        "other string": point("m", "1.5"),
        "null": point("m", None),
        "list": point("m", [1]),
        "float step": point("m", 1.0, step=1.5),
        "boolean step": point("m", 1.0, step=True),
        "string step": point("m", 1.0, step="1"),
        "step beyond 64 bits": point("m", 1.0, step=2**63),
        "negative timestamp": point("m", 1.0, timestamp=-1),
        "boolean timestamp": point("m", 1.0, timestamp=True),
        "missing value": {"key": "m"},
        "unknown field": {**point("m", 1.0), "unit": "s"},
    }
    for case, metric in cases.items():
        with subtests.test(case):
            assert_error(log_batch(client, run_id, metrics=[metric]), 400)
    with subtests.test("bare NaN in the JSON"):
        raw = '{"metrics": {"m": NaN}, "step": 0, "timestamp": 1}'
        assert_error(send(client, "post", f"{RUNS}/{run_id}/log-metrics", raw), 400)
    assert get_run(client, run_id)["metrics"] == {}


def test_a_metric_value_too_large_for_a_float_is_400_not_500(client):
    run_id = new_run(client)

    raw = '{"metrics": {"m": 1%s}, "step": 0, "timestamp": 1}' % ("0" * 400)

    assert_error(send(client, "post", f"{RUNS}/{run_id}/log-metrics", raw), 400)
    assert_error(send(client, "post", f"{RUNS}/{run_id}/log-batch",
                      '{"metrics": [{"key": "m", "value": 1%s}]}' % ("0" * 400)), 400)


# --- log-params ---------------------------------------------------------------------------------

def test_params_are_write_once_same_value_again_is_200_another_value_is_409(client):
    run_id = new_run(client)

    first = send(client, "post", f"{RUNS}/{run_id}/log-params", {"params": {"lr": "0.1", "opt": "adam"}})
    retry = send(client, "post", f"{RUNS}/{run_id}/log-params", {"params": {"lr": "0.1"}})
    change = send(client, "post", f"{RUNS}/{run_id}/log-params", {"params": {"lr": "0.2", "new": "x"}})

    assert first.status_code == 200 and data(first) == {"logged": 2}
    assert retry.status_code == 200
    assert_error(change, 409)
    assert get_run(client, run_id)["params"] == {"lr": "0.1", "opt": "adam"}, "a rejected request changes nothing"
    assert_error(log_batch(client, run_id, params=[{"key": "opt", "value": "sgd"}]), 409)


def test_a_rejected_log_batch_stores_none_of_its_metrics_params_or_tags(client):
    run_id = new_run(client)
    assert log_batch(client, run_id, params=[{"key": "lr", "value": "0.1"}]).status_code == 200

    response = log_batch(client, run_id, metrics=[point("loss", 0.5)],
                         params=[{"key": "lr", "value": "0.2"}, {"key": "fresh", "value": "1"}],
                         tags=[{"key": "note", "value": "x"}])

    assert_error(response, 409)
    run = get_run(client, run_id)
    assert (run["metrics"], run["params"], run["tags"]) == ({}, {"lr": "0.1"}, {})
    assert client.http.get(f"{RUNS}/{run_id}/metrics/loss", headers=auth()).status_code == 404


def test_log_params_errors(client, subtests):
    run_id = new_run(client)
    cases = {
        "101 params": {"params": {f"p{i}": "v" for i in range(101)}},
        "value over 6000 characters": {"params": {"p": "v" * 6001}},
        "value not a string": {"params": {"p": 1}},
        "bad key": {"params": {"a..b/../c": "v"}},
        "params not an object": {"params": [{"key": "p", "value": "v"}]},
        "missing params": {},
    }
    for case, body in cases.items():
        with subtests.test(case):
            assert_error(send(client, "post", f"{RUNS}/{run_id}/log-params", body), 400)
    assert get_run(client, run_id)["params"] == {}


# --- log-batch ----------------------------------------------------------------------------------

def test_log_batch_logs_metrics_params_and_tags_and_tags_stay_mutable(client):
    run_id = new_run(client)

    response = log_batch(client, run_id, metrics=[point("loss", 1.0), point("loss", 0.5, step=1)],
                         params=[{"key": "lr", "value": "0.1"}], tags=[{"key": "stage", "value": "warmup"}])
    retag = log_batch(client, run_id, tags=[{"key": "stage", "value": "main"}])

    assert response.status_code == 200
    assert data(response) == {"metrics": 2, "params": 1, "tags": 1}
    assert retag.status_code == 200 and data(retag) == {"metrics": 0, "params": 0, "tags": 1}
    run = get_run(client, run_id)
    assert (run["params"], run["tags"], run["metrics"]["loss"]["value"]) == ({"lr": "0.1"}, {"stage": "main"}, 0.5)


def test_log_batch_accepts_its_limits_exactly_and_every_allowed_key_character(client):
    run_id = new_run(client)
    key = "k" * 250

    response = log_batch(client, run_id,
                         metrics=[point("m", float(i), step=i) for i in range(1000)])
    sized = log_batch(client, run_id, params=[{"key": key, "value": "p" * 6000}],
                      tags=[{"key": key, "value": "t" * 8000}])
    many = log_batch(client, run_id, params=[{"key": f"p{i}", "value": "v"} for i in range(100)],
                     tags=[{"key": f"t{i}", "value": "v"} for i in range(100)])

    assert response.status_code == 200 and data(response)["metrics"] == 1000
    assert sized.status_code == 200, sized.body
    assert many.status_code == 200, many.body
    run = get_run(client, run_id)
    assert run["params"][key] == "p" * 6000 and run["tags"][key] == "t" * 8000, "values are never cut"
    assert len(run["params"]) == 101 and len(run["tags"]) == 101
    assert len(history(client, run_id, "m")) == 1000

    every_char = "Aa0_-. /:z"
    response = log_batch(client, run_id, metrics=[point(every_char, 1.0)],
                         params=[{"key": every_char, "value": "v"}], tags=[{"key": every_char, "value": "v"}])
    assert response.status_code == 200, response.body
    run = get_run(client, run_id)
    assert every_char in run["metrics"] and run["params"][every_char] == "v" and run["tags"][every_char] == "v"


def test_log_batch_over_its_limits_is_400_and_nothing_is_cut_or_stored(client, subtests):
    run_id = new_run(client)
    metric = point("m", 1.0)
    cases: dict[str, dict] = {
        "1001 metrics": {"metrics": [point("m", 1.0, step=i) for i in range(1001)]},
        "101 params": {"params": [{"key": f"p{i}", "value": "v"} for i in range(101)]},
        "101 tags": {"tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]},
        "duplicate param keys": {"params": [{"key": "p", "value": "v"}, {"key": "p", "value": "v"}]},
        "param value over 6000 characters": {"params": [{"key": "p", "value": "v" * 6001}]},
        "tag value over 8000 characters": {"tags": [{"key": "t", "value": "v" * 8001}]},
        "unknown top-level field": {"metrics": [metric], "run_id": "x"},
        "param value not a string": {"params": [{"key": "p", "value": 3}]},
    }
    bad_keys = {"251 characters": "k" * 251, "empty": "", "asterisk": "a*b", "backslash": "a\\b",
                "non-ASCII": "é", "newline": "a\nb", "dot-dot segment": "a/../b", "only dot-dot": "..",
                "dot segment": "./a", "leading slash": "/a", "empty segment": "a//b", "trailing slash": "a/"}
    for name, key in bad_keys.items():
        cases[f"metric key {name}"] = {"metrics": [point(key, 1.0)]}
        cases[f"param key {name}"] = {"params": [{"key": key, "value": "v"}]}
        cases[f"tag key {name}"] = {"tags": [{"key": key, "value": "v"}]}
    for case, body in cases.items():
        with subtests.test(case):
            # each invalid body rides along with a valid metric: a 400 must store none of it
            body = {**body, "metrics": body.get("metrics", []) + [metric]}
            assert_error(send(client, "post", f"{RUNS}/{run_id}/log-batch", body), 400)
    run = get_run(client, run_id)
    assert (run["metrics"], run["params"], run["tags"]) == ({}, {}, {})


def test_a_log_batch_of_100_params_of_6000_characters_is_accepted(client):
    run_id = new_run(client)

    response = log_batch(client, run_id, params=[{"key": f"p{i}", "value": "v" * 6000} for i in range(100)])

    assert response.status_code == 200, response.body
    assert len(get_run(client, run_id)["params"]) == 100


def test_a_json_body_over_1_mb_is_413(client):
    run_id = new_run(client)
    body = json.dumps({"tags": [{"key": "t", "value": "v"}]}) + " " * 1_100_000

    for route in ("log-batch", "log-metrics", "log-params"):
        assert_error(send(client, "post", f"{RUNS}/{run_id}/{route}", body), 413)
    assert get_run(client, run_id)["tags"] == {}


# --- retries and deleted experiments ------------------------------------------------------------

def test_the_same_log_batch_sent_twice_stores_each_point_once_and_so_does_one_request(client):
    exp_id = new_experiment(client)
    run_id, other = new_run(client, exp_id), new_run(client, exp_id)
    batch = {"metrics": [point("loss", 1.0 / (i + 1), step=i, timestamp=1_000 + i) for i in range(50)]
             + [point("loss", 0.25, step=10, timestamp=5_000)],  # a second point at step 10
             "params": [{"key": "lr", "value": "0.1"}], "tags": [{"key": "t", "value": "v"}]}
    assert send(client, "post", f"{RUNS}/{other}/log-metrics", {"metrics": {"loss": 1.0}}).status_code == 200

    first = send(client, "post", f"{RUNS}/{run_id}/log-batch", batch)
    count_once = data(send(client, "post", f"{RUNS}/compare", {"run_ids": [run_id, other]}))["runs"][0]
    retry = send(client, "post", f"{RUNS}/{run_id}/log-batch", batch)

    assert first.status_code == 200 and retry.status_code == 200
    points = history(client, run_id, "loss")
    assert len(points) == 51
    assert len({(p["step"], p["timestamp"]) for p in points}) == 51
    count_twice = data(send(client, "post", f"{RUNS}/compare", {"run_ids": [run_id, other]}))["runs"][0]
    assert count_once["metrics"]["loss"]["count"] == count_twice["metrics"]["loss"]["count"] == 51
    assert get_run(client, run_id)["params"] == {"lr": "0.1"}

    # identical points inside one request are stored once too
    log_batch(client, run_id, metrics=[point("m", 1.0)] * 3 + [point("m", "NaN")] * 2)
    assert [p["value"] for p in history(client, run_id, "m")] == ["NaN", 1.0]


def test_logging_to_a_run_of_a_deleted_experiment_is_409_until_restored_and_an_unknown_run_is_404(client):
    exp_id = new_experiment(client)
    run_id = new_run(client, exp_id)
    send(client, "delete", f"{EXPERIMENTS}/{exp_id}")

    assert_error(send(client, "post", f"{RUNS}/{run_id}/log-metrics", {"metrics": {"m": 1.0}}), 409)
    assert_error(send(client, "post", f"{RUNS}/{run_id}/log-params", {"params": {"p": "v"}}), 409)
    assert_error(log_batch(client, run_id, tags=[{"key": "t", "value": "v"}]), 409)
    run = get_run(client, run_id)
    assert (run["metrics"], run["params"], run["tags"]) == ({}, {}, {})

    send(client, "post", f"{EXPERIMENTS}/{exp_id}/restore")
    assert send(client, "post", f"{RUNS}/{run_id}/log-metrics", {"metrics": {"m": 1.0}}).status_code == 200

    # and an unknown run is 404 on every logging route
    assert_error(send(client, "post", f"{RUNS}/no-such-run/log-metrics", {"metrics": {"m": 1.0}}), 404)
    assert_error(send(client, "post", f"{RUNS}/no-such-run/log-params", {"params": {"p": "v"}}), 404)
    assert_error(log_batch(client, "no-such-run", metrics=[point("m", 1.0)]), 404)
