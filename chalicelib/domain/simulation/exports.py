"""A simulation's export in AgentSociety's zip layout, streamed: memory holds one instant and one S3 part.

Layout (files at the archive root): experiment.yaml, metrics.json, artifacts.json, agent_profile.csv,
agent_status.csv, agent_survey.csv, agent_dialog.csv, global_prompt.csv, metric.csv. A part with no
data is left out. JSON columns are written as JSON (AgentSociety writes Python repr there).
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

from chalicelib.domain.clock import new_id
from chalicelib.logs import module_logger

if TYPE_CHECKING:
    from chalicelib.domain.simulation.records import SimExperiment
    from chalicelib.domain.simulation.views import SimulationViews
    from chalicelib.store.agent_data import AgentDataStore
    from chalicelib.store.sim_objects import SimulationObjects

EXPERIMENT_FIELDS = ("id", "name", "num_day", "status", "cur_day", "cur_t", "config", "error", "input_tokens",
                     "output_tokens", "created_at", "updated_at")
CSV_COLUMNS = {
    "agent_profile": ("id", "name", "profile"),
    "agent_status": ("id", "day", "t", "lng", "lat", "parent_id", "action", "status", "created_at"),
    "agent_survey": ("id", "day", "t", "survey_id", "result", "created_at"),
    "agent_dialog": ("id", "day", "t", "type", "speaker", "content", "created_at"),
    "global_prompt": ("day", "t", "prompt", "created_at"),
    "metric": ("id", "key", "value", "step", "created_at"),
}
JSON_COLUMNS = {"profile", "status", "result"}

logger = module_logger(__name__)


def yaml_scalar(value: Any) -> str:
    """A YAML scalar: JSON's double-quoted strings and numbers are valid YAML, and unambiguous."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value), ensure_ascii=False)


def experiment_yaml(exp: SimExperiment) -> str:
    body = exp.to_json()
    return "".join(f"{name}: {yaml_scalar(body[name])}\n" for name in EXPERIMENT_FIELDS)


def csv_cell(column: str, value: Any) -> Any:
    if column in JSON_COLUMNS:
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else value


@dataclass
class ExportService:
    views: SimulationViews
    agent_data: AgentDataStore
    objects: SimulationObjects

    def export(self, tenant_id: str, experiment_id: str) -> str:
        """Write the archive into S3 as a stream; returns a short-lived download URL of it."""
        exp = self.views.started(tenant_id, experiment_id)
        key, sink = self.objects.open_export(exp.tenant_id, exp.id, new_id())
        try:
            self.write_zip(exp, sink)
            sink.complete()
        except BaseException:
            try:
                sink.abort()  # no part is left behind (and billed) by a failed export
            except Exception:  # the failure that led here is the one to report
                logger.exception("could not abort the export upload %s", key)
            raise
        return self.objects.download_url(key, f"experiment_{exp.id}_export.zip")

    def write_zip(self, exp: SimExperiment, sink: Any) -> None:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("experiment.yaml", experiment_yaml(exp))
            metrics = self.views.metrics(exp.tenant_id, exp.id)
            if metrics:
                archive.writestr("metrics.json", json.dumps(metrics, indent=2))
            artifacts = self.objects.load_artifacts(exp.tenant_id, exp.id)
            if artifacts is not None:
                archive.writestr("artifacts.json", json.dumps(artifacts, indent=2, ensure_ascii=False))
            profiles = self.agent_data.profiles(exp.tenant_id, exp.id)
            agent_ids = [int(p["id"]) for p in profiles]
            self._csv(archive, "agent_profile", profiles)
            self._csv(archive, "agent_status", self._statuses(exp))
            self._csv(archive, "agent_survey", self._per_agent(agent_ids, lambda a: self.agent_data.agent_surveys(
                exp.tenant_id, exp.id, a)))
            self._csv(archive, "agent_dialog", self._per_agent(agent_ids, lambda a: self.agent_data.agent_dialogs(
                exp.tenant_id, exp.id, a)))
            self._csv(archive, "global_prompt", self.agent_data.instants(exp.tenant_id, exp.id, with_agents=False))
            self._csv(archive, "metric", self._metric_rows(metrics))

    def _statuses(self, exp: SimExperiment) -> Iterator[dict]:
        for instant in self.agent_data.instants(exp.tenant_id, exp.id):
            for status in instant["statuses"]:
                yield {**status, "created_at": instant["created_at"]}

    @staticmethod
    def _per_agent(agent_ids: list[int], rows_of: Callable[[int], list[dict]]) -> Iterator[dict]:
        for agent_id in agent_ids:
            yield from rows_of(agent_id)

    @staticmethod
    def _metric_rows(metrics: dict[str, list[dict]]) -> Iterator[dict]:
        number = 0
        for key, points in metrics.items():
            for point in points:
                number += 1
                # metric points carry simulated time, not a wall clock: created_at stays empty
                yield {"id": number, "key": key, "value": point["value"], "step": point["step"], "created_at": ""}

    @staticmethod
    def _csv(archive: zipfile.ZipFile, name: str, rows: Iterable[dict]) -> None:
        rows = iter(rows)
        first: Optional[dict] = next(rows, None)
        if first is None:
            return  # no data: the file is left out, as AgentSociety does
        columns = CSV_COLUMNS[name]
        with archive.open(f"{name}.csv", "w", force_zip64=True) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            writer = csv.writer(text)
            writer.writerow(columns)
            for row in _chain(first, rows):
                writer.writerow([csv_cell(c, row.get(c)) for c in columns])
            text.flush()
            text.detach()


def _chain(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest
