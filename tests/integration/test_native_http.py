"""The native API of the original gemma-service, over real HTTP with the real model."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from .conftest import RunningServer

pytestmark = pytest.mark.integration


def test_chat_seed_000_fields(server: RunningServer) -> None:
    r = httpx.post(
        server.url + "/chat",
        json={
            "messages": [{"role": "user", "content": "What did John say about the project?"}],
            "max_tokens": 16,
            "temperature": 0.7,
            "context": [],
            "use_rag": False,
            "rag_top_k": 5,
        },
        timeout=60,
    )
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body["response"], str) and body["response"]
    assert body["usage"]["completion_tokens"] >= 1
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    assert body["rag_context_used"] == 0
    assert body["gpu_wait_time"] >= 0 and body["inference_time"] > 0
    assert body["model"] == "gemma-3-270m-q4_k_m"


def test_chat_stream(server: RunningServer) -> None:
    events = []
    with httpx.stream(
        "POST",
        server.url + "/chat/stream",
        json={
            "messages": [{"role": "user", "content": "Count to five."}],
            "max_tokens": 12,
        },
        timeout=60,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["done"] is True
    assert events[-1]["usage"]["completion_tokens"] >= 1
    assert any(e["token"] for e in events[:-1])


def test_generate(server: RunningServer) -> None:
    r = httpx.post(
        server.url + "/generate", json={"prompt": "Once upon a time", "max_tokens": 10}, timeout=60
    )
    body = r.json()
    assert body["text"] and body["usage"]["completion_tokens"] == 10


def test_healthz(server: RunningServer) -> None:
    body = httpx.get(server.url + "/healthz").json()
    assert body["status"] == "ok" and body["device"] == "cpu"
    assert body["model"] == "gemma-3-270m-q4_k_m" and body["gpu_available"] is False


def test_livez_answers_during_a_long_generation(server: RunningServer) -> None:
    first_token = threading.Event()
    finished = threading.Event()
    stop = threading.Event()

    def long_generation() -> None:
        # End-of-turn (106) and EOS (1) are banned so the base model cannot stop early.
        with httpx.stream(
            "POST",
            server.url + "/v1/completions",
            json={
                "prompt": "1, 2, 3,",
                "max_tokens": 2000,
                "stream": True,
                "logit_bias": {"1": -100, "106": -100},
            },
            timeout=120,
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    first_token.set()
                if stop.is_set():
                    return  # disconnect: the server frees the sequence
        finished.set()

    t = threading.Thread(target=long_generation)
    t.start()
    assert first_token.wait(60)
    latencies = []
    for _ in range(5):
        started = time.perf_counter()
        assert httpx.get(server.url + "/livez", timeout=5).status_code == 200
        latencies.append(time.perf_counter() - started)
    in_flight = not finished.is_set()
    stop.set()
    t.join(60)
    assert in_flight, "the generation ended before /livez was checked"
    assert max(latencies) < 2.0  # the event loop is not blocked by decoding
