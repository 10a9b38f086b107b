"""GemmaClient: the blocking Python client other backends use to call gemma-service."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Unpack

import httpx

from gemma_service.client import api_calls, fallback
from gemma_service.client.api_calls import (
    DEFAULT_TIMEOUT,
    ApiCall,
    ChatOptions,
    GenerateOptions,
    MemoryFields,
    MemoryFilters,
    Messages,
)
from gemma_service.client.errors import GemmaAPIError, GemmaClientError, GemmaUnavailableError
from gemma_service.client.fallback import Fallback, FallbackRequest, Operation
from gemma_service.client.results import ChatResult, GenerateResult, MemoryHit, StreamEvent
from gemma_service.client.retry import RetryPolicy, api_error_from_response
from gemma_service.client.sse import iter_events, stream_event

log = logging.getLogger(__name__)


class GemmaClient:
    """Calls gemma-service with timeouts and retries (429/502/503 and connection errors, with
    backoff that honours ``Retry-After``); ``fallback`` answers when the service stays down."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        fallback: Fallback | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = api_calls.resolve_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self.fallback = fallback
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=api_calls.default_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GemmaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- generation --------------------------------------------------------------------------
    def generate(self, prompt: str, **options: Unpack[GenerateOptions]) -> GenerateResult:
        """Complete ``prompt`` (POST /generate)."""
        try:
            data = self._json(api_calls.generate(prompt, options))
        except GemmaUnavailableError as exc:
            text = self._fallback_text("generate", api_calls.as_messages(prompt), exc, prompt)
            return fallback.generate_result(text)
        return GenerateResult.from_json(data)

    def chat(self, messages: Messages, **options: Unpack[ChatOptions]) -> ChatResult:
        """Answer a chat (POST /chat); a bare string is one user message."""
        try:
            data = self._json(api_calls.chat(messages, options))
        except GemmaUnavailableError as exc:
            text = self._fallback_text("chat", api_calls.as_messages(messages), exc)
            return fallback.chat_result(text)
        return ChatResult.from_json(data)

    def chat_stream(
        self, messages: Messages, **options: Unpack[ChatOptions]
    ) -> Generator[StreamEvent, None, None]:
        """Stream a chat answer token by token (POST /chat/stream); the last event has
        ``done=True`` with usage and sources. Iterating sends the request; closing stops it."""
        try:
            response = self._send(api_calls.chat(messages, options, stream=True), stream=True)
        except GemmaUnavailableError as exc:
            text = self._fallback_text("chat_stream", api_calls.as_messages(messages), exc)
            yield from fallback.stream_events(text)
            return
        try:
            for payload in iter_events(response.iter_lines()):
                yield stream_event(payload)
                if payload.get("done"):
                    return
        finally:
            response.close()

    # --- embeddings and memory ---------------------------------------------------------------
    def embed(self, texts: str | Sequence[str], *, model: str | None = None) -> list[list[float]]:
        """One vector per text (POST /v1/embeddings)."""
        batch = [texts] if isinstance(texts, str) else list(texts)
        return api_calls.embeddings_from_json(self._json(api_calls.embeddings(batch, model)))

    def add_memory(self, text: str, **fields: Unpack[MemoryFields]) -> list[str]:
        """Store one memory; returns its ids (the service splits a long text into several)."""
        return self.add_memories([{"text": text, **fields}])

    def add_memories(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """Store a batch of memories (each a dict of POST /v1/memories fields); returns ids."""
        return api_calls.ids_from_json(self._json(api_calls.add_memories(items)))

    def search_memories(
        self, query: str, *, top_k: int = 5, **filters: Unpack[MemoryFilters]
    ) -> list[MemoryHit]:
        """The ``top_k`` memories that best match ``query``, best first."""
        data = self._json(api_calls.search_memories(query, top_k, filters))
        return [MemoryHit.from_json(hit) for hit in data.get("results", [])]

    def get_memory(self, memory_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._json(api_calls.memory("GET", memory_id))
        return data

    def delete_memory(self, memory_id: str) -> None:
        self._send(api_calls.memory("DELETE", memory_id))

    def health(self) -> dict[str, Any]:
        """The service's /healthz body (``status`` is "loading" while the model loads)."""
        try:
            response = self._http.get("/healthz")
            data: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise GemmaClientError(f"gemma-service health check failed: {exc!r}") from exc
        return data

    # --- transport ---------------------------------------------------------------------------
    def _json(self, call: ApiCall) -> Any:
        return self._send(call).json()

    def _send(self, call: ApiCall, *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(call, stream)
            except (GemmaAPIError, httpx.TransportError) as exc:
                delay = self.retry.delay_after(attempt, exc, idempotent=call.idempotent)
                if delay is None:
                    error = self.retry.final_error(attempt, exc, idempotent=call.idempotent)
                    if error is exc:
                        raise
                    raise error from exc
                log.warning(
                    "%s %s failed (%s); retrying in %.1fs", call.method, call.path, exc, delay
                )
                self._sleep(delay)

    def _attempt(self, call: ApiCall, stream: bool) -> httpx.Response:
        request = self._http.build_request(
            call.method, call.path, json=call.json, params=call.params
        )
        response = self._http.send(request, stream=stream)
        if response.status_code >= 400:
            response.read()
            response.close()
            raise api_error_from_response(response)
        return response

    def _fallback_text(
        self,
        operation: Operation,
        messages: list[dict[str, str]],
        error: GemmaUnavailableError,
        prompt: str | None = None,
    ) -> str:
        if self.fallback is None:
            raise error
        log.warning("gemma-service unavailable (%s); answering with the fallback", error)
        return self.fallback(FallbackRequest(operation, messages, error, prompt))
