"""Real-text prompts for long-prompt benchmarks: the length asked for, distinct per request."""

from __future__ import annotations

from gemma_service.bench.corpus import calibrate, corpus_text, document_prompt
from gemma_service.bench.load import LoadConfig, level_prompt
from gemma_service.bench.runner import BenchPlan


def test_prompts_have_the_asked_length_and_differ_per_request() -> None:
    prompts = [document_prompt(i, 2048, 3.6) for i in range(32)]
    assert all(2048 * 3.6 * 0.98 <= len(p) <= 2048 * 3.6 * 1.02 for p in prompts)
    assert len(set(prompts)) == 32
    # Words, not fragments: a window starts where a word starts.
    assert all(p.split("\n", 1)[1][:1].strip() for p in prompts)


def test_calibration_divides_characters_by_the_tokenizer_count() -> None:
    assert calibrate(lambda text: len(text) // 4) == 4.0
    assert len(corpus_text()) > 300_000


def test_short_prompts_stay_the_default_and_levels_switch_on_length() -> None:
    config = LoadConfig(base_url="http://x")
    assert level_prompt(config, 3).startswith("Request 3:")
    long = LoadConfig(base_url="http://x", prompt_tokens=512, chars_per_token=3.0)
    assert level_prompt(long, 3).startswith("Passage 3:") and len(level_prompt(long, 3)) > 1400


def test_the_plan_runs_every_length_and_level_per_round() -> None:
    plan = BenchPlan(
        (8, 16), 1, False, LoadConfig(base_url="x"), prompt_tokens=(512, 2048), rounds=2
    )
    assert plan.workloads()[:3] == [(0, 512, 8), (0, 512, 16), (0, 2048, 8)]
    assert len(plan.workloads()) == 8
