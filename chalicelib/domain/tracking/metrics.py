"""Metric points: ordering, the "latest" rule, chunking into content-addressed chunks, downsampling.

A chunk is a sorted, de-duplicated run of points of one (run, key). Its identity is a digest of
its content, so a retried request rebuilds the same chunks and overwrites them instead of adding
copies; reads merge chunks and drop identical points that separate requests may have stored twice.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from chalicelib.domain.validation import metric_value_to_json

MAX_POINTS_PER_CHUNK = 2_000  # ~60 KB of JSON: far below DynamoDB's 400 KB item limit


@dataclass(frozen=True, order=False)
class MetricPoint:
    step: int
    timestamp: int
    value: float

    @property
    def order(self) -> tuple[int, int, float]:
        """(step, timestamp, value) with NaN lowest: MLflow's ordering, and the "latest" rule."""
        return (self.step, self.timestamp, -math.inf if math.isnan(self.value) else self.value)

    @property
    def identity(self) -> tuple[int, int, str]:
        """Equality that treats NaN as equal to NaN (float equality does not)."""
        return (self.step, self.timestamp, repr(self.value))

    def to_row(self) -> list:
        return [self.step, self.timestamp, metric_value_to_json(self.value)]

    @classmethod
    def from_row(cls, row: Sequence) -> MetricPoint:
        step, timestamp, value = row
        if isinstance(value, str):
            value = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
        return cls(int(step), int(timestamp), float(value))

    def to_json(self) -> dict:
        return {"step": self.step, "value": metric_value_to_json(self.value), "timestamp": self.timestamp}


def sort_unique(points: Iterable[MetricPoint]) -> list[MetricPoint]:
    """Points in (step, timestamp, value) order with identical points kept once (ties of the order, such as NaN
    and -Infinity at one step and time, by identity).

    Identical points have the same order, so only runs of equal order are compared by identity; a series
    without such runs (nearly every one) is sorted once and no point's value is printed.
    """
    decorated = sorted((point.order, index, point) for index, point in enumerate(points))
    result: list[MetricPoint] = []
    start = 0
    while start < len(decorated):
        end = start + 1
        while end < len(decorated) and decorated[end][0] == decorated[start][0]:
            end += 1
        if end == start + 1:
            result.append(decorated[start][2])
        else:
            tied = {point.identity: point for _, _, point in decorated[start:end]}
            result.extend(sorted(tied.values(), key=lambda p: p.identity))
        start = end
    return result


def latest(points: Iterable[MetricPoint]) -> MetricPoint | None:
    return max(points, key=lambda p: p.order, default=None)


@dataclass(frozen=True)
class SeriesState:
    """What is kept of a series beside its chunks: its latest point, and its span, the widest step
    range of any of its chunks (None: written before spans were kept, so unknown), and the version
    of that record (for writes that must not overwrite a concurrent one)."""

    latest: MetricPoint
    span: Optional[int]
    version: int = 0


def advanced(stored: Optional[SeriesState], newest: MetricPoint, span: int) -> Optional[SeriesState]:
    """The series after a batch whose latest point is `newest` and whose widest chunk spans `span`
    steps; None when the batch changes nothing of it (latest: greatest (step, timestamp, value))."""
    if stored is None:
        return SeriesState(newest, span, 1)
    point = newest if newest.order > stored.latest.order else stored.latest
    wider = None if stored.span is None else max(stored.span, span)  # unknown stays unknown
    if point is stored.latest and wider == stored.span:
        return None
    return SeriesState(point, wider, stored.version + 1)


@dataclass(frozen=True)
class Chunk:
    points: tuple[MetricPoint, ...]
    server_time: Optional[int] = None  # the timestamp the server gave points that came without one

    @property
    def min_step(self) -> int:
        return self.points[0].step

    @property
    def max_step(self) -> int:
        return self.points[-1].step

    @property
    def digest(self) -> str:
        """What the chunk's key is made of: its points as the client sent them, so that a retried
        request lands on the same key even when the server stamped its points with another time."""
        rows = [[p.step, None if p.timestamp == self.server_time else p.timestamp, p.to_row()[2]]
                for p in self.points]
        return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()[:24]

    def value_range(self) -> tuple[float | None, float | None]:
        finite = [p.value for p in self.points if not math.isnan(p.value)]
        return (min(finite), max(finite)) if finite else (None, None)


def decode_json_points(encoded: str) -> list[MetricPoint]:
    """Points as chunks stored them before the binary form (domain/tracking/codec.py)."""
    return [MetricPoint.from_row(row) for row in json.loads(encoded)]


def chunk(points: Iterable[MetricPoint], size: int = MAX_POINTS_PER_CHUNK,
          server_time: Optional[int] = None) -> list[Chunk]:
    """Split sorted, unique points into chunks of at most `size` points (deterministic, so retries match)."""
    ordered = sort_unique(points)
    return [Chunk(tuple(ordered[i : i + size]), server_time) for i in range(0, len(ordered), size)]


def downsample(points: Sequence[MetricPoint], max_points: int) -> list[MetricPoint]:
    """Keep at most `max_points`: split the points into equal-count buckets, keep each bucket's min and max.

    Spikes survive (unlike MLflow's one-pick-per-bucket sampling) because the extreme values of every
    bucket are kept; NaN points are only kept for buckets that have nothing else.
    """
    if len(points) <= max_points:
        return list(points)
    buckets = max(1, max_points // 2)
    kept: list[MetricPoint] = []
    total = len(points)
    for b in range(buckets):
        bucket = points[b * total // buckets : (b + 1) * total // buckets]
        if not bucket:
            continue
        finite = [p for p in bucket if not math.isnan(p.value)]
        if not finite:
            kept.append(bucket[0])
            continue
        low = min(finite, key=lambda p: p.value)
        high = max(finite, key=lambda p: p.value)
        kept.extend(sorted({low.identity: low, high.identity: high}.values(), key=lambda p: (p.order, p.identity)))
    return kept
