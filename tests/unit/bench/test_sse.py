"""Reading OpenAI stream chunks (events are decoded by gemma_service.sse, tested beside it)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from gemma_service.bench.sse import StreamError, parse_chunk, sse_payloads


def test_chat_chunk_gives_delta_content() -> None:
    data = json.dumps({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    assert parse_chunk(data, "chat").text == "Hi"


def test_completions_chunk_gives_text() -> None:
    data = json.dumps({"choices": [{"index": 0, "text": " there"}]})
    assert parse_chunk(data, "completions").text == " there"


def test_role_only_and_finish_chunks_have_no_text() -> None:
    role = json.dumps({"choices": [{"delta": {"role": "assistant"}}]})
    finish = json.dumps({"choices": [{"delta": {}, "finish_reason": "length"}]})
    assert parse_chunk(role, "chat").text == ""
    assert parse_chunk(finish, "chat").text == ""


def test_usage_chunk_gives_token_counts() -> None:
    data = json.dumps({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 128}})
    chunk = parse_chunk(data, "chat")
    assert (chunk.text, chunk.prompt_tokens, chunk.completion_tokens) == ("", 12, 128)


def test_error_inside_stream_raises() -> None:
    data = json.dumps({"error": {"message": "context too long", "type": "invalid_request"}})
    with pytest.raises(StreamError, match="context too long"):
        parse_chunk(data, "chat")


def test_unreadable_chunk_raises() -> None:
    with pytest.raises(StreamError, match="unreadable"):
        parse_chunk("{not json", "chat")


async def test_payloads_skip_done_and_include_an_unterminated_tail() -> None:
    async def lines(items: list[str]) -> AsyncIterator[str]:
        for item in items:
            yield item

    done = ["data: a", "", "data: [DONE]", ""]
    assert [p async for p in sse_payloads(lines(done))] == ["a"]
    assert [p async for p in sse_payloads(lines(["data: a", "", "data: b"]))] == ["a", "b"]
