"""The production launcher starts the engine as a Fargate task with the token in its environment only.

moto 5.2.5 fails to create the network interface of an `awsvpc` task, so the RunTask request is
checked at the botocore boundary (Stubber): exactly what ECS would receive.
"""
from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.workflows.launchers import EcsLauncher

TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/engines/abc"


def test_ecs_launcher_runs_a_fargate_task_with_the_token_as_an_environment_override(aws_env):
    client = boto3.session.Session().client("ecs")
    launcher = EcsLauncher(client, "engines", "agora-engine:3", "engine", ["subnet-1", "subnet-2"],
                           "https://agora.example", ["sg-1"])
    expected = {
        "cluster": "engines", "taskDefinition": "agora-engine:3", "launchType": "FARGATE", "count": 1,
        "startedBy": "agora-01exp",
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1", "subnet-2"],
                                                         "assignPublicIp": "DISABLED", "securityGroups": ["sg-1"]}},
        "overrides": {"containerOverrides": [{"name": "engine", "environment": [
            {"name": "AGORA_CALLBACK_TOKEN", "value": "secret-token"},
            {"name": "AGORA_API_URL", "value": "https://agora.example"},
            {"name": "AGORA_EXPERIMENT_ID", "value": "01exp"}]}]},
        "tags": [{"key": "agora:experiment", "value": "01exp"}],
    }
    with Stubber(client) as stub:
        stub.add_response("run_task", {"tasks": [{"taskArn": TASK_ARN}], "failures": []}, expected)
        assert launcher.launch("01exp", "secret-token") == TASK_ARN
        stub.assert_no_pending_responses()


def test_a_task_that_does_not_start_fails_the_launch(aws_env):
    client = boto3.session.Session().client("ecs")
    launcher = EcsLauncher(client, "engines", "agora-engine:3", "engine", ["subnet-1"], "https://agora.example")
    with Stubber(client) as stub:
        stub.add_response("run_task", {"tasks": [], "failures": [{"reason": "RESOURCE:MEMORY"}]})
        with pytest.raises(RuntimeError, match="RESOURCE:MEMORY"):
            launcher.launch("01exp", "secret-token")


def test_ecs_launcher_refuses_to_start_without_its_settings(aws, monkeypatch):
    from chalicelib import settings, wiring
    from chalicelib.workflows.simulation import engine_launcher

    monkeypatch.setenv(settings.ENGINE_LAUNCHER, "ecs")
    wiring.reset()
    with pytest.raises(RuntimeError, match="AGORA_ENGINE_CLUSTER"):
        engine_launcher(wiring.services())
