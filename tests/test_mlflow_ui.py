"""MLflow's own web UI (the build inside the installed `mlflow` package) on the local stack, over Agora's data.

Over HTTP: the page asks for the key, the bundle's files come from the package (text and bytes), the GraphQL
queries the UI sends (read out of the bundle itself) answer in the shapes it reads, and features Agora does
not have answer "none". In a browser (headless Chromium from Debian's packages, driven by selenium): runs
logged through /api/v1 are listed in the experiment's runs table, a run's page draws its metric chart, and
the compare view of two runs renders.

The stack runs in a subprocess, as tests/test_local_stack.py's.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from typing import Any, Callable, Iterator

import pytest
import requests
from chalice import Chalice

from chalicelib.api.mlflow_ui import NOTHING_HERE, asset, build_dir, declare_binary_types, installed_build
from tests.test_local_stack import KEYS, ROOT, running_stack

pytestmark = pytest.mark.skipif(installed_build() is None,
                                reason="MLflow's web UI ships in the `mlflow` package, not installed here")

KEY = KEYS["tenant-a"]
BEARER = {"Authorization": f"Bearer {KEY}"}
STEPS = 300


@pytest.fixture(scope="module")
def stack_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_stack({}, tmp_path_factory.mktemp("mlflow-ui") / "data") as stack:
        yield stack.url


def v1(stack_url: str, path: str, body: dict, key: str = KEY) -> dict:
    answer = requests.post(stack_url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def logged_runs(stack_url: str, names: tuple[str, ...] = ("alpha", "beta")) -> tuple[str, list[str]]:
    """An experiment and its runs as Agora's own API logs them: params and a loss curve of STEPS steps, no tags."""
    experiment_id = v1(stack_url, "/api/v1/experiments", {"name": f"ui-{time.time_ns()}"})["id"]
    run_ids = []
    for n, name in enumerate(names):
        run_id = v1(stack_url, "/api/v1/experiments/runs", {"experiment_id": experiment_id, "name": name})["id"]
        lr = 0.1 / 10 ** n
        v1(stack_url, f"/api/v1/experiments/runs/{run_id}/log-batch", {
            "params": [{"key": "lr", "value": str(lr)}, {"key": "optimizer", "value": "adam"}],
            "metrics": [{"key": "loss", "value": lr / (step + 1), "step": step, "timestamp": 1_700_000_000_000 + step}
                        for step in range(STEPS)]})
        run_ids.append(run_id)
    return experiment_id, run_ids


def ui_queries() -> dict[str, str]:
    """The GraphQL documents in the installed bundle, by operation name, with the `__typename` that Apollo
    adds to every selection set."""
    found = {}
    for script in (build_dir() / "static" / "js").glob("*.js"):
        for match in re.finditer(r"`(\s*query (\w+)\(.*?)`", script.read_text("utf-8"), re.DOTALL):
            found[match.group(2)] = match.group(1).replace("{", "{ __typename")
    return found


