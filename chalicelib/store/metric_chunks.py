"""Metric points in DynamoDB, many to an item: one item per content-addressed chunk of one (run, key),
and beside each chunk its summaries, so that a read costs what its answer costs.

Three partitions per series, one sort key per chunk (`<max step>#<min step>#<digest>`) in each:
- the chunk itself: its points in the binary form of `domain/tracking/codec.py` (~10 bytes a point);
- its coarse summary: count, value range and one bucket (extremes), for compare and for long series;
- its fine summary (chunks of `FINE_MIN_POINTS` or more): 16 buckets, for downsampling short series.
All three go in the same batch writes. Chunks sort by their last step, so "chunks that reach step s"
is one key range; a series' span (the largest max step - min step of its chunks, kept with its
latest value) says how far past a page's last step an overlapping chunk can still end, so a page
stops reading there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

from chalicelib.domain.tracking.codec import (
    Bucket,
    buckets_of,
    decode_buckets,
    decode_points,
    encode_buckets,
    encode_points,
)
from chalicelib.domain.tracking.metrics import Chunk, MetricPoint, decode_json_points, sort_unique
from chalicelib.store import keys
from chalicelib.store.dynamo import Condition, SortRange, Table

FINE_MIN_POINTS = 32
FINE_BUCKETS = 16
PAGE_CHUNKS = 4  # chunks asked for per Query while a history page fills


@dataclass(frozen=True)
class SeriesSummary:
    count: int
    min: Optional[float]
    max: Optional[float]


@dataclass(frozen=True)
class ChunkSummary:
    """What the coarse summary of one chunk says (and whether a fine one exists)."""

    sk: str
    count: int
    min_step: int
    max_step: int
    low: Optional[float]
    high: Optional[float]
    bucket: Bucket
    fine: bool


def _reaching(start_step: Optional[int], end_step: Optional[int] = None,
              span: Optional[int] = None) -> Optional[SortRange]:
    """The chunks that may hold a step of [start_step, end_step], as one key range: chunks sort by their
    last step, so those reaching `start_step` start the range; with the series' `span` known, none
    ending after `end_step + span` can start by `end_step`, so the range ends there."""
    low = keys.chunks_reaching(start_step) if start_step is not None else None
    if end_step is None or span is None:
        return SortRange.starting_at(low) if low is not None else None
    return SortRange.between(low or keys.chunks_reaching(keys.MIN_STEP), keys.chunks_ending_by(end_step + span))


def _starting_by(end_step: int) -> Condition:
    """Chunks whose first step is `end_step` or earlier."""
    return Condition.less_than("min_step", end_step + 1)


def _points(item: dict) -> list[MetricPoint]:
    return decode_points(item["b"]) if "b" in item else decode_json_points(item["points"])  # "points": before 2026-12


@dataclass
class MetricChunkStore:
    table: Table

    def write(self, tenant_id: str, run_id: str, chunks: Iterable[tuple[str, Chunk]], extra: Iterable[dict] = ()) \
            -> None:
        """Write (key, chunk) pairs with their summaries, 25 items a request, with `extra` items of the same
        table's batch (none here); a retried chunk lands on its own keys again."""
        items = list(extra)
        for key, chunk in chunks:
            sk = keys.metric_chunk_sk(chunk.max_step, chunk.min_step, chunk.digest)
            low, high = chunk.value_range()
            stats = {"n": len(chunk.points), "min_step": chunk.min_step, "max_step": chunk.max_step,
                     "vmin": repr(low) if low is not None else None, "vmax": repr(high) if high is not None else None}
            fine = len(chunk.points) >= FINE_MIN_POINTS
            items.append({"pk": keys.metric_pk(tenant_id, run_id, key), "sk": sk, "b": encode_points(chunk.points),
                          **stats})
            items.append({"pk": keys.metric_summary_pk(tenant_id, run_id, key, keys.COARSE), "sk": sk, **stats,
                          "b": encode_buckets(buckets_of(chunk.points, 1)), "fine": fine})
            if fine:
                items.append({"pk": keys.metric_summary_pk(tenant_id, run_id, key, keys.FINE), "sk": sk,
                              "b": encode_buckets(buckets_of(chunk.points, FINE_BUCKETS))})
        if items:
            self.table.batch_put(items)

    def read(self, tenant_id: str, run_id: str, key: str, start_step: Optional[int] = None,
             end_step: Optional[int] = None, *, enough: Optional[int] = None,
             span: Optional[int] = None) -> tuple[list[MetricPoint], bool]:
        """Points with start_step <= step <= end_step, sorted, identical points once; and whether more exist.

        With `enough` and the series' `span`, reading stops once `enough` points are in hand and the
        chunks read have gone past the last of them by more than the span (no later chunk can hold an
        earlier point): a page reads the chunks it returns, plus at most one.
        """
        points: list[MetricPoint] = []
        start = None
        while True:
            found, start = self.table.query_page(
                keys.metric_pk(tenant_id, run_id, key), _reaching(start_step, end_step, span),
                filter=None if end_step is None else _starting_by(end_step), attributes=("b", "points", "max_step"),
                consistent=True, limit=PAGE_CHUNKS if enough is not None else None, start=start)
            for item in found:
                points.extend(p for p in _points(item) if (start_step is None or p.step >= start_step)
                              and (end_step is None or p.step <= end_step))
            if start is None:
                return sort_unique(points), False
            if enough is not None and span is not None and found and len(points) >= enough:
                ordered = sort_unique(points)
                if int(found[-1]["max_step"]) > ordered[enough - 1].step + span:
                    return ordered, True

    def summaries(self, tenant_id: str, run_id: str, key: str, start_step: Optional[int] = None,
                  end_step: Optional[int] = None, span: Optional[int] = None) -> list[ChunkSummary]:
        """The coarse summary of every chunk reaching into [start_step, end_step]."""
        found = []
        for item in self.table.query(keys.metric_summary_pk(tenant_id, run_id, key, keys.COARSE),
                                     _reaching(start_step, end_step, span),
                                     filter=None if end_step is None else _starting_by(end_step), consistent=True):
            found.append(ChunkSummary(item["sk"], int(item["n"]), int(item["min_step"]), int(item["max_step"]),
                                      float(item["vmin"]) if item.get("vmin") is not None else None,
                                      float(item["vmax"]) if item.get("vmax") is not None else None,
                                      decode_buckets(item["b"])[0], bool(item.get("fine"))))
        return found

    def fine_buckets(self, tenant_id: str, run_id: str, key: str, start_step: Optional[int] = None,
                     end_step: Optional[int] = None, span: Optional[int] = None) -> dict[str, list[Bucket]]:
        """The fine summaries of the chunks reaching into [start_step, end_step], by chunk sort key."""
        return {item["sk"]: decode_buckets(item["b"])
                for item in self.table.query(keys.metric_summary_pk(tenant_id, run_id, key, keys.FINE),
                                             _reaching(start_step, end_step, span),
                                             filter=None if end_step is None else _starting_by(end_step),
                                             consistent=True)}

    def chunk_points(self, tenant_id: str, run_id: str, key: str, sks: Iterable[str]) -> list[MetricPoint]:
        """The points of the chunks of these sort keys (one BatchGetItem per 100)."""
        pk = keys.metric_pk(tenant_id, run_id, key)
        return [p for item in self.table.batch_get([{"pk": pk, "sk": sk} for sk in sks], attributes=("b", "points"))
                for p in _points(item)]

    def summary(self, tenant_id: str, run_id: str, key: str) -> SeriesSummary:
        """Count, min and max of a series, identical points once.

        Chunks whose step ranges do not overlap cannot share a point, so their own statistics add up
        from their coarse summaries; only a series with overlapping chunks (a client re-sending points
        in another request) is read in full and de-duplicated.
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
