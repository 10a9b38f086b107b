"""Request limits: body and header size, messages, max_tokens, n, stop, rates, and CORS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import MakeClient

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


def error_of(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    return err


def test_a_body_over_the_limit_is_413_declared_or_streamed(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=4096)
    big = {"messages": [{"role": "user", "content": "x" * 5000}]}
    assert error_of(client.post(CHAT, json=big), 413)["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    streamed = client.post(CHAT, content=chunks(), headers={"content-type": "application/json"})
    assert error_of(streamed, 413)["code"] == "payload_too_large"
    assert client.post(CHAT, json={"messages": HI}).status_code == 200


def test_oversized_headers_are_431(make_client: MakeClient) -> None:
    client = make_client(max_header_bytes=2048)
    r = client.get("/v1/models", headers={"X-Padding": "p" * 4000})
    assert error_of(r, 431)["code"] == "headers_too_large"
    assert client.get("/v1/models", headers={"X-Padding": "p" * 100}).status_code == 200


def test_message_count_and_length_limits(make_client: MakeClient) -> None:
    client = make_client(max_messages=3, max_message_chars=50)
    many = [{"role": "user", "content": "hi"}] * 4
    err = error_of(client.post(CHAT, json={"messages": many}), 400)
    assert err["param"] == "messages" and "at most 3" in err["message"]
    long = [{"role": "user", "content": [{"type": "text", "text": "z" * 51}]}]
    err = error_of(client.post(CHAT, json={"messages": long}), 400)
    assert err["param"] == "messages[0].content" and err["code"] == "message_too_long"
    native = client.post("/chat", json={"messages": [{"role": "user", "content": "q" * 60}]})
    assert error_of(native, 400)["code"] == "message_too_long"
    prompt = client.post("/v1/completions", json={"prompt": "w" * 60})
    assert error_of(prompt, 400)["param"] == "prompt"


def test_an_unset_max_tokens_is_clamped_and_a_large_one_refused(make_client: MakeClient) -> None:
    client = make_client(default_max_tokens=5, max_tokens_cap=10)
    body = client.post(CHAT, json={"messages": HI}).json()
    assert body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["finish_reason"] == "length"
    native = client.post("/generate", json={"prompt": "hello"}).json()
    assert native["usage"]["completion_tokens"] == 5
    err = error_of(client.post(CHAT, json={"messages": HI, "max_tokens": 11}), 400)
    assert err["param"] == "max_tokens" and "at most 10" in err["message"]


def test_n_and_stop_are_capped(make_client: MakeClient) -> None:
    client = make_client(max_n=2)
    assert len(client.post(CHAT, json={"messages": HI, "n": 2}).json()["choices"]) == 2
    assert error_of(client.post(CHAT, json={"messages": HI, "n": 3}), 400)["param"] == "n"
    five = ["a", "b", "c", "d", "e"]
    assert error_of(client.post(CHAT, json={"messages": HI, "stop": five}), 400)["param"] == "stop"
    assert client.post(CHAT, json={"messages": HI, "stop": five[:4]}).status_code == 200


def test_requests_per_minute_per_caller(make_client: MakeClient) -> None:
    client = make_client(api_keys="sk-a,sk-b", rate_limit_rpm=2)
    a, b = {"X-Api-Key": "sk-a"}, {"X-Api-Key": "sk-b"}
    for _ in range(2):
        assert client.get("/v1/models", headers=a).status_code == 200
    refused = client.get("/v1/models", headers=a)
    assert error_of(refused, 429)["code"] == "requests_per_minute_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/v1/models", headers=b).status_code == 200  # another caller
    assert client.get("/readyz").status_code == 200  # probes are never limited


def test_tokens_per_minute_count_what_was_generated(make_client: MakeClient) -> None:
    client = make_client(api_keys="sk-a", rate_limit_tpm=30)
    key = {"X-Api-Key": "sk-a"}
    first = client.post(CHAT, json={"messages": HI, "max_tokens": 20}, headers=key)
    assert first.json()["usage"]["total_tokens"] >= 30
    refused = client.post(CHAT, json={"messages": HI, "max_tokens": 1}, headers=key)
    assert error_of(refused, 429)["code"] == "tokens_per_minute_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1


def test_cors_is_closed_by_default(make_client: MakeClient) -> None:
    client = make_client()
    r = client.get("/v1/models", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    ("origin", "allowed"), [("https://app.example", True), ("https://evil.example", False)]
)
def test_cors_allows_only_listed_origins(
    make_client: MakeClient, origin: str, allowed: bool
) -> None:
    client = make_client(api_keys="sk-a", cors_origins="https://app.example")
    preflight = client.options(
        CHAT,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert (preflight.headers.get("access-control-allow-origin") == origin) == allowed
    r = client.post(CHAT, json={"messages": HI}, headers={"Origin": origin, "X-Api-Key": "sk-a"})
    assert r.status_code == 200
    assert (r.headers.get("access-control-allow-origin") == origin) == allowed


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CHAT, b'{"messages": [{"role": "user", "content": "\\ud800"}]}'),
        (
            "/v1/messages",
            b'{"model": "m", "max_tokens": 4, "messages": [{"role": "user", '
            b'"content": "\\udfff"}]}',
        ),
        ("/api/chat", b'{"model": "m", "messages": [{"role": "user", "content": "a\\ud83d"}]}'),
        ("/v1/responses", b'{"input": "\\ud800"}'),
        ("/tokenize", b'{"content": "\\ud800"}'),
    ],
)
def test_a_lone_surrogate_is_a_400_not_a_crash(
    make_client: MakeClient, path: str, body: bytes
) -> None:
    client = make_client()
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "not valid Unicode" in r.text
    pair = body.replace(b"\\ud800", b"\\ud83d\\ude00")  # a valid pair (an emoji) is fine
    if pair != body:
        assert (
            client.post(
                path, content=pair, headers={"content-type": "application/json"}
            ).status_code
            == 200
        )


def test_the_responses_input_is_limited_like_messages(make_client: MakeClient) -> None:
    client = make_client(max_messages=2, max_message_chars=100)
    many = {"input": [{"role": "user", "content": "hi"}] * 3}
    assert error_of(client.post("/v1/responses", json=many), 400)["code"] == "too_many_messages"
    long = {"input": "x" * 101}
    assert error_of(client.post("/v1/responses", json=long), 400)["param"] == "input"
    parts = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "y" * 101}]}]}
    assert error_of(client.post("/v1/responses", json=parts), 400)["param"] == "input[0].content"
    system = {"model": "m", "max_tokens": 4, "messages": HI, "system": "z" * 101}
    refused = client.post("/v1/messages", json=system)
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"
