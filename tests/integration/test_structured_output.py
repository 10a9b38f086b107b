"""Structured output and tool calling with the real model, through the openai SDK.

The grammar constrains sampling, so even the 270M base model's replies parse and validate.
Every string and number in these schemas is bounded, so each reply completes within max_tokens.
Seeded runs go out together: the engine batches them.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from gemma_service.chat.structured import validate_instance

from .conftest import RunningServer

pytestmark = pytest.mark.integration

RUNS = 20
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "mood": {"enum": ["happy", "sad", "calm"]},
    },
    "required": ["name", "age", "mood"],
}
WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 24},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
ADD_PARAMETERS = {
    "type": "object",
    "properties": {
        "a": {"type": "integer", "minimum": -1000, "maximum": 1000},
        "b": {"type": "integer", "minimum": -1000, "maximum": 1000},
    },
    "required": ["a", "b"],
}
PARAMETERS = {"get_weather": WEATHER_PARAMETERS, "add": ADD_PARAMETERS}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": WEATHER_PARAMETERS,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": ADD_PARAMETERS,
        },
    },
]
WEATHER_QUESTION: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def seeded_runs(server: RunningServer, **request: Any) -> list[ChatCompletion]:
    """The same request with seeds 0..RUNS-1, sent concurrently."""

    async def run_all() -> list[ChatCompletion]:
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key="unused", max_retries=0
        ) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.chat.completions.create(model="gemma", seed=seed, **request)
                        for seed in range(RUNS)
                    )
                )
            )

    return asyncio.run(run_all())


def test_json_schema_replies_parse_and_validate_in_every_seeded_run(
    server: RunningServer,
) -> None:
    replies = seeded_runs(
        server,
        messages=[{"role": "user", "content": "Describe a person as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        },
        max_tokens=64,
    )
    for reply in replies:
        choice = reply.choices[0]
        assert choice.finish_reason == "stop"
        person = json.loads(choice.message.content or "")
        assert validate_instance(PERSON, person) == [], person
    assert len({r.choices[0].message.content for r in replies}) > 1  # seeds do vary the reply


def test_required_tool_choice_makes_a_valid_call_in_every_seeded_run(
    server: RunningServer,
) -> None:
    replies = seeded_runs(
        server,
        messages=WEATHER_QUESTION,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=64,
    )
    for reply in replies:
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        [call] = choice.message.tool_calls or []
        assert call.type == "function" and call.id.startswith("call_")
        arguments = json.loads(call.function.arguments)
        assert validate_instance(PARAMETERS[call.function.name], arguments) == [], arguments


def test_a_streamed_tool_call_assembles_to_the_non_streamed_call(client: openai.OpenAI) -> None:
    request: dict[str, Any] = dict(
        model="gemma",
        messages=WEATHER_QUESTION,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,  # one call: a second one could run out of tokens
        max_tokens=64,
        seed=7,
    )
    # Warm the prefix cache first: the two compared requests then both reuse the same cached
    # prefix, so their logits are computed alike (a cold and a warm run can differ numerically).
    client.chat.completions.create(**{**request, "max_tokens": 1})
    full = client.chat.completions.create(**request)
    with client.chat.completions.stream(**request) as stream:
        streamed = stream.get_final_completion()
    full_calls = full.choices[0].message.tool_calls or []
    streamed_calls = streamed.choices[0].message.tool_calls or []
    assert full_calls, "the forced reply has a call"
    assert [(c.function.name, c.function.arguments) for c in streamed_calls] == [
        (c.function.name, c.function.arguments) for c in full_calls
    ]
    assert streamed.choices[0].finish_reason == full.choices[0].finish_reason == "tool_calls"


def test_a_tool_call_round_trip_ends_in_an_answer(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="gemma",
        messages=WEATHER_QUESTION,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,  # one call: a second one could run out of tokens
        max_tokens=64,
        seed=1,
    )
    message = first.choices[0].message
    [call] = message.tool_calls or []
    assert call.function.name == "get_weather"
    history = [
        *WEATHER_QUESTION,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21, "sky": "sunny"}'},
    ]
    # tool_choice "none": this turn must be an answer, whatever the small model would prefer.
    final = client.chat.completions.create(
        model="gemma", messages=history, tools=TOOLS, tool_choice="none", max_tokens=48, seed=1
    )
    answer = final.choices[0]
    assert answer.message.content and answer.message.content.strip()
    assert not answer.message.tool_calls
    assert answer.finish_reason in ("stop", "length")


def test_native_generate_follows_a_json_schema(server: RunningServer) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}
    r = httpx.post(
        server.url + "/generate",
        json={
            "prompt": "A person:",
            "max_tokens": 64,
            "seed": 3,
            "response_format": response_format,
        },
        timeout=300,
    )
    assert r.status_code == 200, r.text
    assert r.json()["finish_reason"] == "stop"
    assert validate_instance(PERSON, json.loads(r.json()["text"])) == []
