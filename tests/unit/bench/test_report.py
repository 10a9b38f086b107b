"""Report tables, the throughput plot, and the JSON record of a run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gemma_service.bench.load import PrefixResult
from gemma_service.bench.report import (
    decode_table,
    full_report,
    plot_throughput,
    targets_table,
    throughput_table,
)
from gemma_service.bench.results import BenchRun, ServerRun, read_json, write_json
from gemma_service.bench.stats import LevelSummary


def level(concurrency: int, tokens_per_s: float) -> LevelSummary:
    return LevelSummary(
        concurrency=concurrency, requests=concurrency * 2, failed=0,
        generated_tokens=int(tokens_per_s * 10), wall_s=10.0, tokens_per_s=tokens_per_s,
        mean_tokens_per_request=128.0, ttft_p50_s=0.1, ttft_p95_s=0.2, itl_p50_s=0.02,
        itl_p95_s=0.05, tpot_mean_s=0.025, tokens_counted_from="usage",
    )  # fmt: skip


def prefix(ratio: float) -> PrefixResult:
    return PrefixResult(1502, 4.0, [4.0 * ratio], 4.0 * ratio, ratio, [])


def sample_run() -> BenchRun:
    ours = ServerRun("ours", "gemma-service serve", [level(1, 40.0), level(8, 110.0)])
    ours.prefix = prefix(0.1)
    server = ServerRun("llama-server", "llama-server -np 16", [level(1, 39.0), level(8, 98.0)])
    lcp = ServerRun("llama-cpp-python", "python -m llama_cpp.server", [level(8, 14.0)])
    settings = {"model_name": "gemma.gguf", "threads": 2, "max_tokens": 128}
    return BenchRun("2025-01-01T00:00:00", "gemma-service bench", settings, {}, [ours, server, lcp])


def test_throughput_table_has_a_row_per_level_and_ratios_against_each_peer() -> None:
    table = throughput_table(sample_run()).splitlines()
    assert table[0] == (
        "| clients | ours | llama-server | llama-cpp-python "
        "| ours / llama-server | ours / llama-cpp-python |"
    )
    assert table[2] == "| 1 | 40.0 | 39.0 | – | 1.03x | – |"
    assert table[3] == "| 8 | 110.0 | 98.0 | 14.0 | 1.12x | 7.86x |"


def test_targets_say_which_are_met_and_which_were_not_measured() -> None:
    rows = targets_table(sample_run()).splitlines()
    assert "| 1 client(s): ours ≥ 0.95 × llama-server | 1.03x | yes |" in rows
    assert "| 8 client(s): ours ≥ 1.1 × llama-server | 1.12x | yes |" in rows
    assert "| 16 client(s): ours ≥ 1.1 × llama-server | – | – |" in rows
    assert any(r.startswith("| repeated ~1,500-token prefix") and "yes" in r for r in rows)


def test_unmet_target_is_marked() -> None:
    run = sample_run()
    run.servers[0].levels[1] = level(8, 60.0)
    assert "| 8 client(s): ours ≥ 1.1 × llama-server | 0.61x | **no** |" in targets_table(run)


def test_peers_only_run_has_no_ratio_columns() -> None:
    run = sample_run()
    run.servers = run.servers[1:]
    assert "ours /" not in throughput_table(run)
    assert "Shared-prefix" not in full_report(run)


def test_plot_is_written_as_png(tmp_path: Path) -> None:
    path = tmp_path / "throughput.png"
    plot_throughput(sample_run(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_round_trips(tmp_path: Path) -> None:
    run = sample_run()
    write_json(run, tmp_path / "bench.json")
    assert read_json(tmp_path / "bench.json") == run


def long_level(
    concurrency: int, prompt_tokens: int, decode: float, round_index: int
) -> LevelSummary:
    summary = level(concurrency, decode * 0.8)
    return dataclasses.replace(
        summary,
        prompt_tokens=prompt_tokens,
        round=round_index,
        mean_prompt_tokens=prompt_tokens + 12.0,
        decode_tokens_per_s=decode,
        peak_tokens_per_s=decode * 1.2,
        prefill_tokens_per_s=350.0,
    )


def test_decode_table_takes_the_median_of_rounds_per_prompt_length() -> None:
    ours = ServerRun("ours", "gemma-service serve", [
        long_level(8, 512, d, r) for r, d in enumerate((60.0, 90.0, 66.0))
    ])  # fmt: skip
    peer = ServerRun("llama-server", "llama-server", [
        long_level(8, 512, d, r) for r, d in enumerate((55.0, 60.0, 50.0))
    ])  # fmt: skip
    run = BenchRun("t", "bench", {"rounds": 3}, {}, [ours, peer])
    rows = decode_table(run).splitlines()
    # medians: ours 66, llama-server 55 -> 1.20x; the measured prompt length is shown too
    assert rows[2] == "| 512 (~524) | 8 | 66.0 (79) | 55.0 (66) | 350 | 350 | 1.20x |"
    targets = targets_table(run)
    assert "| 512-token prompts, 8 clients: decode ≥ 1.1 × llama-server | 1.20x | yes |" in targets
    assert "2048-token" not in targets  # not measured, not listed
    assert "512-token prompts" in full_report(run)


def test_summary_says_how_requests_were_sampled() -> None:
    from gemma_service.bench.report import sampling_summary

    assert sampling_summary({"temperature": 0.0}) == "greedy (temperature 0)"
    defaults = sampling_summary({"temperature": 0.8, "seed": 7})
    assert defaults == "temperature 0.8, seed 7; top_k/top_p/min_p not sent (each server's default)"
    partial = sampling_summary({"temperature": 0.8, "seed": 7, "top_k": 40})
    assert "top_k 40 sent to every server" in partial and "top_p/min_p not sent" in partial


def test_sampled_runs_are_held_to_issue_15s_targets() -> None:
    run = sample_run()
    run.settings.update(temperature=0.8, seed=1, top_k=0, top_p=1.0, min_p=0.0)
    report = full_report(run)
    assert "Targets (issue 15, every server sampling the same distribution)" in report
    assert "| 8 client(s): ours ≥ 1.1 × llama-server | 1.12x | yes |" in report
    assert "prefix" not in targets_table(run)
    run.settings.update(top_k=None, top_p=None, min_p=None)
    assert "Targets (issue 15, each server's own sampling defaults)" in full_report(run)
    assert "| 8 client(s): ours ≥ 1.0 × llama-server | 1.12x | yes |" in targets_table(run)
