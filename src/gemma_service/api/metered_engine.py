"""An ``EngineClient`` wrapper that measures each generation and bills its tokens to its caller.

It sits between the chat layer and the engine, so every route that generates is measured the
same way: time to first token, inter-token latency, end-to-end latency, token counts, prefix
cache reuse, and the wait for the model's placement (GPU lease) before the engine saw the work.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol

from gemma_service.api.metrics import ServiceMetrics
from gemma_service.engine.protocol import (
    EngineClient,
    EngineHealth,
    GenerationRequest,
    ModelInfo,
    TokenEvent,
    Usage,
)


class TokenMeter(Protocol):
    """Bills tokens to the caller of the current request (the rate limiter)."""

    def current_caller(self) -> str | None: ...

    def charge_tokens(self, caller: str, tokens: int) -> None: ...


class MeteredEngine:
    """Delegates to ``engine``; observes every stream ``generate`` returns."""

    def __init__(
        self, engine: EngineClient, metrics: ServiceMetrics, meter: TokenMeter | None = None
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._meter = meter

    @property
    def inner(self) -> EngineClient:
        return self._engine

    @property
    def model_info(self) -> ModelInfo:
        return self._engine.model_info

    def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        # The caller is read now, while the request's context is certain to be current.
        caller = self._meter.current_caller() if self._meter is not None else None
        return self._observe(request, caller, time.perf_counter())

    async def _observe(
        self, request: GenerationRequest, caller: str | None, submitted: float
    ) -> AsyncIterator[TokenEvent]:
        # Time between generate() and the first pull is the chat layer's wait for placement.
        started = time.perf_counter()
        self._metrics.gpu_wait.observe(started - submitted)
        stream = self._engine.generate(request)
        last_token_at: float | None = None
        generated = 0
        usage: Usage | None = None
        admitted = False  # a stream refused on admission (429, 400) generated nothing
        try:
            async for event in stream:
                admitted = True
                n = len(event.token_ids)
                if n:
                    now = time.perf_counter()
                    if last_token_at is None:
                        self._metrics.time_to_first_token.observe(now - started)
                    else:
                        for _ in range(n):
                            self._metrics.inter_token_latency.observe((now - last_token_at) / n)
                    last_token_at = now
                    generated += n
                if event.usage is not None:
                    usage = event.usage
                yield event
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()  # ends the engine request now if our consumer left early
            if admitted:
                self._record(usage or Usage(len(request.prompt_tokens), generated), started, caller)

    def _record(self, usage: Usage, started: float, caller: str | None) -> None:
        m = self._metrics
        m.e2e_latency.observe(time.perf_counter() - started)
        m.prompt_tokens.inc(usage.prompt_tokens)
        m.generation_tokens.inc(usage.completion_tokens)
        if usage.cached_tokens:
            m.prefix_cache_hits.inc()
            m.prefix_cache_hit_tokens.inc(usage.cached_tokens)
        if self._meter is not None and caller is not None:
            self._meter.charge_tokens(caller, usage.total_tokens)

    async def abort(self, request_id: str) -> None:
        await self._engine.abort(request_id)

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        return self._engine.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: list[int]) -> str:
        return self._engine.detokenize(tokens)

    def health(self) -> EngineHealth:
        return self._engine.health()

    async def start(self) -> None:
        await self._engine.start()

    async def shutdown(self) -> None:
        await self._engine.shutdown()

    async def relocate(self, gpu_layers: int) -> None:
        await self._engine.relocate(gpu_layers)
