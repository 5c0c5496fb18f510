"""Metric history over HTTP: `GET /api/v1/experiments/runs/{id}/metrics/{key}`.

Step window, cursor pages (signed tokens), and `max_points` downsampling that keeps each bucket's
min and max so spikes survive.
"""
from __future__ import annotations

import base64
import math
from typing import Any
from urllib.parse import quote

from tests.conftest import auth
from tests.tracking_helpers import EXPERIMENTS, RUNS, assert_error, data, send


def new_run(client, experiment_id: str | None = None) -> str:
    if experiment_id is None:
        created = send(client, "post", EXPERIMENTS, {"name": "history"})
        assert created.status_code == 201, created.body
        experiment_id = data(created)["id"]
    response = send(client, "post", RUNS, {"experiment_id": experiment_id})
    assert response.status_code == 201, response.body
    return data(response)["id"]


def log(client, run_id: str, key: str, points: list[tuple[int, int, Any]]) -> None:
    """Log (step, timestamp, value) points in batches of at most 1,000."""
    for start in range(0, len(points), 1000):
        metrics = [{"key": key, "step": s, "timestamp": t, "value": v} for s, t, v in points[start:start + 1000]]
        response = send(client, "post", f"{RUNS}/{run_id}/log-batch", {"metrics": metrics})
        assert response.status_code == 200, response.body


def read(client, run_id: str, key: str, query: str = "", tenant: str = "tenant-a"):
    return client.http.get(f"{RUNS}/{run_id}/metrics/{quote(key, safe='')}{query}", headers=auth(tenant))


def read_ok(client, run_id: str, key: str, query: str = "") -> dict:
    response = read(client, run_id, key, query)
    assert response.status_code == 200, response.body
    return data(response)


def rows(points: list[dict]) -> list[tuple[int, int, Any]]:
    return [(p["step"], p["timestamp"], p["value"]) for p in points]


def read_all_pages(client, run_id: str, key: str, query: str) -> tuple[list[dict], list[dict]]:
    """Follow next_page_token to the end; returns (every point in order, the pages)."""
    pages = [read_ok(client, run_id, key, query)]
    while pages[-1]["next_page_token"] is not None:
        assert len(pages) < 100, "pagination does not terminate"
        token = quote(pages[-1]["next_page_token"], safe="")
        pages.append(read_ok(client, run_id, key, f"{query}&page_token={token}"))
    return [p for page in pages for p in page["points"]], pages


# --- the whole series and its window ------------------------------------------------------------

def test_history_returns_every_point_in_step_order_whatever_the_logging_order_non_finite_as_strings(client):
    run_id = new_run(client)
    log(client, run_id, "loss", [(5, 50, 0.5), (1, 10, 0.9)])
    log(client, run_id, "loss", [(3, 30, 0.7), (0, 1, 1.0)])
    log(client, run_id, "loss", [(3, 31, 0.69), (2, 20, 0.8)])  # two points at step 3

    body = read_ok(client, run_id, "loss")

    assert set(body) == {"key", "points", "next_page_token"}
    assert body["key"] == "loss" and body["next_page_token"] is None
    assert all(set(p) == {"step", "value", "timestamp"} for p in body["points"])
    assert rows(body["points"]) == [(0, 1, 1.0), (1, 10, 0.9), (2, 20, 0.8), (3, 30, 0.7), (3, 31, 0.69),
                                    (5, 50, 0.5)]

    log(client, run_id, "odd", [(0, 1, "NaN"), (1, 1, "Infinity"), (2, 1, "-Infinity"), (3, 1, 0.0)])
    assert [p["value"] for p in read_ok(client, run_id, "odd")["points"]] == ["NaN", "Infinity", "-Infinity", 0.0]


def test_start_step_and_end_step_bound_the_window_inclusively_and_steps_sort_numerically(client):
    run_id = new_run(client)
    log(client, run_id, "m", [(s, 1_000 + s, float(s)) for s in range(0, 100)])
    log(client, run_id, "m", [(s, 5_000 + s, -float(s)) for s in range(40, 60)])  # a second chunk overlapping

    def steps(query: str) -> list[int]:
        return [p["step"] for p in read_ok(client, run_id, "m", query)["points"]]

    assert steps("?start_step=90") == list(range(90, 100))
    assert steps("?end_step=4") == list(range(0, 5))
    assert steps("?start_step=45&end_step=55") == sorted(list(range(45, 56)) * 2)
    assert steps("?start_step=200") == []
    assert steps("?start_step=-5&end_step=0") == [0]
    assert steps("?start_step=7&end_step=7") == [7]

    # negative and 64-bit steps sort numerically, also inside a window
    log(client, run_id, "wide", [(2**63 - 1, 1, 1.0), (-(2**63), 1, 2.0), (-1, 1, 3.0), (10, 1, 4.0), (9, 1, 5.0)])
    assert [p["step"] for p in read_ok(client, run_id, "wide")["points"]] == [-(2**63), -1, 9, 10, 2**63 - 1]
    assert [p["step"] for p in read_ok(client, run_id, "wide", "?start_step=0&end_step=10")["points"]] == [9, 10]


def test_metric_keys_with_slashes_spaces_and_colons_are_read_percent_encoded(client):
    run_id = new_run(client)
    keys = ["train/loss", "eval/acc/top-1", "my metric", "ns:value", "a.b_c-d"]
    for i, key in enumerate(keys):
        log(client, run_id, key, [(0, 1, float(i))])

    for i, key in enumerate(keys):
        body = read_ok(client, run_id, key)
        assert body["key"] == key
        assert rows(body["points"]) == [(0, 1, float(i))]

    response = client.http.get(f"{RUNS}/{run_id}/metrics/train%2Floss", headers=auth())
    assert response.status_code == 200 and data(response)["key"] == "train/loss"


def test_unknown_metric_or_run_is_404(client):
    run_id = new_run(client)
    log(client, run_id, "known", [(0, 1, 1.0)])

    assert_error(read(client, run_id, "unknown"), 404)
    assert_error(read(client, run_id, "Known"), 404)
    assert_error(read(client, "no-such-run", "known"), 404)


def test_invalid_history_parameters_and_max_points_with_a_page_token_are_400(client, subtests):
    run_id = new_run(client)
    log(client, run_id, "m", [(0, 1, 1.0)])
    for query in ("?start_step=x", "?end_step=1.5", "?start_step=5&end_step=4", "?limit=0", "?limit=-1",
                  "?limit=many", "?limit=1000000000", "?max_points=0", "?max_points=-3", "?max_points=x",
                  "?max_points=1000000000"):
        with subtests.test(query):
            assert_error(read(client, run_id, "m", query), 400)
    for key in ("a%2F..%2Fb", "..", "bad*key"):
        with subtests.test(f"key {key}"):
            assert_error(client.http.get(f"{RUNS}/{run_id}/metrics/{key}", headers=auth()), 400)
    with subtests.test("max_points with a page_token"):
        log(client, run_id, "paged", [(s, s, float(s)) for s in range(10)])
        token = quote(read_ok(client, run_id, "paged", "?limit=3")["next_page_token"], safe="")
        assert_error(read(client, run_id, "paged", f"?limit=3&max_points=5&page_token={token}"), 400)


def test_an_end_step_beyond_any_step_is_not_a_500(client):
    run_id = new_run(client)
    log(client, run_id, "m", [(0, 1, 1.0)])

    response = read(client, run_id, "m", f"?end_step={10**40}")

    assert response.status_code in (200, 400), response.body


# --- cursor pages -------------------------------------------------------------------------------

def test_pages_concatenate_to_the_whole_series_in_step_order_with_a_null_token_on_the_last(client):
    run_id = new_run(client)
    series = [(s, 1_000 + s, math.sin(s)) for s in range(0, 23)] + [(10, 2_000, 9.0), (10, 3_000, 8.0)]
    log(client, run_id, "m", series[::2])  # several requests, several chunks, out of order
    log(client, run_id, "m", series[1::2])

    points, pages = read_all_pages(client, run_id, "m", "?limit=4")

    assert rows(points) == sorted(series)
    assert [len(page["points"]) for page in pages] == [4, 4, 4, 4, 4, 4, 1]
    assert all(page["next_page_token"] for page in pages[:-1]) and pages[-1]["next_page_token"] is None
    assert rows(read_ok(client, run_id, "m", "?limit=25")["points"]) == sorted(series)
    assert read_ok(client, run_id, "m", "?limit=25")["next_page_token"] is None

    # a last page that is exactly full
    points, pages = read_all_pages(client, run_id, "m", "?limit=5")
    assert rows(points) == sorted(series) and pages[-1]["next_page_token"] is None and len(pages) <= 6


