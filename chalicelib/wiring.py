"""Builds AWS clients, stores and services once per Lambda container, lazily: a service and what it
needs are imported when a request first asks for it, so a cold start loads what its route uses."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Optional

from botocore.config import Config

from chalicelib.settings import Settings, get_settings

if TYPE_CHECKING:
    from chalicelib.domain.billing import BillingService
    from chalicelib.domain.purge import PurgeService
    from chalicelib.domain.simulation.configs import ConfigService
    from chalicelib.domain.simulation.control import SimulationControl
    from chalicelib.domain.simulation.deletion import SimulationDeletion
    from chalicelib.domain.simulation.exports import ExportService
    from chalicelib.domain.simulation.launch import SimulationLauncher
    from chalicelib.domain.simulation.runtime import SimulationRuntime
    from chalicelib.domain.simulation.tracking import SimulationTracking
    from chalicelib.domain.simulation.views import SimulationViews
    from chalicelib.domain.tracking.artifacts import ArtifactService
    from chalicelib.domain.tracking.experiments import ExperimentService
    from chalicelib.domain.tracking.history import HistoryService
    from chalicelib.domain.tracking.mlflow import MlflowTracking
    from chalicelib.domain.tracking.runs import RunService
    from chalicelib.store.agent_data import AgentDataStore
    from chalicelib.store.artifacts import ArtifactLayout
    from chalicelib.store.directory import Directory
    from chalicelib.store.dynamo import Table
    from chalicelib.store.metric_chunks import MetricChunkStore
    from chalicelib.store.objects import ObjectStore
    from chalicelib.store.orchestration import StepFunctions
    from chalicelib.store.sim_objects import SimulationObjects
    from chalicelib.store.simulations import SimulationStore

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60)


@dataclass
class Services:
    """Everything a handler needs, wired from settings; one instance per container."""

    settings: Settings
    session: Any

    def client(self, name: str, **extra: Any) -> Any:
        return self.session.client(name, config=_CLIENT_CONFIG.merge(Config(**extra)) if extra else _CLIENT_CONFIG)

    def table(self, store: str) -> Table:
        from chalicelib.store.dynamo import Table

        return Table(self.dynamodb, self.settings.table(store))

    @cached_property
    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    @cached_property
    def s3(self) -> Any:
        return self.client("s3", signature_version="s3v4")

    # stores -------------------------------------------------------------------------------------
    @cached_property
    def directory(self) -> Directory:
        from chalicelib.store.directory import Directory

        return Directory(self.table("directory"))

    @cached_property
    def objects(self) -> ObjectStore:
        from chalicelib.store.objects import ObjectStore

        return ObjectStore(self.s3, self.settings.bucket)

    @cached_property
    def metric_chunks(self) -> MetricChunkStore:
        from chalicelib.store.metric_chunks import MetricChunkStore

        return MetricChunkStore(self.table("metrics"))

    @cached_property
    def simulation_store(self) -> SimulationStore:
        from chalicelib.store.simulations import SimulationStore

        return SimulationStore(self.table("simulations"), self.directory)

    @cached_property
    def agent_data(self) -> AgentDataStore:
        from chalicelib.store.agent_data import AgentDataStore

        return AgentDataStore(self.table("agent_data"), self.objects)

    @cached_property
    def sim_objects(self) -> SimulationObjects:
        from chalicelib.store.sim_objects import SimulationObjects

        return SimulationObjects(self.objects, self.settings.export_part_bytes)

    @cached_property
    def step_functions(self) -> StepFunctions:
        from chalicelib.store.orchestration import StepFunctions

        return StepFunctions(self.client("stepfunctions"), self.settings.state_machine_arn)

    # tracking -----------------------------------------------------------------------------------
    @cached_property
    def artifact_layout(self) -> ArtifactLayout:
        from chalicelib.store.artifacts import ArtifactLayout

        return ArtifactLayout(self.settings.bucket)

    @cached_property
    def experiments(self) -> ExperimentService:
        from chalicelib.domain.tracking.experiments import ExperimentService
        from chalicelib.store.experiments import ExperimentStore

        return ExperimentService(ExperimentStore(self.table("experiments"), self.directory), self.directory,
                                 self.artifact_layout)

    @cached_property
    def runs(self) -> RunService:
        from chalicelib.domain.tracking.runs import RunService
        from chalicelib.store.runs import RunStore

        return RunService(RunStore(self.table("runs"), self.table("experiments"), self.directory), self.experiments,
                          self.metric_chunks, self.directory)

    @cached_property
    def history(self) -> HistoryService:
        from chalicelib.domain.tokens import PageTokens
        from chalicelib.domain.tracking.history import HistoryService

        return HistoryService(self.runs, self.metric_chunks, PageTokens(self.settings.token_secret))

    @cached_property
    def artifacts(self) -> ArtifactService:
        from chalicelib.domain.tracking.artifacts import ArtifactService
        from chalicelib.store.artifacts import ArtifactStore

        return ArtifactService(self.runs, ArtifactStore(self.table("runs"), self.objects, self.artifact_layout))

    @cached_property
    def mlflow(self) -> MlflowTracking:
        from chalicelib.domain.tokens import PageTokens
        from chalicelib.domain.tracking.mlflow import MlflowTracking

        return MlflowTracking(self.experiments, self.runs, self.history, self.artifacts,
                              PageTokens(self.settings.token_secret))

    # simulations --------------------------------------------------------------------------------
    @cached_property
    def configs(self) -> ConfigService:
        from chalicelib.domain.simulation.configs import ConfigService
        from chalicelib.domain.tokens import PageTokens
        from chalicelib.store.secrets import ConfigSecrets

        return ConfigService(self.simulation_store, self.directory,
                             ConfigSecrets(self.client("kms"), self.settings.config_key_id), self.sim_objects,
                             PageTokens(self.settings.token_secret))

    @cached_property
    def billing(self) -> BillingService:
        from chalicelib.domain.billing import BillingService
        from chalicelib.store.billing import BillingStore

        return BillingService(BillingStore(self.table("simulations")), self.simulation_store,
                              self.settings.billing_rates)

    @cached_property
    def simulation_tracking(self) -> SimulationTracking:
        from chalicelib.domain.simulation.tracking import SimulationTracking

        return SimulationTracking(self.experiments, self.runs)

    @cached_property
    def launcher(self) -> SimulationLauncher:
        from chalicelib.domain.simulation.launch import SimulationLauncher

        return SimulationLauncher(self.simulation_store, self.sim_objects, self.configs, self.simulation_tracking,
                                  self.billing, self.step_functions, self.settings.engine_heartbeat_seconds,
                                  self.settings.sim_step_pause_seconds)

    @cached_property
    def control(self) -> SimulationControl:
        from chalicelib.domain.simulation.control import SimulationControl

        return SimulationControl(self.simulation_store, self.directory, self.agent_data, self.step_functions)

    @cached_property
    def runtime(self) -> SimulationRuntime:
        from chalicelib.domain.simulation.runtime import SimulationRuntime

        return SimulationRuntime(self.simulation_store, self.sim_objects, self.agent_data, self.simulation_tracking,
                                 self.configs, self.step_functions)

    @cached_property
    def sim_views(self) -> SimulationViews:
        from chalicelib.domain.simulation.views import SimulationViews

        return SimulationViews(self.simulation_store, self.directory, self.agent_data, self.simulation_tracking,
                               self.configs, self.sim_objects)

    @cached_property
    def sim_deletion(self) -> SimulationDeletion:
        from chalicelib.domain.simulation.deletion import SimulationDeletion

        return SimulationDeletion(self.sim_views, self.simulation_store, self.agent_data, self.sim_objects,
                                  self.simulation_tracking)

    @cached_property
    def sim_exports(self) -> ExportService:
        from chalicelib.domain.simulation.exports import ExportService

        return ExportService(self.sim_views, self.agent_data, self.sim_objects)

    @cached_property
    def purge(self) -> PurgeService:
        from chalicelib.domain.purge import PurgePolicy, PurgeService
        from chalicelib.store.purge import PurgeStore

        store = PurgeStore(self.table("experiments"), self.table("runs"), self.table("metrics"),
                           self.table("directory"), self.objects, self.artifact_layout)
        return PurgeService(store, PurgePolicy(self.settings.retention_days))


_lock = threading.Lock()
_services: Optional[Services] = None


def services() -> Services:
    """The container's services; built on first use under a lock (boto3 sessions are not thread-safe)."""
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                import boto3

                built = Services(get_settings(), boto3.session.Session())
                # clients are created here, under the lock, rather than racing on first use later
                _ = (built.dynamodb, built.s3)
                _services = built
    return _services


def reset() -> None:
    """Forget the wiring (tests and the local stack call this after changing the environment)."""
    global _services
    with _lock:
        _services = None
    get_settings.cache_clear()
