"""The orchestration's side of a simulation: prepare, step, record progress, finalize.

Every write here is safe to repeat: Step Functions retries a task after a timeout or a crash,
and the same step then rewrites the same keys (the built-in engine is deterministic) and sets
counters to absolute values taken from the checkpoint, never adds to them.
"""
from __future__ import annotations

import base64
import json
import logging
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from chalicelib.domain.clock import now_iso
from chalicelib.domain.errors import AgoraError
from chalicelib.domain.sim_records import SimExperiment, SimStatus
from chalicelib.domain.tracking_models import MetricIn
from chalicelib.sim import spec as sim_spec

if TYPE_CHECKING:
    from chalicelib.domain.runs import RunService
    from chalicelib.domain.sim_configs import ConfigService
    from chalicelib.store.agent_data import AgentDataStore
    from chalicelib.store.simulations import ControlStore, SimulationStore

logger = logging.getLogger(__name__)
AGENT_TICKS_PER_STEP = 20_000  # bounded work per step invocation: agents x ticks
MAX_TICKS_PER_STEP = 12  # one simulated hour at the default 5-minute tick
SPEC_CACHE_SIZE = 16
_OUTCOME_STATUS = {"finished": SimStatus.FINISHED, "stopped": SimStatus.STOPPED, "error": SimStatus.ERROR}