def graphql(stack_url: str, query: str, variables: dict, key: str = KEY) -> dict:
    answer = requests.post(f"{stack_url}/graphql", json={"query": query, "variables": variables}, timeout=30,
                           headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


# --- over HTTP -----------------------------------------------------------------------------------------
def test_the_page_asks_for_the_key_then_the_bundle_comes_from_the_installed_package(stack_url: str) -> None:
    refused = requests.get(stack_url + "/", timeout=30)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
    wrong = requests.get(stack_url + "/", auth=("ui", "not-a-key"), timeout=30)
    assert wrong.status_code == 401
    page = requests.get(stack_url + "/", auth=("ui", KEY), timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-cache"
    assert page.text == (build_dir() / "index.html").read_text()

    # what the page references, and a font and the icon (bytes): public, as they are in the package
    script = re.search(r'src="(static-files/[^"]+\.js)"', page.text).group(1)  # type: ignore[union-attr]
    style = re.search(r'href="(static-files/[^"]+\.css)"', page.text).group(1)  # type: ignore[union-attr]
    font = next((build_dir() / "static" / "media").glob("*.woff2")).relative_to(build_dir()).as_posix()
    for path, content_type in ((script, "text/javascript; charset=utf-8"), (style, "text/css; charset=utf-8"),
                               (f"static-files/{font}", "font/woff2"), ("static-files/favicon.ico", "image/x-icon"),
                               ("static-files/manifest.json", "application/json; charset=utf-8")):
        served = requests.get(f"{stack_url}/{path}", timeout=30)
        assert served.status_code == 200, (path, served.text[:200])
        assert served.headers["Content-Type"] == content_type, path
        assert served.content == (build_dir() / path.removeprefix("static-files/")).read_bytes(), path
        assert served.headers["Cache-Control"] == "public, max-age=2419200"

    for missing in ("static-files/static/js/nope.js", "static-files/..%2F..%2Fserver%2F__init__.py",
                    "static-files/static/%2E%2E/index.html"):
        answer = requests.get(f"{stack_url}/{missing}", timeout=30)
        assert answer.status_code == 404, missing


def test_fonts_and_the_icon_leave_the_function_base64_encoded_as_api_gateway_needs() -> None:
    app = Chalice(app_name="throwaway")  # what registering the blueprint does to the app's list
    declare_binary_types(app, {})
    assert {"font/woff2", "font/woff", "image/x-icon", "image/png"} <= set(app.api.binary_types)
    icon = asset(("favicon.ico",)).to_dict(app.api.binary_types)
    assert icon["isBase64Encoded"] and base64.b64decode(icon["body"]) == (build_dir() / "favicon.ico").read_bytes()
    page = asset(("index.html",)).to_dict(app.api.binary_types)
    assert "isBase64Encoded" not in page and page["body"] == (build_dir() / "index.html").read_text()


def test_the_ui_queries_answer_in_the_shapes_it_reads(stack_url: str) -> None:
    experiment_id, (run_id, other_id) = logged_runs(stack_url)
    queries = ui_queries()
    assert set(queries) == {"MlflowGetExperimentQuery", "GetRun", "SearchRuns", "GetMetricHistoryBulkInterval"}

    answer = graphql(stack_url, queries["MlflowGetExperimentQuery"], {"input": {"experimentId": experiment_id}})
    assert answer["errors"] is None
    got = answer["data"]["mlflowGetExperiment"]
    assert got["__typename"] == "MlflowGetExperimentResponse" and got["apiError"] is None
    experiment = got["experiment"]
    assert experiment["__typename"] == "MlflowExperiment" and experiment["experimentId"] == experiment_id
    assert experiment["lifecycleStage"] == "active" and experiment["tags"] == []
    assert experiment["creationTime"].isdigit() and experiment["lastUpdateTime"].isdigit()  # int64 as strings

    answer = graphql(stack_url, queries["GetRun"], {"data": {"runId": run_id}})
    assert answer["errors"] is None and answer["data"]["mlflowGetRun"]["apiError"] is None
    run = answer["data"]["mlflowGetRun"]["run"]
    assert run["__typename"] == "MlflowRunExtension"
    info = run["info"]
    assert (info["runUuid"], info["runName"], info["experimentId"], info["status"], info["lifecycleStage"]) == \
        (run_id, "alpha", experiment_id, "RUNNING", "active")
    assert info["startTime"].isdigit() and info["endTime"] is None
    assert run["experiment"]["experimentId"] == experiment_id and run["experiment"]["name"] == experiment["name"]
    assert [(m["__typename"], m["key"], m["step"], m["value"]) for m in run["data"]["metrics"]] == \
        [("MlflowMetricExtension", "loss", str(STEPS - 1), 0.1 / STEPS)]
    assert {(p["key"], p["value"]) for p in run["data"]["params"]} == {("lr", "0.1"), ("optimizer", "adam")}
    # MLflow's runs always carry their name as a tag; a run made through /api/v1 gets it in the answer
    assert [(t["key"], t["value"]) for t in run["data"]["tags"]] == [("mlflow.runName", "alpha")]
    assert run["modelVersions"] == []
    assert run["inputs"] == {"__typename": "MlflowRunInputs", "datasetInputs": [], "modelInputs": []}
    assert run["outputs"] == {"__typename": "MlflowRunOutputs", "modelOutputs": []}

    found = graphql(stack_url, queries["SearchRuns"], {"data": {"experimentIds": [experiment_id],
                                                                "filter": f'attributes.run_id = "{other_id}"'}})
    assert found["errors"] is None
    assert [r["info"]["runName"] for r in found["data"]["mlflowSearchRuns"]["runs"]] == ["beta"]

    history = graphql(stack_url, queries["GetMetricHistoryBulkInterval"], {"data": {
        "runIds": [run_id, other_id], "metricKey": "loss", "maxResults": 320}})["data"]
    history = history["mlflowGetMetricHistoryBulkInterval"]
    points = [(p["runId"], p["step"]) for p in history["metrics"]]
    assert points == [(r, str(step)) for r in (run_id, other_id) for step in range(STEPS)]
    assert history["metrics"][0]["__typename"] == "MlflowMetricWithRunId"

    # an unknown run, another tenant's run: the field's apiError (the run page shows "not found" for the first)
    for key, wanted, codes in ((KEY, "nope", {"RESOURCE_DOES_NOT_EXIST"}),
                               (KEYS["tenant-b"], run_id, {"RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED"})):
        missing = graphql(stack_url, queries["GetRun"], {"data": {"runId": wanted}}, key)["data"]["mlflowGetRun"]
        assert missing["run"] is None and missing["apiError"]["code"] in codes and missing["apiError"]["message"]
    # a query's own faults: listed as strings (MLflow's form), no data
    wrong = graphql(stack_url, "{ mlflowGetRun(input: {runId: \"x\"}) { nope } }", {})
    assert wrong == {"data": None, "errors": ["Cannot query field 'nope' on type 'MlflowGetRunResponse'."]}
    assert requests.post(f"{stack_url}/graphql", json={"query": "{ __typename }"}, timeout=30).status_code == 401


def test_what_agora_does_not_have_answers_none_and_the_ui_learns_what_the_server_is(stack_url: str) -> None:
    for method, path in NOTHING_HERE:
        answer = requests.request(method, stack_url + path, json={} if method == "POST" else None, headers=BEARER,
                                  timeout=30)
        assert (answer.status_code, answer.json()) == (200, {}), path
        assert requests.request(method, stack_url + path, json={}, timeout=30).status_code == 401, path
    info = requests.get(stack_url + "/ajax-api/3.0/mlflow/server-info", timeout=30)  # public, as MLflow's
    assert info.status_code == 200 and info.json()["store_type"] == "Agora"
    telemetry = requests.get(stack_url + "/ajax-api/3.0/mlflow/ui-telemetry", timeout=30)
    assert telemetry.json() == {"disable_ui_telemetry": True}


def test_the_runs_table_gets_every_run_with_its_list_of_tags(stack_url: str) -> None:
    """The runs table reads each run's `data.tags` as a list (MLflow's runs always carry `mlflow.runName`, so
    its protobuf JSON never leaves the list out); a run logged through /api/v1 has no tags of its own."""
    experiment_id, run_ids = logged_runs(stack_url, ("plain",))
    answer = requests.post(f"{stack_url}/ajax-api/2.0/mlflow/runs/search", headers=BEARER, timeout=30,
                           json={"experiment_ids": [experiment_id], "max_results": 100})
    assert [r["info"]["run_id"] for r in answer.json()["runs"]] == run_ids
    assert all(isinstance(r["data"].get("tags"), list) for r in answer.json()["runs"]), answer.json()["runs"]


# --- in a browser ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium through selenium, installed from Debian's packages when missing (devstack/browser.sh)."""
    installed = subprocess.run(["bash", str(ROOT / "devstack" / "browser.sh")], capture_output=True, text=True,
                               timeout=900)
    if installed.returncode == 3:  # a developer's machine without apt; CI must run it
        if os.environ.get("CI"):
            pytest.fail(f"CI cannot install Chromium: {installed.stderr.strip()}")
        pytest.skip(f"no apt to install Chromium with: {installed.stderr.strip()}")
    assert installed.returncode == 0, f"installing Chromium failed:\n{installed.stdout}\n{installed.stderr}"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    page = driver.execute_script("return document.body.innerText").split("MLflow Assistant")[0]
    raise AssertionError(f"{what}: not shown within {timeout:.0f} s; the page says:\n{page[-1500:]}")


def text_of(driver: Any, selector: str) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)", selector)


def test_the_ui_lists_the_runs_draws_a_run_s_chart_and_compares_two_runs(stack_url: str, chromium: Any) -> None:
    experiment_id, run_ids = logged_runs(stack_url)
    host = stack_url.removeprefix("http://")
    # The page asks for the key (HTTP Basic): given in the URL once, the browser then sends it with every call
    # (a page whose URL holds credentials cannot fetch, so the UI itself is opened without them).
    chromium.get(f"http://ui:{KEY}@{host}/")
    wait_for(chromium, "the UI", lambda: text_of(chromium, "#root *"))

    chromium.get(f"{stack_url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
    rows = wait_for(chromium, "the experiment's runs table with both runs", lambda: (
        lambda rows: rows if any("alpha" in r for r in rows) and any("beta" in r for r in rows) else None)(
        text_of(chromium, ".ag-center-cols-container .ag-row, .ag-pinned-left-cols-container .ag-row")))
    assert len(rows) >= 2

    chromium.get(f"{stack_url}/#/experiments/{experiment_id}/runs/{run_ids[0]}/model-metrics")
    series = wait_for(chromium, "the run's loss chart", lambda: chromium.execute_script(
        "const plot = document.querySelector('.js-plotly-plot');"
        "return plot && plot.data && plot.data.length && document.querySelector('.js-plotly-plot path.js-line')"
        " ? plot.data.map(trace => trace.x.length) : null;"))
    assert STEPS in series  # every step of the curve (fewer than the 320 points the chart asks for)
    assert "alpha (loss)" in chromium.execute_script("return document.body.innerText")

    chromium.get(f"{stack_url}/#/compare-runs?runs={json.dumps(run_ids)}&experiments={json.dumps([experiment_id])}")
    wait_for(chromium, "the comparison of two runs", lambda: any(
        "Comparing 2 Runs" in t for t in text_of(chromium, "h2")))
    plot = wait_for(chromium, "the parallel coordinates plot", lambda: chromium.execute_script(
        "const plot = document.querySelector('.js-plotly-plot');"
        "return plot && plot.data && plot.data.length ? plot.data[0].dimensions.map(d => d.label) : null;"))
    assert plot == ["lr", "loss"]
    page = chromium.execute_script("return document.body.innerText")
    assert "alpha" in page and "beta" in page and "optimizer" in page
    assert "error" not in page.split("MLflow Assistant")[0].lower()
