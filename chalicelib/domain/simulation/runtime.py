"""The orchestration's side of a simulation: prepare, advance, record progress, finalize.

Every write here is safe to repeat: Step Functions retries a task after a timeout or a crash,
and the same advance then rewrites the same keys (the built-in engine is deterministic) and sets
counters to absolute values taken from the checkpoint, never adds to them.
"""
from __future__ import annotations

import base64
import json
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from chalicelib.domain.clock import now_iso
from chalicelib.domain.simulation.records import (
    ERROR,
    FINISHED,
    STOPPED,
    RunControl,
    SimExperiment,
    SimStatus,
    StepOutcome,
)
from chalicelib.domain.tracking.models import MetricIn
from chalicelib.sim import spec as sim_spec

if TYPE_CHECKING:
    from chalicelib.domain.simulation.configs import ConfigService
    from chalicelib.domain.simulation.launch import Orchestrator
    from chalicelib.domain.simulation.models import ProgressReport
    from chalicelib.domain.simulation.tracking import SimulationTracking
    from chalicelib.store.agent_data import AgentDataStore
    from chalicelib.store.sim_objects import SimulationObjects
    from chalicelib.store.simulations import SimulationStore

AGENT_TICKS_PER_ADVANCE = 20_000  # bounded work per advance invocation: agents x ticks (a language model's calls)
RULE_AGENT_TICKS_PER_ADVANCE = 60_000  # the rule-based mind's (no calls: about a second of engine time)
MAX_TICKS_PER_ADVANCE = 12  # one simulated hour at the default 5-minute tick
SPEC_CACHE_SIZE = 16
WARM_CACHE_SIZE = 4  # runs whose engine a warm container keeps between its steps
CHECKPOINT_MAGIC = b"agora-checkpoint/2\n"  # then the counters as JSON, a newline, and the engine's own blob
_OUTCOME_STATUS = {FINISHED: SimStatus.FINISHED, STOPPED: SimStatus.STOPPED, ERROR: SimStatus.ERROR}
_RUN_STATUS = {SimStatus.FINISHED: "FINISHED", SimStatus.STOPPED: "KILLED"}  # of the tracking run; else FAILED


