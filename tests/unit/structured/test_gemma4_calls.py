"""Gemma 4's tool calls read out of its output, whole and streamed.

The outputs are Gemma 4's call syntax as its chat template writes calls and as llama.cpp's own
Gemma 4 parser tests record them (``tests/test-chat.cpp`` in the pinned llama.cpp), plus
nested values, several calls, text around them, and cuts at every position.
"""

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
    GEMMA4_CALLS,
    ContentDelta,
    StreamDelta,
    ToolCallDelta,
    ToolCallStreamParser,
    parse_tool_calls,
)
from gemma_service.chat.structured.gemma4_arguments import Gemma4ArgumentsReader
from gemma_service.chat.structured.value_syntax import gemma4_value_text

NAMES = [
    "get_time",
    "get_weather",
    "empty_args",
    "special_function",
    "amount",
    "toggle",
    "set_nullable",
    "todo_list",
    "set_config",
]
Q = '<|"|>'  # Gemma 4's string mark


def call(name: str, arguments: str) -> str:
    return f"<|tool_call>call:{name}{arguments}<tool_call|>"


# (model output, content, [(name, arguments)]) — from llama.cpp's Gemma 4 parser tests.
RECORDED: list[tuple[str, str, list[tuple[str, Any]]]] = [
    ("Hello, world!", "Hello, world!", []),
    (call("get_time", f"{{city:{Q}London{Q}}}"), "", [("get_time", {"city": "London"})]),
    (
        call("get_time", f"{{city:{Q}San Francisco{Q}}}"),
        "",
        [("get_time", {"city": "San Francisco"})],
    ),
    (call("empty_args", "{}"), "", [("empty_args", {})]),
    (
        "Hello, world!\nWhat's up?" + call("get_time", f"{{city:{Q}Paris{Q}}}"),
        "Hello, world!\nWhat's up?",
        [("get_time", {"city": "Paris"})],
    ),
    (
        call("get_time", f"{{city:{Q}London{Q}}}") + call("get_weather", f"{{city:{Q}Paris{Q}}}"),
        "",
        [("get_time", {"city": "London"}), ("get_weather", {"city": "Paris"})],
    ),
    (call("special_function", "{arg1:42}"), "", [("special_function", {"arg1": 42})]),
    (call("special_function", "{arg1:-7}"), "", [("special_function", {"arg1": -7})]),
    (call("amount", "{orig:3.14}"), "", [("amount", {"orig": 3.14})]),
    (call("toggle", "{enabled:true}"), "", [("toggle", {"enabled": True})]),
    (call("toggle", "{enabled:false}"), "", [("toggle", {"enabled": False})]),
    (call("set_nullable", "{value:null}"), "", [("set_nullable", {"value": None})]),
    (
        call("todo_list", f"{{todos:[{Q}buy milk{Q},{Q}walk dog{Q}]}}"),
        "",
        [("todo_list", {"todos": ["buy milk", "walk dog"]})],
    ),
    (
        call("set_config", f"{{config:{{theme:{Q}dark{Q},count:3}}}}"),
        "",
        [("set_config", {"config": {"theme": "dark", "count": 3}})],
    ),
    (call("todo_list", "{todos:[]}"), "", [("todo_list", {"todos": []})]),
    (call("set_config", "{config:{}}"), "", [("set_config", {"config": {}})]),
    (call("amount", "{orig:1.5e10}"), "", [("amount", {"orig": 1.5e10})]),
]
NESTED = {
    "config": {
        "theme": "dark {mode}, with: colons",
        "limits": {"max": [1, 2.5, {"deep": 'say "hi"\nthen <tool_call|> {'}], "none": None},
        "tags": [],
        "flags": [True, False],
    },
    "query": "a,b:c}",
}
NESTED_CALL = call("set_config", gemma4_value_text(NESTED))
AROUND = (
    "Let me look both up.\n" + call("get_time", f"{{city:{Q}Tokyo{Q}}}") + NESTED_CALL + "\nDone."
)


def numbered_ids() -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"call_{next(counter)}"


def parse(text: str, *, parallel: bool = True) -> tuple[str, list[tuple[str, Any]]]:
    content, calls = parse_tool_calls(
        text, NAMES, parallel=parallel, new_call_id=numbered_ids(), syntax=GEMMA4_CALLS
    )
    return content, [(c.name, json.loads(c.arguments)) for c in calls]


def stream(text: str, cuts: list[int], *, parallel: bool = True) -> list[StreamDelta]:
    parser = ToolCallStreamParser(
        NAMES, parallel=parallel, new_call_id=numbered_ids(), syntax=GEMMA4_CALLS
    )
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
            entry = events.ToolCallDelta(0, delta.index, delta.arguments, delta.id, delta.name)
            body = {"tool_calls": [tool_call_delta_body(entry)]}
        state.handle_chunk(_chunk(body, None))
    state.handle_chunk(_chunk({}, "stop"))
    message = state.get_final_completion().choices[0].message
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or []]
    return {"content": message.content or "", "tool_calls": calls}


def _chunk(delta: dict[str, Any], finish_reason: str | None) -> ChatCompletionChunk:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    return ChatCompletionChunk.model_validate({**body, "choices": [choice]})


def whole(text: str, *, parallel: bool = True) -> dict[str, Any]:
    content, calls = parse_tool_calls(
        text, NAMES, parallel=parallel, new_call_id=numbered_ids(), syntax=GEMMA4_CALLS
    )
    return {"content": content, "tool_calls": [(c.id, c.name, c.arguments) for c in calls]}


