"""Continuous batching with the real model: many streams, disconnects, overload."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration

NO_END = {"1": -100, "106": -100}  # EOS and end-of-turn banned: generations run their length


def forced(token_id: int) -> dict[str, int]:
    """A logit bias that makes the model say ``token_id`` over and over."""
    return {**NO_END, str(token_id): 100}


async def test_16_concurrent_streams_complete_unmixed(server: RunningServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    vocab_ids = [2000 + 37 * i for i in range(16)]
    pieces = {}
    for t in vocab_ids:  # what each forced token looks like on its own
        r = await client.completions.create(
            model="g", prompt="x", max_tokens=1, logit_bias=forced(t)
        )  # type: ignore[arg-type]
        pieces[t] = r.choices[0].text
    assert len(set(pieces.values())) == 16

    async def one(i: int, t: int) -> tuple[int, str, str | None]:
        stream = await client.chat.completions.create(
            model="g",
            messages=[{"role": "user", "content": f"Say something, number {i}."}],
            max_tokens=20,
            stream=True,
            logit_bias=forced(t),
        )  # type: ignore[arg-type]
        text, finish = "", None
        async for chunk in stream:
            for c in chunk.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
        return t, text, finish

    results = await asyncio.gather(*(one(i, t) for i, t in enumerate(vocab_ids)))
    for t, text, finish in results:
        assert finish == "length"
        assert text == pieces[t] * 20, f"stream for token {t} got someone else's text"
    await client.close()


def running(server: RunningServer) -> int:
    return int(httpx.get(server.url + "/healthz", timeout=5).json()["running"])


def wait_until_idle(server: RunningServer, timeout_s: float = 15.0) -> float:
    started = time.monotonic()
    while running(server) > 0:
        assert time.monotonic() - started < timeout_s, "sequences were not freed"
        time.sleep(0.1)
    return time.monotonic() - started


async def test_disconnected_streams_free_their_slots(server: RunningServer) -> None:
    body = {"prompt": "1, 2, 3,", "max_tokens": 4000, "stream": True, "logit_bias": NO_END}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:

        async def start_and_drop() -> None:
            async with http.stream("POST", "/v1/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        return  # first token seen: disconnect mid-generation

        await asyncio.gather(*(start_and_drop() for _ in range(8)))
        await asyncio.to_thread(wait_until_idle, server)
        # A following request is served at once, not after 8 × 4000 tokens.
        r = await http.post("/v1/completions", json={"prompt": "Hello", "max_tokens": 4})
        assert r.status_code == 200


def test_disconnected_non_streaming_request_frees_its_slot(server: RunningServer) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            server.url + "/v1/completions",
            timeout=2.0,
            json={"prompt": "1, 2, 3,", "max_tokens": 4000, "logit_bias": NO_END},
        )
    wait_until_idle(server)


@pytest.fixture(scope="module")
def small_server(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path
) -> Iterator[RunningServer]:
    srv = start_server(
        tmp_path_factory.mktemp("small"),
        "--model",
        str(model_path),
        "--ctx-size",
        "4096",
        "--threads",
        "2",
        "--parallel",
        "1",
        "--max-queue",
        "1",
    )
    yield srv
    stop_server(srv)


async def test_overload_returns_429_with_retry_after(small_server: RunningServer) -> None:
    body = {"prompt": "1, 2, 3,", "max_tokens": 60, "logit_bias": NO_END}
    async with httpx.AsyncClient(base_url=small_server.url, timeout=120) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/completions", json=body) for _ in range(6))
        )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 2, codes  # the running one and the queued one
    rejected = [r for r in responses if r.status_code == 429]
    assert rejected, codes
    assert int(rejected[0].headers["retry-after"]) >= 1
    assert rejected[0].json()["error"]["code"] == "queue_full"
