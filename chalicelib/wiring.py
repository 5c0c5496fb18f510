"""Builds AWS clients, stores and services once per Lambda container, lazily (nothing at import)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional

import boto3
from botocore.config import Config

from chalicelib.domain.artifacts import ArtifactService
from chalicelib.domain.experiments import ExperimentService
from chalicelib.domain.history import HistoryService
from chalicelib.domain.runs import RunService
from chalicelib.domain.tokens import PageTokens
from chalicelib.settings import Settings, get_settings
from chalicelib.store import keys
from chalicelib.store.directory import Directory
from chalicelib.store.dynamo import Table
from chalicelib.store.experiments import ExperimentStore
from chalicelib.store.metric_chunks import MetricChunkStore
from chalicelib.store.objects import ObjectStore
from chalicelib.store.runs import RunStore

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60)


@dataclass
class Services:
    """Everything a handler needs, wired from settings; one instance per container."""

    settings: Settings
    session: Any

    def client(self, name: str, **extra: Any) -> Any:
        return self.session.client(name, config=_CLIENT_CONFIG.merge(Config(**extra)) if extra else _CLIENT_CONFIG)

    @cached_property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @cached_property
    def s3(self) -> Any:
        return self.client("s3", signature_version="s3v4")

    @cached_property
    def directory(self) -> Directory:
        return Directory(Table(self.dynamodb, self.settings.directory_table))

    @cached_property
    def experiment_store(self) -> ExperimentStore:
        return ExperimentStore(Table(self.dynamodb, self.settings.experiments_table), self.directory)

    @cached_property
    def run_store(self) -> RunStore:
        return RunStore(Table(self.dynamodb, self.settings.runs_table),
                        Table(self.dynamodb, self.settings.experiments_table), self.directory)

    @cached_property
    def metric_chunks(self) -> MetricChunkStore:
        return MetricChunkStore(Table(self.dynamodb, self.settings.metrics_table))

    @cached_property
    def objects(self) -> ObjectStore:
        return ObjectStore(self.s3, self.settings.bucket)

    @cached_property
    def page_tokens(self) -> PageTokens:
        return PageTokens(self.settings.token_secret)

    @cached_property
    def experiments(self) -> ExperimentService:
        bucket = self.settings.bucket
        return ExperimentService(self.experiment_store, self.directory,
                                 lambda tenant, exp: f"s3://{bucket}/{keys.experiment_prefix(tenant, exp)}")

    @cached_property
    def runs(self) -> RunService:
        bucket = self.settings.bucket
        return RunService(self.run_store, self.experiments, self.metric_chunks, self.directory,
                          lambda tenant, exp, run: f"s3://{bucket}/{keys.run_artifact_prefix(tenant, exp, run)}")

    @cached_property
    def history(self) -> HistoryService:
        return HistoryService(self.runs, self.metric_chunks, self.page_tokens)

    @cached_property
    def artifacts(self) -> ArtifactService:
        return ArtifactService(self.runs, self.run_store, self.objects)


_lock = threading.Lock()
_services: Optional[Services] = None


def services() -> Services:
    """The container's services; built on first use under a lock (boto3 sessions are not thread-safe)."""
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                _services = Services(get_settings(), boto3.session.Session())
                # clients are created eagerly here, under the lock, rather than racing later
                _services.dynamodb, _services.s3  # noqa: B018
    return _services


def reset() -> None:
    """Forget the wiring (tests and the local stack call this after changing the environment)."""
    global _services
    with _lock:
        _services = None
    get_settings.cache_clear()
