"""``GenerationStream`` over an upstream call: its chunks become ``TokenEvent``s.

Until the first token arrives a broken upstream is invisible: the request is opened again on
another upstream. After it, the stream ends with a clear error (finish_reason "error"), since
the tokens already sent cannot be taken back. Closing the stream closes the HTTP response, which
is how an upstream learns that the client went away.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from gemma_service.engine.protocol import (
    FinishReason,
    GenerationRequest,
    TokenEvent,
    TokenLogprob,
    Usage,
)
from gemma_service.engine.remote.dialect import cached_tokens, chunk_logprobs
from gemma_service.engine.remote.upstream_call import UpstreamBrokeError, UpstreamCall
from gemma_service.engine.remote.upstream_pool import Upstream, UpstreamPool
from gemma_service.errors import RequestTimeoutError, ServiceError, UpstreamFailedError

Reopen = Callable[[list[Upstream]], Awaitable[UpstreamCall]]
Tokenize = Callable[[str], list[int]]

MAX_ATTEMPTS = 3


class RemoteStream:
    """One admitted request's events from its upstream, read once."""

    def __init__(
        self,
        request: GenerationRequest,
        call: UpstreamCall,
        tried: list[Upstream],
        *,
        pool: UpstreamPool,
        reopen: Reopen,
        tokenize: Tokenize,
        on_close: Callable[[str], None],
    ) -> None:
        self._request = request
        self._call: UpstreamCall | None = call
        self._tried = tried
        self._pool = pool
        self._reopen = reopen
        self._tokenize = tokenize
        self._on_close = on_close
        self._events: AsyncIterator[TokenEvent] | None = None
        self._deadline = None if request.timeout_s is None else time.monotonic() + request.timeout_s
        self._generated = 0
        self._done = False
        self._closed = False

    @property
    def request_id(self) -> str:
        return self._request.request_id

    def __aiter__(self) -> RemoteStream:
        return self

    async def __anext__(self) -> TokenEvent:
        if self._done or self._closed:
            raise StopAsyncIteration
        if self._events is None:
            self._events = self._generate()
        try:
            event = await anext(self._events)
        except StopAsyncIteration:
            self._done = True
            raise
        if event.finish_reason is not None:
            self._done = True
            cached = event.usage.cached_tokens if event.usage is not None else 0
            await self._finish(failed=event.finish_reason == "error", cached=cached)
        return event

    async def aclose(self) -> None:
        """Stop reading; an unfinished upstream request is cancelled by closing its response."""
        if self._closed:
            return
        self._closed = True
        if self._events is not None:
            await self._events.aclose()  # type: ignore[attr-defined]
        await self._finish(failed=False)

    async def _finish(self, *, failed: bool, cached: int = 0) -> None:
        call, self._call = self._call, None
        if call is not None:
            await call.close()
            self._pool.finished(
                call.upstream,
                seconds=time.perf_counter() - call.started,
                failed=failed,
                cached_tokens=cached,
            )
        self._on_close(self.request_id)

    async def _generate(self) -> AsyncIterator[TokenEvent]:
        """Events of the current call; before the first token, a broken call is replaced."""
        emitted = False
        attempts = 1
        while self._call is not None:
            call = self._call
            finish: FinishReason | None = None
            usage: dict[str, Any] = {}
            try:
                async for chunk in call.chunks():
                    if self._deadline is not None and time.monotonic() > self._deadline:
                        yield self._ended("timeout", RequestTimeoutError("the request timed out"))
                        return
                    if isinstance(chunk.get("usage"), dict):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        event = self._token_event(choice)
                        if event is not None:
                            emitted = True
                            yield event
                        finish = _finish_reason(choice.get("finish_reason")) or finish
            except UpstreamBrokeError as exc:
                self._pool.failure(call.upstream, str(exc))
                if emitted or attempts >= MAX_ATTEMPTS:
                    yield self._ended("error", _broke(call.upstream, str(exc)))
                    return
                await self._finish_call(call, failed=True)
                try:
                    self._call = await self._reopen(self._tried)
                except ServiceError as error:
                    yield self._ended("error", error)
                    return
                attempts += 1
                continue
            yield self._last_event(finish or "stop", usage)
            return

    async def _finish_call(self, call: UpstreamCall, *, failed: bool) -> None:
        self._call = None
        await call.close()
        self._pool.finished(
            call.upstream, seconds=time.perf_counter() - call.started, failed=failed
        )

    def _token_event(self, choice: dict[str, Any]) -> TokenEvent | None:
        text = choice.get("text") or ""
        logprobs: list[TokenLogprob] | None = None
        if self._request.sampling.logprobs:
            logprobs = chunk_logprobs(choice, self._request.sampling.top_logprobs)
        if not text and not logprobs:
            return None
        # Upstreams stream text; ids are counted with our tokenizer (for metering).
        token_ids = self._tokenize(text) if text else []
        self._generated += len(token_ids)
        return TokenEvent(text=text, token_ids=token_ids, logprobs=logprobs)

    def _ended(self, reason: FinishReason, error: ServiceError) -> TokenEvent:
        """The last event of a request that did not finish: what went wrong, what it used."""
        usage = Usage(len(self._request.prompt_tokens), self._generated)
        return TokenEvent(text="", token_ids=[], finish_reason=reason, usage=usage, error=error)

    def _last_event(self, finish: FinishReason, usage: dict[str, Any]) -> TokenEvent:
        return TokenEvent(
            text="",
            token_ids=[],
            finish_reason=finish,
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens", len(self._request.prompt_tokens))),
                completion_tokens=int(usage.get("completion_tokens", self._generated)),
                cached_tokens=cached_tokens(usage),
            ),
        )


def _finish_reason(value: Any) -> FinishReason | None:
    if value is None:
        return None
    return "length" if value == "length" else "stop"


def _broke(upstream: Upstream, reason: str) -> ServiceError:
    return UpstreamFailedError(
        f"the upstream server {upstream.url} failed while streaming this answer ({reason}); "
        "the text so far is incomplete"
    )
