"""Workflow step kinds: which take simulated time (and how much), and how each is described in the log.

The engine runs timed steps tick by tick and instant steps at once (`chalicelib.sim.engine`,
`INSTANT_STEPS`); adding a kind means a model in `spec.py`, an entry here or there, and a test.
"""
from __future__ import annotations

from typing import Any, Callable

from chalicelib.sim.spec import SECONDS_PER_DAY, RunDaysStep, RunTicksStep


def _run_days_seconds(step: RunDaysStep) -> int:
    return max(1, int(round(step.days * SECONDS_PER_DAY)))


def _run_ticks_seconds(step: RunTicksStep) -> int:
    return step.steps * step.ticks_per_step


# step type -> simulated seconds it lasts; every other kind takes no simulated time
TIMED_STEPS: dict[str, Callable[[Any], int]] = {"run": _run_days_seconds, "step": _run_ticks_seconds}
TIMED_DESCRIPTIONS: dict[str, Callable[[Any], str]] = {
    "run": lambda step: f"run {step.days:g} day(s), {step.ticks_per_step} s per tick",
    "step": lambda step: f"{step.steps} tick(s) of {step.ticks_per_step} s",
}


def is_timed(step: Any) -> bool:
    return step.type in TIMED_STEPS


def step_seconds(step: Any) -> int:
    """Simulated seconds a step lasts (0 for the instant kinds)."""
    seconds = TIMED_STEPS.get(step.type)
    return seconds(step) if seconds else 0


def tick_seconds(step: Any) -> int:
    """Simulated seconds of one tick of a timed step."""
    return int(step.ticks_per_step)


def describe(step: Any) -> str:
    return TIMED_DESCRIPTIONS[step.type](step) if is_timed(step) else step.type
