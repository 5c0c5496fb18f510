"""Metric points in DynamoDB, many to an item: one item per content-addressed chunk of one (run, key)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

from chalicelib.domain.tracking.metrics import Chunk, MetricPoint, decode_points, sort_unique
from chalicelib.store import keys
from chalicelib.store.dynamo import Condition, SortRange, Table


@dataclass(frozen=True)
class SeriesSummary:
    count: int
    min: Optional[float]
    max: Optional[float]


def _reaching(start_step: Optional[int]) -> Optional[SortRange]:
    """Chunks are sorted by their last step: those reaching `start_step` are one key range."""
    return None if start_step is None else SortRange.starting_at(keys.chunks_reaching(start_step))


def _starting_by(end_step: int) -> Condition:
    """Chunks whose first step is `end_step` or earlier."""
    return Condition.less_than("min_step", end_step + 1)


@dataclass
class MetricChunkStore:
    table: Table

    def write(self, tenant_id: str, run_id: str, chunks: Iterable[tuple[str, Chunk]]) -> None:
        """Write (key, chunk) pairs in batches of 25; a retried chunk lands on its own key again."""
        items = []
        for key, chunk in chunks:
            low, high = chunk.value_range()
            items.append({
                "pk": keys.metric_pk(tenant_id, run_id, key),
                "sk": keys.metric_chunk_sk(chunk.max_step, chunk.min_step, chunk.digest),
                "points": chunk.encoded_points(),
                "n": len(chunk.points),
                "min_step": chunk.min_step,
                "max_step": chunk.max_step,
                "vmin": repr(low) if low is not None else None,
                "vmax": repr(high) if high is not None else None,
            })
        if items:
            self.table.batch_put(items)

    def read(self, tenant_id: str, run_id: str, key: str, start_step: Optional[int] = None,
             end_step: Optional[int] = None) -> list[MetricPoint]:
        """Points with start_step <= step <= end_step, sorted, identical points once."""
        points: list[MetricPoint] = []
        for item in self.table.query(keys.metric_pk(tenant_id, run_id, key), _reaching(start_step),
                                     filter=None if end_step is None else _starting_by(end_step),
                                     attributes=("points",), consistent=True):
            points.extend(p for p in decode_points(item["points"])
                          if (start_step is None or p.step >= start_step) and (end_step is None or p.step <= end_step))
        return sort_unique(points)

    def summary(self, tenant_id: str, run_id: str, key: str) -> SeriesSummary:
        """Count, min and max of a series, identical points once.

        Chunks whose step ranges do not overlap cannot share a point, so their own statistics add up
        without reading a single point; only a series with overlapping chunks (a client re-sending
        points in another request) is read in full and de-duplicated.
        """
        stats = list(self.table.query(keys.metric_pk(tenant_id, run_id, key),
                                      attributes=("n", "vmin", "vmax", "min_step", "max_step"), consistent=True))
        spans = sorted((int(s["min_step"]), int(s["max_step"])) for s in stats)
        if any(later[0] <= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)):
            points = self.read(tenant_id, run_id, key)
            finite = [p.value for p in points if not math.isnan(p.value)]
            return SeriesSummary(len(points), min(finite, default=None), max(finite, default=None))
        lows = [float(s["vmin"]) for s in stats if s.get("vmin") is not None]
        highs = [float(s["vmax"]) for s in stats if s.get("vmax") is not None]
        return SeriesSummary(sum(int(s["n"]) for s in stats), min(lows, default=None), max(highs, default=None))

    def remove(self, tenant_id: str, run_id: str, key: str) -> int:
        found = [{"pk": i["pk"], "sk": i["sk"]}
                 for i in self.table.query(keys.metric_pk(tenant_id, run_id, key), attributes=("pk", "sk"))]
        self.table.batch_delete(found)
        return len(found)
