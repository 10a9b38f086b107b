"""A chat request's tools and output format applied to its prompt, its sampling, and to the
reply as it is read back (the same reader serves streamed and whole answers)."""

from __future__ import annotations

from dataclasses import replace

from gemma_service.chat.events import ChoiceResult, ResultCollector, ToolCallDelta
from gemma_service.chat.job import OutputFormat
from gemma_service.chat.prompt import Message
from gemma_service.chat.reply import ReplyReader
from gemma_service.chat.structured import ToolChoice, parse_tools
from gemma_service.chat.structured_chat import (
    FORCED_CALL_MAX_STRING,
    StructuredChat,
    structure_chat,
)
from gemma_service.engine.protocol import FinishReason, SamplingParams, TokenEvent, Usage

TOOLS = parse_tools(
    [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
)
CALL = '<tool_call>{"name": "lookup", "arguments": {"q": "tides"}}</tool_call>'
ASK = [Message("system", "Be brief."), Message("user", "When is high tide?")]


def reply(plan: StructuredChat, text: str, finish: FinishReason) -> ChoiceResult:
    """What a client gets when the model wrote ``text`` (one piece at a time, then whole)."""
    pieces = [*text, ""]  # the worst chunking: one character per engine event
    reader = ReplyReader(0, plan)
    collector = ResultCollector(1, forces_tool_call=plan.forces_tool_call)
    for k, piece in enumerate(pieces):
        last = k == len(pieces) - 1
        event = TokenEvent(piece, [], finish_reason=finish if last else None, usage=Usage(1, 1))
        for out in reader.feed(event):
            collector.add(out)
    [choice] = collector.result().choices
    whole = ReplyReader(0, plan)
    collector = ResultCollector(1, forces_tool_call=plan.forces_tool_call)
    for out in whole.feed(TokenEvent(text, [], finish_reason=finish, usage=Usage(1, 1))):
        collector.add(out)
    whole_choice = collector.result().choices[0]
    # Chunking changes nothing (call ids are fresh for each reply).
    assert replace(whole_choice, tool_calls=[]) == replace(choice, tool_calls=[])
    assert [(c.name, c.arguments) for c in whole_choice.tool_calls] == [
        (c.name, c.arguments) for c in choice.tool_calls
    ]
    return choice


def test_tool_instructions_join_the_existing_system_message() -> None:
    plan = structure_chat(ASK, tools=TOOLS)
    # One system turn: chat templates such as Gemma's accept only one, and only first.
    assert [m.role for m in plan.messages] == ["system", "user"]
    assert plan.messages[0].content.startswith("Be brief.\n\nYou can call these functions:")
    assert '"name": "lookup"' in plan.messages[0].content
    assert plan.messages[1] == ASK[1]


def test_without_tools_or_format_the_request_is_unchanged() -> None:
    plan = structure_chat(ASK)
    caller_sampling = SamplingParams(stop=["END"])
    sampling = plan.constrain(caller_sampling)
    assert plan.messages == ASK
    assert sampling.grammar is None and sampling.stop == ["END"]
    assert reply(plan, CALL, "stop").tool_calls == []  # tool_choice none: text stays text
    assert reply(plan, CALL, "stop").content == CALL


def test_auto_mode_stops_at_an_invented_result_and_after_a_single_call() -> None:
    caller_sampling = SamplingParams()
    parallel = structure_chat(ASK, tools=TOOLS).constrain(caller_sampling)
    assert parallel.stop == ["<tool_response"] and parallel.grammar is None
    assert caller_sampling.stop == []  # the caller's parameters are not changed
    single = structure_chat(ASK, tools=TOOLS, parallel=False).constrain(SamplingParams())
    assert single.stop == ["<tool_response", "</tool_call>"]
    # That stop cuts the closing tag off; the call is still read.
    got = reply(structure_chat(ASK, tools=TOOLS, parallel=False), CALL[:-12], "stop")
    assert [c.name for c in got.tool_calls] == ["lookup"]
    assert got.content is None and got.finish_reason == "tool_calls"


def test_a_call_cut_off_by_max_tokens_comes_back_truncated_never_as_content() -> None:
    plan = structure_chat(ASK, tools=TOOLS, tool_choice=ToolChoice("required"))
    # The 270M model looping inside an argument string until max_tokens (issue 19).
    text = f'{CALL}\n<tool_call>{{"name": "lookup", "arguments": {{"q": "tides (UTC) (UTC) (U'
    got = reply(plan, text, "length")
    assert got.content is None and got.finish_reason == "length"
    assert [(c.name, c.arguments) for c in got.tool_calls] == [
        ("lookup", '{"q":"tides"}'),
        ("lookup", '{"q":"tides (UTC) (UTC) (U'),
    ]
    reader = ReplyReader(0, plan)
    events = reader.feed(TokenEvent(text, [], finish_reason="length", usage=Usage(1, 1)))
    assert all(isinstance(e, ToolCallDelta) for e in events[:-1])
    # A complete call and max_tokens right after it: the calls are done.
    assert reply(plan, CALL, "length").finish_reason == "tool_calls"


def test_forced_call_strings_are_bounded_where_the_schema_is_not() -> None:
    plan = structure_chat(ASK, tools=TOOLS, tool_choice=ToolChoice("required"))
    assert plan.grammar is not None
    assert f"json-char{{0,{FORCED_CALL_MAX_STRING}}}" in plan.grammar


def test_auto_mode_keeps_text_beside_a_call() -> None:
    got = reply(structure_chat(ASK, tools=TOOLS), f"Checking.\n{CALL}", "stop")
    assert got.content == "Checking." and len(got.tool_calls) == 1


def test_auto_with_an_output_format_makes_no_calls() -> None:
    plan = structure_chat(ASK, tools=TOOLS, output=OutputFormat("json_object"))
    assert plan.messages == ASK  # the tools are not offered
    assert plan.constrain(SamplingParams()).grammar is not None
    assert reply(plan, CALL, "stop").tool_calls == []
