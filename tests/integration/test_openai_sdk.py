"""The real model through the real HTTP server, driven by the official openai SDK."""

from __future__ import annotations

import openai
import pytest

from .conftest import RunningServer

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "Write one sentence about the sea."}]


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_chat_completion(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="gemma",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=24,
        temperature=0,
    )
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content  # the base model says something, not nothing
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.completion_tokens > 0
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 24


def test_stream_equals_non_stream_for_the_same_seed(client: openai.OpenAI) -> None:
    kwargs = dict(model="gemma", messages=QUESTION, max_tokens=32, temperature=0.8, seed=42)
    full = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    stream = client.chat.completions.create(
        stream=True, stream_options={"include_usage": True}, **kwargs
    )  # type: ignore[call-overload]
    parts, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
    assert "".join(parts) == full.choices[0].message.content
    assert finish == full.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_max_tokens_one_is_length(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="gemma",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=1,
    )
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 1


def test_text_completion(client: openai.OpenAI) -> None:
    r = client.completions.create(
        model="gemma", prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert r.choices[0].text
    assert r.usage is not None and r.usage.prompt_tokens >= 5


def test_models(client: openai.OpenAI, server: RunningServer) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == ["gemma-3-270m-q4_k_m"]
    assert client.models.retrieve("gemma-3-270m-q4_k_m").id == "gemma-3-270m-q4_k_m"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_bad_request_is_a_400_the_sdk_understands(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gemma",
            messages=QUESTION,  # type: ignore[arg-type]
            temperature=9,
        )
    assert "temperature" in str(info.value)


def test_context_overflow_is_400_context_length_exceeded(client: openai.OpenAI) -> None:
    huge = [{"role": "user", "content": "word " * 9000}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gemma",
            messages=huge,  # type: ignore[arg-type]
            stream=True,
        )
    assert info.value.code == "context_length_exceeded"


def test_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="gemma",
        messages=QUESTION,  # type: ignore[arg-type]
        max_tokens=3,
        logprobs=True,
        top_logprobs=3,
        temperature=0,
    )
    content = r.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) >= 1
    first = content[0]
    # Greedy decoding picks the most likely token.
    assert first.top_logprobs[0].token == first.token
    assert first.logprob == pytest.approx(first.top_logprobs[0].logprob, abs=1e-4)
