"""Metric history: a step window read in cursor pages, or downsampled keeping each bucket's min and max."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from chalicelib.domain import validation as rules
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.paging import check_limit
from chalicelib.domain.tracking.metrics import MetricPoint, downsample

if TYPE_CHECKING:
    from chalicelib.domain.tokens import PageTokens
    from chalicelib.domain.tracking.runs import RunService
    from chalicelib.store.metric_chunks import MetricChunkStore

DEFAULT_PAGE = 1_000
MAX_PAGE = 25_000
MAX_POINTS = 10_000


@dataclass
class HistoryService:
    runs: RunService
    chunks: MetricChunkStore
    tokens: PageTokens

    def read(self, tenant_id: str, run_id: str, key: str, *, start_step: Optional[int] = None,
             end_step: Optional[int] = None, page_token: Optional[str] = None, limit: int = DEFAULT_PAGE,
             max_points: Optional[int] = None) -> dict:
        try:
            rules.check_key(key, "metric key")
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        for name, step in (("start_step", start_step), ("end_step", end_step)):
            if step is not None and not -(2**63) <= step < 2**63:
                raise InvalidInput(f"{name} must be a signed 64-bit integer, got {step}")
        if start_step is not None and end_step is not None and start_step > end_step:
            raise InvalidInput(f"start_step {start_step} is after end_step {end_step}")
        check_limit(limit, max_limit=MAX_PAGE)
        if max_points is not None:
            if max_points < 2:
                raise InvalidInput(f"max_points must be between 2 and {MAX_POINTS}, got {max_points}")
            check_limit(max_points, max_limit=MAX_POINTS, name="max_points")
            if page_token:
                raise InvalidInput("page_token cannot be combined with max_points: a downsampled history is one page")
        scope = f"history|{tenant_id}|{run_id}|{key}|{start_step}|{end_step}|{limit}"
        after = self._position(scope, page_token)
        run = self.runs.get(tenant_id, run_id)
        if key not in run.latest:
            raise NotFound(f"run {run_id} has no metric {key!r}")
        if after is None:
            read_from = start_step
        else:
            read_from = after.step if start_step is None else max(after.step, start_step)
        points = self.chunks.read(tenant_id, run_id, key, read_from, end_step)
        if after is not None:
            cursor = (after.order, after.identity)
            points = [p for p in points if (p.order, p.identity) > cursor]
        if max_points is not None:
            return {"key": key, "points": [p.to_json() for p in downsample(points, max_points)],
                    "next_page_token": None}
        page = points[:limit]
        next_token = None
        if len(points) > limit:
            next_token = self.tokens.encode(scope, {"row": page[-1].to_row()})
        return {"key": key, "points": [p.to_json() for p in page], "next_page_token": next_token}

    def _position(self, scope: str, page_token: Optional[str]) -> Optional[MetricPoint]:
        if not page_token:
            return None
        position = self.tokens.decode(scope, page_token)
        try:
            return MetricPoint.from_row(position["row"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("page_token is malformed") from exc
