"""The engine loop (async_engine.py) over the fake backend: admission, the held start, both tiers
of error, KV-cache pressure (make_room), a model reload (KV reset), shutdown and statistics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gemma_service.engine.async_engine import Engine, EngineConfig
from gemma_service.engine.backend import KvCacheFullError
from gemma_service.engine.engine_stream import EngineStream
from gemma_service.engine.fake_backend import FakeBackend, fake_reply
from gemma_service.engine.protocol import GenerationRequest, SamplingParams, TokenEvent
from gemma_service.engine.scheduler import StepPlan
from gemma_service.errors import (
    ContextLengthExceededError,
    EngineDeadError,
    InvalidGrammarError,
    InvalidRequestError,
    KvCacheExhaustedError,
    RateLimitError,
    RequestTimeoutError,
    ServiceUnavailableError,
)

MakeEngine = Callable[..., Any]


@pytest.fixture
async def make_engine() -> AsyncIterator[MakeEngine]:
    engines: list[Engine] = []

    async def make(backend: FakeBackend | None = None, **config: int) -> tuple[Engine, FakeBackend]:
        fake = backend or FakeBackend()
        settings = {"batch_size": 16, "parallel": 2, "cache_slots": 2, "max_queue": 4, **config}
        engine = Engine(lambda: fake, EngineConfig(**settings))
        await engine.start()
        engines.append(engine)
        return engine, fake

    yield make
    for engine in engines:
        await engine.shutdown()


def request(rid: str, prompt: str, **sampling: Any) -> GenerationRequest:
    tokens = [256, *prompt.encode()]  # BOS, then the fake vocabulary's byte tokens
    timeout_s = sampling.pop("timeout_s", None)
    return GenerationRequest(rid, tokens, SamplingParams(**sampling), timeout_s=timeout_s)


async def read(stream: EngineStream) -> tuple[str, TokenEvent]:
    """The stream's text and its last event."""
    parts: list[str] = []
    async for event in stream:
        parts.append(event.text)
        if event.finish_reason is not None:
            return "".join(parts), event
    raise AssertionError("the stream ended without a last event")


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.005)):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in time")


