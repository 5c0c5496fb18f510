"""Metric points in DynamoDB, many to an item, so that a read costs what its answer costs.

A series is cut into content-addressed chunks (sorted, de-duplicated points of one (run, key)),
each known by one sort key, `<max step>#<min step>#<digest>`, in up to three partitions:
- the catalog: one item per chunk with its count, step and value range and one summary bucket
  (its extremes); a small chunk (under `INLINE_POINTS`) keeps its points right there;
- the points of the larger chunks, in the binary form of `domain/tracking/codec.py` (~10 bytes each);
- a fine summary (16 buckets) of each larger chunk, for downsampling series too short for the
  catalog's one bucket a chunk.
A log-batch of many keys with a few points each writes one item per key. Chunks sort by their last
step, so "chunks that reach step s" is one key range; with the series' span (the widest step range
of its chunks, kept with its latest value), "chunks that may start by step e" ends at `e + span`,
and a history page stops reading once it is that far past its last step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Optional

from chalicelib.domain.tracking.codec import (
    Bucket,
    buckets_of,
    decode_buckets,
    decode_points,
    encode_buckets,
    encode_points,
)
from chalicelib.domain.tracking.metrics import Chunk, MetricPoint, sort_unique
from chalicelib.store import keys
from chalicelib.store.expressions import Condition, SortRange

if TYPE_CHECKING:
    from chalicelib.store.dynamo import Table

INLINE_POINTS = 32  # smaller chunks live in the catalog item itself
FINE_BUCKETS = 16
PAGE_CHUNKS = 8  # catalog entries asked for per Query while a history page fills


@dataclass(frozen=True)
class SeriesSummary:
    count: int
    min: Optional[float]
    max: Optional[float]


@dataclass(frozen=True)
class ChunkSummary:
    """A chunk as the catalog knows it: count, ranges, one bucket, and its points when it is small."""

    sk: str
    count: int
    min_step: int
    max_step: int
    low: Optional[float]
    high: Optional[float]
    bucket: Bucket
    points: Optional[list[MetricPoint]] = field(default=None, compare=False)  # a small chunk's own


def _range(start_step: Optional[int], end_step: Optional[int], span: Optional[int]) -> Optional[SortRange]:
    """The chunks that may hold a step of [start_step, end_step], as one key range: chunks sort by their
    last step, so those reaching `start_step` start the range; with the series' `span` known, none
    ending after `end_step + span` can start by `end_step`, so the range ends there."""
    low = keys.chunks_reaching(start_step) if start_step is not None else None
    if end_step is None or span is None:
        return SortRange.starting_at(low) if low is not None else None
    return SortRange.between(low or keys.chunks_reaching(keys.MIN_STEP), keys.chunks_ending_by(end_step + span))


def _starting_by(end_step: Optional[int]) -> Optional[Condition]:
    """Chunks whose first step is `end_step` or earlier."""
    return None if end_step is None else Condition.less_than("min_step", end_step + 1)


def _summary(item: dict) -> ChunkSummary:
    return ChunkSummary(item["sk"], int(item["n"]), int(item["min_step"]), int(item["max_step"]),
                        float(item["vmin"]) if item.get("vmin") is not None else None,
                        float(item["vmax"]) if item.get("vmax") is not None else None,
                        decode_buckets(item["s"])[0], decode_points(item["p"]) if "p" in item else None)


def _within(points: Iterable[MetricPoint], start_step: Optional[int], end_step: Optional[int]) -> list[MetricPoint]:
    return [p for p in points
            if (start_step is None or p.step >= start_step) and (end_step is None or p.step <= end_step)]


@dataclass
class MetricChunkStore:
    table: Table

    def write(self, tenant_id: str, run_id: str, chunks: Iterable[tuple[str, Chunk]]) -> None:
        """Write (key, chunk) pairs, 25 items a request; a retried chunk lands on its own keys again."""
        items: list[dict[str, Any]] = []
        for key, chunk in chunks:
            sk = keys.metric_chunk_sk(chunk.max_step, chunk.min_step, chunk.digest)
            low, high = chunk.value_range()
            entry = {"pk": keys.metric_catalog_pk(tenant_id, run_id, key), "sk": sk, "n": len(chunk.points),
                     "min_step": chunk.min_step, "max_step": chunk.max_step,
                     "vmin": repr(low) if low is not None else None, "vmax": repr(high) if high is not None else None,
                     "s": encode_buckets(buckets_of(chunk.points, 1))}
            if len(chunk.points) < INLINE_POINTS:
                entry["p"] = encode_points(chunk.points)
            else:
                items.append({"pk": keys.metric_pk(tenant_id, run_id, key), "sk": sk, "b": encode_points(chunk.points)})
                items.append({"pk": keys.metric_fine_pk(tenant_id, run_id, key), "sk": sk,
                              "s": encode_buckets(buckets_of(chunk.points, FINE_BUCKETS))})
            items.append(entry)
        if items:
            self.table.batch_put(items)

    def read(self, tenant_id: str, run_id: str, key: str, start_step: Optional[int] = None,
             end_step: Optional[int] = None, *, enough: Optional[int] = None,
             span: Optional[int] = None) -> tuple[list[MetricPoint], bool]:
        """Points with start_step <= step <= end_step, sorted, identical points once; and whether more exist.

        With `enough` and the series' `span`, reading stops once `enough` points are in hand and the
        catalog has gone past the last of them by more than the span (no later chunk can hold an
        earlier point): a page reads the chunks it returns, plus at most one.
        """
        points: list[MetricPoint] = []
        pending: list[ChunkSummary] = []  # larger chunks taken, their points not fetched yet

        def fetch() -> None:
            points.extend(_within(self._points_of(tenant_id, run_id, key, [e.sk for e in pending]),
                                  start_step, end_step))
            pending.clear()

        start = None
        while True:
            found, start = self.table.query_page(
                keys.metric_catalog_pk(tenant_id, run_id, key), _range(start_step, end_step, span),
                filter=_starting_by(end_step), consistent=True, limit=PAGE_CHUNKS if enough is not None else None,
                start=start)
            for entry in map(_summary, found):
                if enough is not None and span is not None and len(points) + sum(e.count for e in pending) >= enough:
                    fetch()
                    ordered = sort_unique(points)
                    if len(ordered) >= enough and entry.max_step > ordered[enough - 1].step + span:
                        return ordered, True  # this chunk, and every later one, starts past the page
                if entry.points is not None:
                    points.extend(_within(entry.points, start_step, end_step))
                else:
                    pending.append(entry)
            if start is None:
                fetch()
                return sort_unique(points), False

    def _points_of(self, tenant_id: str, run_id: str, key: str, sks: list[str]) -> list[MetricPoint]:
        """The points of the larger chunks of these sort keys (one BatchGetItem per 100)."""
        if not sks:
            return []
        pk = keys.metric_pk(tenant_id, run_id, key)
        return [p for item in self.table.batch_get([{"pk": pk, "sk": sk} for sk in sks], attributes=("b",))
                for p in decode_points(item["b"])]

    def summaries(self, tenant_id: str, run_id: str, key: str, start_step: Optional[int] = None,
                  end_step: Optional[int] = None, span: Optional[int] = None) -> list[ChunkSummary]:
        """The catalog entry of every chunk reaching into [start_step, end_step]."""
        return [_summary(item) for item in self.table.query(
            keys.metric_catalog_pk(tenant_id, run_id, key), _range(start_step, end_step, span),
            filter=_starting_by(end_step), consistent=True)]

    def fine_buckets(self, tenant_id: str, run_id: str, key: str, start_step: Optional[int] = None,
                     end_step: Optional[int] = None, span: Optional[int] = None) -> dict[str, list[Bucket]]:
        """The fine summaries of the larger chunks reaching into [start_step, end_step], by sort key."""
        return {item["sk"]: decode_buckets(item["s"]) for item in self.table.query(
            keys.metric_fine_pk(tenant_id, run_id, key), _range(start_step, end_step, span),
            filter=_starting_by(end_step), consistent=True)}

    def chunk_points(self, tenant_id: str, run_id: str, key: str, chunks: list[ChunkSummary]) -> list[MetricPoint]:
        """The points of these chunks: a small one's from its catalog entry, the others' from their items."""
        return [p for c in chunks if c.points is not None for p in c.points] + \
            self._points_of(tenant_id, run_id, key, [c.sk for c in chunks if c.points is None])

    def summary(self, tenant_id: str, run_id: str, key: str) -> SeriesSummary:
        """Count, min and max of a series, identical points once.

        Chunks whose step ranges do not overlap cannot share a point, so their own statistics add up
        from the catalog; only a series with overlapping chunks (a client re-sending points in another
        request) is read in full and de-duplicated.
        """
        stats = self.summaries(tenant_id, run_id, key)
        spans = sorted((s.min_step, s.max_step) for s in stats)
        if any(later[0] <= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)):
            points, _ = self.read(tenant_id, run_id, key)
            finite = [p.value for p in points if not math.isnan(p.value)]
            return SeriesSummary(len(points), min(finite, default=None), max(finite, default=None))
        lows = [s.low for s in stats if s.low is not None]
        highs = [s.high for s in stats if s.high is not None]
        return SeriesSummary(sum(s.count for s in stats), min(lows, default=None), max(highs, default=None))

    def remove(self, tenant_id: str, run_id: str, key: str) -> int:
        """Delete the series' chunks and summaries; returns how many items went."""
        found = [{"pk": i["pk"], "sk": i["sk"]}
                 for pk in keys.metric_partitions(tenant_id, run_id, key)
                 for i in self.table.query(pk, attributes=("pk", "sk"))]
        self.table.batch_delete(found)
        return len(found)
