"""How metric points are stored: a compact binary form of a chunk's points, and its summaries.

Points of a chunk are sorted by step, and steps and timestamps mostly advance by small amounts: each
is written as the zigzag varint of its difference from the previous point's (one or two bytes, in
practice), and the value as its IEEE-754 double (8 bytes, NaN and infinities included, bit for bit).
So a point costs about 10 bytes, against ~30 as JSON.

A summary splits a chunk's points into buckets of consecutive points and keeps, for each, how many
there are, its first and last step, and its lowest and highest point (finite values; a bucket of
NaN only keeps its first point for both). Downsampled reads merge stored buckets instead of
reading points: a bucket's extremes are real points of the series, so what comes back is the
same kind of answer as downsampling the points themselves.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Iterable, Sequence

from chalicelib.domain.tracking.metrics import MetricPoint

FORMAT = 1
_DOUBLE = struct.Struct("<d")


def _zigzag(n: int) -> int:
    return 2 * n if n >= 0 else -2 * n - 1


def _unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def _put_uvarint(out: bytearray, n: int) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


class _Reader:
    __slots__ = ("data", "at")

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.at]
            self.at += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7

    def varint(self) -> int:
        return _unzigzag(self.uvarint())

    def double(self) -> float:
        value = _DOUBLE.unpack_from(self.data, self.at)[0]
        self.at += 8
        return float(value)


def _put_point(out: bytearray, point: MetricPoint, step_base: int, ts_base: int) -> None:
    _put_uvarint(out, _zigzag(point.step - step_base))
    _put_uvarint(out, _zigzag(point.timestamp - ts_base))
    out += _DOUBLE.pack(point.value)


def _point(reader: _Reader, step_base: int, ts_base: int) -> MetricPoint:
    step = step_base + reader.varint()
    timestamp = ts_base + reader.varint()
    return MetricPoint(step, timestamp, reader.double())


def encode_points(points: Sequence[MetricPoint]) -> bytes:
    out = bytearray([FORMAT])
    _put_uvarint(out, len(points))
    step = ts = 0
    for point in points:
        _put_point(out, point, step, ts)
        step, ts = point.step, point.timestamp
    return bytes(out)


def decode_points(data: bytes) -> list[MetricPoint]:
    reader = _Reader(data)
    if reader.uvarint() != FORMAT:
        raise ValueError("unknown metric chunk format")
    points, step, ts = [], 0, 0
    for _ in range(reader.uvarint()):
        point = _point(reader, step, ts)
        points.append(point)
        step, ts = point.step, point.timestamp
    return points


@dataclass(frozen=True)
class Bucket:
    """Consecutive points of a series: how many, where they start and end, their extremes."""

    count: int
    first_step: int
    last_step: int
    low: MetricPoint
    high: MetricPoint


def buckets_of(points: Sequence[MetricPoint], parts: int) -> list[Bucket]:
    """The points (sorted) in `parts` buckets of (nearly) equal counts."""
    found = []
    total = len(points)
    parts = max(1, min(parts, total))
    for b in range(parts):
        part = points[b * total // parts : (b + 1) * total // parts]
        if not part:
            continue
        finite = [p for p in part if not math.isnan(p.value)]
        low = min(finite, key=lambda p: p.value) if finite else part[0]
        high = max(finite, key=lambda p: p.value) if finite else part[0]
        found.append(Bucket(len(part), part[0].step, part[-1].step, low, high))
    return found


def encode_buckets(buckets: Sequence[Bucket]) -> bytes:
    out = bytearray([FORMAT])
    _put_uvarint(out, len(buckets))
    step = 0
    for bucket in buckets:
        _put_uvarint(out, bucket.count)
        _put_uvarint(out, _zigzag(bucket.first_step - step))
        _put_uvarint(out, _zigzag(bucket.last_step - bucket.first_step))
        for extreme in (bucket.low, bucket.high):  # the step from the bucket's first, the timestamp whole
            _put_point(out, extreme, bucket.first_step, 0)
        step = bucket.last_step
    return bytes(out)


def decode_buckets(data: bytes) -> list[Bucket]:
    reader = _Reader(data)
    if reader.uvarint() != FORMAT:
        raise ValueError("unknown metric summary format")
    found, step = [], 0
    for _ in range(reader.uvarint()):
        count = reader.uvarint()
        first = step + reader.varint()
        last = first + reader.varint()
        low, high = _point(reader, first, 0), _point(reader, first, 0)
        found.append(Bucket(count, first, last, low, high))
        step = last
    return found


def merge(buckets: Iterable[Bucket], max_points: int) -> list[MetricPoint]:
    """At most `max_points` points from stored buckets (in step order): consecutive buckets are
    grouped into max_points/2 groups of (nearly) equal point counts, each keeping its extremes."""
    ordered = sorted(buckets, key=lambda b: (b.first_step, b.last_step))
    total = sum(b.count for b in ordered)
    groups = max(1, max_points // 2)
    kept: dict[tuple, MetricPoint] = {}
    seen = 0
    current: list[Bucket] = []
    boundary = 1
    for bucket in ordered:
        current.append(bucket)
        seen += bucket.count
        if seen * groups >= boundary * total:
            _keep(kept, current)
            current = []
            while seen * groups >= boundary * total:
                boundary += 1
    if current:
        _keep(kept, current)
    return sorted(kept.values(), key=lambda p: (p.order, p.identity))


def _keep(kept: dict[tuple, MetricPoint], group: list[Bucket]) -> None:
    lows = [b.low for b in group if not math.isnan(b.low.value)]
    highs = [b.high for b in group if not math.isnan(b.high.value)]
    if not lows:
        first = group[0].low
        kept[first.identity] = first
        return
    low = min(lows, key=lambda p: p.value)
    high = max(highs, key=lambda p: p.value)
    kept[low.identity], kept[high.identity] = low, high
