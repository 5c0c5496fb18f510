"""One client per API, all with the same methods, so that one workload drives every system.

- `AgoraClient`: Agora's own tracking API (`/api/v1/experiments`), Bearer key.
- `MlflowRestClient`: the MLflow REST API (`/api/2.0/mlflow`) as MLflow 3.17.2 and FastTrackML 0.6.0 serve it,
  called the way the mlflow Python client calls it (history pages of 25,000 with `page_token`). An "agora-mlflow"
  system is this same client on Agora's URL with Agora's key (`systems.py`), once Agora serves that API.

The clients speak through a transport: `HttpTransport` (requests, one keep-alive Session per client) for the
benchmark, or `bench.peers.meter.ChaliceTransport` (chalice.test.Client, in-process) for counting DynamoDB work.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

Metric = dict[str, Any]  # {"key", "value", "step", "timestamp"}: the same shape in both APIs
KeyValue = dict[str, str]  # {"key", "value"}
HISTORY_PAGE = 25_000  # the mlflow client's page for get-history; Agora's largest page


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, text: str) -> None:
        super().__init__(f"{method} {path} -> {status}: {text[:300]}")
        self.status = status


class Unsupported(Exception):
    """The system has no endpoint for this operation (the table shows "(none)")."""


class Transport(Protocol):
    bytes_received: int
    requests: int

    def request(self, method: str, path: str, params: Optional[dict[str, Any]] = None,
                body: Any = None) -> Any: ...

    def close(self) -> None: ...


class HttpTransport:
    """requests with one keep-alive Session; every non-2xx answer raises ApiError."""

    def __init__(self, base: str, headers: Optional[dict[str, str]] = None, timeout_s: float = 900.0) -> None:
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0))
        self.session.headers.update(headers or {})
        self.timeout_s = timeout_s
        self.bytes_received = 0
        self.requests = 0

    def request(self, method: str, path: str, params: Optional[dict[str, Any]] = None, body: Any = None) -> Any:
        response = self.session.request(method, self.base + path, params=params, json=body, timeout=self.timeout_s)
        self.requests += 1
        self.bytes_received += len(response.content)
        if response.status_code >= 300:
            raise ApiError(response.status_code, method, path, response.text)
        return response.json() if response.content else {}

    def close(self) -> None:
        self.session.close()


@dataclass
class History:
    points: int
    pages: int
    first_step: Optional[int]
    last_step: Optional[int]


@dataclass
class Listing:
    runs: int
    requests: int


class TrackingClient(ABC):
    """The operations the workload needs, each the way a user of that API would do it."""

    system = ""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def call(self, method: str, path: str, params: Optional[dict[str, Any]] = None, body: Any = None) -> Any:
        return self.transport.request(method, path, params=params, body=body)

    @abstractmethod
    def create_experiment(self, name: str) -> str: ...

    @abstractmethod
    def create_run(self, experiment_id: str) -> str: ...

    @abstractmethod
    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[KeyValue] = (),
                  tags: Sequence[KeyValue] = ()) -> None: ...

    @abstractmethod
    def history(self, run_id: str, key: str, page_size: int = HISTORY_PAGE) -> History:
        """Every point of one metric, walking all pages."""

    @abstractmethod
    def downsampled(self, run_id: str, key: str, points: int) -> int:
        """One read of the series reduced to about `points` points; raises Unsupported where there is none."""

    @abstractmethod
    def list_runs(self, experiment_id: str, page_size: int) -> Listing:
        """Every run of the experiment in pages of `page_size`."""

    @abstractmethod
    def compare(self, run_ids: Sequence[str], keys: Sequence[str]) -> int:
        """What a comparison view needs of the runs: params, latest value, min, max and count of each key."""

    def close(self) -> None:
        self.transport.close()


def _walk(points: list[dict[str, Any]], state: History) -> None:
    state.pages += 1
    state.points += len(points)
    if points:
        if state.first_step is None:
            state.first_step = points[0]["step"]
        state.last_step = points[-1]["step"]


class AgoraClient(TrackingClient):
    system = "agora"
    API = "/api/v1/experiments"

    def create_experiment(self, name: str) -> str:
        return str(self.call("POST", self.API, body={"name": name})["id"])

    def create_run(self, experiment_id: str) -> str:
        return str(self.call("POST", self.API + "/runs", body={"experiment_id": experiment_id})["id"])

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[KeyValue] = (),
                  tags: Sequence[KeyValue] = ()) -> None:
        self.call("POST", f"{self.API}/runs/{run_id}/log-batch",
                  body={"metrics": list(metrics), "params": list(params), "tags": list(tags)})

    def _metric_path(self, run_id: str, key: str) -> str:
        return f"{self.API}/runs/{run_id}/metrics/{quote(key, safe='')}"

    def history(self, run_id: str, key: str, page_size: int = HISTORY_PAGE) -> History:
        state = History(0, 0, None, None)
        token = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if token:
                params["page_token"] = token
            page = self.call("GET", self._metric_path(run_id, key), params=params)
            _walk(page["points"], state)
            token = page.get("next_page_token")
            if not token or not page["points"]:
                return state

    def downsampled(self, run_id: str, key: str, points: int) -> int:
        return len(self.call("GET", self._metric_path(run_id, key), params={"max_points": points})["points"])

    def list_runs(self, experiment_id: str, page_size: int) -> Listing:
        # Agora pages runs by offset (limit/offset, with the total in every answer)
        listed = requests_made = 0
        while True:
            page = self.call("GET", self.API + "/runs",
                             params={"experiment_id": experiment_id, "limit": page_size, "offset": listed})
            requests_made += 1
            listed += len(page["runs"])
            if not page["runs"] or listed >= page["total"]:
                return Listing(listed, requests_made)

    def compare(self, run_ids: Sequence[str], keys: Sequence[str]) -> int:
        found = self.call("POST", self.API + "/runs/compare", body={"run_ids": list(run_ids), "metrics": list(keys)})
        return len(found["runs"])


class MlflowRestClient(TrackingClient):
    """The MLflow REST API; `system` names the server behind it (mlflow, fasttrackml, agora-mlflow)."""

    API = "/api/2.0/mlflow"

    def __init__(self, transport: Transport, system: str = "mlflow") -> None:
        super().__init__(transport)
        self.system = system
        self._no_downsample: Optional[str] = None

    def create_experiment(self, name: str) -> str:
        return str(self.call("POST", self.API + "/experiments/create", body={"name": name})["experiment_id"])

    def create_run(self, experiment_id: str) -> str:
        found = self.call("POST", self.API + "/runs/create",
                          body={"experiment_id": experiment_id, "start_time": int(time.time() * 1000)})
        return str(found["run"]["info"]["run_id"])

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[KeyValue] = (),
                  tags: Sequence[KeyValue] = ()) -> None:
        self.call("POST", self.API + "/runs/log-batch",
                  body={"run_id": run_id, "metrics": list(metrics), "params": list(params), "tags": list(tags)})

    def history(self, run_id: str, key: str, page_size: int = HISTORY_PAGE) -> History:
        # as mlflow.MlflowClient.get_metric_history: max_results=25000 and page_token until none comes back
        # (FastTrackML ignores both and answers with the whole history in one page)
        state = History(0, 0, None, None)
        token = None
        while True:
            params: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": page_size}
            if token:
                params["page_token"] = token
            page = self.call("GET", self.API + "/metrics/get-history", params=params)
            points = page.get("metrics", [])
            _walk(points, state)
            token = page.get("next_page_token")
            if not token or not points:
                return state

    def downsampled(self, run_id: str, key: str, points: int) -> int:
        if self._no_downsample:
            raise Unsupported(self._no_downsample)
        try:
            found = self.call("GET", self.API + "/metrics/get-history-bulk-interval",
                              params={"run_ids": run_id, "metric_key": key, "max_results": points})
        except ApiError as exc:
            if exc.status == 404:
                self._no_downsample = "metrics/get-history-bulk-interval answers 404"
                raise Unsupported(self._no_downsample) from exc
            raise
        return len(found.get("metrics", []))

    def list_runs(self, experiment_id: str, page_size: int) -> Listing:
        listed = requests_made = 0
        token = None
        while True:
            body: dict[str, Any] = {"experiment_ids": [experiment_id], "max_results": page_size}
            if token:
                body["page_token"] = token
            page = self.call("POST", self.API + "/runs/search", body=body)
            requests_made += 1
            got = len(page.get("runs", []))
            listed += got
            token = page.get("next_page_token")
            # FastTrackML sends a token after an exactly full last page; the page after it is empty
            if not token or not got:
                return Listing(listed, requests_made)

    def compare(self, run_ids: Sequence[str], keys: Sequence[str]) -> int:
        # what Agora's compare returns (params, latest, min, max, count per key) costs an MLflow user
        # runs/get per run (params, latest values) and get-history per run and key (min, max, count)
        for run_id in run_ids:
            self.call("GET", self.API + "/runs/get", params={"run_id": run_id})
            for key in keys:
                self.history(run_id, key)
        return len(run_ids)
