"""Builds AWS clients, stores and services once per Lambda container, lazily (nothing at import)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional

import boto3
from botocore.config import Config

from chalicelib.domain.artifacts import ArtifactService
from chalicelib.domain.billing import BillingRates, BillingService
from chalicelib.domain.experiments import ExperimentService
from chalicelib.domain.history import HistoryService
from chalicelib.domain.purge import PurgePolicy, PurgeService
from chalicelib.domain.runs import RunService
from chalicelib.domain.sim_configs import ConfigService
from chalicelib.domain.sim_deletion import SimulationDeletion
from chalicelib.domain.sim_exports import ExportService
from chalicelib.domain.sim_views import SimulationViews
from chalicelib.domain.sim_runtime import Blobs, SimulationRuntime
from chalicelib.domain.simulations import SimulationService
from chalicelib.domain.tokens import PageTokens
from chalicelib.settings import Settings, get_settings
from chalicelib.store import keys
from chalicelib.store.directory import Directory
from chalicelib.store.dynamo import Table
from chalicelib.store.experiments import ExperimentStore
from chalicelib.store.exports import MultipartUpload
from chalicelib.store.metric_chunks import MetricChunkStore
from chalicelib.store.objects import ObjectStore
from chalicelib.store.agent_data import AgentDataStore
from chalicelib.store.billing import BillingStore
from chalicelib.store.orchestration import StepFunctions
from chalicelib.store.purge import PurgeStore
from chalicelib.store.runs import RunStore
from chalicelib.store.secrets import ConfigSecrets
from chalicelib.store.sim_objects import SimulationObjects
from chalicelib.store.simulations import ControlStore, SimulationStore

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

    # simulations ---------------------------------------------------------------------------------
    @cached_property
    def simulation_store(self) -> SimulationStore:
        return SimulationStore(Table(self.dynamodb, self.settings.simulations_table), self.directory)

    @cached_property
    def controls(self) -> ControlStore:
        return ControlStore(Table(self.dynamodb, self.settings.simulations_table))

    @cached_property
    def agent_data(self) -> AgentDataStore:
        return AgentDataStore(Table(self.dynamodb, self.settings.agent_data_table), self.objects)

    @cached_property
    def sim_objects(self) -> SimulationObjects:
        return SimulationObjects(self.objects)

    @cached_property
    def configs(self) -> ConfigService:
        return ConfigService(self.simulation_store, self.directory,
                             ConfigSecrets(self.client("kms"), self.settings.config_key_id), self.sim_objects.map_exists)

    @cached_property
    def step_functions(self) -> StepFunctions:
        return StepFunctions(self.client("stepfunctions"), self.settings.state_machine_arn)

    @cached_property
    def billing(self) -> BillingService:
        return BillingService(BillingStore(Table(self.dynamodb, self.settings.simulations_table)),
                              self.simulation_store, BillingRates.from_environ())

    @cached_property
    def simulations(self) -> SimulationService:
        return SimulationService(self.simulation_store, self.controls, self.agent_data, self.configs, self.experiments,
                                 self.runs, self.step_functions, self.billing, self.sim_objects.load_map,
                                 self.sim_objects.save_spec, self.settings.engine_heartbeat_seconds,
                                 self.settings.sim_step_pause_seconds)

    @cached_property
    def runtime(self) -> SimulationRuntime:
        o = self.sim_objects
        return SimulationRuntime(self.simulation_store, self.controls, self.agent_data, self.runs, self.configs,
                                 Blobs(o.load_spec, o.load_checkpoint, o.save_checkpoint, o.load_artifacts,
                                       o.save_artifacts))

    @cached_property
    def sim_views(self) -> SimulationViews:
        return SimulationViews(self.simulation_store, self.controls, self.agent_data, self.metric_chunks, self.runs,
                               self.configs)

    @cached_property
    def sim_deletion(self) -> SimulationDeletion:
        return SimulationDeletion(self.sim_views, self.simulation_store, self.controls, self.agent_data,
                                  self.run_store, self.metric_chunks, self.objects,
                                  [keys.simulation_prefix, keys.export_prefix])

    @cached_property
    def sim_exports(self) -> ExportService:
        objects = self.objects
        return ExportService(
            self.sim_views, self.agent_data, self.metric_chunks, self.sim_objects,
            open_sink=lambda key: MultipartUpload(self.s3, objects.bucket, key, "application/zip",
                                                  self.settings.export_part_bytes),
            download_url=objects.download_url,
            export_key=lambda tenant, exp, export_id: f"{keys.export_prefix(tenant, exp)}{export_id}.zip")

    @cached_property
    def purge(self) -> PurgeService:
        s = self.settings
        store = PurgeStore(Table(self.dynamodb, s.experiments_table), Table(self.dynamodb, s.runs_table),
                           Table(self.dynamodb, s.metrics_table), Table(self.dynamodb, s.directory_table),
                           self.s3, s.bucket)
        return PurgeService(store, PurgePolicy(s.retention_days))


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
