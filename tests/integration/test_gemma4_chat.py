"""A real Gemma 4 (the tiny random one, with the real vocabulary and template) served by the
real server, through the openai SDK: forced calls in Gemma 4's own syntax, streamed and whole
alike, a call cut by max_tokens, the thinking budget, and what the server says of the model.

The model's weights are random, so what it "means" is noise; what the grammar, the parser and
the template make of its tokens is what these tests look at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion
from tests.tiny_models import TinyModel
from tests.tiny_models.fixtures import tiny_gemma4_text  # noqa: F401
from tests.tiny_models.gguf_convert import read_gguf_keys

from gemma_service.chat.structured import validate_instance

from .conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 16},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit"],
}
NOTE = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "description": "The time now."}},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": {"type": "object", "properties": {}}}
QUESTION: list[Any] = [
    {"role": "system", "content": "Use the tools."},
    {"role": "user", "content": "What is the weather in Paris?"},
]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_gemma4_text: TinyModel,  # noqa: F811
) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("gemma4")
    model = str(tiny_gemma4_text.model_path)
    args = ("--model", model, "--ctx-size", "2048", "--threads", "1", "--parallel", "2")
    srv = start_server(tmp, *args)
    yield srv
    stop_server(srv)


@pytest.fixture
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def whole_and_streamed(
    client: openai.OpenAI, **request: Any
) -> tuple[ChatCompletion, ChatCompletion]:
    """The same seeded request whole and streamed. The prefix cache is warmed first, so both
    compared requests compute their logits alike (a cold and a warm run can differ)."""
    client.chat.completions.create(model="gemma", **{**request, "max_tokens": 1})
    whole = client.chat.completions.create(model="gemma", **request)
    with client.chat.completions.stream(model="gemma", **request) as stream:
        streamed = stream.get_final_completion()
    return whole, streamed


def calls_of(reply: ChatCompletion) -> list[tuple[str, str]]:
    return [
        (c.function.name, c.function.arguments) for c in reply.choices[0].message.tool_calls or []
    ]


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_a_forced_call_is_valid_and_streams_as_it_is_whole(
    client: openai.OpenAI, tool_choice: Any
) -> None:
    whole, streamed = whole_and_streamed(
        client,
        messages=QUESTION,
        tools=TOOLS,
        tool_choice=tool_choice,
        parallel_tool_calls=False,
        max_tokens=120,
        seed=11,
        temperature=1.0,
    )
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [(name, arguments)] = calls_of(whole)
    assert name in SCHEMAS if tool_choice == "required" else name == "get_weather"
    assert validate_instance(SCHEMAS[name], json.loads(arguments)) == []
    assert calls_of(streamed) == calls_of(whole)
    assert streamed.choices[0].finish_reason == "tool_calls"
    assert streamed.choices[0].message.content is None


def test_a_forced_string_argument_cannot_run_away(client: openai.OpenAI) -> None:
    note = [{"type": "function", "function": {"name": "note", "parameters": NOTE}}]
    reply = client.chat.completions.create(
        model="gemma",
        messages=[{"role": "user", "content": "Take a note."}],
        tools=note,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=400,
        seed=5,
    )
    choice = reply.choices[0]
    [(name, arguments)] = calls_of(reply)
    assert name == "note" and choice.message.content is None
    if choice.finish_reason == "tool_calls":  # the string was closed within the bound
        assert len(json.loads(arguments)["text"]) <= 256
    else:  # or the model ran out of tokens first: the call so far, never text
        assert choice.finish_reason == "length" and arguments.startswith('{"text":"')


def test_a_call_cut_by_max_tokens_comes_back_as_a_truncated_call(client: openai.OpenAI) -> None:
    # 40 tokens reach well into the note's text, which may run to 256 characters.
    request: dict[str, Any] = dict(
        model="gemma",
        messages=[{"role": "user", "content": "Take a note."}],
        tools=[{"type": "function", "function": {"name": "note", "parameters": NOTE}}],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=40,
        seed=3,
    )
    client.chat.completions.create(**{**request, "max_tokens": 1})  # warm, as above
    whole = client.chat.completions.create(**request)
    choice = whole.choices[0]
    assert choice.finish_reason == "length"
    assert not choice.message.content  # no <|tool_call> markup, no text
    [(name, arguments)] = calls_of(whole)
    assert name == "note" and arguments.startswith('{"text":"') and len(arguments) > 12
    # The SDK's stream helper refuses a cut reply, so the chunks are put together here.
    calls: dict[int, list[str]] = {}
    content, finish = "", None
    for chunk in client.chat.completions.create(**request, stream=True):
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for part in delta.tool_calls or []:
            call = calls.setdefault(part.index, ["", ""])
            call[0] += (part.function and part.function.name) or ""
            call[1] += (part.function and part.function.arguments) or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "length" and not content
    assert [tuple(calls[i]) for i in sorted(calls)] == [(name, arguments)]


def test_a_thinking_budget_ends_the_thought_and_the_answer_starts(
    client: openai.OpenAI,
    tiny_gemma4_text: TinyModel,  # noqa: F811
) -> None:
    channel_open = token_id(tiny_gemma4_text, "<|channel>")
    # A strong push towards opening the channel makes the random model think at once, and
    # keep writing <|channel> into its thought until the budget closes it.
    reply = client.chat.completions.create(
        model="gemma",
        messages=[{"role": "user", "content": "Think first."}],
        reasoning_effort="high",
        extra_body={"max_thinking_tokens": 6},
        logit_bias={str(channel_open): 100},
        max_tokens=16,
        logprobs=True,
        seed=1,
    )
    choice = reply.choices[0]
    tokens = [t.token for t in (choice.logprobs.content if choice.logprobs else None) or []]
    assert tokens[0] == "<|channel>"
    assert tokens.index("<channel|>") == 1 + 6  # the opening, 6 tokens of thought, the close
    assert "<|channel>" not in tokens[7:]  # and no second thought after the answer starts
    assert choice.message.content and "<channel|>" not in choice.message.content
    assert choice.finish_reason == "length"


def test_the_server_reports_a_gemma4_with_native_tools_and_thinking(
    client: openai.OpenAI, server: RunningServer
) -> None:
    model = client.models.list().data[0]
    meta = client.models.retrieve(model.id).model_extra or {}
    expected = {
        "family": "gemma4",
        "chat_template": "gguf",
        "tools": "native",
        "tool_call_syntax": "gemma4",
        "thinking": True,
    }
    assert {k: meta["meta"][k] for k in expected} == expected
    health = httpx.get(server.url + "/healthz").json()
    assert {k: health["chat_format"][k] for k in expected} == expected


def token_id(model: TinyModel, text: str) -> int:
    """The id of a token of the model's vocabulary."""
    for key, tokens, _, _ in read_gguf_keys(model.model_path, "tokenizer.ggml.tokens"):
        if key == "tokenizer.ggml.tokens":
            return int(tokens.index(text.encode()))
    raise AssertionError("the GGUF has no vocabulary")
