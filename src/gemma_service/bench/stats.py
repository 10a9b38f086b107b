"""Per-request measurements and their aggregation into one concurrency level's summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RequestResult:
    """What one streamed request measured, timed from the moment it was sent."""

    ok: bool
    total_s: float
    completion_tokens: int = 0
    ttft_s: float | None = None
    chunk_gaps_s: tuple[float, ...] = ()
    prompt_tokens: int | None = None
    tokens_from_usage: bool = False
    error: str | None = None

    @property
    def time_per_output_token_s(self) -> float | None:
        """Decode time per token after the first one (None with fewer than two tokens)."""
        if self.ttft_s is None or self.completion_tokens < 2:
            return None
        return (self.total_s - self.ttft_s) / (self.completion_tokens - 1)


@dataclass(frozen=True, slots=True)
class LevelSummary:
    """Aggregates of every request sent at one concurrency level."""

    concurrency: int
    requests: int
    failed: int
    generated_tokens: int
    wall_s: float
    tokens_per_s: float
    mean_tokens_per_request: float
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    itl_p50_s: float | None
    itl_p95_s: float | None
    tpot_mean_s: float | None
    tokens_counted_from: str
    errors: list[str] = field(default_factory=list)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Linear-interpolated percentile (numpy's default method); None for no values."""
    if not values:
        return None
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {pct}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean; None for no values."""
    return sum(values) / len(values) if values else None


def summarize_level(
    concurrency: int, results: Sequence[RequestResult], wall_s: float
) -> LevelSummary:
    """Fold one level's request results into throughput and latency percentiles."""
    succeeded = [r for r in results if r.ok]
    tokens = sum(r.completion_tokens for r in succeeded)
    ttfts = [r.ttft_s for r in succeeded if r.ttft_s is not None]
    gaps = [gap for r in succeeded for gap in r.chunk_gaps_s]
    tpots = [t for r in succeeded if (t := r.time_per_output_token_s) is not None]
    from_usage = sum(1 for r in succeeded if r.tokens_from_usage)
    counted_from = "usage" if succeeded and from_usage == len(succeeded) else "chunks"
    if 0 < from_usage < len(succeeded):
        counted_from = "mixed"
    distinct_errors = sorted({r.error for r in results if not r.ok and r.error})
    return LevelSummary(
        concurrency=concurrency,
        requests=len(results),
        failed=len(results) - len(succeeded),
        generated_tokens=tokens,
        wall_s=wall_s,
        tokens_per_s=tokens / wall_s if wall_s > 0 else 0.0,
        mean_tokens_per_request=tokens / len(succeeded) if succeeded else 0.0,
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p95_s=percentile(ttfts, 95),
        itl_p50_s=percentile(gaps, 50),
        itl_p95_s=percentile(gaps, 95),
        tpot_mean_s=mean(tpots),
        tokens_counted_from=counted_from,
        errors=distinct_errors[:5],
    )
