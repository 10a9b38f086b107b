"""The Responses API with the real model over real HTTP, driven by the openai SDK unchanged."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from gemma_service.chat.structured import validate_instance

from .conftest import RunningServer

pytestmark = pytest.mark.integration

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 24}},
        "required": ["city"],
    },
}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
    },
    "required": ["name", "age"],
}


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_plain_response(client: openai.OpenAI) -> None:
    r = client.responses.create(
        model="gemma",
        input="Write one sentence about the sea.",
        instructions="Answer in English.",
        max_output_tokens=24,
        temperature=0,
    )
    assert r.status in ("completed", "incomplete")
    assert r.output_text  # the base model says something
    assert r.usage is not None and 0 < r.usage.output_tokens <= 24
    if r.status == "incomplete":
        assert r.incomplete_details is not None
        assert r.incomplete_details.reason == "max_output_tokens"
    assert client.responses.retrieve(r.id).output_text == r.output_text  # stored


def test_streamed_equals_non_streamed_for_the_same_seed(client: openai.OpenAI) -> None:
    request: Any = dict(
        model="gemma",
        input="Write one sentence about the moon.",
        max_output_tokens=32,
        temperature=0.8,
        extra_body={"seed": 42},
    )
    client.responses.create(**request)  # warm the prefix cache: both runs then compute alike
    whole = client.responses.create(**request)
    deltas, final = [], None
    for event in client.responses.create(stream=True, **request):
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type in ("response.completed", "response.incomplete"):
            final = event.response
    assert final is not None
    assert "".join(deltas) == final.output_text == whole.output_text
    assert final.usage is not None and whole.usage is not None
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_a_function_call_and_its_output_sent_back(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="gemma",
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,  # one call: a second one could run out of tokens
        max_output_tokens=48,
    )
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    arguments = json.loads(call.arguments)
    assert validate_instance(WEATHER["parameters"], arguments) == [], arguments
    second = client.responses.create(
        model="gemma",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24C"}],
        tools=[WEATHER],
        max_output_tokens=24,
        temperature=0,
    )
    assert second.previous_response_id == first.id
    assert second.output  # an answer, or another call: the model may choose
    # The question and the call were read from the store: the same prompt, grown by them.
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens


def test_previous_response_id_continues_and_input_items_list_the_input(
    client: openai.OpenAI,
) -> None:
    first = client.responses.create(
        model="gemma", input="My name is Ada.", max_output_tokens=8, temperature=0
    )
    second = client.responses.create(
        model="gemma",
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=8,
        temperature=0,
    )
    alone = client.responses.create(
        model="gemma", input="What is my name?", max_output_tokens=8, temperature=0, store=False
    )
    assert second.usage is not None and alone.usage is not None
    assert second.usage.input_tokens > alone.usage.input_tokens  # it carries the first turn
    items = client.responses.input_items.list(second.id).data
    assert [item.type for item in items] == ["message"]
    assert client.responses.delete(second.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(alone.id)  # store=False kept nothing


def test_json_schema_format(client: openai.OpenAI) -> None:
    r = client.responses.create(
        model="gemma",
        input="Describe a person as JSON.",
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
        max_output_tokens=64,
    )
    assert r.status == "completed"
    person = json.loads(r.output_text)
    assert validate_instance(PERSON, person) == [], person


def test_bad_input_is_a_400_the_sdk_understands(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="gemma", input=[{"type": "item_reference", "id": "x"}])
    assert "input[0].type" in str(info.value)