async def test_a_request_streams_its_reply_and_ends_with_usage(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    req = request("a", "hello", seed=3)
    text, last = await read(await engine.submit(req))
    assert text == fake_reply(req.prompt_tokens, 3)
    assert last.finish_reason == "stop" and last.error is None
    assert last.usage is not None and last.usage.prompt_tokens == len(req.prompt_tokens)
    assert last.usage.completion_tokens == len(text.encode())


async def test_an_admitted_request_waits_until_its_stream_is_read(make_engine: MakeEngine) -> None:
    engine, fake = await make_engine()
    stream = await engine.submit(request("a", "held"))
    await asyncio.sleep(0.05)
    assert fake.steps == 0  # accepted (sampler built) but not started
    assert engine.health().waiting == 1
    text, _ = await read(stream)
    assert text and fake.steps > 0
    assert engine.health().waiting == 0


async def test_closing_an_unread_stream_frees_its_place(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine(parallel=1, max_queue=0)
    held = await engine.submit(request("a", "one"))
    with pytest.raises(RateLimitError) as refused:
        await engine.submit(request("b", "two"))
    assert refused.value.code == "queue_full" and "Retry-After" in refused.value.headers
    await held.aclose()
    await until(lambda: engine.health().waiting == 0)
    text, _ = await read(await engine.submit(request("b", "two")))
    assert text


async def test_a_bad_grammar_is_refused_at_submit_and_the_engine_serves_on(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine()
    with pytest.raises(InvalidGrammarError) as refused:
        await engine.submit(request("a", "json please", grammar='value ::= "x"'))
    assert refused.value.status_code == 400 and refused.value.code == "invalid_grammar"
    assert engine.health().state == "ready" and engine.health().waiting == 0
    text, _ = await read(await engine.submit(request("b", "plain")))
    assert text


async def test_the_context_rule_refuses_empty_and_too_long_prompts(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine(FakeBackend(n_ctx=32))
    with pytest.raises(ContextLengthExceededError, match="maximum context length is 32"):
        await engine.submit(request("a", "x" * 40))
    with pytest.raises(InvalidRequestError, match="empty"):
        await engine.submit(GenerationRequest("b", [], SamplingParams()))


async def test_max_tokens_is_bounded_by_the_context_not_rewritten(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine(FakeBackend(n_ctx=24))
    req = request("a", "0123456789", max_tokens=1000)  # 11 tokens: room for 13
    _, last = await read(await engine.submit(req))
    assert last.finish_reason == "length"
    assert last.usage is not None and last.usage.completion_tokens == 24 - 11
    assert req.sampling.max_tokens == 1000  # the caller's parameters are left alone


class CountingFullBackend(FakeBackend):
    """Counts the steps that found the KV cache full."""

    full = 0

    def execute(self, plan: StepPlan, want_logprobs: dict[str, int]) -> Any:
        try:
            return super().execute(plan, want_logprobs)
        except KvCacheFullError:
            self.full += 1
            raise


async def test_kv_cache_pressure_sends_the_newest_back_to_wait_and_both_finish(
    make_engine: MakeEngine,
) -> None:
    # Alone each needs ~65 cells; together they do not fit in 100, so make_room must send the
    # newer one back to wait (its text so far folded into its prompt) and resume it later.
    backend = CountingFullBackend(kv_capacity=100)
    engine, fake = await make_engine(backend, cache_slots=0)
    first, second = request("a", "first one", seed=1), request("b", "second one", seed=2)
    streams = [await engine.submit(first), await engine.submit(second)]
    results = await asyncio.gather(*(read(s) for s in streams))
    assert [text for text, _ in results] == [
        fake_reply(first.prompt_tokens, 1),
        fake_reply(second.prompt_tokens, 2),
    ]
    assert all(last.finish_reason == "stop" for _, last in results)
    assert max(fake.batch_sizes) == 2  # they did run together until the cache filled
    assert backend.full > 0


async def test_a_request_that_cannot_fit_the_kv_cache_fails_alone(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine(FakeBackend(kv_capacity=30))
    text, last = await read(await engine.submit(request("big", "y" * 40)))
    assert text == "" and last.finish_reason == "error"
    assert isinstance(last.error, KvCacheExhaustedError)
    assert last.error.status_code == 503 and last.error.code == "kv_cache_full"
    assert engine.health().state == "ready"  # a per-request failure: readiness stays green
    _, small = await read(await engine.submit(request("small", "hi", max_tokens=5)))
    assert small.finish_reason == "length"


async def test_a_reload_resets_the_kv_cache_and_running_requests_carry_on(
    make_engine: MakeEngine,
) -> None:
    engine, fake = await make_engine(FakeBackend(step_delay_s=0.005))
    req = request("a", "keep going", seed=5)
    stream = await engine.submit(req)
    parts: list[str] = []
    async for event in stream:
        parts.append(event.text)
        if len("".join(parts)) >= 10:
            break
    await engine.relocate(25)  # the model reloads: the KV of every sequence is lost
    text, last = await read(stream)
    assert fake.reloads == [25] and fake.device == "cuda"
    assert "".join(parts) + text == fake_reply(req.prompt_tokens, 5)  # recomputed, not lost
    assert last.finish_reason == "stop"


async def test_a_request_past_its_deadline_ends_with_a_timeout(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine(FakeBackend(step_delay_s=0.02))
    _, last = await read(await engine.submit(request("slow", "x", max_tokens=500, timeout_s=0.1)))
    assert last.finish_reason == "timeout"
    assert isinstance(last.error, RequestTimeoutError) and last.error.status_code == 408
    assert engine.health().state == "ready"


class DyingBackend(FakeBackend):
    def execute(self, plan: StepPlan, want_logprobs: dict[str, int]) -> Any:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


async def test_a_failing_loop_kills_the_engine_and_fails_every_request(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine(DyingBackend())
    held = await engine.submit(request("held", "never started"))
    _, last = await read(await engine.submit(request("a", "boom")))
    assert last.finish_reason == "error" and isinstance(last.error, EngineDeadError)
    _, held_last = await read(held)
    assert isinstance(held_last.error, EngineDeadError)
    assert engine.health().state == "dead" and "CUDA error" in (engine.health().detail or "")
    with pytest.raises(EngineDeadError):
        await engine.submit(request("b", "after"))
    with pytest.raises(EngineDeadError):
        await engine.relocate(0)


async def test_shutdown_ends_running_requests_and_refuses_new_ones(
    make_engine: MakeEngine,
) -> None:
    engine, _ = await make_engine(FakeBackend(step_delay_s=0.01))
    stream = await engine.submit(request("a", "long", max_tokens=500))
    first = await anext(stream)
    assert first.finish_reason is None
    await engine.shutdown()
    _, last = await read(stream)
    assert last.finish_reason == "error" and isinstance(last.error, ServiceUnavailableError)
    with pytest.raises(ServiceUnavailableError):
        await engine.submit(request("b", "late"))


async def test_statistics_count_steps_and_prefix_reuse(make_engine: MakeEngine) -> None:
    engine, _ = await make_engine()
    prompt = "a shared system prompt that is long enough to reuse " * 2
    await read(await engine.submit(request("a", prompt + "one", max_tokens=3)))
    _, second = await read(await engine.submit(request("b", prompt + "two", max_tokens=3)))
    stats = engine.health().stats
    assert second.usage is not None and second.usage.cached_tokens > 0
    assert stats.prefix_cache_hits_total == 1
    assert stats.cached_tokens_total == second.usage.cached_tokens
    assert stats.steps_total >= 6
    assert stats.kv_cache_capacity_tokens == 4096 and stats.kv_cache_used_tokens > 0
