"""Structured output and tool calling over the fake engine: response shapes, stream deltas,
history checks, and which grammar reaches the engine. (The fake model ignores grammars; what
the real model writes under them is tested in tests/integration/test_structured_output.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gemma_service.engine import fake_backend
from gemma_service.engine.fake_backend import FakeBackend
from gemma_service.engine.protocol import SamplingParams

from .conftest import MakeClient
from .test_openai_api import sse_events

CHAT = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 32}},
            "required": ["city"],
        },
    },
}
CALL_TEXT = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 10}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


class RecordingBackend(FakeBackend):
    """The fake backend, remembering the sampling parameters of each request."""

    def __init__(self) -> None:
        super().__init__()
        self.sampling: list[SamplingParams] = []

    def add_sampler(self, request_id: str, params: SamplingParams) -> None:
        self.sampling.append(params)
        super().add_sampler(request_id, params)


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def client(make_client: MakeClient, backend: RecordingBackend) -> TestClient:
    return make_client(backend)


@pytest.fixture
def prompts() -> list[str]:
    return []


@pytest.fixture
def model_says(monkeypatch: pytest.MonkeyPatch, prompts: list[str]) -> Callable[[str], None]:
    """Script the fake model's reply (the prompts it sees are recorded in ``prompts``)."""

    def script(reply: str) -> None:
        def fake_reply(prompt_tokens: list[int], seed: int | None) -> str:
            prompts.append(bytes(t for t in prompt_tokens if t < 256).decode())
            return reply

        monkeypatch.setattr(fake_backend, "fake_reply", fake_reply)

    return script


def test_a_tool_call_reply_has_openai_tool_calls(
    client: TestClient, model_says: Callable[[str], None], prompts: list[str]
) -> None:
    model_says(CALL_TEXT)
    r = client.post(CHAT, json={"messages": QUESTION, "tools": [WEATHER]})
    assert r.status_code == 200, r.text
    ChatCompletion.model_validate(r.json())  # the SDK's own model accepts the body
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_") and len(call["id"]) == 29
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert "You can call these functions" in prompts[0]  # the model was told about the tool


def test_text_around_a_call_stays_content(
    client: TestClient, model_says: Callable[[str], None]
) -> None:
    model_says(f"Let me look that up.\n{CALL_TEXT}")
    choice = client.post(CHAT, json={"messages": QUESTION, "tools": [WEATHER]}).json()["choices"][0]
    assert choice["message"]["content"] == "Let me look that up."
    assert len(choice["message"]["tool_calls"]) == 1
    assert choice["finish_reason"] == "tool_calls"


def test_a_plain_answer_with_tools_has_no_tool_calls(
    client: TestClient, model_says: Callable[[str], None]
) -> None:
    model_says("It is sunny.")
    choice = client.post(CHAT, json={"messages": QUESTION, "tools": [WEATHER]}).json()["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "It is sunny."}
    assert choice["finish_reason"] == "stop"


def test_streamed_tool_call_deltas_assemble_to_the_call(
    client: TestClient, model_says: Callable[[str], None]
) -> None:
    model_says(CALL_TEXT)
    body = {"messages": QUESTION, "tools": [WEATHER], "stream": True}
    events = sse_events(client, CHAT, body)
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(e) for e in events[:-1]]
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert deltas[0]["role"] == "assistant"
    call_deltas = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert call_deltas[0]["index"] == 0 and call_deltas[0]["type"] == "function"
    assert call_deltas[0]["id"].startswith("call_")
    assert call_deltas[0]["function"] == {"name": "get_weather", "arguments": ""}
    assert "id" not in call_deltas[1] and call_deltas[1]["index"] == 0
    assert not any(d.get("content") for d in deltas)  # the call text is not sent as content
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    state = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(chunk)
    [call] = state.get_final_completion().choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_a_tool_result_round_trip_reaches_the_model(
    client: TestClient, model_says: Callable[[str], None], prompts: list[str]
) -> None:
    model_says("It is 21 degrees in Paris.")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    messages = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    ]
    r = client.post(CHAT, json={"messages": messages, "tools": [WEATHER]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "It is 21 degrees in Paris."
    assert CALL_TEXT.replace(" ", "") in prompts[0].replace(" ", "")
    assert '<tool_response name="get_weather">\n{"temp_c": 21}\n</tool_response>' in prompts[0]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (  # a result answering no call
            [*QUESTION, {"role": "tool", "tool_call_id": "call_9", "content": "{}"}],
            "messages[1].tool_call_id",
        ),
        (  # a call left unanswered before the next user message
            [
                *QUESTION,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "user", "content": "and?"},
            ],
            "messages[1]",
        ),
        (  # arguments that are not a JSON object
            [
                *QUESTION,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "{}"},
            ],
            "messages[1].tool_calls[0].function.arguments",
        ),
    ],
)
def test_a_malformed_tool_history_is_400_naming_the_field(
    client: TestClient, messages: list[dict[str, Any]], param: str
) -> None:
    r = client.post(CHAT, json={"messages": messages, "tools": [WEATHER]})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param
    assert param in r.json()["error"]["message"]