@pytest.mark.parametrize(("text", "content", "calls"), RECORDED)
def test_recorded_outputs(text: str, content: str, calls: list[tuple[str, Any]]) -> None:
    assert parse(text) == (content, calls)


def test_nested_values_several_calls_and_text_around_them() -> None:
    assert parse(AROUND) == (
        "Let me look both up.\n\nDone.",
        [("get_time", {"city": "Tokyo"}), ("set_config", NESTED)],
    )


@pytest.mark.parametrize("text", [AROUND, *(r[0] for r in RECORDED)])
def test_a_stream_cut_at_any_one_position_assembles_to_the_whole_reply(text: str) -> None:
    expected = whole(text)
    for cut in range(len(text) + 1):
        assert assemble_like_the_sdk(stream(text, [cut])) == expected, cut
    assert assemble_like_the_sdk(stream(text, list(range(len(text))))) == expected


def test_arguments_stream_while_the_model_writes_them() -> None:
    parser = ToolCallStreamParser(NAMES, new_call_id=numbered_ids(), syntax=GEMMA4_CALLS)
    assert parser.feed("Checking <|tool_") == [ContentDelta("Checking")]
    assert parser.feed("call>call:get_wea") == []  # the name is not whole yet
    assert parser.feed(f"ther{{city:{Q}San") == [
        ToolCallDelta(0, "", id="call_0", name="get_weather"),
        ToolCallDelta(0, '{"city":"San'),
    ]
    assert parser.feed(" Fran") == [ToolCallDelta(0, " Fran")]
    assert parser.feed("cisco<|") == [ToolCallDelta(0, "cisco")]  # may be the string mark
    assert parser.feed('"|>,days:1') == [ToolCallDelta(0, '","days":')]  # 1 may grow
    assert parser.feed("4}<tool_call|>") == [ToolCallDelta(0, "14}")]
    assert parser.finish() == []


def inside_a_mark(text: str, position: int) -> bool:
    """Whether ``position`` falls inside one of Gemma 4's marks (single tokens: never cut)."""
    for mark in ("<|tool_call>", "<tool_call|>", Q):
        start = text.find(mark)
        while start >= 0:
            if start < position < start + len(mark):
                return True
            start = text.find(mark, start + 1)
    return False


def test_output_ending_inside_a_call_gives_the_call_so_far_and_never_markup() -> None:
    text = "Sure." + NESTED_CALL
    [(_, _, complete)] = whole(NESTED_CALL)["tool_calls"]  # keys as written: sorted
    for end in range(len("Sure."), len(text)):
        if inside_a_mark(text, end):
            continue
        parser = ToolCallStreamParser(NAMES, new_call_id=numbered_ids(), syntax=GEMMA4_CALLS)
        deltas = parser.feed(text[:end]) + parser.finish()
        content = "".join(d.text for d in deltas if isinstance(d, ContentDelta))
        arguments = "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta))
        assert content == "Sure.", end
        if parser.calls:  # once the name is known, it is a call: its arguments a prefix
            assert [c.name for c in parser.calls] == ["set_config"]
            assert complete.startswith(arguments), (end, arguments)
            assert parser.truncated == (arguments != complete)
        else:
            assert end < len("Sure.<|tool_call>call:set_config"), end


def test_an_empty_call_opened_twice_is_one_call() -> None:
    text = "<|tool_call>" + call("get_time", f"{{city:{Q}Oslo{Q}}}")
    assert parse(text) == ("", [("get_time", {"city": "Oslo"})])
    for cut in range(len(text) + 1):
        assert assemble_like_the_sdk(stream(text, [cut])) == whole(text)


def test_a_function_not_offered_stays_content_as_written() -> None:
    block = call("launch_missiles", "{}")
    assert parse(f"No. {block}") == (f"No. {block}", [])


def test_without_parallel_calls_the_reply_ends_at_the_first_call() -> None:
    assert parse(AROUND, parallel=False) == (
        "Let me look both up.",
        [("get_time", {"city": "Tokyo"})],
    )


@pytest.mark.parametrize(
    ("arguments", "value"),
    [
        ("{a:None,b:nil,c:True}", {"a": None, "b": None, "c": True}),  # what vLLM accepts
        ("{a:Paris}", {"a": "Paris"}),  # a bare word is a string
        (f"{{{Q}key with space{Q}:1}}", {"key with space": 1}),  # a quoted key
        ("{ a : 1 , b : [ 1 , 2 ] }", {"a": 1, "b": [1, 2]}),  # whitespace between tokens
        ("{a,b:1}", {"a": None, "b": 1}),  # a key without a value
    ],
)
def test_arguments_are_read_leniently_into_valid_json(arguments: str, value: Any) -> None:
    reader = Gemma4ArgumentsReader("<tool_call|>")
    text = reader.feed(arguments)
    assert reader.status == "complete"
    assert json.loads(text) == value


def test_the_value_writer_and_the_reader_agree() -> None:
    reader = Gemma4ArgumentsReader("<tool_call|>")
    assert json.loads(reader.feed(gemma4_value_text(NESTED))) == NESTED


pieces = st.sampled_from(
    [
        call("get_time", f"{{city:{Q}Oslo{Q}}}"),
        NESTED_CALL,
        call("launch_missiles", "{}"),
        "Let me check. ",
        "\n",
        "<|tool_",
        "<|tool_call>",
        "<tool_call|>",
        "call:get_time{",
        Q,
        "ok ✓ {a:1}",
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
    expected = whole(text, parallel=parallel)
    assert assemble_like_the_sdk(stream(text, cuts, parallel=parallel)) == expected
