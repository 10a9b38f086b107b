"""Gemma 4's thinking channel read out of its output: the thought apart from the answer, whole
and streamed, with tool calls after it. Outputs as llama.cpp's Gemma 4 tests record them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gemma_service.chat.events import ChoiceResult, ReasoningDelta, ResultCollector, TextDelta
from gemma_service.chat.prompt import Message
from gemma_service.chat.reply import ReplyReader
from gemma_service.chat.structured import GEMMA4_CALLS, ToolChoice, parse_tools
from gemma_service.chat.structured_chat import StructuredChat, structure_chat
from gemma_service.chat.thought_channel import ThoughtChannelReader
from gemma_service.engine.protocol import FinishReason, TokenEvent, Usage

ANSWER = "Hello, world!\nWhat's up?"
CALL = '<|tool_call>call:get_time{city:<|"|>Paris<|"|>}<tool_call|>'
# (output, thought, answer)
RECORDED = [
    (ANSWER, "", ANSWER),
    (f"<|channel>thought\nI'm\nthinking<channel|>{ANSWER}", "I'm\nthinking", ANSWER),
    (f"<|channel>thought<channel|>{ANSWER}", "", ANSWER),  # a budget of 0
    (f"<|channel>thought\n<channel|>{ANSWER}<channel|>", "", ANSWER),
    (f"<|channel>thought\n<channel|>{ANSWER}<|channel>thought\n<channel|>", "", ANSWER),
    (f"<|channel>thought\n<channel|>{ANSWER}<|channel>thought\n<channel|><channel|>", "", ANSWER),
    (f"<|channel><|channel>thought\n<channel|>{ANSWER}", "", ANSWER),
    ("<|channel>thought\nStill thinking when max_tokens", "Still thinking when max_tokens", ""),
    (f"<|channel>thought\n  Spaced out.\n\n<channel|>\n\n{ANSWER}", "Spaced out.", ANSWER),
]
TOOLS = parse_tools(
    [
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
)
ASK = [Message("user", "What time is it in Paris?")]


def split(text: str, cuts: list[int]) -> tuple[str, str]:
    reader = ThoughtChannelReader()
    parts = []
    for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
        parts += reader.feed(text[start:end])
    parts += reader.finish()
    thought = "".join(t for kind, t in parts if kind == "thought")
    answer = "".join(t for kind, t in parts if kind == "answer")
    return thought, answer


@pytest.mark.parametrize(("text", "thought", "answer"), RECORDED)
def test_recorded_outputs_whole_and_cut_at_every_position(
    text: str, thought: str, answer: str
) -> None:
    assert split(text, []) == (thought, answer)
    for cut in range(len(text) + 1):
        assert split(text, [cut]) == (thought, answer), cut
    assert split(text, list(range(1, len(text)))) == (thought, answer)


def plan(**kwargs: object) -> StructuredChat:
    return structure_chat(
        ASK,
        tools=TOOLS,
        syntax=GEMMA4_CALLS,
        native_tools=True,
        thought_channel=True,
        **kwargs,  # type: ignore[arg-type]
    )


def reply(plan: StructuredChat, text: str, finish: FinishReason = "stop") -> ChoiceResult:
    """The reply read from one character per engine event, and whole: they must agree."""
    results = []
    for pieces in ([*text, ""], [text]):
        reader = ReplyReader(0, plan)
        collector = ResultCollector(1, forces_tool_call=plan.forces_tool_call)
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            event = TokenEvent(piece, [], finish_reason=finish if last else None, usage=Usage(1, 1))
            for out in reader.feed(event):
                collector.add(out)
        results.append(collector.result().choices[0])
    streamed, whole = results
    assert replace(streamed, tool_calls=[]) == replace(whole, tool_calls=[])
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.name, c.arguments) for c in whole.tool_calls
    ]
    return whole


def test_a_thought_then_a_call() -> None:
    got = reply(plan(), f"<|channel>thought\nI'm\nthinking<channel|>{CALL}")
    assert got.reasoning == "I'm\nthinking" and got.content is None
    assert [(c.name, c.arguments) for c in got.tool_calls] == [("get_time", '{"city":"Paris"}')]
    assert got.finish_reason == "tool_calls"


def test_a_thought_then_an_answer_without_tools() -> None:
    bare = structure_chat(ASK, syntax=GEMMA4_CALLS, native_tools=True, thought_channel=True)
    got = reply(bare, f"<|channel>thought\nHmm.<channel|>{ANSWER}")
    assert (got.reasoning, got.content) == ("Hmm.", ANSWER)


def test_a_thought_cut_off_by_max_tokens_is_never_the_answer() -> None:
    got = reply(plan(tool_choice=ToolChoice("required")), "<|channel>thought\nLet me", "length")
    assert got.reasoning == "Let me" and not got.content and got.tool_calls == []
    assert got.finish_reason == "length"


def test_reasoning_goes_out_as_reasoning_deltas() -> None:
    reader = ReplyReader(0, plan())
    events = reader.feed(TokenEvent("<|channel>thought\nOne", [], usage=None))
    events += reader.feed(TokenEvent(" two<channel|>Hi", [], usage=None))
    assert [e for e in events if isinstance(e, ReasoningDelta)] == [
        ReasoningDelta(0, "One"),
        ReasoningDelta(0, " two"),
    ]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hi"]


def test_models_without_a_channel_keep_the_text_as_it_is() -> None:
    gemma3 = structure_chat(ASK)
    got = reply(gemma3, f"<|channel>thought\nx<channel|>{ANSWER}")
    assert got.reasoning is None and got.content == f"<|channel>thought\nx<channel|>{ANSWER}"
