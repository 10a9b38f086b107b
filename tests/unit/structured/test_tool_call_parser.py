"""Tool calls out of model text: whole replies, and streams that assemble to the same reply."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from gemma_service.api.openai_writers import tool_call_delta_body
from gemma_service.chat import events
from gemma_service.chat.structured import (
    ContentDelta,
    StreamDelta,
    ToolCallDelta,
    ToolCallStreamParser,
    parse_tool_calls,
)

NAMES = ["get_weather", "get_time"]
WEATHER = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
TIME = '<tool_call>{"name": "get_time", "arguments": {"timezone": "UTC"}}</tool_call>'


def numbered_ids() -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"call_{next(counter)}"


def parse(text: str, *, parallel: bool = True) -> tuple[str, list[tuple[str, Any]]]:
    content, calls = parse_tool_calls(text, NAMES, parallel=parallel, new_call_id=numbered_ids())
    return content, [(c.name, json.loads(c.arguments)) for c in calls]


def test_plain_text_is_content() -> None:
    assert parse("  The weather is fine.\n") == ("The weather is fine.", [])


def test_a_call_alone_has_no_content() -> None:
    assert parse(WEATHER) == ("", [("get_weather", {"city": "Paris"})])


def test_text_before_a_call_is_content() -> None:
    assert parse(f"Let me check.\n{WEATHER}") == (
        "Let me check.",
        [("get_weather", {"city": "Paris"})],
    )


def test_parallel_calls_keep_their_order() -> None:
    _, calls = parse(f"{WEATHER}\n{TIME}")
    assert [name for name, _ in calls] == ["get_weather", "get_time"]


def test_without_parallel_calls_the_reply_ends_at_the_first_call() -> None:
    assert parse(f"{WEATHER}\n{TIME}\nmore text", parallel=False) == (
        "",
        [("get_weather", {"city": "Paris"})],
    )


@pytest.mark.parametrize(
    "block",
    [
        '<tool_call>{"name": "launch_missiles", "arguments": {}}</tool_call>',  # unknown
        '<tool_call>["get_weather"]</tool_call>',
        '<tool_call>{"name": "get_weather", "arguments": [1]}</tool_call>',
    ],
)
def test_unusable_call_blocks_stay_content(block: str) -> None:
    assert parse(f"Hmm {block}") == (f"Hmm {block}", [])


def test_a_call_whose_arguments_break_off_is_a_truncated_call() -> None:
    # Once a call has its name its arguments stream out; markup never becomes content after.
    text = 'Hmm <tool_call>{"name": "get_weather", "arguments": {"city": </tool_call> ok'
    parser = ToolCallStreamParser(NAMES, new_call_id=numbered_ids())
    deltas = parser.feed(text) + parser.finish()
    assert deltas == [
        ContentDelta("Hmm"),
        ToolCallDelta(0, "", id="call_0", name="get_weather"),
        ToolCallDelta(0, '{"city":'),
        ContentDelta("  ok"),  # the space before the call, then the text after it
    ]
    assert not parser.truncated  # the model ended the call itself


def test_output_that_ends_inside_a_call_gives_the_call_so_far() -> None:
    for cut, arguments in [
        ('{"name": "get_time", "arguments": {"timezone": "Europe/Par', '{"timezone":"Europe/Par'),
        ('{"name": "get_time", "argu', ""),
    ]:
        parser = ToolCallStreamParser(NAMES, new_call_id=numbered_ids())
        deltas = parser.feed("<tool_call>" + cut) + parser.finish()
        assert [c.name for c in parser.calls] == ["get_time"] and parser.truncated
        assert "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta)) == arguments
        assert not [d for d in deltas if isinstance(d, ContentDelta)]
    # Cut before the name: nothing to call, and no markup shown either.
    assert parse_tool_calls('Sure. <tool_call>{"name": "get_') == ("Sure.", [])


def test_tolerates_what_small_models_write() -> None:
    unclosed = '<tool_call>{"name": "get_time", "arguments": {"timezone": "UTC"}}'
    assert parse(unclosed)[1] == [("get_time", {"timezone": "UTC"})]
    fenced = '<tool_call>\n```json\n{"name": "get_time", "parameters": {"timezone": "CET"}}\n```\n'
    assert parse(fenced + "</tool_call>")[1] == [("get_time", {"timezone": "CET"})]
    as_string = '<tool_call>{"name": "get_time", "arguments": "{\\"timezone\\": \\"UTC\\"}"}'
    assert parse(as_string + "</tool_call>")[1] == [("get_time", {"timezone": "UTC"})]


def test_arguments_are_compact_json() -> None:
    _, calls = parse_tool_calls('<tool_call>{"name": "get_time", "arguments": {"a": [1, 2]}}')
    assert calls[0].arguments == '{"a":[1,2]}'


def test_marker_prefix_is_held_back_until_it_is_known() -> None:
    parser = ToolCallStreamParser(NAMES, new_call_id=numbered_ids())
    assert parser.feed("Checking <tool") == [ContentDelta("Checking")]
    assert parser.feed("box> done") == [ContentDelta(" <toolbox> done")]
    assert parser.feed(" <tool_ca") == []
    deltas = parser.feed('ll>{"name": "get_time", "arguments": {}}</tool_call>')
    assert deltas == [
        ToolCallDelta(0, "", id="call_0", name="get_time"),
        ToolCallDelta(0, "{}"),
    ]
    assert parser.finish() == []


def openai_entry(delta: ToolCallDelta) -> dict[str, Any]:
    """The ``delta.tool_calls[]`` entry the chat completions writer makes of a parser delta."""
    return tool_call_delta_body(
        events.ToolCallDelta(0, delta.index, delta.arguments, delta.id, delta.name)
    )


def test_deltas_have_the_openai_chunk_shape() -> None:
    first, rest = ToolCallDelta(0, "", id="call_0", name="f"), ToolCallDelta(0, '{"a":1}')
    assert openai_entry(first) == {
        "index": 0,
        "id": "call_0",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    assert openai_entry(rest) == {"index": 0, "function": {"arguments": '{"a":1}'}}


def stream(text: str, cuts: list[int], *, parallel: bool) -> list[StreamDelta]:
    parser = ToolCallStreamParser(NAMES, parallel=parallel, new_call_id=numbered_ids())
    bounds = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    deltas: list[StreamDelta] = []
    for start, end in itertools.pairwise(bounds):
        deltas += parser.feed(text[start:end])
    return deltas + parser.finish()


def assemble_like_the_sdk(deltas: list[StreamDelta]) -> dict[str, Any]:
    """The final message the openai SDK's ChatCompletionStreamState builds from our chunks."""
    state = ChatCompletionStreamState()
    for delta in deltas:
        if isinstance(delta, ContentDelta):
            body: dict[str, Any] = {"content": delta.text}
        else:
            body = {"tool_calls": [openai_entry(delta)]}
        state.handle_chunk(_chunk(body, None))
    state.handle_chunk(_chunk({}, "stop"))
    message = state.get_final_completion().choices[0].message
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]
    return {"content": message.content or "", "tool_calls": calls}


def _chunk(delta: dict[str, Any], finish_reason: str | None) -> ChatCompletionChunk:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [choice],
        }
    )


pieces = st.sampled_from(
    [
        WEATHER,
        TIME,
        "Let me check. ",
        "\n",
        "  ",
        "<tool",
        "<tool_call>",
        "</tool_call>",
        "<tool_call>{broken}</tool_call>",
        "ok ✓",
        '{"name": "get_time"}',
        "<",
    ]
)


@settings(deadline=None)  # the machine is shared: timing says nothing here
@given(
    text=st.lists(pieces, max_size=8).map("".join),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    parallel=st.booleans(),
)
def test_any_chunking_streams_the_same_reply_as_the_whole_text(
    text: str, cuts: list[int], parallel: bool
) -> None:
    content, calls = parse_tool_calls(text, NAMES, parallel=parallel, new_call_id=numbered_ids())
    whole = {"content": content, "tool_calls": [(c.id, c.name, c.arguments) for c in calls]}
    assert assemble_like_the_sdk(stream(text, cuts, parallel=parallel)) == whole