def ticks_per_advance(agents: int, rule_based: bool = False) -> int:
    budget = RULE_AGENT_TICKS_PER_ADVANCE if rule_based else AGENT_TICKS_PER_ADVANCE
    return max(1, min(MAX_TICKS_PER_ADVANCE, budget // max(1, agents)))


@dataclass(frozen=True)
class Counters:
    """Totals of a run so far, carried in the checkpoint and written as absolute values."""

    input_tokens: int = 0
    output_tokens: int = 0
    ticks: int = 0

    def plus(self, input_tokens: int, output_tokens: int, ticks: int) -> Counters:
        return Counters(self.input_tokens + input_tokens, self.output_tokens + output_tokens, self.ticks + ticks)


@dataclass(frozen=True)
class _Warm:
    """An engine kept in memory after a step, with where its step left the experiment item."""

    sim: Any
    counters: Counters
    progress: tuple[int, int, float]  # ticks_done, cur_day, cur_t as the step recorded them


@dataclass
class SimulationRuntime:
    store: SimulationStore
    objects: SimulationObjects
    agent_data: AgentDataStore
    tracking: SimulationTracking
    configs: ConfigService
    orchestrator: Orchestrator
    engine_factory: Any = None  # chalicelib.sim.engine.Simulation, injectable for tests
    _specs: dict = field(default_factory=dict, repr=False)  # experiment -> spec, per warm container
    _warm: OrderedDict = field(default_factory=OrderedDict, repr=False)  # experiment -> _Warm, per warm container
    _warm_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        data = self.objects.load_spec(tenant_id, experiment_id)
        if with_secrets:
            control = self.store.get_control(tenant_id, experiment_id)
            if control is not None and control.llm_secret is not None:
                api_keys = self.configs.open_llm_keys(control.llm_owner, control.llm_secret)
                for endpoint, api_key in zip(data["llm"], api_keys, strict=False):
                    endpoint["api_key"] = api_key
        return sim_spec.SimulationSpec.model_validate(data)

    # the Step Functions tasks ---------------------------------------------------------------------
    def prepare(self, tenant_id: str, experiment_id: str) -> StepOutcome:
        exp = self._experiment(tenant_id, experiment_id)
        if exp.stop_requested or exp.status.ended:
            return StepOutcome.ended(STOPPED if exp.stop_requested else FINISHED, exp.engine)
        if exp.engine == "external":
            return StepOutcome.going_on("external")
        if self.objects.checkpoint_exists(tenant_id, experiment_id):
            # a retried Prepare, or a new execution of a run that was under way: go on from where it is
            self.agent_data.append_log(tenant_id, experiment_id, [
                f"resuming from its checkpoint at day {exp.cur_day} {int(exp.cur_t) // 3600:02d}:"
                f"{int(exp.cur_t) % 3600 // 60:02d}"])
            return StepOutcome.going_on("builtin")
        spec = self.spec(tenant_id, experiment_id)
        sim = self.engine.create(spec)
        self.record(exp, profiles=[p.to_json() for p in sim.profiles()],
                    ticks=[initial_tick(sim)], cur_day=sim.cur_day, cur_t=sim.cur_t, counters=Counters(),
                    log_lines=[f"prepared {len(sim.profiles())} agents on map {spec.map.name!r}"])
        self._save(tenant_id, experiment_id, sim, Counters())
        self._keep(tenant_id, experiment_id, sim, Counters())
        return StepOutcome.going_on("builtin")

    def advance(self, tenant_id: str, experiment_id: str) -> StepOutcome:
        """Run the built-in engine a bounded number of ticks from its checkpoint."""
        exp = self._experiment(tenant_id, experiment_id)
        if exp.stop_requested:
            return StepOutcome.ended(STOPPED, exp.engine)
        if exp.status != SimStatus.RUNNING:
            return StepOutcome.ended(FINISHED, exp.engine)
        spec = self.spec(tenant_id, experiment_id)
        sim, counters = self._take_warm(exp) or self._restore(tenant_id, experiment_id, spec)
        inbox = self._inbox(tenant_id, experiment_id)
        result = sim.advance(max_ticks=ticks_per_advance(sim.agent_count, getattr(sim, "rule_based", False)),
                             inbox=inbox)
        counters = counters.plus(result.input_tokens, result.output_tokens, len(result.ticks))
        self.record(exp, ticks=[engine_tick(t) for t in result.ticks], dialogs=[d.to_json() for d in result.dialogs],
                    surveys=[s.to_json() for s in result.survey_answers], artifacts=result.artifacts,
                    log_lines=result.log_lines, processed=result.processed_inbox_ids, cur_day=sim.cur_day,
                    cur_t=sim.cur_t, counters=counters)
        self._save(tenant_id, experiment_id, sim, counters)
        if sim.done:
            return StepOutcome.ended(FINISHED, "builtin")
        self._keep(tenant_id, experiment_id, sim, counters)
        return StepOutcome.going_on("builtin")

    def finalize(self, tenant_id: str, experiment_id: str, outcome: Optional[str], error: Optional[dict]) -> dict:
        """End the run once: STOPPED if asked, ERROR on any error, else FINISHED; an ended run is kept as is."""
        exp = self._experiment(tenant_id, experiment_id)
        if exp.stop_requested:
            status, message = SimStatus.STOPPED, "Experiment stopped by user"
        elif error:
            # an engine's own report (finish with an error) is kept in `error` already: it wins
            status, message = SimStatus.ERROR, exp.error or error_message(error)
        else:
            status, message = _OUTCOME_STATUS.get(outcome or FINISHED, SimStatus.FINISHED), ""
        # an external engine's token dies with its run, whichever way it ended (a finish spent it already,
        # a stop revoked it; a heartbeat timeout or an error path reaches only here)
        self.store.revoke_callback(tenant_id, experiment_id)
        if exp.status.ended:  # a repeated Finalize: the run ended as it did
            status, message = exp.status, exp.error
        self._forget(tenant_id, experiment_id)
        # the tracking run ends first: whoever sees the simulation ended sees its tracking run ended too
        self.tracking.end(tenant_id, exp.tracking_run_id, _RUN_STATUS.get(status, "FAILED"), experiment_id)
        now = now_iso()
        updated = self.store.update_experiment(tenant_id, experiment_id,
                                               {"status": status, "error": message, "ended_at": now, "updated_at": now})
        final = updated or exp
        return {"status": int(final.status), "error": final.error}

    # the external engine's reports ---------------------------------------------------------------------
    def report(self, exp: SimExperiment, control: RunControl, report: ProgressReport) -> dict:
        """Store an engine's progress report; the answer tells it to stop or hands it the agents' inbox.

        Every report is also the engine's heartbeat to its waiting Step Functions task.
        """
        if exp.stop_requested or exp.status.ended:
            return {"stop": True, "inbox": []}
        updated = self.record(
            exp, cur_day=report.cur_day, cur_t=report.cur_t,
            counters=Counters(report.input_tokens, report.output_tokens, report.ticks_done),
            ticks=[t.model_dump(exclude={"step"}) for t in report.ticks], dialogs=report.dialogs,
            surveys=report.surveys, artifacts=report.artifacts, log_lines=report.log_lines,
            processed=report.processed_inbox_ids, profiles=report.profiles)
        if updated is None:
            return {"stop": True, "inbox": []}
        if control.task_token:
            self.orchestrator.heartbeat(control.task_token)
        return {"stop": updated.stop_requested, "inbox": self.agent_data.pending(exp.tenant_id, exp.id)}

    def record(self, exp: SimExperiment, *, cur_day: int, cur_t: float, counters: Counters,
               ticks: Sequence[dict] = (), dialogs: Sequence[dict] = (), surveys: Sequence[dict] = (),
               artifacts: Optional[dict] = None, log_lines: Sequence[str] = (), processed: Sequence[str] = (),
               profiles: Optional[list[dict]] = None) -> Optional[SimExperiment]:
        """Store one step's output and move the experiment's progress to it (RUNNING from now on)."""
        tenant_id, experiment_id = exp.tenant_id, exp.id
        # the step's log lines go with its data (one batch); a retried step logs them again, as appending did
        self.agent_data.write_step(tenant_id, experiment_id, ticks=ticks, dialogs=dialogs, surveys=surveys,
                                   profiles=profiles, log_lines=log_lines)
        metrics = []
        for tick in ticks:  # step and timestamp are simulated time, so a retried step logs identical points
            seconds = int(tick["day"]) * sim_spec.SECONDS_PER_DAY + int(tick["t"])
            metrics += [MetricIn(key=key, value=value, step=seconds, timestamp=seconds * 1000)
                        for key, value in sorted(tick.get("metrics", {}).items())]
        if metrics:
            self.tracking.log(tenant_id, exp.tracking_run_id, metrics, experiment_id)
        if artifacts:
            merged = {**(self.objects.load_artifacts(tenant_id, experiment_id) or {}), **artifacts}
            self.objects.save_artifacts(tenant_id, experiment_id, merged)
        self.agent_data.mark_processed(tenant_id, experiment_id, list(processed))
        changes: dict[str, Any] = {"cur_day": cur_day, "cur_t": cur_t, "input_tokens": counters.input_tokens,
                                   "output_tokens": counters.output_tokens, "ticks_done": counters.ticks,
                                   "updated_at": now_iso()}
        if exp.status == SimStatus.NOT_STARTED:
            changes |= {"status": SimStatus.RUNNING, "started_at": changes["updated_at"]}
        return self.store.update_experiment(tenant_id, experiment_id, changes)

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

    def _save(self, tenant_id: str, experiment_id: str, sim: Any, counters: Counters) -> None:
        """The engine's checkpoint (already compressed) behind a one-line header with the counters."""
        header = json.dumps([counters.input_tokens, counters.output_tokens, counters.ticks]).encode()
        self.objects.save_checkpoint(tenant_id, experiment_id, CHECKPOINT_MAGIC + header + b"\n" + sim.checkpoint())

    def _restore(self, tenant_id: str, experiment_id: str, spec: sim_spec.SimulationSpec) -> tuple[Any, Counters]:
        blob = self.objects.load_checkpoint(tenant_id, experiment_id)
        if blob is None:
            raise LookupError(f"simulation {experiment_id} has no checkpoint")
        if blob.startswith(CHECKPOINT_MAGIC):
            header, engine_blob = blob[len(CHECKPOINT_MAGIC):].split(b"\n", 1)
            counters = json.loads(header)
        else:  # the first envelope: zlib JSON with the engine's blob in base64
            envelope = json.loads(zlib.decompress(blob))
            engine_blob, counters = base64.b64decode(envelope["engine"]), envelope["counters"]
        return self.engine.restore(engine_blob, spec), Counters(*counters)

    # the engine a warm container keeps between steps ----------------------------------------------
    def _keep(self, tenant_id: str, experiment_id: str, sim: Any, counters: Counters) -> None:
        """Keep the engine of a step whose checkpoint is saved, for the next step in this container."""
        warm = _Warm(sim, counters, (counters.ticks, sim.cur_day, float(sim.cur_t)))
        with self._warm_lock:
            self._warm.pop((tenant_id, experiment_id), None)
            self._warm[(tenant_id, experiment_id)] = warm
            while len(self._warm) > WARM_CACHE_SIZE:
                self._warm.popitem(last=False)

    def _take_warm(self, exp: SimExperiment) -> Optional[tuple[Any, Counters]]:
        """The kept engine if the experiment item is where its step left it (else the checkpoint is read).

        Taken out while the step runs: a concurrent attempt at the same step (a retry after a timeout)
        restores from the checkpoint instead of sharing the object, and a step that fails leaves nothing
        behind. Any other writer of the run's progress (another container's step, a new execution)
        moves the experiment item on, so a kept engine is never used past its own step.
        """
        with self._warm_lock:
            warm = self._warm.pop((exp.tenant_id, exp.id), None)
        if warm is None or warm.progress != (exp.ticks_done, exp.cur_day, float(exp.cur_t)):
            return None
        return warm.sim, warm.counters

    def _forget(self, tenant_id: str, experiment_id: str) -> None:
        with self._warm_lock:
            self._warm.pop((tenant_id, experiment_id), None)


def initial_tick(sim: Any) -> dict:
    """The first instant of the timeline: every agent where it starts, before any tick has run."""
    return {"day": sim.cur_day, "t": sim.cur_t, "rows": sim.status_rows(), "prompt": sim.global_prompt,
            "metrics": {}}


def engine_tick(tick: Any) -> dict:
    """A built-in engine's tick as the store takes it: its rows as they are (records.ROW_FIELDS, the store's
    default status shape), no object per agent."""
    return {"day": tick.day, "t": tick.t, "rows": tick.rows, "prompt": tick.prompt, "metrics": tick.metrics}


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