def test_an_unsupported_schema_keyword_is_400_naming_it(client: TestClient) -> None:
    schema = {"type": "object", "properties": {"zip": {"type": "string", "pattern": "^[0-9]+$"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    for path, body in [
        (CHAT, {"messages": QUESTION, "response_format": response_format}),
        ("/v1/completions", {"prompt": "Address:", "response_format": response_format}),
        ("/generate", {"prompt": "Address:", "response_format": response_format}),
    ]:
        r = client.post(path, json=body)
        assert r.status_code == 400, path
        error = r.json()["error"]
        assert error["param"] == "response_format"
        assert "'pattern'" in error["message"] and "#/properties/zip/pattern" in error["message"]


def test_a_forced_call_with_bad_parameters_is_400_naming_the_tool(client: TestClient) -> None:
    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "not": {}}},
    }
    r = client.post(CHAT, json={"messages": QUESTION, "tools": [tool], "tool_choice": "required"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "tools[0].function.parameters"
    assert "'not'" in r.json()["error"]["message"]


def test_tool_choice_naming_an_unknown_function_is_400(client: TestClient) -> None:
    choice = {"type": "function", "function": {"name": "nope"}}
    r = client.post(CHAT, json={"messages": QUESTION, "tools": [WEATHER], "tool_choice": choice})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "tool_choice.function.name"


def test_json_schema_grammar_reaches_the_engine_on_every_endpoint(
    client: TestClient, backend: RecordingBackend
) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}
    for path, body in [
        (CHAT, {"messages": QUESTION}),
        ("/v1/completions", {"prompt": "A person:"}),
        ("/generate", {"prompt": "A person:"}),
    ]:
        r = client.post(path, json={**body, "response_format": response_format, "max_tokens": 4})
        assert r.status_code == 200, (path, r.text)
    grammars = [s.grammar for s in backend.sampling]
    assert len(grammars) == 3 and all(g and "root ::=" in g for g in grammars)
    assert len(set(grammars)) == 1
    client.post("/generate", json={"prompt": "A person:", "max_tokens": 4})
    assert backend.sampling[-1].grammar is None  # no response_format: no grammar


def test_forced_tool_call_wins_over_response_format(
    client: TestClient, backend: RecordingBackend, model_says: Callable[[str], None]
) -> None:
    model_says(CALL_TEXT)
    response_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}}
    body = {"messages": QUESTION, "tools": [WEATHER], "response_format": response_format}
    r = client.post(CHAT, json={**body, "tool_choice": "required"})
    assert r.json()["choices"][0]["finish_reason"] == "tool_calls"
    grammar = backend.sampling[-1].grammar
    assert grammar is not None and "get_weather" in grammar
    # auto + response_format: the format's grammar, which leaves no room for tool calls
    client.post(CHAT, json=body)
    grammar = backend.sampling[-1].grammar
    assert grammar is not None and "get_weather" not in grammar


def test_auto_mode_stops_before_an_invented_tool_response(
    client: TestClient, backend: RecordingBackend, model_says: Callable[[str], None]
) -> None:
    model_says(f'{CALL_TEXT}\n<tool_response name="get_weather">\n{{"temp_c": 99}}')
    choice = client.post(CHAT, json={"messages": QUESTION, "tools": [WEATHER]}).json()["choices"][0]
    assert choice["message"]["content"] is None
    assert len(choice["message"]["tool_calls"]) == 1
    assert "<tool_response" in backend.sampling[-1].stop


def test_a_completions_grammar_reaches_the_engine_and_a_bad_one_is_a_400(
    client: TestClient, backend: RecordingBackend
) -> None:
    grammar = 'root ::= "yes" | "no"'
    r = client.post("/v1/completions", json={"prompt": "Q:", "grammar": grammar, "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert backend.sampling[-1].grammar == grammar
    r = client.post("/v1/completions", json={"prompt": "Q:", "grammar": 'x ::= "a"'})
    assert r.status_code == 400 and r.json()["error"]["message"]
    both = {"grammar": grammar, "response_format": {"type": "json_object"}}
    r = client.post("/v1/completions", json={"prompt": "Q:", **both})
    assert r.status_code == 400 and r.json()["error"]["param"] == "grammar"
