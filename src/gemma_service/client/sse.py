"""Reading the service's server-sent events: one JSON object per event (``gemma_service.sse``
decodes the events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from gemma_service.client.errors import GemmaClientError, GemmaStreamError
from gemma_service.client.results import StreamEvent
from gemma_service.sse import SseEvent, aiter_sse, iter_sse


def event_payload(event: SseEvent) -> dict[str, Any] | None:
    """The JSON object an event carries; None for the ``[DONE]`` sentinel."""
    if event.is_done or not event.data.strip():
        return None
    data = event.data
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise GemmaClientError(f"malformed event from gemma-service: {data[:200]!r}") from exc
    if not isinstance(payload, dict):
        raise GemmaClientError(f"unexpected event from gemma-service: {data[:200]!r}")
    return payload


def iter_events(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for event in iter_sse(lines):
        payload = event_payload(event)
        if payload is not None:
            yield payload


async def aiter_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    async for event in aiter_sse(lines):
        payload = event_payload(event)
        if payload is not None:
            yield payload


def stream_event(payload: dict[str, Any]) -> StreamEvent:
    """The event, or GemmaStreamError when the service ended the stream with an error."""
    error = payload.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        raise GemmaStreamError(
            str(error.get("message", "stream failed")), code=None if code is None else str(code)
        )
    return StreamEvent.from_json(payload)
