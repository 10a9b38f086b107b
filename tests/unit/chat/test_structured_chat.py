"""A chat request's tools and response_format applied to its prompt, sampling and reply."""

from __future__ import annotations

from gemma_service.chat.prompt import Message
from gemma_service.chat.structured import ContentDelta, ToolCallDelta
from gemma_service.chat.structured_chat import structure_chat
from gemma_service.engine.protocol import SamplingParams

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}
CALL = '<tool_call>{"name": "lookup", "arguments": {"q": "tides"}}</tool_call>'
ASK = [Message("system", "Be brief."), Message("user", "When is high tide?")]


def test_tool_instructions_join_the_existing_system_message() -> None:
    plan = structure_chat(ASK, tools=[TOOL])
    # One system turn: chat templates such as Gemma's accept only one, and only first.
    assert [m.role for m in plan.messages] == ["system", "user"]
    assert plan.messages[0].content.startswith("Be brief.\n\nYou can call these functions:")
    assert '"name": "lookup"' in plan.messages[0].content
    assert plan.messages[1] == ASK[1]


def test_without_tools_or_format_the_request_is_unchanged() -> None:
    plan = structure_chat(ASK)
    sampling = plan.constrain(SamplingParams(stop=["END"]))
    assert plan.messages == ASK
    assert sampling.grammar is None and sampling.stop == ["END"]
    assert plan.reply(CALL, "stop").tool_calls == []  # tool_choice none: text stays text


def test_auto_mode_stops_at_an_invented_result_and_after_a_single_call() -> None:
    parallel = structure_chat(ASK, tools=[TOOL]).constrain(SamplingParams())
    assert parallel.stop == ["<tool_response"] and parallel.grammar is None
    single = structure_chat(ASK, tools=[TOOL], parallel=False).constrain(SamplingParams())
    assert single.stop == ["<tool_response", "</tool_call>"]
    # That stop cuts the closing tag off; the call is still read.
    reply = structure_chat(ASK, tools=[TOOL], parallel=False).reply(CALL[:-12], "stop")
    assert [c.name for c in reply.tool_calls] == ["lookup"]
    assert reply.content is None and reply.finish_reason == "tool_calls"


def test_a_forced_call_drops_a_call_cut_off_by_max_tokens() -> None:
    plan = structure_chat(ASK, tools=[TOOL], tool_choice="required")
    text = f'{CALL}\n<tool_call>{{"name": "lookup", "argu'
    reply = plan.reply(text, "length")
    assert len(reply.tool_calls) == 1 and reply.content is None
    assert reply.finish_reason == "tool_calls"
    parser = plan.stream_parser()
    deltas = parser.feed(text) + plan.finish_stream(parser)
    assert all(isinstance(d, ToolCallDelta) for d in deltas)


def test_auto_mode_keeps_text_beside_a_call() -> None:
    plan = structure_chat(ASK, tools=[TOOL])
    reply = plan.reply(f"Checking.\n{CALL}", "stop")
    assert reply.content == "Checking." and len(reply.tool_calls) == 1
    parser = plan.stream_parser()
    deltas = parser.feed(f"Checking.\n{CALL}") + plan.finish_stream(parser)
    assert deltas[0] == ContentDelta("Checking.")


def test_auto_with_response_format_makes_no_calls() -> None:
    response_format = {"type": "json_object"}
    plan = structure_chat(ASK, tools=[TOOL], response_format=response_format)
    assert plan.messages == ASK  # the tools are not offered
    assert plan.constrain(SamplingParams()).grammar is not None
    assert plan.reply(CALL, "stop").tool_calls == []
