"""Ollama's API with the real model over real HTTP, driven by the ollama Python client unchanged
(as Open WebUI and editor plugins speak it). The session server's memory has the packaged
sentence-transformers embedder, which /api/embed uses."""

from __future__ import annotations

import json
from typing import Any

import ollama
import pytest

from .conftest import RunningServer

pytestmark = pytest.mark.integration

HELLO: Any = [{"role": "user", "content": "Write one sentence about the sea."}]
MODEL = "gemma-3-270m-q4_k_m"


@pytest.fixture
def client(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.url)


def test_chat(client: ollama.Client) -> None:
    reply = client.chat(model=MODEL, messages=HELLO, options={"num_predict": 24, "temperature": 0})
    assert reply.message.role == "assistant" and reply.message.content
    assert reply.done and reply.done_reason in ("stop", "length")
    assert reply.eval_count is not None and 0 < reply.eval_count <= 24
    assert reply.prompt_eval_count and reply.prompt_eval_count > 5
    # Timings are measured: the whole took at least its parts.
    assert reply.total_duration and reply.eval_duration and reply.prompt_eval_duration
    assert reply.total_duration >= reply.eval_duration + reply.prompt_eval_duration


def test_streamed_chat_equals_the_whole_for_the_same_seed(client: ollama.Client) -> None:
    options = {"num_predict": 32, "temperature": 0.8, "seed": 42}
    client.chat(model=MODEL, messages=HELLO, options=options)  # warm the prefix cache
    whole = client.chat(model=MODEL, messages=HELLO, options=options)
    parts = list(client.chat(model=MODEL, messages=HELLO, options=options, stream=True))
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert [p.done for p in parts][-1] and not any(p.done for p in parts[:-1])
    assert parts[-1].eval_count == whole.eval_count
    assert parts[-1].done_reason == whole.done_reason


def test_generate_and_json_format(client: ollama.Client) -> None:
    reply = client.generate(
        model=MODEL, prompt="The capital of France is", options={"num_predict": 8}, raw=True
    )
    assert reply.response and reply.done
    person = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    shaped = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        format=person,
        options={"num_predict": 48},
    )
    assert set(json.loads(shaped.message.content or "")) == {"name", "age"}


def test_list_show_and_ps(client: ollama.Client) -> None:
    [model] = client.list().models
    assert model.model == MODEL and model.details is not None
    assert model.details.family == "gemma3" and model.details.quantization_level == "Q4_K_M"
    assert model.size and model.size > 100_000_000
    shown = client.show(MODEL)
    assert shown.details is not None and shown.capabilities and "completion" in shown.capabilities
    assert shown.modelinfo and shown.modelinfo["gemma3.context_length"] >= 8192
    [loaded] = client.ps().models
    assert loaded.model == MODEL and loaded.context_length == 8192 // 8  # per request
    with pytest.raises(ollama.ResponseError) as info:
        client.show("llama9:70b")
    assert info.value.status_code == 404 and "not found" in info.value.error


def test_bad_options_are_a_clear_error(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model=MODEL, messages=HELLO, options={"num_ctx": 10**6})
    assert info.value.status_code == 400 and "num_ctx" in info.value.error


def test_embed(client: ollama.Client) -> None:
    result = client.embed(model="all-minilm", input=["The sea is blue.", "The sky is blue."])
    first, second = result.embeddings
    assert len(first) == len(second) == 384
    assert abs(sum(x * x for x in first) - 1.0) < 1e-3  # unit vectors, as Ollama's
    shortened = client.embed(model="all-minilm", input="hello", dimensions=64)
    assert len(shortened.embeddings[0]) == 64
