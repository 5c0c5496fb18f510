"""Metric history: a step window read in cursor pages, or downsampled keeping each bucket's min and max."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from chalicelib.domain import validation as rules
from chalicelib.domain.errors import InvalidInput, NotFound
from chalicelib.domain.paging import check_limit
from chalicelib.domain.tracking.codec import Bucket, buckets_of, merge
from chalicelib.domain.tracking.metrics import MetricPoint, downsample, sort_unique

if TYPE_CHECKING:
    from chalicelib.domain.tokens import PageTokens
    from chalicelib.domain.tracking.records import Run
    from chalicelib.domain.tracking.runs import RunService
    from chalicelib.store.metric_chunks import MetricChunkStore

DEFAULT_PAGE = 1_000
MAX_PAGE = 25_000
MAX_POINTS = 10_000
EXACT_DOWNSAMPLE_POINTS = 20_000  # ~200 KB of stored points: up to here a downsample reads the points



def _scope(tenant_id: str, run_id: str, key: str, start_step: Optional[int], end_step: Optional[int],
           limit: int) -> str:
    """What a page token is bound to: a token of one listing is refused by any other."""
    return f"history|{tenant_id}|{run_id}|{key}|{start_step}|{end_step}|{limit}"

@dataclass
class HistoryService:
    runs: RunService
    chunks: MetricChunkStore
    tokens: PageTokens

    def read(self, tenant_id: str, run_id: str, key: str, *, start_step: Optional[int] = None,
             end_step: Optional[int] = None, page_token: Optional[str] = None, limit: int = DEFAULT_PAGE,
             max_points: Optional[int] = None) -> dict:
        """A page of the run's `key`, or its downsampled window (the request checked before the run is read)."""
        self._check(key, start_step, end_step, page_token, limit, max_points)
        after = self._position(_scope(tenant_id, run_id, key, start_step, end_step, limit), page_token)
        return self._page(self.runs.get(tenant_id, run_id), key, start_step, end_step, after, limit, max_points)

    def read_of(self, run: Run, key: str, *, start_step: Optional[int] = None, end_step: Optional[int] = None,
                page_token: Optional[str] = None, limit: int = DEFAULT_PAGE, max_points: Optional[int] = None) -> dict:
        """`read` of a run the caller has read already (MLflow's routes, which answer an unknown key themselves)."""
        self._check(key, start_step, end_step, page_token, limit, max_points)
        after = self._position(_scope(run.tenant_id, run.id, key, start_step, end_step, limit), page_token)
        return self._page(run, key, start_step, end_step, after, limit, max_points)

    def _check(self, key: str, start_step: Optional[int], end_step: Optional[int], page_token: Optional[str],
               limit: int, max_points: Optional[int]) -> None:
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

    def _page(self, run: Run, key: str, start_step: Optional[int], end_step: Optional[int],
              after: Optional[MetricPoint], limit: int, max_points: Optional[int]) -> dict:
        tenant_id, run_id = run.tenant_id, run.id
        if key not in run.latest:
            raise NotFound(f"run {run_id} has no metric {key!r}")
        span = run.series[key].span if key in run.series else None
        if max_points is not None:
            points = self._downsampled(tenant_id, run_id, key, start_step, end_step, span, max_points)
            return {"key": key, "points": [p.to_json() for p in points], "next_page_token": None}
        if after is None:
            read_from = start_step
        else:
            read_from = after.step if start_step is None else max(after.step, start_step)
        # one more than a page (whether more follow), and after a cursor one more again: the read starts at the
        # cursor's own step, so the cursor's point comes back and is dropped
        enough = limit + 1 if after is None else limit + 2
        while True:  # points at the cursor's own step come back again: ask for more until the page fills
            points, more = self.chunks.read(tenant_id, run_id, key, read_from, end_step, enough=enough, span=span)
            if after is not None:
                cursor = (after.order, after.identity)
                points = [p for p in points if (p.order, p.identity) > cursor]
            if len(points) > limit or not more:
                break
            enough *= 2
        page = points[:limit]
        next_token = None
        if len(points) > limit:
            next_token = self.tokens.encode(_scope(tenant_id, run_id, key, start_step, end_step, limit),
                                            {"row": page[-1].to_row()})
        return {"key": key, "points": [p.to_json() for p in page], "next_page_token": next_token}

    def _downsampled(self, tenant_id: str, run_id: str, key: str, start_step: Optional[int],
                     end_step: Optional[int], span: Optional[int], max_points: int) -> list[MetricPoint]:
        """At most `max_points` points, each bucket's lowest and highest, read from the chunks' summaries:
        their coarse buckets when there are enough of them, else their fine ones; only the points of
        chunks cut by the window's ends, and of series too short to summarise, are read themselves."""
        summaries = self.chunks.summaries(tenant_id, run_id, key, start_step, end_step, span)
        if sum(s.count for s in summaries) <= max(max_points, EXACT_DOWNSAMPLE_POINTS):
            points, _ = self.chunks.read(tenant_id, run_id, key, start_step, end_step, span=span)
            return downsample(points, max_points)  # few enough to read: buckets of exactly equal counts
        inside = [s for s in summaries if (start_step is None or s.min_step >= start_step)
                  and (end_step is None or s.max_step <= end_step)]
        cut = [s for s in summaries if s not in inside]
        buckets: list[Bucket] = [s.bucket for s in inside]
        if len(buckets) < max_points // 2:
            fine = self.chunks.fine_buckets(tenant_id, run_id, key, start_step, end_step, span)
            buckets = [b for s in inside for b in fine.get(s.sk, [s.bucket])]
        if cut:  # the window's ends cut these chunks: their own points, as buckets of one
            edge = [p for p in self.chunks.chunk_points(tenant_id, run_id, key, cut)
                    if (start_step is None or p.step >= start_step) and (end_step is None or p.step <= end_step)]
            buckets += buckets_of(sort_unique(edge), max(1, len(edge)))
        return merge(buckets, max_points)

    def _position(self, scope: str, page_token: Optional[str]) -> Optional[MetricPoint]:
        if not page_token:
            return None
        position = self.tokens.decode(scope, page_token)
        try:
            return MetricPoint.from_row(position["row"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput("page_token is malformed") from exc
