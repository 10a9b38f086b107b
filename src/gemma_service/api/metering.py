"""Metering as a run hook: every run's latencies and tokens, billed to its caller.

Per choice: time to first token, the gaps between tokens, end-to-end latency and token counts;
per run: the wait for the model's placement (GPU lease). Tokens are charged to the run's
caller when the run closes (the rate limiter's tokens per minute), so a reply that has been
fully sent is already on the bill when the next request is admitted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from gemma_service.api.metrics import ServiceMetrics
from gemma_service.chat.events import RunInfo
from gemma_service.chat.hooks import RunObserver
from gemma_service.engine.protocol import TokenEvent, Usage


class TokenMeter(Protocol):
    """Bills tokens to a caller (the rate limiter)."""

    def charge_tokens(self, caller: str, tokens: int) -> None: ...


class Metering:
    """The run hook that measures generations and bills their tokens."""

    def __init__(self, metrics: ServiceMetrics, meter: TokenMeter | None = None) -> None:
        self._metrics = metrics
        self._meter = meter

    def observe(self, run: RunInfo) -> RunObserver:
        return _MeteredRun(self._metrics, self._meter, run)


@dataclass(slots=True)
class _Choice:
    last_token_at: float | None = None
    generated: int = 0
    usage: Usage | None = None


class _MeteredRun(RunObserver):
    def __init__(self, metrics: ServiceMetrics, meter: TokenMeter | None, run: RunInfo) -> None:
        self._metrics = metrics
        self._meter = meter
        self._run = run
        self._started: float | None = None
        self._choices: dict[int, _Choice] = {}

    async def before_generate(self) -> None:
        # Placement ran before us: its wait is known, and generation starts now.
        self._metrics.gpu_wait.observe(self._run.gpu_wait_s)
        self._started = time.perf_counter()

    def on_engine_event(self, choice: int, event: TokenEvent) -> None:
        state = self._choices.setdefault(choice, _Choice())
        n = len(event.token_ids)
        if n and self._started is not None:
            now = time.perf_counter()
            if state.last_token_at is None:
                self._metrics.time_to_first_token.observe(now - self._started)
            else:
                for _ in range(n):
                    self._metrics.inter_token_latency.observe((now - state.last_token_at) / n)
            state.last_token_at = now
            state.generated += n
        if event.usage is not None:
            state.usage = event.usage

    def on_close(self) -> None:
        if self._started is None:
            return  # never generated: refused or abandoned before the engine started
        m = self._metrics
        elapsed = time.perf_counter() - self._started
        billed = 0
        for state in self._choices.values():  # choices that got at least one engine event
            usage = state.usage or Usage(self._run.prompt_tokens, state.generated)
            m.e2e_latency.observe(elapsed)
            m.prompt_tokens.inc(usage.prompt_tokens)
            m.generation_tokens.inc(usage.completion_tokens)
            m.model_tokens.labels(self._run.model, "prompt").inc(usage.prompt_tokens)
            m.model_tokens.labels(self._run.model, "generated").inc(usage.completion_tokens)
            billed += usage.total_tokens
        caller = self._run.caller
        if self._meter is not None and caller is not None and billed:
            self._meter.charge_tokens(caller.id, billed)
