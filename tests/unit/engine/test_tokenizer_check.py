"""The remote engine refuses to start when its tokenizer is not the upstreams'."""

from __future__ import annotations

import json

import httpx
import pytest

from gemma_service.engine.remote.tokenizer_check import PROBE, check_tokenizer
from gemma_service.errors import ModelFileError


def _upstream(tokens: list[int] | None) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["content"] == PROBE
        if tokens is None:
            return httpx.Response(404, json={"error": {"message": "no route"}})
        return httpx.Response(200, json={"tokens": tokens})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def _ours(text: str) -> list[int]:
    return [ord(c) for c in text]


async def test_the_same_ids_pass() -> None:
    async with _upstream(_ours(PROBE)) as client:
        assert await check_tokenizer(client, "http://u:1", "llama-server", _ours, "m.gguf")


async def test_different_ids_stop_the_start_with_a_clear_reason() -> None:
    async with _upstream(_ours(PROBE)[:-1]) as client:
        with pytest.raises(ModelFileError, match="GEMMA_MODEL_PATH"):
            await check_tokenizer(client, "http://u:1", "gemma-service", _ours, "m.gguf")


async def test_an_upstream_that_cannot_say_is_not_a_failure() -> None:
    async with _upstream(None) as client:
        assert not await check_tokenizer(client, "http://u:1", "llama-server", _ours, "m.gguf")
    async with _upstream([1]) as client:  # plain OpenAI servers have no tokenize route
        assert not await check_tokenizer(client, "http://u:1", "openai", _ours, "m.gguf")
