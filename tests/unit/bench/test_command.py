"""The bench command's options and re-rendering an earlier run."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gemma_service.bench.command import add_bench_arguments, run_bench
from gemma_service.bench.results import BenchRun, ServerRun, write_json


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", exit_on_error=False)
    add_bench_arguments(p)
    return p


def test_defaults_match_issue_3() -> None:
    args = parser().parse_args([])
    assert args.servers == ["ours", "llama-server", "llama-cpp-python"]
    assert args.concurrency == [1, 4, 8, 16]
    assert (args.max_tokens, args.threads, args.parallel, args.api) == (128, 2, 16, "chat")
    assert args.prefix_test and args.ignore_eos


def test_lists_are_parsed_and_checked() -> None:
    args = parser().parse_args(["--servers", "llama-server,ours", "--concurrency", "2,6"])
    assert (args.servers, args.concurrency) == (["llama-server", "ours"], [2, 6])
    with pytest.raises(argparse.ArgumentError):
        parser().parse_args(["--servers", "vllm"])
    with pytest.raises(argparse.ArgumentError):
        parser().parse_args(["--concurrency", "0,4"])


def test_from_json_rerenders_report_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = BenchRun("t", "gemma-service bench", {"threads": 2}, {}, [ServerRun("ours", "x")])
    write_json(run, tmp_path / "bench.json")
    assert run_bench(parser().parse_args(["--from-json", str(tmp_path / "bench.json")])) == 0
    assert (tmp_path / "throughput.png").exists()
    assert (tmp_path / "report.md").read_text().startswith("Command: `gemma-service bench`")
    assert "Aggregate throughput" in capsys.readouterr().out


def test_register_mounts_bench_as_a_subcommand() -> None:
    from gemma_service.bench.cli_commands import register

    root = argparse.ArgumentParser(prog="gemma-service")
    register(root.add_subparsers(dest="command"))
    args = root.parse_args(["bench", "--concurrency", "8", "--no-prefix-test"])
    assert args.func is run_bench
    assert (args.concurrency, args.prefix_test) == ([8], False)


def test_prompt_lengths_and_rounds_are_options() -> None:
    args = parser().parse_args(["--prompt-tokens", "64,512,2048", "--rounds", "3"])
    assert (args.prompt_tokens, args.rounds) == ([64, 512, 2048], 3)
    assert parser().parse_args([]).prompt_tokens == [0]  # the short prompts by default
    with pytest.raises(argparse.ArgumentError):
        parser().parse_args(["--prompt-tokens", "-5"])


def test_another_build_of_ours_can_run_beside_it() -> None:
    args = parser().parse_args([
        "--also-ours", "ours-native=/n/bin/gemma-service",
        "--also-ours", "ours-cohort=/v/bin/gemma-service --cohort-window 0.5",
    ])  # fmt: skip
    assert args.also_ours == [
        ("ours-native", Path("/n/bin/gemma-service"), []),
        ("ours-cohort", Path("/v/bin/gemma-service"), ["--cohort-window", "0.5"]),
    ]
    with pytest.raises(argparse.ArgumentError):
        parser().parse_args(["--also-ours", "ours=/x"])


def test_sampled_mode_options_reach_the_load_and_the_recorded_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What --temperature/--top-k/--top-p/--min-p say is what every server is sent (one load
    config serves them all) and what bench.json records."""
    from gemma_service.bench import command
    from gemma_service.bench.load import LoadConfig
    from gemma_service.bench.runner import BenchPlan

    seen: dict[str, LoadConfig] = {}

    def fake_measure(label: str, plan: BenchPlan, server: ServerRun, progress: object) -> None:
        seen["load"] = plan.load

    monkeypatch.setattr(command, "measure_endpoint", fake_measure)
    argv = ["--url", "http://127.0.0.1:9", "--out-dir", str(tmp_path), "--temperature", "0.8"]
    argv += ["--top-k", "0", "--top-p", "1", "--min-p", "0"]
    assert run_bench(parser().parse_args(argv)) == 0
    load = seen["load"]
    assert (load.temperature, load.top_k, load.top_p, load.min_p) == (0.8, 0, 1.0, 0.0)
    saved = next(tmp_path.glob("*/bench.json")).read_text()
    assert '"top_k": 0' in saved and '"min_p": 0.0' in saved
    report = next(tmp_path.glob("*/report.md")).read_text()
    assert (
        "temperature 0.8, seed 1234; top_k 0, top_p 1.0, min_p 0.0 sent to every server" in report
    )
