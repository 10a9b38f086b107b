"""Conversations with tool calls and results → prompt turns, and the 400s of broken histories
(shape errors are the OpenAI parser's, mismatched calls and results the chat layer's)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gemma_service.api.openai_jobs import openai_messages
from gemma_service.chat.prompt import Message
from gemma_service.chat.structured import messages_to_turns, parse_tool_calls
from gemma_service.errors import InvalidRequestError


def turns(messages: list[dict[str, Any]]) -> list[Message]:
    """OpenAI messages → prompt turns, as the chat completions route takes them."""
    return messages_to_turns(openai_messages(messages))


CALL_1: dict[str, Any] = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
CALL_2: dict[str, Any] = {
    "id": "call_2",
    "type": "function",
    "function": {"name": "get_time", "arguments": '{"timezone":"CET"}'},
}
ROUND_TRIP: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather and time in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL_1, CALL_2]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
    {"role": "assistant", "content": "21 °C and 14:05."},
    {"role": "user", "content": "Thanks"},
]


def test_a_full_round_trip_becomes_alternating_turns() -> None:
    assert turns(ROUND_TRIP) == [
        Message("system", "Be brief."),
        Message("user", "Weather and time in Paris?"),
        Message(
            "assistant",
            '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>\n'
            '<tool_call>{"name": "get_time", "arguments": {"timezone": "CET"}}</tool_call>',
        ),
        Message(
            "user",
            '<tool_response name="get_weather">\n{"temp_c": 21}\n</tool_response>\n'
            '<tool_response name="get_time">\n14:05\n</tool_response>',
        ),
        Message("assistant", "21 °C and 14:05."),
        Message("user", "Thanks"),
    ]


def test_past_calls_are_shown_in_the_format_the_parser_reads() -> None:
    turn = turns(ROUND_TRIP[:5])[2]
    content, calls = parse_tool_calls(turn.content)
    assert content == ""
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_time", '{"timezone":"CET"}'),
    ]


def test_assistant_text_next_to_calls_is_kept() -> None:
    messages = copy.deepcopy(ROUND_TRIP[:4])
    messages[2]["content"] = "Let me look."
    messages[2]["tool_calls"] = [CALL_1]
    assistant = turns(messages)[2]
    assert assistant.content.startswith("Let me look.\n<tool_call>")


def broken(index: int, **changes: Any) -> list[dict[str, Any]]:
    messages = copy.deepcopy(ROUND_TRIP)
    messages[index].update(changes)
    return messages


def call_with(**changes: Any) -> dict[str, Any]:
    call = copy.deepcopy(CALL_1)
    for key, value in changes.items():
        if key in ("name", "arguments"):
            call["function"][key] = value
        else:
            call[key] = value
    return call


@pytest.mark.parametrize(
    ("messages", "param", "words"),
    [
        (broken(3, tool_call_id=None), "messages[3].tool_call_id", "required"),
        (broken(3, tool_call_id="call_9"), "messages[3].tool_call_id", "does not match"),
        (broken(4, tool_call_id="call_1"), "messages[4].tool_call_id", "already has"),
        (ROUND_TRIP[:4], "messages[2]", "'call_2'"),  # call_2 never answered
        (ROUND_TRIP[:4] + ROUND_TRIP[5:], "messages[2]", "missing: 'call_2'"),
        (broken(2, tool_calls=[call_with(id="")]), "messages[2].tool_calls[0].id", "required"),
        (broken(2, tool_calls=[CALL_1, call_with()]), "messages[2].tool_calls[1].id", "earlier"),
        (broken(2, tool_calls=[call_with(type="code")]), "messages[2].tool_calls[0].type", "'f"),
        (
            broken(2, tool_calls=[call_with(name="")]),
            "messages[2].tool_calls[0].function.name",
            "required",
        ),
        (
            broken(2, tool_calls=[call_with(arguments="{city")]),
            "messages[2].tool_calls[0].function.arguments",
            "not valid JSON",
        ),
        (
            broken(2, tool_calls=[call_with(arguments="[1]")]),
            "messages[2].tool_calls[0].function.arguments",
            "JSON object",
        ),
        (
            broken(2, tool_calls=[call_with(arguments={"city": "Paris"})]),
            "messages[2].tool_calls[0].function.arguments",
            "string",
        ),
        (broken(1, role="robot"), "messages[1].role", "'robot'"),
        (
            broken(1, content=[{"type": "file", "file": {"file_id": "f1"}}]),
            "messages[1].content[0]",
            "text only",
        ),
    ],
)
def test_malformed_histories_are_400s_that_say_what_is_wrong(
    messages: list[dict[str, Any]], param: str, words: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        turns(messages)
    assert raised.value.status_code == 400
    assert raised.value.param == param
    assert words in raised.value.message


def test_tool_message_without_a_preceding_call_is_refused() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "tool", "tool_call_id": "call_1", "content": "21"},
    ]
    with pytest.raises(InvalidRequestError) as raised:
        turns(messages)
    assert raised.value.param == "messages[1].tool_call_id"
    assert "does not match any tool call" in raised.value.message


def test_empty_arguments_mean_no_arguments() -> None:
    messages = broken(2, tool_calls=[call_with(arguments="")], content=None)
    messages = messages[:4]
    assert turns(messages)[2].content.endswith('"arguments": {}}</tool_call>')
