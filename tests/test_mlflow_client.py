"""MLflow's own client (`mlflow`, pinned) against the local stack, as a user's training script drives it.

Only the tracking URI and the token are set, as README "Use Agora from MLflow" says. What the script
logs reads back identically through /api/v1, and the other way round; errors arrive as MlflowException
with MLflow's error codes; another tenant's token sees nothing of it.
"""
from __future__ import annotations

import base64
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.test_local_stack import KEYS, running_stack

mlflow = pytest.importorskip("mlflow")
from mlflow.entities import ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

STEPS = 300


@pytest.fixture(scope="module")
def stack_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_stack({}, tmp_path_factory.mktemp("mlflow-stack") / "data") as stack:
        yield stack.url


@pytest.fixture
def as_tenant(stack_url: str, monkeypatch: pytest.MonkeyPatch):
    """Point `mlflow` at the stack as one tenant: MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN, nothing else."""
    def use(tenant: str = "tenant-a") -> MlflowClient:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", stack_url)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", KEYS[tenant])
        mlflow.set_tracking_uri(stack_url)
        return MlflowClient(stack_url)

    yield use
    if mlflow.active_run() is not None:
        mlflow.end_run()


def v1(stack_url: str, path: str, tenant: str = "tenant-a", **kwargs) -> requests.Response:
    method = "POST" if "json" in kwargs else "GET"
    return requests.request(method, stack_url + path, headers={"Authorization": f"Bearer {KEYS[tenant]}"},
                            timeout=30, **kwargs)


