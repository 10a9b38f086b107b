"""POST /v1/messages and /v1/messages/count_tokens over the fake engine: the shapes and event
stream the anthropic SDK reads, tool_use round trips, stop sequences, Anthropic's errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from fastapi.testclient import TestClient

from .conftest import MakeClient, ScriptedModel
from .test_structured_api import RecordingBackend

MESSAGES = "/v1/messages"
HI = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CALL_TEXT = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def request(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-any", "max_tokens": 200, "messages": HI, **fields}


def streamed(client: TestClient, body: dict[str, Any]) -> tuple[list[str], Any]:
    """The event names, and the message the SDK's accumulator makes of them."""
    names: list[str] = []
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    with client.stream("POST", MESSAGES, json={**body, "stream": True}) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if line.startswith("event: "):
                names.append(line.removeprefix("event: "))
            elif line.startswith("data: ") and names[-1] != "ping":
                event = json.loads(line.removeprefix("data: "))
                snapshot = accumulate_event(
                    event=event, current_snapshot=snapshot, json_bufs=json_bufs
                )
    return names, snapshot


def test_a_message_has_the_shape_the_sdk_reads(client: TestClient) -> None:
    r = client.post(MESSAGES, json=request(system="Be brief."))
    assert r.status_code == 200, r.text
    message = Message.model_validate(r.json())
    assert message.role == "assistant" and message.id.startswith("msg_")
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("Hello from gemma-fake")
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


def test_max_tokens_is_the_stop_reason_when_it_cuts(client: TestClient) -> None:
    body = client.post(MESSAGES, json=request(max_tokens=4)).json()
    assert body["stop_reason"] == "max_tokens" and body["usage"]["output_tokens"] == 4


def test_a_stop_sequence_is_reported(client: TestClient) -> None:
    body = client.post(MESSAGES, json=request(stop_sequences=["gemma"])).json()
    assert body["content"][0]["text"] == "Hello from "
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "gemma")


def test_the_stream_equals_the_whole_message_for_one_seed(client: TestClient) -> None:
    body = request(seed=11, temperature=0.7)
    whole = client.post(MESSAGES, json=body).json()
    names, message = streamed(client, body)
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert message.content[0].text == whole["content"][0]["text"]
    assert message.stop_reason == whole["stop_reason"]
    assert message.usage.output_tokens == whole["usage"]["output_tokens"]


def test_a_tool_use_round_trip(client: TestClient, scripted: ScriptedModel) -> None:
    scripted.say(CALL_TEXT)
    first = client.post(MESSAGES, json=request(tools=[WEATHER])).json()
    assert first["stop_reason"] == "tool_use"
    [use] = first["content"]
    assert use["type"] == "tool_use" and use["input"] == {"city": "Paris"}
    _, message = streamed(client, request(tools=[WEATHER]))
    assert message.content[0].input == {"city": "Paris"}  # from input_json_delta events
    scripted.say("Sunny.")
    result = {"type": "tool_result", "tool_use_id": use["id"], "content": "sunny, 24C"}
    turns = [*HI, {"role": "assistant", "content": first["content"]}]
    turns.append({"role": "user", "content": [result, {"type": "text", "text": "And?"}]})
    second = client.post(MESSAGES, json=request(tools=[WEATHER], messages=turns)).json()
    assert second["content"] == [{"type": "text", "text": "Sunny."}]
    assert "sunny, 24C" in scripted.prompts[-1] and "And?" in scripted.prompts[-1]


def test_tool_choice_any_and_tool_force_a_call(client: TestClient, scripted: ScriptedModel) -> None:
    scripted.say(CALL_TEXT)
    for choice in ({"type": "any"}, {"type": "tool", "name": "get_weather"}):
        body = client.post(MESSAGES, json=request(tools=[WEATHER], tool_choice=choice)).json()
        assert [block["type"] for block in body["content"]] == ["tool_use"], choice


def test_count_tokens_counts_what_a_message_would_send(client: TestClient) -> None:
    body = {"model": "m", "messages": HI, "system": "Be brief.", "tools": [WEATHER]}
    counted = client.post(f"{MESSAGES}/count_tokens", json=body).json()["input_tokens"]
    usage = client.post(MESSAGES, json={**body, "max_tokens": 4}).json()["usage"]
    assert counted == usage["input_tokens"] + usage["cache_read_input_tokens"]
    bare = client.post(f"{MESSAGES}/count_tokens", json={"model": "m", "messages": HI}).json()
    assert bare["input_tokens"] < counted  # tools and system take room


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "m", "messages": HI}, "max_tokens"),
        (request(temperature=1.5), "temperature"),
        (request(messages=[{"role": "system", "content": "x"}]), "role"),
        (request(messages=[{"role": "user", "content": [{"type": "document"}]}]), "document"),
        (request(tools=[{"type": "web_search_20250305", "name": "web"}]), "not supported"),
        (request(tools=[{"name": "f", "input_schema": {"type": "string"}}]), "input_schema"),
        (request(tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}), "not in tools"),
        (request(tool_choice={"type": "sometimes"}), "tool_choice.type"),
        (request(max_tokens=10**9), "max_tokens"),
        (request(stop_sequences=[""]), "stop"),
        (request(system=[{"type": "image"}]), "system[0]"),
    ],
)
def test_bad_input_is_an_anthropic_400(client: TestClient, body: Any, words: str) -> None:
    r = client.post(MESSAGES, json=body)
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert words in error["error"]["message"], error


def test_tool_results_must_answer_a_tool_use(client: TestClient) -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_x", "content": "42"}
    r = client.post(MESSAGES, json=request(messages=[{"role": "user", "content": [result]}]))
    assert r.status_code == 400 and "does not match" in r.json()["error"]["message"]


def test_an_image_for_a_text_model_is_refused_in_anthropics_shape(client: TestClient) -> None:
    source = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    content = [{"type": "image", "source": source}, {"type": "text", "text": "What is it?"}]
    r = client.post(MESSAGES, json=request(messages=[{"role": "user", "content": content}]))
    assert r.status_code == 400
    assert "text only" in r.json()["error"]["message"]


def test_unknown_paths_and_methods_answer_in_anthropics_shape(client: TestClient) -> None:
    r = client.get(MESSAGES)
    assert r.status_code == 405 and r.json()["type"] == "error"


def test_output_config_format_reaches_the_engine_as_a_grammar(make_client: MakeClient) -> None:
    backend = RecordingBackend()
    client = make_client(backend)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    fmt = {"format": {"type": "json_schema", "schema": schema}}
    assert client.post(MESSAGES, json=request(output_config=fmt)).status_code == 200
    assert backend.sampling[-1].grammar is not None and "ok" in backend.sampling[-1].grammar
    bad = client.post(MESSAGES, json=request(output_config={"format": {"type": "json_schema"}}))
    assert bad.status_code == 400 and bad.json()["type"] == "error"
