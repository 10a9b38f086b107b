"""An in-process fake OpenAI streaming server for the load generator's tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest


class FakeStreamingServer:
    """Streams ``tokens`` one-word chunks per request, like an OpenAI-compatible server."""

    def __init__(
        self, tokens: int = 5, usage: bool = True, status: int = 200, cold_delay_s: float = 0.0
    ) -> None:
        self.tokens = tokens
        self.usage = usage
        self.status = status
        self.cold_delay_s = cold_delay_s
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.seen_prompts: set[str] = set()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "fake-gemma"}]})
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "bad request"}})
        body = json.loads(request.content)
        self.bodies.append(body)
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, content=self._events(body))

    def first_token_delay(self, prompt: str) -> float:
        """Model a prefix cache: a prompt whose opening was seen before starts at once."""
        opening = prompt[:100]
        if opening in self.seen_prompts:
            return 0.0
        self.seen_prompts.add(opening)
        return self.cold_delay_s

    async def _events(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            prompt = body["messages"][0]["content"] if "messages" in body else body["prompt"]
            await asyncio.sleep(self.first_token_delay(prompt))
            chat = "messages" in body
            for index in range(self.tokens):
                await asyncio.sleep(0.001)
                piece = f"w{index} "
                choice = {"delta": {"content": piece}} if chat else {"text": piece}
                yield _event({"choices": [{"index": 0, **choice}]})
            if self.usage:
                usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": self.tokens}
                yield _event({"choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"
        finally:
            self.in_flight -= 1


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


@pytest.fixture
def fake_server_factory() -> Callable[..., FakeStreamingServer]:
    return FakeStreamingServer
