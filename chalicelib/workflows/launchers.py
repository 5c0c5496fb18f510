"""Starting an external simulation engine: a local process here, a container task in production.

The engine receives its callback token in its environment (never on a command line, where `ps`
would show it) and talks to Agora only through the API with that token.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.settings import ENGINE_API_URL, ENGINE_CALLBACK_TOKEN, ENGINE_EXPERIMENT_ID

ENGINE_MODULE = "chalicelib.sim.remote"


class EngineLauncher(Protocol):
    def launch(self, experiment_id: str, callback_token: str) -> str:
        """Start the engine for a run; returns where it runs (for the run's log)."""


@dataclass
class ProcessLauncher:
    """Runs the reference engine as a separate OS process (the local stack and the tests)."""

    api_url: str
    command: str = ""  # AGORA_ENGINE_COMMAND: another engine program; default: the reference engine

    def launch(self, experiment_id: str, callback_token: str) -> str:
        if not self.api_url:
            raise RuntimeError("AGORA_PUBLIC_API_URL is not set: an external engine cannot reach the API")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGORA_"))}
        env.update({ENGINE_CALLBACK_TOKEN: callback_token, ENGINE_API_URL: self.api_url,
                    ENGINE_EXPERIMENT_ID: experiment_id})
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        argv = shlex.split(self.command) if self.command else [sys.executable, "-m", ENGINE_MODULE]
        process = subprocess.Popen(argv, env=env, cwd=root,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        return f"process:{process.pid}"


@dataclass
class EcsLauncher:
    """Runs the engine as a Fargate task (production). The token travels as a container override
    environment variable: visible to principals allowed `ecs:DescribeTasks`, never on a command line."""

    client: Any
    cluster: str
    task_definition: str
    container: str
    subnets: list[str]
    api_url: str
    security_groups: list[str] = field(default_factory=list)

    def launch(self, experiment_id: str, callback_token: str) -> str:
        environment = [{"name": ENGINE_CALLBACK_TOKEN, "value": callback_token},
                       {"name": ENGINE_API_URL, "value": self.api_url},
                       {"name": ENGINE_EXPERIMENT_ID, "value": experiment_id}]
        network = {"subnets": self.subnets, "assignPublicIp": "DISABLED"}
        if self.security_groups:
            network["securityGroups"] = self.security_groups
        answer = self.client.run_task(
            cluster=self.cluster, taskDefinition=self.task_definition, launchType="FARGATE", count=1,
            startedBy=f"agora-{experiment_id}"[:36], networkConfiguration={"awsvpcConfiguration": network},
            overrides={"containerOverrides": [{"name": self.container, "environment": environment}]},
            tags=[{"key": "agora:experiment", "value": experiment_id}])
        if answer.get("failures") or not answer.get("tasks"):
            raise RuntimeError(f"the engine task did not start: {answer.get('failures')}")
        return answer["tasks"][0]["taskArn"]