def ticks_per_step(agents: int) -> int:
    return max(1, min(MAX_TICKS_PER_STEP, AGENT_TICKS_PER_STEP // max(1, agents)))


@dataclass
class Blobs:
    """The S3 objects of a running simulation (spec, checkpoint, artifacts), by (tenant, experiment)."""

    load_spec: Callable[[str, str], dict]
    load_checkpoint: Callable[[str, str], Optional[bytes]]
    save_checkpoint: Callable[[str, str, bytes], None]
    load_artifacts: Callable[[str, str], Optional[dict]]
    save_artifacts: Callable[[str, str, dict], None]


@dataclass
class SimulationRuntime:
    store: SimulationStore
    controls: ControlStore
    agent_data: AgentDataStore
    runs: RunService
    configs: ConfigService
    blobs: Blobs
    engine_factory: Any = None  # chalicelib.sim.engine.Simulation, injectable for tests
    _specs: dict = field(default_factory=dict, repr=False)  # experiment -> spec, per warm container

    @property
    def engine(self) -> Any:
        if self.engine_factory is None:
            from chalicelib.sim.engine import Simulation

            self.engine_factory = Simulation
        return self.engine_factory

    def spec(self, tenant_id: str, experiment_id: str, with_secrets: bool = True) -> sim_spec.SimulationSpec:
        """The run's spec; it never changes during a run, so a warm container reads S3 and KMS once."""
        cache_key = (tenant_id, experiment_id, with_secrets)
        if cache_key not in self._specs:
            if len(self._specs) >= SPEC_CACHE_SIZE:
                self._specs.pop(next(iter(self._specs)))
            self._specs[cache_key] = self._load_spec(tenant_id, experiment_id, with_secrets)
        return self._specs[cache_key]

    def _load_spec(self, tenant_id: str, experiment_id: str, with_secrets: bool) -> sim_spec.SimulationSpec:
        data = self.blobs.load_spec(tenant_id, experiment_id)
        if with_secrets:
            control = self.controls.get(tenant_id, experiment_id)
            if control is not None and control.llm_secret is not None:
                keys = self.configs.secrets.open(control.llm_owner, control.llm_secret)
                for endpoint, key in zip(data["llm"], keys):
                    endpoint["api_key"] = key
        return sim_spec.SimulationSpec.model_validate(data)

    def prepare(self, tenant_id: str, experiment_id: str) -> dict:
        exp = self._experiment(tenant_id, experiment_id)
        if exp.stop_requested or exp.status.ended:
            return {"done": True, "outcome": "stopped" if exp.stop_requested else "finished", "engine": exp.engine}
        if exp.engine == "external":
            return {"done": False, "outcome": None, "engine": "external"}
        spec = self.spec(tenant_id, experiment_id)
        sim = self.engine.create(spec)
        self.record(exp, profiles=[p.to_json() for p in sim.profiles()],
                    ticks=[initial_tick(sim)], cur_day=sim.cur_day, cur_t=sim.cur_t, counters=(0, 0, 0),
                    log_lines=[f"prepared {len(sim.profiles())} agents on map {spec.map.name!r}"])
        self._save(tenant_id, experiment_id, sim, (0, 0, 0))
        return {"done": False, "outcome": None, "engine": "builtin"}

    def step(self, tenant_id: str, experiment_id: str) -> dict:
        exp = self._experiment(tenant_id, experiment_id)
        if exp.stop_requested:
            return {"done": True, "outcome": "stopped", "engine": exp.engine}
        if exp.status != SimStatus.RUNNING:
            return {"done": True, "outcome": "finished", "engine": exp.engine}
        spec = self.spec(tenant_id, experiment_id)
        sim, counters = self._restore(tenant_id, experiment_id, spec)
        inbox = self._inbox(tenant_id, experiment_id)
        result = sim.advance(max_ticks=ticks_per_step(len(sim.profiles())), inbox=inbox)
        counters = (counters[0] + result.input_tokens, counters[1] + result.output_tokens, counters[2] + len(result.ticks))
        self.record(exp, ticks=[t.to_json() for t in result.ticks], dialogs=[d.to_json() for d in result.dialogs],
                    surveys=[s.to_json() for s in result.survey_answers], artifacts=result.artifacts,
                    log_lines=result.log_lines, processed=result.processed_inbox_ids, cur_day=sim.cur_day,
                    cur_t=sim.cur_t, counters=counters)
        self._save(tenant_id, experiment_id, sim, counters)
        return {"done": bool(sim.done), "outcome": "finished" if sim.done else None, "engine": "builtin"}

    def record(self, exp: SimExperiment, *, cur_day: int, cur_t: float, counters: tuple[int, int, int],
               ticks: list[dict] = (), dialogs: list[dict] = (), surveys: list[dict] = (),
               artifacts: Optional[dict] = None, log_lines: list[str] = (), processed: list[str] = (),
               profiles: Optional[list[dict]] = None) -> Optional[SimExperiment]:
        """Store one step's output and move the experiment's progress to it (RUNNING from now on)."""
        tenant_id, experiment_id = exp.tenant_id, exp.id
        self.agent_data.write_step(tenant_id, experiment_id, ticks=list(ticks), dialogs=list(dialogs),
                                   surveys=list(surveys), profiles=profiles)
        metrics = []
        for tick in ticks:  # step and timestamp are simulated time, so a retried step logs identical points
            seconds = int(tick["day"]) * 86_400 + int(tick["t"])
            metrics += [MetricIn(key=key, value=value, step=seconds, timestamp=seconds * 1000)
                        for key, value in sorted(tick.get("metrics", {}).items())]
        if metrics:
            try:
                self.runs.log(tenant_id, exp.tracking_run_id, metrics=metrics)
            except AgoraError as exc:  # e.g. the user deleted the "simulations" experiment: keep simulating
                logger.warning("metrics of simulation %s not logged: %s", experiment_id, exc.detail)
        if artifacts:
            merged = {**(self.blobs.load_artifacts(tenant_id, experiment_id) or {}), **artifacts}
            self.blobs.save_artifacts(tenant_id, experiment_id, merged)
        self.agent_data.append_log(tenant_id, experiment_id, list(log_lines))
        self.agent_data.mark_processed(tenant_id, experiment_id, list(processed))
        changes: dict[str, Any] = {"cur_day": cur_day, "cur_t": cur_t, "input_tokens": counters[0],
                                   "output_tokens": counters[1], "ticks_done": counters[2], "updated_at": now_iso()}
        if exp.status == SimStatus.NOT_STARTED:
            changes |= {"status": SimStatus.RUNNING, "started_at": changes["updated_at"]}
        return self.store.update_experiment(tenant_id, experiment_id, changes)

    def finalize(self, tenant_id: str, experiment_id: str, outcome: Optional[str], error: Optional[dict]) -> dict:
        """End the run once: STOPPED if asked, ERROR on any error, else FINISHED; an ended run is kept as is."""
        exp = self._experiment(tenant_id, experiment_id)
        if exp.stop_requested:
            status, message = SimStatus.STOPPED, "Experiment stopped by user"
        elif error:
            # an engine's own report (finish with an error) is kept in `error` already: it wins
            status, message = SimStatus.ERROR, exp.error or error_message(error)
        else:
            status, message = _OUTCOME_STATUS.get(outcome or "finished", SimStatus.FINISHED), ""
        now = now_iso()
        updated = self.store.update_experiment(tenant_id, experiment_id,
                                               {"status": status, "error": message, "ended_at": now, "updated_at": now})
        final = updated or exp
        run_status = {SimStatus.FINISHED: "FINISHED", SimStatus.STOPPED: "KILLED"}.get(final.status, "FAILED")
        try:
            self.runs.end(tenant_id, final.tracking_run_id, run_status)
        except AgoraError as exc:
            logger.warning("tracking run of simulation %s not ended: %s", experiment_id, exc.detail)
        return {"status": int(final.status), "error": final.error}

    # helpers ------------------------------------------------------------------------------------
    def _experiment(self, tenant_id: str, experiment_id: str) -> SimExperiment:
        exp = self.store.get_experiment(tenant_id, experiment_id)
        if exp is None:
            raise LookupError(f"simulation {experiment_id} of tenant {tenant_id!r} does not exist")
        return exp

    def _inbox(self, tenant_id: str, experiment_id: str) -> Any:
        from chalicelib.sim.engine import Inbox, PendingDialog, PendingSurvey

        dialogs, surveys = [], []
        for message in self.agent_data.pending(tenant_id, experiment_id):
            if message["kind"] == "dialog":
                dialogs.append(PendingDialog(id=message["id"], agent_id=message["agent_id"], day=message["day"],
                                             t=message["t"], content=message["content"]))
            else:
                surveys.append(PendingSurvey(id=message["id"], agent_id=message["agent_id"], day=message["day"],
                                             t=message["t"], survey_id=message["survey_id"], survey=message["survey"]))
        return Inbox(dialogs=dialogs, surveys=surveys)

    def _save(self, tenant_id: str, experiment_id: str, sim: Any, counters: tuple[int, int, int]) -> None:
        envelope = {"engine": base64.b64encode(sim.checkpoint()).decode(), "counters": list(counters)}
        self.blobs.save_checkpoint(tenant_id, experiment_id, zlib.compress(json.dumps(envelope).encode()))

    def _restore(self, tenant_id: str, experiment_id: str, spec: sim_spec.SimulationSpec) -> tuple[Any, tuple]:
        blob = self.blobs.load_checkpoint(tenant_id, experiment_id)
        if blob is None:
            raise LookupError(f"simulation {experiment_id} has no checkpoint")
        envelope = json.loads(zlib.decompress(blob))
        sim = self.engine.restore(base64.b64decode(envelope["engine"]), spec)
        return sim, tuple(envelope["counters"])


def initial_tick(sim: Any) -> dict:
    """The first instant of the timeline: every agent where it starts, before any tick has run."""
    return {"day": sim.cur_day, "t": sim.cur_t, "statuses": [s.to_json() for s in sim.statuses()],
            "prompt": sim.global_prompt, "metrics": {}}


def error_message(error: dict) -> str:
    """A person-readable message from a Step Functions Catch result ({"Error", "Cause"})."""
    kind = error.get("Error", "")
    cause = error.get("Cause", "")
    if kind in ("States.HeartbeatTimeout", "Agora.EngineSilent"):
        return "the simulation engine stopped reporting (heartbeat timeout)"
    if kind == "States.Timeout":
        return "the simulation ran past its time limit"
    if kind == "Agora.Stopped":
        return "Experiment stopped by user"
    try:
        parsed = json.loads(cause)
        if isinstance(parsed, dict) and parsed.get("errorMessage"):
            return f"{parsed.get('errorType', kind)}: {parsed['errorMessage']}"
    except (TypeError, ValueError):
        pass
    return f"{kind}: {cause}" if cause else kind or "unknown error"
