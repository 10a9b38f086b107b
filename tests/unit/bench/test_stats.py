"""Percentiles and the folding of request results into one level's summary."""

from __future__ import annotations

import pytest

from gemma_service.bench.stats import RequestResult, percentile, summarize_level


def test_percentile_interpolates_like_numpy_linear() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0


def test_percentile_of_nothing_is_none_and_of_one_value_is_it() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0


def test_percentile_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def ok(tokens: int, ttft: float, total: float, gaps: tuple[float, ...] = ()) -> RequestResult:
    return RequestResult(
        ok=True, total_s=total, completion_tokens=tokens, ttft_s=ttft, chunk_gaps_s=gaps,
        tokens_from_usage=True,
    )  # fmt: skip


def test_throughput_is_generated_tokens_over_wall_time() -> None:
    results = [ok(128, 0.1, 2.0), ok(64, 0.3, 1.5)]
    summary = summarize_level(2, results, wall_s=4.0)
    assert summary.generated_tokens == 192
    assert summary.tokens_per_s == pytest.approx(48.0)
    assert summary.mean_tokens_per_request == pytest.approx(96.0)


def test_failed_requests_add_no_tokens_and_keep_their_errors() -> None:
    failed = RequestResult(ok=False, total_s=0.2, error="HTTP 503: busy")
    summary = summarize_level(2, [ok(10, 0.1, 1.0), failed, failed], wall_s=1.0)
    assert (summary.requests, summary.failed, summary.generated_tokens) == (3, 2, 10)
    assert summary.errors == ["HTTP 503: busy"]


def test_latency_percentiles_cover_ttft_and_every_chunk_gap() -> None:
    results = [ok(3, 0.1, 1.0, (0.01, 0.03)), ok(3, 0.3, 1.0, (0.02, 0.04))]
    summary = summarize_level(2, results, wall_s=1.0)
    assert summary.ttft_p50_s == pytest.approx(0.2)
    assert summary.itl_p50_s == pytest.approx(0.025)
    assert summary.itl_p95_s == pytest.approx(0.0385)


def test_time_per_output_token_excludes_the_first_token() -> None:
    result = ok(5, ttft=1.0, total=3.0)
    assert result.time_per_output_token_s == pytest.approx(0.5)
    assert ok(1, 0.1, 0.2).time_per_output_token_s is None


def test_token_source_is_reported() -> None:
    counted = RequestResult(ok=True, total_s=1.0, completion_tokens=4, ttft_s=0.1)
    assert summarize_level(1, [ok(4, 0.1, 1.0)], 1.0).tokens_counted_from == "usage"
    assert summarize_level(1, [counted], 1.0).tokens_counted_from == "chunks"
    assert summarize_level(2, [counted, ok(4, 0.1, 1.0)], 1.0).tokens_counted_from == "mixed"


def test_empty_level_has_no_rate_or_latencies() -> None:
    summary = summarize_level(4, [], wall_s=0.0)
    assert summary.tokens_per_s == 0.0
    assert summary.ttft_p50_s is None


def streamed(sent: float, arrivals: list[float], prompt_tokens: int = 100) -> RequestResult:
    return RequestResult(
        ok=True, total_s=arrivals[-1] - sent, completion_tokens=len(arrivals),
        ttft_s=arrivals[0] - sent, prompt_tokens=prompt_tokens, tokens_from_usage=True,
        sent_at=sent, arrivals=tuple(arrivals),
    )  # fmt: skip


def test_decode_peak_and_prefill_throughput_are_measured_as_llama_benchy_does() -> None:
    # Two streams sent at 0: first tokens at 1.0 and 2.0, then 8 tokens each, 0.125 s apart.
    a = streamed(0.0, [1.0 + 0.125 * i for i in range(9)])
    b = streamed(0.0, [2.0 + 0.125 * i for i in range(9)])
    summary = summarize_level(2, [a, b], wall_s=3.0, prompt_tokens=512, round_index=2)
    # 16 tokens after the first ones, from the first first token (1.0) to the last (3.0).
    assert summary.decode_tokens_per_s == pytest.approx(8.0)
    # The busiest second, (1.0, 2.0]: a's last 8 tokens and b's first.
    assert summary.peak_tokens_per_s == pytest.approx(9.0)
    # 200 prompt tokens until the last first token at 2.0.
    assert summary.prefill_tokens_per_s == pytest.approx(100.0)
    assert (summary.prompt_tokens, summary.round, summary.mean_prompt_tokens) == (512, 2, 100.0)


def test_a_level_without_streamed_tokens_has_no_decode_figures() -> None:
    summary = summarize_level(1, [RequestResult(ok=False, total_s=1.0, error="x")], wall_s=1.0)
    assert summary.decode_tokens_per_s is None and summary.peak_tokens_per_s is None


def test_a_chunk_of_several_tokens_counts_every_token_as_llama_benchy_does() -> None:
    # 9 tokens (usage) in 5 chunks from 1.0 to 2.0: spread evenly, 8 after the first in 1 s.
    two_per_chunk = RequestResult(
        ok=True, total_s=2.0, completion_tokens=9, ttft_s=1.0, tokens_from_usage=True,
        sent_at=0.0, arrivals=(1.0, 1.25, 1.5, 1.75, 2.0),
    )  # fmt: skip
    summary = summarize_level(1, [two_per_chunk], wall_s=2.0)
    assert summary.decode_tokens_per_s == pytest.approx(8.0)