def test_pages_stay_inside_the_step_window(client):
    run_id = new_run(client)
    log(client, run_id, "m", [(s, s, float(s)) for s in range(100)])

    points, pages = read_all_pages(client, run_id, "m", "?start_step=20&end_step=39&limit=6")

    assert [p["step"] for p in points] == list(range(20, 40))
    assert len(pages) == 4


def test_a_tampered_or_foreign_page_token_is_400(client, subtests):
    exp_id = data(send(client, "post", EXPERIMENTS, {"name": "tokens"}))["id"]
    run_id, other_run = new_run(client, exp_id), new_run(client, exp_id)
    for run in (run_id, other_run):
        for key in ("loss", "acc"):
            log(client, run, key, [(s, s, float(s)) for s in range(10)])
    token = read_ok(client, run_id, "loss", "?limit=3")["next_page_token"]
    payload, _, signature = token.partition(".")
    decoded = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    decoded[len(decoded) // 2] ^= 0x01  # move the position by one bit, keep the signature
    forged_payload = base64.urlsafe_b64encode(bytes(decoded)).rstrip(b"=").decode()
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    cases = {
        "signature changed": (run_id, "loss", flipped),
        "position changed": (run_id, "loss", f"{forged_payload}.{signature}"),
        "garbage": (run_id, "loss", "not-a-token"),
        "no signature": (run_id, "loss", payload),
        "token of another run": (other_run, "loss", token),
        "token of another key": (run_id, "acc", token),
    }
    for case, (run, key, bad) in cases.items():
        with subtests.test(case):
            assert_error(read(client, run, key, f"?limit=3&page_token={quote(bad, safe='')}"), 400)
    with subtests.test("another tenant presenting the token"):
        response = read(client, run_id, "loss", f"?limit=3&page_token={quote(token, safe='')}", tenant="tenant-b")
        assert response.status_code in (400, 403), response.body
    assert read(client, run_id, "loss", f"?limit=3&page_token={quote(token, safe='')}").status_code == 200


# --- downsampling -------------------------------------------------------------------------------

def spiky_series() -> tuple[list[tuple[int, int, float]], set[int], set[int]]:
    """1,000 points of a small wave with 5 upward and 5 downward spikes, each 100 steps apart."""
    ups, downs = {50, 250, 450, 650, 850}, {150, 350, 550, 750, 950}
    series = []
    for s in range(1000):
        value = math.sin(s / 7.0)
        if s in ups:
            value = 100.0 + s
        elif s in downs:
            value = -100.0 - s
        series.append((s, 10_000 + s, value))
    return series, ups, downs


def test_max_points_keeps_at_most_that_many_points_and_every_spike(client):
    run_id = new_run(client)
    series, ups, downs = spiky_series()
    log(client, run_id, "m", series)

    body = read_ok(client, run_id, "m", "?max_points=20")

    kept = rows(body["points"])
    assert 10 <= len(kept) <= 20
    assert body["next_page_token"] is None
    assert set(kept) <= set(series), "downsampling returns real points, never averages"
    assert kept == sorted(kept), "still in step order"
    kept_steps = {step for step, _, _ in kept}
    assert ups <= kept_steps, "every upward spike survives"
    assert downs <= kept_steps, "every downward spike survives"


def test_max_points_keeps_each_buckets_min_and_max(client):
    run_id = new_run(client)
    # 10 flat plateaus of 50 points; inside each, one high and one low point
    series = []
    for bucket in range(10):
        for i in range(50):
            step = bucket * 50 + i
            value = {17: 10.0 + bucket, 33: -10.0 - bucket}.get(i, float(bucket) / 100)
            series.append((step, step, value))
    log(client, run_id, "m", series)

    kept = rows(read_ok(client, run_id, "m", "?max_points=20")["points"])

    assert len(kept) <= 20
    for bucket in range(10):
        assert (bucket * 50 + 17, bucket * 50 + 17, 10.0 + bucket) in kept
        assert (bucket * 50 + 33, bucket * 50 + 33, -10.0 - bucket) in kept


def test_max_points_applies_to_the_step_window_and_short_series_come_back_whole(client):
    run_id = new_run(client)
    series, ups, downs = spiky_series()
    log(client, run_id, "m", series)

    window = rows(read_ok(client, run_id, "m", "?start_step=200&end_step=399&max_points=10")["points"])
    whole = rows(read_ok(client, run_id, "m", "?start_step=0&end_step=9&max_points=50")["points"])

    assert len(window) <= 10 and all(200 <= step <= 399 for step, _, _ in window)
    assert {250, 350} <= {step for step, _, _ in window}
    assert whole == series[:10]
