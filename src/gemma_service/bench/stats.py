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
    # Clock readings (time.perf_counter) of the send and of each content chunk, so a level can
    # be measured as a whole: decode throughput across streams, its peak, prefill throughput.
    sent_at: float | None = None
    arrivals: tuple[float, ...] = ()

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
    # The workload: the prompt length asked for (0: the short bench prompts), and which round.
    prompt_tokens: int = 0
    round: int = 0
    mean_prompt_tokens: float | None = None
    # As llama-benchy measures them: tokens after each stream's first / (last token of any
    # stream - first token of any); the most tokens in any 1 s; prompt tokens / (last first
    # token - first send).
    decode_tokens_per_s: float | None = None
    peak_tokens_per_s: float | None = None
    prefill_tokens_per_s: float | None = None


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


def mean(values: Sequence[float] | Sequence[int]) -> float | None:
    """Arithmetic mean; None for no values."""
    return sum(values) / len(values) if values else None


def token_times(result: RequestResult) -> list[float]:
    """When each generated token arrived. A chunk may carry several tokens: with the token
    count from usage, the times are spread evenly from the first chunk to the last, as
    llama-benchy does."""
    chunks, n = list(result.arrivals), result.completion_tokens
    if not chunks or n <= 1 or n == len(chunks) or not result.tokens_from_usage:
        return chunks if chunks else []
    step = (chunks[-1] - chunks[0]) / (n - 1)
    return [chunks[0] + step * i for i in range(n)]


def decode_throughput(results: Sequence[RequestResult]) -> float | None:
    """Tokens after each stream's first, over the span from the first first token anywhere to
    the last token anywhere (llama-benchy's tg throughput)."""
    streams = [t for r in results if r.ok and len(t := token_times(r)) > 1]
    if not streams:
        return None
    span = max(t[-1] for t in streams) - min(t[0] for t in streams)
    tokens = sum(len(t) - 1 for t in streams)
    return tokens / span if span > 0 else None


def peak_throughput(results: Sequence[RequestResult], window_s: float = 1.0) -> float | None:
    """The most tokens of all streams together in any ``window_s`` (llama-benchy's peak)."""
    times = sorted(t for r in results if r.ok for t in token_times(r))
    if len(times) < 2:
        return None
    if times[-1] - times[0] < window_s:
        return len(times) / (times[-1] - times[0])
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best / window_s


def prefill_throughput(results: Sequence[RequestResult]) -> float | None:
    """Prompt tokens of the level over the time until its last stream's first token."""
    done = [r for r in results if r.ok and r.arrivals and r.sent_at is not None and r.prompt_tokens]
    if not done:
        return None
    span = max(r.arrivals[0] for r in done) - min(r.sent_at or 0.0 for r in done)
    return sum(r.prompt_tokens or 0 for r in done) / span if span > 0 else None


def summarize_level(
    concurrency: int,
    results: Sequence[RequestResult],
    wall_s: float,
    *,
    prompt_tokens: int = 0,
    round_index: int = 0,
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
        prompt_tokens=prompt_tokens,
        round=round_index,
        mean_prompt_tokens=mean([r.prompt_tokens for r in succeeded if r.prompt_tokens]),
        decode_tokens_per_s=decode_throughput(results),
        peak_tokens_per_s=peak_throughput(results),
        prefill_tokens_per_s=prefill_throughput(results),
    )
