"""The Anthropic Messages API with the real model over real HTTP, driven by the anthropic SDK
unchanged (it sends its key as x-api-key)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from gemma_service.chat.structured import validate_instance

from .conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration

KEY = "sk-anthropic-sdk-0123456789"
HELLO: Any = [{"role": "user", "content": "Write one sentence about the sea."}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 24}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[RunningServer]:
    """A server that needs a key, as a shared deployment does."""
    args = ["--model", str(model_path), "--ctx-size", "4096", "--threads", "2", "--parallel", "4"]
    server = start_server(tmp_path_factory.mktemp("anthropic"), *args, env={"GEMMA_API_KEYS": KEY})
    yield server
    stop_server(server)


@pytest.fixture
def client(keyed: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=keyed.url, api_key=KEY, max_retries=0)


def test_create_a_message(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="gemma",
        max_tokens=24,
        messages=HELLO,
        system="Answer in English.",
        extra_body={"temperature": 0},  # this SDK sends sampling fields as extra fields
    )
    assert message.role == "assistant" and message.content[0].type == "text"
    assert message.content[0].text  # the base model says something
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert 0 < message.usage.output_tokens <= 24


def test_stream_equals_create_for_the_same_seed(client: anthropic.Anthropic) -> None:
    request: Any = dict(
        model="gemma", max_tokens=32, messages=HELLO, extra_body={"temperature": 0.8, "seed": 42}
    )
    client.messages.create(**request)  # warm the prefix cache: both runs then compute alike
    whole = client.messages.create(**request)
    with client.messages.stream(**request) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_a_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    question: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(
        model="gemma",
        max_tokens=48,
        messages=question,
        tools=[WEATHER],
        # One call: with parallel calls allowed this small model may start a second one and
        # run out of tokens in it (stop_reason max_tokens, as Anthropic's API answers then).
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    assert first.stop_reason == "tool_use"
    [use] = [block for block in first.content if block.type == "tool_use"]
    assert use.name == "get_weather"
    assert validate_instance(WEATHER["input_schema"], use.input) == [], use.input
    with client.messages.stream(
        model="gemma",
        max_tokens=48,
        messages=question,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    ) as stream:
        streamed = stream.get_final_message()
    assert [block.type for block in streamed.content] == ["tool_use"]
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 24C"}
    second = client.messages.create(
        model="gemma",
        max_tokens=24,
        extra_body={"temperature": 0},
        tools=[WEATHER],
        tool_choice={"type": "none"},  # now answer in words
        messages=[
            *question,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [result]},
        ],
    )
    assert second.stop_reason in ("end_turn", "max_tokens")
    assert all(block.type == "text" for block in second.content)
    # The call and its result are in the prompt: it is longer than the question alone.
    alone = client.messages.count_tokens(
        model="gemma", messages=question, tools=[WEATHER], tool_choice={"type": "none"}
    )
    read = second.usage.input_tokens + (second.usage.cache_read_input_tokens or 0)
    assert read > alone.input_tokens + 10


def test_output_config_format_gives_json_under_the_schema(client: anthropic.Anthropic) -> None:
    person = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
        },
        "required": ["name", "age"],
    }
    message = client.messages.create(
        model="gemma",
        max_tokens=64,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        output_config={"format": {"type": "json_schema", "schema": person}},
    )
    assert message.content[0].type == "text"
    reply = json.loads(message.content[0].text)
    assert validate_instance(person, reply) == [], reply


def test_count_tokens_matches_what_create_reads(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="gemma", messages=HELLO, tools=[WEATHER])
    message = client.messages.create(model="gemma", max_tokens=1, messages=HELLO, tools=[WEATHER])
    read = message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)
    assert counted.input_tokens == read


def test_errors_arrive_as_the_sdks_exceptions(keyed: RunningServer) -> None:
    good = anthropic.Anthropic(base_url=keyed.url, api_key=KEY, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as info:
        good.messages.create(model="gemma", max_tokens=8, messages=HELLO, stop_sequences=[""])
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    bad = anthropic.Anthropic(base_url=keyed.url, api_key=KEY + "-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="gemma", max_tokens=8, messages=HELLO)
    with pytest.raises(anthropic.BadRequestError) as info:
        good.messages.create(
            model="gemma", max_tokens=8, messages=[{"role": "user", "content": "x " * 9000}]
        )
    assert "maximum context length" in json.dumps(info.value.body)
