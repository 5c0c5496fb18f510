"""The systems a run can compare: which server each needs and which client speaks to it.

"agora-mlflow" is Agora driven through its MLflow REST API (the same client as MLflow and FastTrackML, with
Agora's key); it shares Agora's server.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.peers.clients import AgoraClient, HttpTransport, MlflowRestClient, TrackingClient
from bench.peers.servers import API_KEY, Server

BEARER = {"Authorization": f"Bearer {API_KEY}"}


@dataclass(frozen=True)
class System:
    name: str
    title: str
    server: str  # the kind of server it runs against (servers.STARTERS)
    make_client: Callable[[Server], TrackingClient]


SYSTEMS: dict[str, System] = {s.name: s for s in (
    System("agora", "Agora", "agora", lambda srv: AgoraClient(HttpTransport(srv.url, BEARER))),
    System("mlflow", "MLflow", "mlflow", lambda srv: MlflowRestClient(HttpTransport(srv.url), "mlflow")),
    System("fasttrackml", "FastTrackML", "fasttrackml",
           lambda srv: MlflowRestClient(HttpTransport(srv.url), "fasttrackml")),
    System("agora-mlflow", "Agora (MLflow API)", "agora",
           lambda srv: MlflowRestClient(HttpTransport(srv.url, BEARER), "agora-mlflow")),
)}
DEFAULT_SYSTEMS = ("agora", "agora-mlflow", "mlflow", "fasttrackml")
