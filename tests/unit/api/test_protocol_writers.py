"""The Responses, Anthropic and Ollama writers over hand-made run events, read back by each
client library's own stream accumulator: thinking, text and tool calls land where each protocol
puts them, and the streamed answer equals the whole one built from the same events."""

from __future__ import annotations

import json
from typing import Any

import ollama
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gemma_service.api.anthropic_writers import AnthropicStreamWriter, message_body
from gemma_service.api.ollama_writers import OllamaStreamWriter, RunClock, whole_body
from gemma_service.api.responses_bodies import ResponseFrame, output_items, run_status
from gemma_service.api.responses_protocol import ResponsesRequest
from gemma_service.api.responses_writer import ResponsesStreamWriter
from gemma_service.chat.events import (
    ChoiceEnd,
    ChoiceResult,
    ReasoningDelta,
    ResultCollector,
    RunEvent,
    RunInfo,
    TextDelta,
    ToolCallDelta,
)
from gemma_service.engine.protocol import Usage
from gemma_service.errors import RequestTimeoutError
from gemma_service.sse import iter_sse

THINKING = [ReasoningDelta(0, "The user asks "), ReasoningDelta(0, "about Paris.")]
TEXT = [TextDelta(0, "Let me "), TextDelta(0, "check.")]
CALL = [
    ToolCallDelta(0, 0, "", id="call_abc", name="get_weather"),
    ToolCallDelta(0, 0, '{"city": '),
    ToolCallDelta(0, 0, '"Paris"}'),
]
USAGE = Usage(prompt_tokens=11, completion_tokens=9, cached_tokens=3)
FULL = [*THINKING, *TEXT, *CALL, ChoiceEnd(0, "tool_calls", USAGE)]
FAILED = [*TEXT, ChoiceEnd(0, "timeout", USAGE, RequestTimeoutError("took too long"))]


def info() -> RunInfo:
    return RunInfo(request_id="r1", model="gemma-test", n=1, prompt_tokens=11, prompt_text="")


def whole(events: list[RunEvent]) -> ChoiceResult:
    collector = ResultCollector(1, forces_tool_call=False)
    for event in events:
        collector.add(event)
    return collector.result().choices[0]


def written(writer: Any, events: list[RunEvent]) -> bytes:
    out = writer.start()
    for event in events:
        out += writer.write(event)
        if isinstance(event, ChoiceEnd) and event.error is not None:
            return b"".join(out)
    return b"".join(out + writer.finish())


def sse_payloads(data: bytes) -> list[tuple[str, Any]]:
    return [(e.event, json.loads(e.data)) for e in iter_sse(data.decode().split("\n"))]


def test_responses_stream_reads_back_as_the_whole_response() -> None:
    frame = ResponseFrame(info(), ResponsesRequest(input="Weather in Paris?"))
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    payloads = sse_payloads(written(ResponsesStreamWriter(frame), FULL))
    for name, payload in payloads:
        assert name == payload["type"]
        state.handle_event(adapter.validate_python(payload))  # the SDK's own checks
    assert [p["sequence_number"] for _, p in payloads] == list(range(len(payloads)))
    streamed = payloads[-1][1]["response"]
    assert payloads[-1][0] == "response.completed"
    choice = whole(FULL)
    body = frame.body(run_status(choice.finish_reason), output_items(choice), choice.usage)
    Response.model_validate(body)

    def strip_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in item.items() if k != "id"} for item in items]

    assert strip_ids(streamed["output"]) == strip_ids(body["output"])
    reasoning, message, call = streamed["output"]
    assert reasoning["content"][0]["text"] == "The user asks about Paris."
    assert message["content"][0]["text"] == "Let me check."
    assert (call["call_id"], call["arguments"]) == ("call_abc", '{"city": "Paris"}')
    assert streamed["usage"] == body["usage"] and body["usage"]["input_tokens"] == 11


