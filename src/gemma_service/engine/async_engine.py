"""The engine: a step loop in a worker thread behind the async ``EngineClient`` interface.

The loop drains an inbox (new requests, starts, aborts, reloads), asks the scheduler for a plan,
has the backend execute it as one batched decode, and hands each request its events on the
event loop. llama.cpp releases the GIL while decoding, so the event loop stays free meanwhile.

``submit`` returns once the loop has accepted the request (its sampler built, so a grammar the
backend cannot parse is refused there); the request then waits, held, until its stream is
first read. Errors come in two tiers: a request that fails (no KV room, past its deadline)
ends with a typed error and the loop goes on; an exception out of the loop itself kills the
engine, fails every request and turns readiness red.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal

from gemma_service.engine.backend import KvCacheFullError, ModelBackend
from gemma_service.engine.engine_stream import EngineStream
from gemma_service.engine.protocol import (
    EngineHealth,
    EngineStats,
    FinishReason,
    GenerationRequest,
    ModelInfo,
    TokenEvent,
    check_prompt_fits,
)
from gemma_service.engine.request_state import RequestState
from gemma_service.engine.scheduler import Scheduler, Sequence
from gemma_service.errors import (
    EngineDeadError,
    GenerationFailedError,
    KvCacheExhaustedError,
    RateLimitError,
    RequestTimeoutError,
    ServiceError,
    ServiceUnavailableError,
)

log = logging.getLogger(__name__)

EngineState = Literal["loading", "ready", "dead", "stopped"]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    batch_size: int
    parallel: int
    cache_slots: int
    max_queue: int


@dataclass(slots=True)
class _Submit:
    state: RequestState
    accepted: Future[None]


@dataclass(slots=True)
class _Begin:
    request_id: str


@dataclass(slots=True)
class _Abort:
    request_id: str


@dataclass(slots=True)
class _Reload:
    gpu_layers: int
    done: Future[None]


_Command = _Submit | _Begin | _Abort | _Reload | None


class Engine:
    """Continuous-batching engine over a ``ModelBackend`` (llama.cpp or the fake)."""

    def __init__(self, backend_factory: Callable[[], ModelBackend], config: EngineConfig) -> None:
        self._factory = backend_factory
        self._config = config
        self._backend: ModelBackend | None = None
        self._scheduler = Scheduler(
            batch_size=config.batch_size, parallel=config.parallel, cache_slots=config.cache_slots
        )
        self._inbox: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        # Held between a state change and the inbox: nothing is put in after the loop has
        # stopped reading it (a request would wait for ever).
        self._gate = threading.Lock()
        self._states: dict[str, RequestState] = {}
        self._held: dict[str, RequestState] = {}  # accepted, waiting for their first read
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: EngineState = "loading"
        self._detail: str | None = None
        self._last_step = time.monotonic()
        # Each counter is written by one thread only: submitted by the event loop, the rest by
        # the worker; submitted - taken is what still sits in the inbox.
        self._n_submitted = 0
        self._n_taken = 0
        self._n_held = 0
        self._n_sched_waiting = 0
        self._n_running = 0
        self._kv_used = 0
        self._pending: list[tuple[RequestState, TokenEvent]] = []
        self._avg_request_s = 2.0
        self._steps = 0
        self._prefix_hits = 0
        self._cached_tokens = 0

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._backend = await asyncio.to_thread(self._factory)
        except Exception as exc:
            self._state, self._detail = "dead", str(exc)
            raise
        self._thread = threading.Thread(target=self._run, name="engine-loop", daemon=True)
        self._thread.start()
        self._state = "ready"

    async def shutdown(self) -> None:
        with self._gate:
            if self._state == "ready":
                self._state = "stopped"
            self._inbox.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._state != "dead":
            self._state = "stopped"

    @property
    def model_info(self) -> ModelInfo:
        return self._ready_backend().info

    def _ready_backend(self) -> ModelBackend:
        if self._state == "dead":
            raise EngineDeadError(f"the engine has failed: {self._detail}")
        if self._backend is None:
            raise ServiceUnavailableError("the model is still loading")
        return self._backend

    @property
    def _n_waiting(self) -> int:
        return self._n_submitted - self._n_taken + self._n_held + self._n_sched_waiting

    def health(self) -> EngineHealth:
        b = self._backend
        busy = self._n_running > 0 or self._n_sched_waiting > 0
        return EngineHealth(
            state=self._state,
            device=b.device if b else "cpu",
            gpu_layers=b.gpu_layers if b else 0,
            gpu_available=b.gpu_available if b else False,
            running=self._n_running,
            waiting=self._n_waiting,
            detail=self._detail,
            last_step_age_s=(time.monotonic() - self._last_step) if busy else 0.0,
            stats=EngineStats(
                steps_total=self._steps,
                prefix_cache_hits_total=self._prefix_hits,
                cached_tokens_total=self._cached_tokens,
                kv_cache_used_tokens=self._kv_used,
                kv_cache_capacity_tokens=b.info.n_ctx if b else 0,
            ),
        )

    # --- EngineClient ---------------------------------------------------------------------
    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        return self._ready_backend().tokenize(
            text, add_special=add_special, parse_special=parse_special
        )

    def detokenize(self, tokens: list[int]) -> str:
        b = self._ready_backend()
        return b"".join(b.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    async def submit(self, request: GenerationRequest) -> EngineStream:
        """Admit ``request`` (or raise why not); it runs once its stream is first read."""
        accepted: Future[None] = Future()
        state = self._admit(request, accepted)
        try:
            await asyncio.wrap_future(accepted)
        except BaseException:
            # Refused, or our caller gave up while the loop was busy: drop it if it got in.
            self._send(_Abort(request.request_id))
            raise
        return EngineStream(self, state)

    def _admit(self, request: GenerationRequest, accepted: Future[None]) -> RequestState:
        backend = self._ready_backend()
        # Requests that would start in a free slot are not queued; past the slots, at most
        # max_queue wait.
        if self._n_running + self._n_waiting >= self._config.parallel + self._config.max_queue:
            retry = self._avg_request_s * (1 + self._n_waiting / max(1, self._config.parallel))
            raise RateLimitError(
                f"the server is at capacity ({self._n_waiting} requests waiting); retry later",
                retry_after_s=retry,
                code="queue_full",
            )
        # The chat layer fits prompts to the context; this guards the loop against any caller.
        check_prompt_fits(len(request.prompt_tokens), backend.info.n_ctx)
        state = RequestState(request, asyncio.Queue(), backend.info.n_ctx)
        with self._gate:
            if self._state != "ready":
                raise self._unavailable()
            self._n_submitted += 1  # counted now, so a burst sees the queue before the loop does
            self._inbox.put(_Submit(state, accepted))
        return state

    def _unavailable(self) -> ServiceError:
        if self._state == "dead":
            return EngineDeadError(f"the engine has failed: {self._detail}")
        return ServiceUnavailableError(f"the engine is {self._state}")

    def _send(self, cmd: _Begin | _Abort) -> None:
        with self._gate:
            if self._state == "ready":
                self._inbox.put(cmd)

    def begin(self, request_id: str) -> None:
        """Start a held request (its stream was read)."""
        self._send(_Begin(request_id))

    def cancel(self, request_id: str) -> None:
        """Abort a request, held or running (its stream was closed early)."""
        self._send(_Abort(request_id))

    async def abort(self, request_id: str) -> None:
        self.cancel(request_id)

    async def relocate(self, gpu_layers: int) -> None:
        """Reload the model with ``gpu_layers`` on the GPU; running requests carry on after."""
        done: Future[None] = Future()
        with self._gate:
            if self._state != "ready":
                raise self._unavailable()
            self._inbox.put(_Reload(gpu_layers, done))
        await asyncio.wrap_future(done)

    # --- the loop (worker thread) ---------------------------------------------------------
    def _run(self) -> None:
        try:
            while self._drain_inbox(block=not self._scheduler.has_work()):
                self._expire_deadlines()
                if self._scheduler.has_work():
                    self._step()
                self._flush_deliveries()
        except Exception as exc:  # engine-fatal: fail every request, readiness turns red
            log.exception("engine loop failed")
            self._stop_taking_work("dead", f"{type(exc).__name__}: {exc}")
            self._fail_everything(EngineDeadError("the engine failed; see server logs"))
            return
        self._stop_taking_work("stopped", self._detail)
        self._fail_everything(ServiceUnavailableError("the server stopped before the answer"))

    def _stop_taking_work(self, state: EngineState, detail: str | None) -> None:
        with self._gate:
            self._state, self._detail = state, detail

    def _fail_everything(self, error: ServiceError) -> None:
        """End every request with ``error`` and refuse what is still in the inbox."""
        for rid in list(self._states):
            self._end(rid, "error", error)
        while True:
            try:
                cmd = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(cmd, _Submit | _Reload):
                future = cmd.accepted if isinstance(cmd, _Submit) else cmd.done
                future.set_exception(error)
        self._flush_deliveries()

    def _drain_inbox(self, *, block: bool) -> bool:
        try:
            cmd = self._inbox.get(timeout=0.5) if block else self._inbox.get_nowait()
        except queue.Empty:
            return True
        while True:
            if cmd is None:
                return False
            self._handle(cmd)
            try:
                cmd = self._inbox.get_nowait()
            except queue.Empty:
                return True

    def _handle(self, cmd: _Submit | _Begin | _Abort | _Reload) -> None:
        backend = self._backend
        assert backend is not None
        if isinstance(cmd, _Submit):
            self._accept(backend, cmd)
        elif isinstance(cmd, _Begin):
            self._start_held(cmd.request_id)
        elif isinstance(cmd, _Abort):
            if cmd.request_id in self._states:
                self._end(cmd.request_id, "abort")
                self._flush_deliveries()
        else:
            self._reload(backend, cmd)

    def _accept(self, backend: ModelBackend, cmd: _Submit) -> None:
        state = cmd.state
        req = state.request
        self._n_taken += 1
        try:
            backend.add_sampler(req.request_id, req.sampling)
        except ServiceError as exc:  # a grammar the backend cannot parse: the caller's 400
            cmd.accepted.set_exception(exc)
            return
        except Exception as exc:
            log.exception("building the sampler of %s failed", req.request_id)
            cmd.accepted.set_exception(GenerationFailedError(f"the request failed: {exc}"))
            return
        self._states[req.request_id] = state
        self._held[req.request_id] = state
        self._n_held += 1
        cmd.accepted.set_result(None)

    def _start_held(self, request_id: str) -> None:
        state = self._held.pop(request_id, None)
        if state is None:  # aborted or expired meanwhile
            return
        self._n_held -= 1
        if not self._scheduler.has_work():
            self._last_step = time.monotonic()  # idle until now: not a step overdue
        req = state.request
        self._scheduler.add(
            Sequence(req.request_id, list(req.prompt_tokens), state.max_tokens, req.priority)
        )
        self._sync_counts()

    def _reload(self, backend: ModelBackend, cmd: _Reload) -> None:
        try:
            backend.reload(cmd.gpu_layers)
            self._scheduler.reset_kv()
            cmd.done.set_result(None)
        except Exception as exc:
            cmd.done.set_exception(exc)
            raise

    def _expire_deadlines(self) -> None:
        now = time.monotonic()
        for state in list(self._states.values()):
            deadline = state.deadline
            if deadline is not None and now > deadline:
                timeout = state.request.timeout_s
                error = RequestTimeoutError(f"the request ran past its {timeout:g}s deadline")
                self._end(state.request_id, "timeout", error)

    def _step(self) -> None:
        backend = self._backend
        assert backend is not None
        plan = self._scheduler.schedule()
        want = {
            rid: s.request.sampling.top_logprobs
            for rid, s in self._states.items()
            if s.request.sampling.logprobs
        }
        try:
            sampled = backend.execute(plan, want)
        except KvCacheFullError:
            # Drop a cached prefix or send the newest sequence back to wait; with nothing left
            # to free, what runs cannot fit: those requests fail, the engine goes on.
            if not self._scheduler.make_room():
                for seq in self._scheduler.running():
                    error = KvCacheExhaustedError(
                        "the KV cache has no room left for this request; retry shortly, "
                        "or send a shorter prompt or a smaller max_tokens"
                    )
                    self._end(seq.request_id, "error", error)
            self._flush_deliveries()
            return
        self._scheduler.update(plan, {rid: s.token for rid, s in sampled.items()})
        self._note_prefix_reuse()
        for rid, s in sampled.items():
            state = self._states.get(rid)
            if state is None:
                continue
            event = state.on_token(
                s.token,
                backend.token_bytes(s.token),
                backend.is_end_of_generation(s.token),
                s.logprob,
            )
            if event is not None:
                self._queue_delivery(state, event)
            if state.finished:
                self._close(state)
        self._last_step = time.monotonic()
        self._steps += 1
        self._sync_counts()
        self._flush_deliveries()

    def _note_prefix_reuse(self) -> None:
        for seq in self._scheduler.running():
            state = self._states.get(seq.request_id)
            if state is not None and seq.cached_tokens and not state.cached_tokens:
                state.cached_tokens = seq.cached_tokens
                self._prefix_hits += 1
                self._cached_tokens += seq.cached_tokens

    def _end(
        self, request_id: str, reason: FinishReason, error: ServiceError | None = None
    ) -> None:
        state = self._states.get(request_id)
        if state is None:
            return
        self._queue_delivery(state, state.finish(reason, error))
        self._close(state)

    def _close(self, state: RequestState) -> None:
        rid = state.request_id
        self._states.pop(rid, None)
        if self._held.pop(rid, None) is not None:
            self._n_held -= 1
        self._scheduler.finish(rid, cache=True)
        if self._backend is not None:
            self._backend.remove_sampler(rid)
        elapsed = time.monotonic() - state.submitted_at
        self._avg_request_s = 0.9 * self._avg_request_s + 0.1 * elapsed
        self._sync_counts()

    def _sync_counts(self) -> None:
        self._n_running = self._scheduler.n_running
        self._n_sched_waiting = self._scheduler.n_waiting
        self._kv_used = self._scheduler.kv_tokens_estimate()

    # --- delivery to the event loop -------------------------------------------------------
    def _queue_delivery(self, state: RequestState, event: TokenEvent) -> None:
        self._pending.append((state, event))

    def _flush_deliveries(self) -> None:
        batch = self._pending
        if batch and self._loop is not None:
            self._pending = []
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody listens
                self._loop.call_soon_threadsafe(_deliver, batch)


def _deliver(batch: list[tuple[RequestState, TokenEvent]]) -> None:
    for state, event in batch:
        state.queue.put_nowait(event)