def training_script(tmp_path: Path, experiment: str) -> str:
    """What a user's script does: an experiment, a run with params, tags, a loss curve and files."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name="baseline") as run:
        mlflow.log_params({"lr": "0.01", "optimizer": "adam"})
        mlflow.set_tags({"team": "vision", "stage": "dev"})
        for step in range(STEPS):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=STEPS - 1)
        mlflow.log_text("hello from a script", "notes/readme.txt")
        weights = tmp_path / "weights.bin"
        weights.write_bytes(bytes(range(256)) * 8)
        mlflow.log_artifact(str(weights), artifact_path="model")
        mlflow.log_dict({"layers": [64, 32]}, "model/config.json")
    return run.info.run_id


def test_a_training_script_runs_unchanged_and_reads_back(as_tenant, stack_url, tmp_path):
    client = as_tenant("tenant-a")
    run_id = training_script(tmp_path, "mnist-mlflow")

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "baseline"
    assert run.info.end_time >= run.info.start_time > 0
    assert run.data.params == {"lr": "0.01", "optimizer": "adam"}
    assert run.data.tags["team"] == "vision" and run.data.tags["mlflow.runName"] == "baseline"
    assert run.data.metrics == {"loss": pytest.approx(1.0 / STEPS), "acc": 0.9, "f1": 0.8}

    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == list(range(STEPS))
    assert [m.value for m in history] == [pytest.approx(1.0 / (s + 1)) for s in range(STEPS)]

    listed = {a.path: a for a in client.list_artifacts(run_id)}
    assert set(listed) == {"model", "notes"} and listed["model"].is_dir
    inside = {a.path: a.file_size for a in client.list_artifacts(run_id, "model")}
    assert set(inside) == {"model/config.json", "model/weights.bin"} and inside["model/weights.bin"] == 2048
    local = Path(client.download_artifacts(run_id, "model", str(tmp_path / "down")))
    assert (local / "weights.bin").read_bytes() == bytes(range(256)) * 8
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes/readme.txt") == "hello from a script"

    # the same run through /api/v1: same params, tags, latest values and history
    same = v1(stack_url, f"/api/v1/experiments/runs/{run_id}").json()
    assert same["params"] == run.data.params and same["status"] == "FINISHED"
    assert same["tags"] == run.data.tags
    assert {k: m["value"] for k, m in same["metrics"].items()} == run.data.metrics
    points = v1(stack_url, f"/api/v1/experiments/runs/{run_id}/metrics/loss?limit=1000").json()["points"]
    assert [(p["step"], p["value"], p["timestamp"]) for p in points] == \
        [(m.step, m.value, m.timestamp) for m in history]


def test_search_with_a_filter_string_and_order(as_tenant, tmp_path):
    client = as_tenant("tenant-a")
    exp_id = client.create_experiment("sweep")
    for lr in ("0.1", "0.01", "0.001"):
        run = client.create_run(exp_id, run_name=f"lr-{lr}")
        client.log_param(run.info.run_id, "lr", lr)
        client.log_metric(run.info.run_id, "loss", float(lr) * 10, step=1)
        client.set_terminated(run.info.run_id)
    found = client.search_runs([exp_id], "metrics.loss < 0.5 and params.lr != '0.001'", order_by=["metrics.loss"])
    assert [r.data.params["lr"] for r in found] == ["0.01"]
    ordered = client.search_runs([exp_id], order_by=["metrics.loss DESC"])
    assert [r.data.params["lr"] for r in ordered] == ["0.1", "0.01", "0.001"]
    named = mlflow.search_runs([exp_id], filter_string="attributes.run_name = 'lr-0.1'", output_format="list")
    assert [r.info.run_name for r in named] == ["lr-0.1"]
    paged = client.search_runs([exp_id], max_results=2)
    assert len(paged) == 2 and paged.token
    rest = client.search_runs([exp_id], max_results=2, page_token=paged.token)
    assert len(rest) == 1 and not rest.token
    assert {r.info.run_id for r in paged} | {r.info.run_id for r in rest} == \
        {r.info.run_id for r in ordered}
    experiments = client.search_experiments(filter_string="name = 'sweep'")
    assert [e.experiment_id for e in experiments] == [exp_id]


def test_delete_and_restore_runs_and_experiments(as_tenant):
    client = as_tenant("tenant-a")
    exp_id = client.create_experiment("to-delete")
    run_id = client.create_run(exp_id).info.run_id
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([exp_id]) == []
    assert [r.info.run_id for r in client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)] == [run_id]
    with pytest.raises(MlflowException) as refused:
        client.log_metric(run_id, "x", 1.0)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    client.restore_run(run_id)
    client.log_metric(run_id, "x", 1.0)

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert exp_id not in {e.experiment_id for e in client.search_experiments()}
    assert exp_id in {e.experiment_id for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)}
    client.restore_experiment(exp_id)
    assert client.get_experiment_by_name("to-delete").experiment_id == exp_id


def test_tags_and_renames(as_tenant):
    client = as_tenant("tenant-a")
    exp_id = client.create_experiment("tagged", tags={"owner": "ana"})
    client.set_experiment_tag(exp_id, "phase", "1")
    assert client.get_experiment(exp_id).tags == {"owner": "ana", "phase": "1"}
    client.rename_experiment(exp_id, "tagged-2")
    assert client.get_experiment_by_name("tagged-2").experiment_id == exp_id
    run_id = client.create_run(exp_id, tags={"a": "1"}).info.run_id
    client.set_tag(run_id, "b", "2")
    client.delete_tag(run_id, "a")
    assert {k: v for k, v in client.get_run(run_id).data.tags.items() if not k.startswith("mlflow.")} == {"b": "2"}
    client.update_run(run_id, name="renamed")
    assert client.get_run(run_id).info.run_name == "renamed"


def test_errors_are_mlflow_exceptions_with_mlflow_codes(as_tenant):
    client = as_tenant("tenant-a")
    with pytest.raises(MlflowException) as missing:
        client.get_run("0" * 26)
    assert missing.value.error_code in ("RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED")
    exp_id = client.create_experiment("errors")
    with pytest.raises(MlflowException) as twice:
        client.create_experiment("errors")
    assert twice.value.error_code == "RESOURCE_ALREADY_EXISTS"
    run_id = client.create_run(exp_id).info.run_id
    client.log_param(run_id, "p", "1")
    with pytest.raises(MlflowException) as changed:
        client.log_param(run_id, "p", "2")
    assert changed.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as bad_key:
        client.log_metric(run_id, "bad*key", 1.0)
    assert bad_key.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as bad_filter:
        client.search_runs([exp_id], "metrics.loss <")
    assert bad_filter.value.error_code == "INVALID_PARAMETER_VALUE"
    client.log_metric(run_id, "n", math.nan)
    assert math.isnan(client.get_run(run_id).data.metrics["n"])


def test_another_tenants_token_sees_nothing(as_tenant, tmp_path):
    client = as_tenant("tenant-a")
    exp_id = client.create_experiment("private")
    run_id = client.create_run(exp_id).info.run_id
    client.log_param(run_id, "secret", "42")

    other = as_tenant("tenant-b")
    assert "private" not in {e.name for e in other.search_experiments(view_type=ViewType.ALL)}
    assert other.search_runs([exp_id], run_view_type=ViewType.ALL) == []
    for attempt in (lambda: other.get_run(run_id), lambda: other.log_param(run_id, "x", "1"),
                    lambda: other.get_experiment(exp_id), lambda: other.delete_run(run_id),
                    lambda: other.list_artifacts(run_id)):
        with pytest.raises(MlflowException) as refused:
            attempt()
        assert refused.value.error_code in ("PERMISSION_DENIED", "RESOURCE_DOES_NOT_EXIST")
    assert as_tenant("tenant-a").get_run(run_id).data.params == {"secret": "42"}


def test_basic_auth_and_a_bad_token(as_tenant, stack_url, monkeypatch):
    as_tenant("tenant-a")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ana")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", KEYS["tenant-a"])
    client = MlflowClient(stack_url)
    exp_id = client.create_experiment("basic-auth")
    assert client.get_experiment(exp_id).name == "basic-auth"
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-a-key")
    with pytest.raises(MlflowException) as refused:
        client.get_experiment(exp_id)
    assert refused.value.error_code == "UNAUTHENTICATED"
    answer = requests.get(f"{stack_url}/api/2.0/mlflow/experiments/get?experiment_id={exp_id}", timeout=30)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic")
    basic = base64.b64encode(f"x:{KEYS['tenant-a']}".encode()).decode()
    assert requests.get(f"{stack_url}/api/2.0/mlflow/experiments/get?experiment_id={exp_id}", timeout=30,
                        headers={"Authorization": f"Basic {basic}"}).json()["experiment"]["name"] == "basic-auth"


def test_a_run_of_api_v1_is_an_mlflow_run_and_the_default_experiment(as_tenant, stack_url):
    client = as_tenant("tenant-a")
    exp = v1(stack_url, "/api/v1/experiments", json={"name": "from-v1"}).json()
    run = v1(stack_url, "/api/v1/experiments/runs", json={"experiment_id": exp["id"], "name": "v1-run"}).json()
    v1(stack_url, f"/api/v1/experiments/runs/{run['id']}/log-batch",
       json={"metrics": [{"key": "loss", "value": 0.5, "step": 3}], "params": [{"key": "k", "value": "v"}]})
    found = client.search_runs([exp["id"]])
    assert [(r.info.run_id, r.info.run_name, r.data.params, r.data.metrics) for r in found] == \
        [(run["id"], "v1-run", {"k": "v"}, {"loss": 0.5})]

    # a script of its own that sets no experiment: MLflow's "Default" (the client sends experiment id "0")
    script = "import mlflow\nwith mlflow.start_run() as run:\n    mlflow.log_metric('m', 1.0)\nprint(run.info.run_id)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=stack_url, MLFLOW_TRACKING_TOKEN=KEYS["tenant-a"])
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    default = client.get_experiment_by_name("Default")
    assert client.get_run(done.stdout.split()[-1]).info.experiment_id == default.experiment_id
