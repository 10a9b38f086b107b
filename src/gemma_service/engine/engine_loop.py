"""The engine's step loop, run in a worker thread, and the inbox through which it is driven.

The loop drains its inbox (new requests, starts, aborts, reloads), asks the scheduler for a
plan, has the backend execute it as one batched decode, and hands each request its events on
the event loop. A request that fails on its own (no KV room, past its deadline) ends with a
typed error and the loop goes on; an exception out of the loop itself kills it: every request
fails and the state turns "dead".

Counters are each written by one thread: ``n_submitted`` by the event loop (``submit``), the
rest by the worker; readers on the other thread may see a value one step old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal

from gemma_service.engine.backend import KvCacheFullError, ModelBackend
from gemma_service.engine.media import expand_prompt
from gemma_service.engine.protocol import FinishReason, TokenEvent, check_prompt_fits
from gemma_service.engine.request_state import RequestState
from gemma_service.engine.scheduler import Scheduler, Sequence
from gemma_service.errors import (
    EngineDeadError,
    GenerationFailedError,
    KvCacheExhaustedError,
    RequestTimeoutError,
    ServiceError,
    ServiceUnavailableError,
)

log = logging.getLogger(__name__)

EngineState = Literal["loading", "ready", "dead", "stopped"]

# Steps after its acceptance during which a request not yet read counts for cohorts.
HELD_EXPECTED_STEPS = 2


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


class EngineLoop:
    """The worker thread's state; the event loop talks to it only through the inbox."""

    def __init__(
        self, backend: ModelBackend, scheduler: Scheduler, events: asyncio.AbstractEventLoop
    ) -> None:
        self.backend = backend
        self._scheduler = scheduler
        self._events = events
        self._inbox: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        # Held between a state check and the inbox: nothing is put in after the loop has
        # stopped reading it (its request would wait for ever).
        self._gate = threading.Lock()
        self.state: EngineState = "ready"
        self.detail: str | None = None
        self._states: dict[str, RequestState] = {}
        self._held: dict[str, RequestState] = {}  # accepted, waiting for their first read
        self._pending: list[tuple[RequestState, TokenEvent]] = []
        self.n_submitted = 0
        self.n_taken = 0
        self.n_held = 0
        self.n_sched_waiting = 0
        self.n_running = 0
        self.kv_used = 0
        self.steps = 0
        self.prefix_hits = 0
        self.cached_tokens = 0
        self.avg_request_s = 2.0
        self.last_step = time.monotonic()

    @property
    def n_waiting(self) -> int:
        """Admitted and not yet running: in the inbox, held, or waiting for a slot."""
        return self.n_submitted - self.n_taken + self.n_held + self.n_sched_waiting

    # --- the event loop's side ------------------------------------------------------------
    def submit(self, state: RequestState, accepted: Future[None]) -> None:
        """Hand a request to the loop; ``accepted`` resolves when it has built its sampler."""
        with self._gate:
            if self.state != "ready":
                raise self.unavailable()
            self.n_submitted += 1  # counted now, so a burst sees the queue before the loop does
            self._inbox.put(_Submit(state, accepted))

    def begin(self, request_id: str) -> None:
        self._send(_Begin(request_id))

    def abort(self, request_id: str) -> None:
        self._send(_Abort(request_id))

    def reload(self, gpu_layers: int, done: Future[None]) -> None:
        with self._gate:
            if self.state != "ready":
                raise self.unavailable()
            self._inbox.put(_Reload(gpu_layers, done))

    def stop(self) -> None:
        """Ask the loop to end after what is in its inbox; new work is refused from now on."""
        with self._gate:
            if self.state == "ready":
                self.state = "stopped"
            self._inbox.put(None)

    def unavailable(self) -> ServiceError:
        if self.state == "dead":
            return EngineDeadError(f"the engine has failed: {self.detail}")
        return ServiceUnavailableError(f"the engine is {self.state}")

    def _send(self, cmd: _Begin | _Abort) -> None:
        with self._gate:
            if self.state == "ready":  # else the loop has ended every request already
                self._inbox.put(cmd)

    # --- the worker thread ----------------------------------------------------------------
    def run(self) -> None:
        try:
            while self._drain_inbox(block=not self._scheduler.has_work()):
                self._expire_deadlines()
                if self._scheduler.has_work():
                    self._step()
                self._flush_deliveries()
        except Exception as exc:  # engine-fatal: fail every request, readiness turns red
            log.exception("engine loop failed")
            self._end_loop("dead", f"{type(exc).__name__}: {exc}")
            self._fail_everything(EngineDeadError("the engine failed; see server logs"))
            return
        self._end_loop("stopped", self.detail)
        self._fail_everything(ServiceUnavailableError("the server stopped before the answer"))

    def _end_loop(self, state: EngineState, detail: str | None) -> None:
        with self._gate:
            self.state, self.detail = state, detail

    def _fail_everything(self, error: ServiceError) -> None:
        """End every request with ``error`` and refuse what is still in the inbox."""
        for rid in list(self._states):
            self._end(rid, "error", error)
        while True:
            try:
                cmd = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(cmd, _Submit):
                cmd.accepted.set_exception(error)
            elif isinstance(cmd, _Reload):
                cmd.done.set_exception(error)
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
        if isinstance(cmd, _Submit):
            self._accept(cmd)
        elif isinstance(cmd, _Begin):
            self._start_held(cmd.request_id)
        elif isinstance(cmd, _Abort):
            if cmd.request_id in self._states:
                self._end(cmd.request_id, "abort")
                self._flush_deliveries()
        else:
            self._reload(cmd)

    def _accept(self, cmd: _Submit) -> None:
        state = cmd.state
        req = state.request
        self.n_taken += 1
        try:
            if req.media:
                self._lay_out_media(state)
            self.backend.add_sampler(req.request_id, req.sampling)
        except ServiceError as exc:  # bad media, a grammar the backend cannot parse: a 4xx
            self.backend.release_media(req.request_id)
            cmd.accepted.set_exception(exc)
            return
        except Exception as exc:
            log.exception("admitting %s failed", req.request_id)
            self.backend.release_media(req.request_id)
            cmd.accepted.set_exception(GenerationFailedError(f"the request failed: {exc}"))
            return
        self._states[req.request_id] = state
        state.accepted_at_step = self.steps
        self._held[req.request_id] = state
        self.n_held += 1
        cmd.accepted.set_result(None)

    def _lay_out_media(self, state: RequestState) -> None:
        """Media become marker tokens and embedding positions; the longer prompt must fit."""
        req = state.request
        prompt = expand_prompt(req, self.backend.layout_media(req))
        check_prompt_fits(len(prompt.tokens), state.n_ctx, param="messages")
        state.set_prompt(prompt)

    def _start_held(self, request_id: str) -> None:
        state = self._held.pop(request_id, None)
        if state is None:  # aborted or expired meanwhile
            return
        self.n_held -= 1
        if not self._scheduler.has_work():
            self.last_step = time.monotonic()  # idle until now: not a step overdue
        req = state.request
        seq = Sequence(req.request_id, list(state.prompt), state.max_tokens, req.priority)
        seq.media_spans = state.media_spans
        # arrived_at: the same monotonic clock as the scheduler's
        self._scheduler.add(seq, arrived_at=state.submitted_at)
        self._sync_counts()

    def _reload(self, cmd: _Reload) -> None:
        try:
            self.backend.reload(cmd.gpu_layers)
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

    def _expected_arrivals(self) -> list[float]:
        """When the held requests were made, for those accepted in the last few steps: a
        stream is normally first read within a step or two of its acceptance; one held
        longer (its caller still waiting for something else) does not hold others up."""
        return [
            state.submitted_at
            for state in self._held.values()
            if self.steps - state.accepted_at_step <= HELD_EXPECTED_STEPS
        ]

    def _step(self) -> None:
        backend = self.backend
        plan = self._scheduler.schedule(self._expected_arrivals())
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
                self._pending.append((state, event))
            if state.finished:
                self._close(state)
        self.last_step = time.monotonic()
        self.steps += 1
        self._sync_counts()
        self._flush_deliveries()

    def _note_prefix_reuse(self) -> None:
        for seq in self._scheduler.running():
            state = self._states.get(seq.request_id)
            if state is not None and seq.cached_tokens and not state.cached_tokens:
                state.cached_tokens = seq.cached_tokens
                self.prefix_hits += 1
                self.cached_tokens += seq.cached_tokens

    def _end(
        self, request_id: str, reason: FinishReason, error: ServiceError | None = None
    ) -> None:
        state = self._states.get(request_id)
        if state is None:
            return
        self._pending.append((state, state.finish(reason, error)))
        self._close(state)

    def _close(self, state: RequestState) -> None:
        rid = state.request_id
        self._states.pop(rid, None)
        if self._held.pop(rid, None) is not None:
            self.n_held -= 1
        self._scheduler.finish(rid, cache=True)
        self.backend.remove_sampler(rid)
        if state.media_spans:
            self.backend.release_media(rid)
        elapsed = time.monotonic() - state.submitted_at
        self.avg_request_s = 0.9 * self.avg_request_s + 0.1 * elapsed
        self._sync_counts()

    def _sync_counts(self) -> None:
        self.n_running = self._scheduler.n_running
        self.n_sched_waiting = self._scheduler.n_waiting
        self.kv_used = self._scheduler.kv_tokens_estimate()

    def _flush_deliveries(self) -> None:
        batch = self._pending
        if batch:
            self._pending = []
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody listens
                self._events.call_soon_threadsafe(_deliver, batch)


def _deliver(batch: list[tuple[RequestState, TokenEvent]]) -> None:
    for state, event in batch:
        state.queue.put_nowait(event)
