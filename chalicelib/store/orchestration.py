"""Step Functions: start a simulation's execution, read its state, resume or fail a parked task."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from botocore.exceptions import ClientError

from chalicelib.domain.errors import Conflict
from chalicelib.store.aws import calls_to

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


@calls_to("Step Functions")
@dataclass
class StepFunctions:
    client: SFNClient
    state_machine_arn: str

    def start(self, name: str, payload: dict) -> str:
        if not self.state_machine_arn:
            raise RuntimeError("AGORA_STATE_MACHINE_ARN is not set: simulations cannot start")
        try:
            return self.client.start_execution(stateMachineArn=self.state_machine_arn, name=name,
                                               input=json.dumps(payload))["executionArn"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                raise Conflict(f"a simulation named {name} was already started") from exc
            raise

    def describe(self, execution_arn: str) -> Optional[str]:
        try:
            return self.client.describe_execution(executionArn=execution_arn)["status"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return None
            raise

    def succeed(self, task_token: str, output: dict) -> None:
        self._ignore_gone(lambda: self.client.send_task_success(taskToken=task_token, output=json.dumps(output)))

    def fail(self, task_token: str, error: str, cause: str) -> None:
        self._ignore_gone(lambda: self.client.send_task_failure(taskToken=task_token, error=error,
                                                                cause=cause[:32_000]))

    def heartbeat(self, task_token: str) -> None:
        self._ignore_gone(lambda: self.client.send_task_heartbeat(taskToken=task_token))

    @staticmethod
    def _ignore_gone(call: Callable[[], object]) -> None:
        """A task that already ended (timed out, stopped) makes its token invalid: nothing left to resume."""
        try:
            call()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"):
                raise
