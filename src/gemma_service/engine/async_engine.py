"""The engine: ``EngineClient`` for the event loop, over a step loop in a worker thread.

``submit`` checks what it can at once (loading or dead, capacity, the context rule), then hands
the request to the loop and returns when the loop has accepted it (its sampler built, so a
grammar the backend cannot parse is refused there, as a 400). The accepted request is held
until its stream is first read, which starts it. llama.cpp releases the GIL while decoding, so
the event loop stays free meanwhile. The loop itself is ``engine_loop.EngineLoop``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from gemma_service.engine.backend import ModelBackend
from gemma_service.engine.engine_loop import EngineLoop, EngineState
from gemma_service.engine.engine_stream import EngineStream
from gemma_service.engine.protocol import (
    EngineHealth,
    EngineStats,
    GenerationRequest,
    ModelInfo,
    check_prompt_fits,
)
from gemma_service.engine.request_state import RequestState
from gemma_service.engine.scheduler import Scheduler
from gemma_service.errors import EngineDeadError, RateLimitError, ServiceUnavailableError


@dataclass(frozen=True, slots=True)
class EngineConfig:
    batch_size: int
    parallel: int
    cache_slots: int
    max_queue: int
    # One KV stream per sequence: the slots double as the prefix cache (Scheduler).
    shared_slots: bool = False
    cohort_window_s: float = 0.0


class Engine:
    """Continuous-batching engine over a ``ModelBackend`` (llama.cpp or the fake)."""

    def __init__(self, backend_factory: Callable[[], ModelBackend], config: EngineConfig) -> None:
        self._factory = backend_factory
        self._config = config
        self._core: EngineLoop | None = None
        self._thread: threading.Thread | None = None
        self._state: EngineState = "loading"  # until the loop exists; then the loop's
        self._detail: str | None = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the model and start serving. Raises ModelFileError on a bad model file."""
        try:
            backend = await asyncio.to_thread(self._factory)
        except Exception as exc:
            self._state, self._detail = "dead", str(exc)
            raise
        config = self._config
        scheduler = Scheduler(
            batch_size=config.batch_size,
            parallel=config.parallel,
            cache_slots=config.cache_slots,
            shared_slots=config.shared_slots,
            cohort_window_s=config.cohort_window_s,
        )
        self._core = EngineLoop(backend, scheduler, asyncio.get_running_loop())
        self._thread = threading.Thread(target=self._core.run, name="engine-loop", daemon=True)
        self._thread.start()

    async def shutdown(self) -> None:
        """Stop the loop (unfinished requests end with an error) and free the model."""
        core = self._core
        if core is None:
            self._state = "stopped" if self._state != "dead" else "dead"
            return
        core.stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None
        core.backend.close()
        # Stopped, the model freed: a later start() loads it again (the model pool unloads
        # and reloads models this way).
        self._core, self._state, self._detail = None, "stopped", None

    @property
    def state(self) -> EngineState:
        return self._core.state if self._core is not None else self._state

    @property
    def model_info(self) -> ModelInfo:
        return self._ready().backend.info

    def _ready(self) -> EngineLoop:
        core = self._core
        if core is None:
            if self._state == "dead":
                raise EngineDeadError(f"the engine has failed: {self._detail}")
            raise ServiceUnavailableError("the model is still loading")
        if core.state != "ready":
            raise core.unavailable()
        return core

    def health(self) -> EngineHealth:
        core = self._core
        if core is None:
            return EngineHealth(self._state, "cpu", 0, False, 0, 0, detail=self._detail)
        b = core.backend
        busy = core.n_running > 0 or core.n_sched_waiting > 0
        return EngineHealth(
            state=core.state,
            device=b.device,
            gpu_layers=b.gpu_layers,
            gpu_available=b.gpu_available,
            running=core.n_running,
            waiting=core.n_waiting,
            detail=core.detail,
            last_step_age_s=(time.monotonic() - core.last_step) if busy else 0.0,
            stats=EngineStats(
                steps_total=core.steps,
                prefix_cache_hits_total=core.prefix_hits,
                cached_tokens_total=core.cached_tokens,
                kv_cache_used_tokens=core.kv_used,
                kv_cache_capacity_tokens=b.info.kv_cells or b.info.n_ctx,
            ),
        )

    # --- EngineClient ---------------------------------------------------------------------
    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        return self._ready().backend.tokenize(
            text, add_special=add_special, parse_special=parse_special
        )

    def detokenize(self, tokens: list[int]) -> str:
        b = self._ready().backend
        return b"".join(b.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    async def submit(self, request: GenerationRequest) -> EngineStream:
        """Admit ``request`` (or raise why not); it runs once its stream is first read."""
        core = self._ready()
        config = self._config
        # Requests that would start in a free slot are not queued; past the slots, at most
        # max_queue wait.
        waiting = core.n_waiting
        if core.n_running + waiting >= config.parallel + config.max_queue:
            retry = core.avg_request_s * (1 + waiting / max(1, config.parallel))
            raise RateLimitError(
                f"the server is at capacity ({waiting} requests waiting); retry later",
                retry_after_s=retry,
                code="queue_full",
            )
        n_ctx = core.backend.info.n_ctx
        # The chat layer fits prompts to the context; this guards the loop against any caller.
        check_prompt_fits(len(request.prompt_tokens), n_ctx)
        state = RequestState(request, asyncio.Queue(), n_ctx)
        accepted: Future[None] = Future()
        core.submit(state, accepted)
        try:
            await asyncio.wrap_future(accepted)
        except BaseException:
            # Refused, or our caller gave up while the loop was busy: drop it if it got in.
            core.abort(request.request_id)
            raise
        return EngineStream(core, state)

    async def abort(self, request_id: str) -> None:
        if self._core is not None:
            self._core.abort(request_id)

    async def relocate(self, gpu_layers: int) -> None:
        """Reload the model with ``gpu_layers`` on the GPU; running requests carry on after."""
        done: Future[None] = Future()
        self._ready().reload(gpu_layers, done)
        await asyncio.wrap_future(done)
