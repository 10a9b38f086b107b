"""AsyncGemmaClient: the same retries, fallback and streaming as the sync client."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gemma_service.client import (
    AsyncGemmaClient,
    FallbackRequest,
    GemmaUnavailableError,
    RetryPolicy,
)

from .conftest import ScriptedService, error_response, stream_response

Scripted = Callable[..., ScriptedService]


def async_client_for(
    service: ScriptedService, sleeps: list[float], **kwargs: object
) -> AsyncGemmaClient:
    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return AsyncGemmaClient(
        "http://gemma.test",
        transport=httpx.MockTransport(service),
        sleep=record_sleep,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_retries_503_with_retry_after_then_answers(
    scripted: Scripted, sleeps: list[float]
) -> None:
    answer = httpx.Response(200, json={"response": "Hi there", "model": "gemma", "sources": []})
    service = scripted(error_response(503, retry_after="3"), answer)
    async with async_client_for(service, sleeps) as client:
        result = await client.chat("Hi", max_tokens=4)
    assert result.response == "Hi there" and sleeps[0] >= 3.0
    assert len(service.requests) == 2


async def test_async_fallback_answers_when_the_service_is_down(
    scripted: Scripted, sleeps: list[float]
) -> None:
    async def fallback(request: FallbackRequest) -> str:
        return f"fallback for {request.operation}"

    service = scripted(httpx.ConnectError("refused"))
    retry = RetryPolicy(max_attempts=2)
    async with async_client_for(service, sleeps, retry=retry, fallback=fallback) as client:
        result = await client.generate("Once")
        events = [e async for e in client.chat_stream("Hi")]
    assert result.text == "fallback for generate" and result.from_fallback
    assert events[0].token == "fallback for chat_stream" and events[-1].done


async def test_without_fallback_a_down_service_raises_unavailable(
    scripted: Scripted, sleeps: list[float]
) -> None:
    service = scripted(error_response(503))
    async with async_client_for(service, sleeps, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(GemmaUnavailableError):
            await client.generate("Once")
    assert len(service.requests) == 3 and len(sleeps) == 2


async def test_chat_stream_yields_tokens_and_sources(
    scripted: Scripted, sleeps: list[float]
) -> None:
    source = {"n": 1, "id": "m1", "text": "budget approved", "speaker": "Ann"}
    service = scripted(
        stream_response(
            [{"token": "Yes", "done": False}, {"token": "", "done": True, "sources": [source]}]
        )
    )
    async with async_client_for(service, sleeps) as client:
        events = [e async for e in client.chat_stream("Approved?", use_rag=True)]
    assert [e.token for e in events] == ["Yes", ""]
    assert events[-1].sources[0].text == "budget approved"