def test_responses_stream_failure_is_an_error_then_response_failed() -> None:
    frame = ResponseFrame(info(), ResponsesRequest(input="hi"))
    payloads = sse_payloads(written(ResponsesStreamWriter(frame), FAILED))
    (_, error), (_, failed) = payloads[-2:]
    assert error["type"] == "error" and error["code"] == "request_timeout"
    assert failed["type"] == "response.failed"
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["message"] == "took too long"


def test_anthropic_stream_accumulates_to_the_whole_message() -> None:
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for name, payload in sse_payloads(written(AnthropicStreamWriter(info(), []), FULL)):
        assert name == payload["type"]
        if name != "ping":
            snapshot = accumulate_event(
                event=payload, current_snapshot=snapshot, json_bufs=json_bufs
            )
    body = message_body(info(), whole(FULL), [])
    Message.model_validate(body)
    streamed = snapshot.to_dict()
    assert streamed["content"] == body["content"]
    assert [block["type"] for block in body["content"]] == ["thinking", "text", "tool_use"]
    assert body["content"][0]["thinking"] == "The user asks about Paris."
    assert body["content"][2]["input"] == {"city": "Paris"}
    assert streamed["stop_reason"] == body["stop_reason"] == "tool_use"
    assert streamed["usage"]["output_tokens"] == body["usage"]["output_tokens"] == 9
    # Anthropic counts cached prompt tokens apart.
    assert body["usage"]["input_tokens"] == 8 and body["usage"]["cache_read_input_tokens"] == 3
    assert streamed["usage"]["input_tokens"] == 8


@pytest.mark.parametrize(
    ("stops", "reason", "sequence"),
    [(["END"], "stop_sequence", "END"), ([], "end_turn", None)],
)
def test_anthropic_reports_only_the_clients_stop_sequences(
    stops: list[str], reason: str, sequence: str | None
) -> None:
    end = ChoiceEnd(0, "stop", USAGE, stop_string="END")
    body = message_body(info(), whole([*TEXT, end]), stops)
    assert (body["stop_reason"], body["stop_sequence"]) == (reason, sequence)


def test_anthropic_stream_failure_is_an_error_event() -> None:
    name, payload = sse_payloads(written(AnthropicStreamWriter(info(), []), FAILED))[-1]
    assert name == "error"
    assert payload == {
        "type": "error",
        "error": {"type": "timeout_error", "message": "took too long"},
    }


@pytest.mark.parametrize("endpoint", ["chat", "generate"])
def test_ollama_stream_lines_join_to_the_whole_answer(endpoint: Any) -> None:
    writer = OllamaStreamWriter(endpoint, "gemma3", info(), {})
    lines = [json.loads(line) for line in written(writer, FULL).decode().splitlines()]
    kind = ollama.ChatResponse if endpoint == "chat" else ollama.GenerateResponse
    parsed = [kind.model_validate(line) for line in lines]
    body = whole_body(endpoint, "gemma3", whole(FULL), RunClock(info()), {})
    kind.model_validate(body)
    assert [p.done for p in parsed] == [False] * (len(parsed) - 1) + [True]
    if endpoint == "chat":
        messages = [p.message for p in parsed]  # type: ignore[attr-defined]
        assert "".join(m.content or "" for m in messages) == body["message"]["content"]
        assert "".join(m.thinking or "" for m in messages) == body["message"]["thinking"]
        calls = [c for m in messages for c in m.tool_calls or []]
        assert [c.function.arguments for c in calls] == [{"city": "Paris"}]
        assert body["message"]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    else:
        assert "".join(p.response or "" for p in parsed) == body["response"] == "Let me check."
        assert "".join(p.thinking or "" for p in parsed) == body["thinking"]
    final = lines[-1]
    assert final["done_reason"] == body["done_reason"] == "stop"
    assert final["eval_count"] == 9 and final["prompt_eval_count"] == 11
    assert final["total_duration"] >= final["prompt_eval_duration"] + final["eval_duration"]


def test_ollama_stream_failure_is_an_error_line() -> None:
    lines = written(OllamaStreamWriter("chat", "m", info(), {}), FAILED).decode().splitlines()
    assert json.loads(lines[-1]) == {"error": "took too long"}
