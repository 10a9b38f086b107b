"""The native gemma-service API (/chat, /chat/stream, /generate) and health routes."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient


def test_chat_returns_the_seed_000_fields(client: TestClient) -> None:
    r = client.post(
        "/chat",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 60, "temperature": 0},
    )
    assert r.status_code == 200
    body = r.json()
    for key in (
        "response",
        "model",
        "usage",
        "rag_context_used",
        "sources",
        "gpu_wait_time",
        "inference_time",
    ):
        assert key in body
    assert body["response"].startswith("Hello from gemma-fake")
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    assert body["inference_time"] > 0


def test_chat_stream_ends_with_done_and_usage(client: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    full = client.post("/chat", json=body).json()["response"]
    events = []
    with client.stream("POST", "/chat/stream", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert all(e["done"] is False for e in events[:-1])
    assert events[-1]["done"] is True and events[-1]["usage"]["completion_tokens"] > 0
    assert "".join(e["token"] for e in events) == full


def test_generate_raw_prompt(client: TestClient) -> None:
    r = client.post("/generate", json={"prompt": "Once", "max_tokens": 6})
    body = r.json()
    assert set(body) >= {"text", "model", "usage"}
    assert body["usage"]["completion_tokens"] == 6


def test_native_validation_errors_are_400(client: TestClient) -> None:
    r = client.post("/chat", json={"messages": [{"role": "user"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages.0.content"
    assert client.post("/generate", json={"prompt": ""}).status_code == 400


def test_health_routes(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "alive"}
    assert client.get("/readyz").status_code == 200
    for path in ("/health", "/healthz"):
        body = client.get(path).json()
        assert body["status"] == "ok"
        assert body["model"] == "gemma-fake" and body["device"] == "cpu"
        assert body["gpu_available"] is False
