"""GemmaClient against scripted answers: retries, fallback, streaming, memory and auth."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest

from gemma_service.client import (
    FallbackRequest,
    GemmaAPIError,
    GemmaClient,
    GemmaClientError,
    GemmaStreamError,
    GemmaUnavailableError,
    RetryPolicy,
)

from .conftest import ScriptedService, error_response, stream_response

Scripted = Callable[..., ScriptedService]
GENERATED = httpx.Response(200, json={"text": "Hello!", "model": "gemma", "usage": None})


def client_for(
    service: ScriptedService, sleeps: list[float] | None = None, **kwargs: object
) -> GemmaClient:
    return GemmaClient(
        "http://gemma.test",
        transport=httpx.MockTransport(service),
        sleep=(sleeps if sleeps is not None else []).append,
        **kwargs,  # type: ignore[arg-type]
    )


def test_retries_503_then_succeeds_waiting_as_long_as_retry_after_asks(
    scripted: Scripted, sleeps: list[float]
) -> None:
    service = scripted(error_response(503, retry_after="2"), error_response(429), GENERATED)
    result = client_for(service, sleeps).generate("Hi", max_tokens=5)
    assert result.text == "Hello!" and not result.from_fallback
    assert len(service.requests) == 3
    assert sleeps[0] >= 2.0 and len(sleeps) == 2
    assert service.json_bodies()[-1] == {"prompt": "Hi", "max_tokens": 5}


def test_retries_when_the_connection_is_refused(scripted: Scripted, sleeps: list[float]) -> None:
    service = scripted(httpx.ConnectError("refused"), GENERATED)
    assert client_for(service, sleeps).generate("Hi").text == "Hello!"
    assert len(sleeps) == 1


def test_a_bad_request_fails_at_once_with_the_service_message(scripted: Scripted) -> None:
    service = scripted(error_response(400, "'max_tokens': must be >= 1"))
    with pytest.raises(GemmaAPIError) as info:
        client_for(service).generate("Hi", max_tokens=0)
    assert info.value.status_code == 400 and "max_tokens" in info.value.message
    assert info.value.code == "code_400"
    assert len(service.requests) == 1


def test_service_down_raises_unavailable_after_every_attempt(scripted: Scripted) -> None:
    service = scripted(httpx.ConnectError("refused"))
    client = client_for(service, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(GemmaUnavailableError) as info:
        client.chat("Hi")
    assert info.value.attempts == 3 and len(service.requests) == 3


def test_fallback_answers_when_the_service_stays_down(scripted: Scripted) -> None:
    asked: list[FallbackRequest] = []

    def fallback(request: FallbackRequest) -> str:
        asked.append(request)
        return "answer from elsewhere"

    service = scripted(error_response(503))
    client = client_for(service, retry=RetryPolicy(max_attempts=2), fallback=fallback)
    result = client.chat([{"role": "user", "content": "Hi"}])
    assert result.response == "answer from elsewhere" and result.from_fallback
    assert asked[0].operation == "chat"
    assert asked[0].messages == [{"role": "user", "content": "Hi"}]
    assert asked[0].error.attempts == 2
    assert client.generate("Once").text == "answer from elsewhere"
    assert asked[1].prompt == "Once"


def test_fallback_is_not_used_for_a_bad_request(scripted: Scripted) -> None:
    service = scripted(error_response(400, "bad"))
    client = client_for(service, fallback=lambda request: "should not be used")
    with pytest.raises(GemmaAPIError):
        client.chat("Hi")


def test_chat_stream_yields_tokens_then_the_sources(scripted: Scripted) -> None:
    source = {"n": 1, "id": "mem_1", "text": "John: ship Friday", "speaker": "John", "score": 0.9}
    service = scripted(
        stream_response(
            [
                {"token": "Fri", "done": False},
                {"token": "day", "done": False},
                {"token": "", "done": True, "usage": {"total_tokens": 9}, "sources": [source]},
            ]
        )
    )
    events = list(client_for(service).chat_stream("When?", use_rag=True, max_tokens=8))
    assert "".join(e.token for e in events) == "Friday"
    assert events[-1].done and events[-1].usage is not None
    assert events[-1].usage.total_tokens == 9
    assert [(s.n, s.speaker, s.text) for s in events[-1].sources] == [
        (1, "John", "John: ship Friday")
    ]
    assert service.requests[0].url.path == "/chat/stream"
    assert service.json_bodies()[0]["use_rag"] is True


def test_chat_stream_retries_before_the_first_byte(scripted: Scripted, sleeps: list[float]) -> None:
    service = scripted(
        error_response(503, retry_after="1"), stream_response([{"token": "", "done": True}])
    )
    events = list(client_for(service, sleeps).chat_stream("Hi"))
    assert events[-1].done and len(service.requests) == 2 and sleeps[0] >= 1.0


def test_chat_stream_raises_on_an_error_event(scripted: Scripted) -> None:
    error = {"message": "request timed out", "code": "timeout"}
    service = scripted(
        stream_response(
            [{"token": "a", "done": False}, {"token": "", "done": True, "error": error}]
        )
    )
    with pytest.raises(GemmaStreamError, match="timed out"):
        list(client_for(service).chat_stream("Hi"))


def test_chat_stream_falls_back_as_one_token_and_done(scripted: Scripted) -> None:
    service = scripted(httpx.ConnectError("refused"))
    client = client_for(
        service, retry=RetryPolicy(max_attempts=1), fallback=lambda request: "offline answer"
    )
    events = list(client.chat_stream("Hi"))
    assert [(e.token, e.done, e.from_fallback) for e in events] == [
        ("offline answer", False, True),
        ("", True, True),
    ]


def test_api_key_is_sent_as_a_bearer_token(scripted: Scripted) -> None:
    service = scripted(GENERATED)
    client_for(service, api_key="s3cret").generate("Hi")
    assert service.requests[0].headers["authorization"] == "Bearer s3cret"


def test_base_url_and_key_come_from_the_environment(
    scripted: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMMA_SERVICE_URL", "https://gemma-abc.run.app/")
    monkeypatch.setenv("GEMMA_API_KEY", "from-env")
    service = scripted(GENERATED)
    client = GemmaClient(transport=httpx.MockTransport(service))
    client.generate("Hi")
    assert str(service.requests[0].url) == "https://gemma-abc.run.app/generate"
    assert service.requests[0].headers["authorization"] == "Bearer from-env"


def test_memory_calls_use_the_memory_api(scripted: Scripted) -> None:
    service = scripted(
        httpx.Response(200, json={"ids": ["mem_1"]}),
        httpx.Response(200, json={"results": [{"id": "mem_1", "text": "hi", "score": 0.5}]}),
        httpx.Response(204),
    )
    client = client_for(service)
    when = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    assert client.add_memory("hi", speaker="Ann", timestamp=when, kind="transcript") == ["mem_1"]
    hits = client.search_memories("hi", top_k=3, speaker="Ann")
    client.delete_memory("mem/1")
    item = json.loads(service.requests[0].content)["items"][0]
    assert item == {
        "text": "hi",
        "speaker": "Ann",
        "timestamp": "2025-03-01T09:30:00+00:00",
        "kind": "transcript",
    }
    assert [(h.id, h.score) for h in hits] == [("mem_1", 0.5)]
    assert parse_qs(service.requests[1].url.query.decode()) == {
        "q": ["hi"],
        "top_k": ["3"],
        "speaker": ["Ann"],
    }
    assert service.requests[2].method == "DELETE"
    assert service.requests[2].url.raw_path == b"/v1/memories/mem%2F1"


def test_storing_a_memory_is_not_resent_after_a_broken_connection(scripted: Scripted) -> None:
    service = scripted(httpx.ReadError("reset"), httpx.Response(200, json={"ids": ["x"]}))
    with pytest.raises(GemmaClientError) as info:
        client_for(service).add_memory("hi")
    assert not isinstance(info.value, GemmaUnavailableError)
    assert len(service.requests) == 1


def test_embed_returns_vectors_in_input_order(scripted: Scripted) -> None:
    data = [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]
    service = scripted(httpx.Response(200, json={"data": data, "model": "m"}))
    assert client_for(service).embed(["a", "b"]) == [[1.0, 0.0], [0.0, 1.0]]
    assert service.json_bodies()[0] == {"input": ["a", "b"]}


def test_health_of_an_unreachable_service_is_a_client_error(scripted: Scripted) -> None:
    service = scripted(httpx.ConnectError("refused"))
    with pytest.raises(GemmaClientError, match="health check failed"):
        client_for(service).health()
