"""A streamed answer's headers (and the OpenAI role chunk) go out when the request is admitted,
not when its prefill ends: measured over real HTTP with a long prompt."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from .conftest import RunningServer, stop_server
from .fake_engine_server import start_fake_server

pytestmark = pytest.mark.integration


def time_a_stream(url: str, body: dict[str, object]) -> tuple[float, float, list[str]]:
    """(seconds to the response headers, seconds to the first answer text, the data lines
    that came before that text)."""
    started = time.perf_counter()
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as r:
        headers_at = time.perf_counter() - started
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        before: list[str] = []
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[len("data: ") :])["choices"][0]["delta"]
            if delta.get("content"):
                return headers_at, time.perf_counter() - started, before
            before.append(line)
    raise AssertionError("the stream ended without any answer text")


def test_headers_come_before_the_prefill_of_a_long_prompt(tmp_path: Path) -> None:
    # The fake engine: 16 prompt tokens a step, 20 ms a step, so ~1,600 tokens take ~2 s.
    env = {"GEMMA_BATCH_SIZE": "16", "GEMMA_EMBEDDING_MODEL": "none"}
    server = start_fake_server(tmp_path, "--step-delay", "0.02", env=env)
    try:
        prompt = "A long document to read first. " * 50
        body = {"messages": [{"role": "user", "content": prompt}], "stream": True}
        headers_at, first_text_at, before = time_a_stream(server.url, body)
    finally:
        stop_server(server)
    prefill_s = (len(prompt) // 16) * 0.02
    assert first_text_at >= prefill_s * 0.8  # the prefill did take its time...
    assert headers_at < prefill_s * 0.25  # ...and the headers did not wait for it
    assert len(before) == 1 and '"role": "assistant"' in before[0]  # the role chunk, at once


def test_headers_come_before_the_first_token_with_the_real_model(server: RunningServer) -> None:
    # A prompt no other test sends (nothing to reuse from the prefix cache), inside the session
    # server's 1,024-token window per sequence (8,192 cells over 8 sequences): ~700 tokens.
    words = " ".join(f"item{i}" for i in range(200))
    prompt = f"{uuid.uuid4().hex}: summarize this list in one word: {words}"
    body = {"messages": [{"role": "user", "content": prompt}], "stream": True, "max_tokens": 4}
    headers_at, first_text_at, before = time_a_stream(server.url, body)
    assert headers_at < first_text_at / 2, (headers_at, first_text_at)
    assert before and '"role": "assistant"' in before[0]
