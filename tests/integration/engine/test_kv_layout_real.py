"""The per-sequence KV layout on the real model: each sequence has its own KV stream, the idle
slots are the prefix cache, and a prefix is reused by taking a slot over (trim) or by copying a
stream into another one. What a user notices: a repeated prefix is not recomputed
(``cached_tokens``) and gives the same greedy answer as a cold run; a prompt that does not fit a
sequence's window is refused up front, and a long answer stops at the window, never with a
KV-cache failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gemma_service.config import ServiceSettings
from gemma_service.engine.async_engine import Engine, EngineConfig
from gemma_service.engine.llama_backend import LlamaBackend, LlamaConfig
from gemma_service.engine.protocol import GenerationRequest, SamplingParams, Usage
from gemma_service.errors import ContextLengthExceededError
from gemma_service.model_files import prepare_default_model

pytestmark = pytest.mark.integration

PARALLEL = 2
WINDOW = 1024  # per sequence: n_ctx = PARALLEL x WINDOW


@pytest.fixture(scope="module")
def model_file() -> Path:
    return prepare_default_model(ServiceSettings().model_cache_dir, progress=False)


@pytest.fixture
async def engine(model_file: Path) -> AsyncIterator[Engine]:
    config = LlamaConfig(
        model_file, "gemma", n_ctx=PARALLEL * WINDOW, batch_size=128, n_seq_max=PARALLEL,
        threads=2, gpu_layers=0, kv_unified=False,
    )  # fmt: skip
    # The slots are the prefix cache: finished sequences stay in their idle streams.
    shared = EngineConfig(128, PARALLEL, cache_slots=PARALLEL, max_queue=16, shared_slots=True)
    eng = Engine(lambda: LlamaBackend(config), shared)
    await eng.start()
    yield eng
    await eng.shutdown()


def greedy(rid: str, tokens: list[int], n: int) -> GenerationRequest:
    # EOS (1) and end-of-turn (106) are banned so runs generate their full length.
    bias = {1: -100.0, 106: -100.0}
    return GenerationRequest(
        rid, tokens, SamplingParams(max_tokens=n, temperature=0.0, logit_bias=bias)
    )


async def run(engine: Engine, req: GenerationRequest) -> tuple[list[int], Usage, str]:
    tokens: list[int] = []
    usage: Usage | None = None
    reason = ""
    async for ev in await engine.submit(req):
        tokens += ev.token_ids
        usage = ev.usage or usage
        reason = ev.finish_reason or reason
    assert usage is not None
    return tokens, usage, reason


def document(engine: Engine, n_tokens: int) -> list[int]:
    words = " ".join(f"The lighthouse log for day {i} records calm seas." for i in range(200))
    return engine.tokenize(words)[:n_tokens]


async def test_the_window_is_per_sequence(engine: Engine) -> None:
    info = engine.model_info
    assert info.n_ctx == WINDOW and info.kv_cells == PARALLEL * WINDOW


async def test_a_repeated_prefix_is_taken_over_from_the_idle_slot(engine: Engine) -> None:
    prefix = document(engine, 600)
    cold, cold_usage, _ = await run(engine, greedy("cold", prefix + engine.tokenize(" Q1"), 12))
    assert cold_usage.cached_tokens == 0
    warm, warm_usage, _ = await run(engine, greedy("warm", prefix + engine.tokenize(" Q1"), 12))
    assert warm_usage.cached_tokens >= 600
    assert warm[:6] == cold[:6]  # the cut-down cached KV answers as the cold computation did


async def test_a_running_sequences_prefix_is_copied_to_another_stream(engine: Engine) -> None:
    prefix = document(engine, 500)
    solo, _, _ = await run(engine, greedy("solo", prefix + engine.tokenize(" second"), 10))
    # Fill the idle slots with other prefixes, so the copy below has to come from a running one.
    for i in range(PARALLEL):
        await run(engine, greedy(f"filler{i}", engine.tokenize(f"Unrelated text {i}."), 2))
    first = asyncio.create_task(
        run(engine, greedy("first", prefix + engine.tokenize(" first"), 40))
    )
    await asyncio.sleep(0.5)  # the first one is prefilling or decoding when the second arrives
    second, usage, _ = await run(engine, greedy("second", prefix + engine.tokenize(" second"), 10))
    await first
    assert usage.cached_tokens >= 400  # copied from the running sequence's stream
    assert second[:5] == solo[:5]


async def test_more_prompts_than_slots_evict_the_oldest_prefix(engine: Engine) -> None:
    subjects = ["Apples", "Rivers", "Mountains", "Clocks", "Lanterns", "Harbors"]
    # Long enough to be worth reusing (MIN_REUSE_TOKENS).
    story = "are the subject of this story, told slowly over many evenings by a small fire."
    prompts = [engine.tokenize(f"{s} {story}") for s in subjects]
    prompts = prompts[: PARALLEL + 2]
    for i, prompt in enumerate(prompts):
        tokens, _, reason = await run(engine, greedy(f"s{i}", prompt, 6))
        assert len(tokens) == 6 and reason == "length"
    # The newest prompt is still cached; the first one was evicted and is computed again
    # (but for the BOS token every prompt shares).
    _, newest, _ = await run(engine, greedy("again-newest", prompts[-1], 2))
    _, oldest, _ = await run(engine, greedy("again-oldest", prompts[0], 2))
    assert newest.cached_tokens == len(prompts[-1]) - 1
    assert oldest.cached_tokens <= 1


async def test_a_prompt_longer_than_the_window_is_refused_up_front(engine: Engine) -> None:
    with pytest.raises(ContextLengthExceededError):
        await run(engine, greedy("too-long", document(engine, WINDOW + 10), 4))


async def test_an_answer_stops_at_the_window_without_a_cache_failure(engine: Engine) -> None:
    prompt = document(engine, WINDOW - 40)
    tokens, usage, reason = await run(engine, greedy("long-answer", prompt, 500))
    assert reason == "length" and usage.prompt_tokens + len(tokens) <= WINDOW
    assert engine.health().state == "ready"
