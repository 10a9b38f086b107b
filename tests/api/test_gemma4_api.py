"""Gemma 4 over the fake engine: what the OpenAI and native APIs make of its thinking and its
native tool calls, what /v1/models and /healthz say of the model, and what reaches the engine
(the template's thinking switch, the grammars). What the real template renders and what a
real Gemma 4 writes are tested with the tiny Gemma 4 (tests/unit/chat, tests/integration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
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
# Enough of Gemma 4's template to be told apart as one (tools declared in the system turn,
# calls written as <|tool_call>call:..., a thinking switch and channel).
TEMPLATE = (
    "{{ bos_token }}{% if enable_thinking or tools or messages[0].role == 'system' %}"
    "<|turn>system\n{% if enable_thinking %}<|think|>\n{% endif %}"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}{% endif %}"
    "{% for t in tools or [] %}<|tool>declaration:{{ t.function.name }}<tool|>{% endfor %}"
    "<turn|>\n{% endif %}"
    "{% for m in messages %}{% if m.role != 'system' %}"
    "<|turn>{{ 'model' if m.role == 'assistant' else m.role }}\n{{ m.content or '' }}"
    "{% for c in m.tool_calls or [] %}<|tool_call>call:{{ c.function.name }}{}<tool_call|>"
    "{% endfor %}<turn|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|turn>model\n"
    "{% if not enable_thinking %}<|channel>thought\n<channel|>{% endif %}{% endif %}"
)
MARKERS = ["<|turn>", "<turn|>", "<|think|>", "<|channel>", "<channel|>", "<|tool_call>"]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]
Q = '<|"|>'
CALL = f"<|tool_call>call:get_weather{{city:{Q}Paris{Q},days:2}}<tool_call|>"
THOUGHT = "<|channel>thought\nThe user wants Paris.<channel|>"


class Gemma4Backend(FakeBackend):
    """The fake backend with a Gemma 4 template and markers, remembering what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.info = replace(self.info, chat_template=TEMPLATE, architecture="gemma4")
        self.sampling: list[SamplingParams] = []
        self.prompts: list[str] = []
        self._marker_ids = {m: 300 + i for i, m in enumerate(MARKERS)}
        self.info.n_vocab = 300 + len(MARKERS)

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        out: list[int] = []
        while text:
            mark = next((m for m in self._marker_ids if text.startswith(m)), None)
            if parse_special and mark is not None:
                out.append(self._marker_ids[mark])
                text = text[len(mark) :]
            else:
                cut = min((i for m in self._marker_ids if (i := text.find(m, 1)) > 0), default=0)
                piece = text[:cut] if cut and parse_special else text
                out += super().tokenize(piece, add_special=False, parse_special=parse_special)
                text = text[len(piece) :]
        return ([fake_backend.BOS] if add_special else []) + out

    def token_bytes(self, token: int) -> bytes:
        names = {i: m for m, i in self._marker_ids.items()}
        return names[token].encode() if token in names else super().token_bytes(token)

    def add_sampler(self, request_id: str, params: SamplingParams) -> None:
        self.sampling.append(params)
        super().add_sampler(request_id, params)


@pytest.fixture
def backend() -> Gemma4Backend:
    return Gemma4Backend()


@pytest.fixture
def client(make_client: MakeClient, backend: Gemma4Backend) -> TestClient:
    return make_client(backend)


@pytest.fixture
def model_says(monkeypatch: pytest.MonkeyPatch, backend: Gemma4Backend) -> Callable[[str], None]:
    """Script the fake model's reply; the prompts it sees are kept in ``backend.prompts``."""

    def script(reply: str) -> None:
        def fake_reply(prompt_tokens: list[int], seed: int | None) -> str:
            backend.prompts.append(b"".join(backend.token_bytes(t) for t in prompt_tokens).decode())
            return reply

        monkeypatch.setattr(fake_backend, "fake_reply", fake_reply)

    return script


def streamed(client: TestClient, body: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """The message the openai SDK assembles from the stream, and the raw deltas."""
    events = sse_events(client, CHAT, {**body, "stream": True})
    assert events[-1] == "[DONE]"
    state = ChatCompletionStreamState()
    for event in events[:-1]:
        state.handle_chunk(ChatCompletionChunk.model_validate(event))
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    return state.get_final_completion().choices[0], deltas


def test_a_thought_and_a_native_call_whole_and_streamed(
    client: TestClient, model_says: Callable[[str], None], backend: Gemma4Backend
) -> None:
    model_says(THOUGHT + CALL)
    body = {"messages": QUESTION, "tools": [WEATHER], "reasoning_effort": "high"}
    r = client.post(CHAT, json=body)
    assert r.status_code == 200, r.text
    ChatCompletion.model_validate(r.json())
    choice = r.json()["choices"][0]
    message = choice["message"]
    assert message["reasoning_content"] == "The user wants Paris."
    assert message["content"] is None and choice["finish_reason"] == "tool_calls"
    [call] = message["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris", "days": 2}
    # The template declared the tool and turned thinking on; no instructions of ours.
    assert "<|tool>declaration:get_weather<tool|>" in backend.prompts[0]
    assert "<|think|>" in backend.prompts[0] and "You can call" not in backend.prompts[0]

    final, deltas = streamed(client, body)
    assert final.finish_reason == "tool_calls"
    assert final.message.tool_calls[0].function.arguments == call["function"]["arguments"]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == message["reasoning_content"]
    assert not any(d.get("content") for d in deltas)  # no marker, no thought in the answer


def test_thinking_is_off_unless_asked_and_the_thought_never_reaches_the_answer(
    client: TestClient, model_says: Callable[[str], None], backend: Gemma4Backend
) -> None:
    model_says(THOUGHT + "Sunny.")
    message = client.post(CHAT, json={"messages": QUESTION}).json()["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": "Sunny.",
        "reasoning_content": "The user wants Paris.",
    }
    assert backend.prompts[0].endswith("<|turn>model\n<|channel>thought\n<channel|>")
    assert "<|think|>" not in backend.prompts[0]
    for switch in ({"reasoning_effort": "none"}, {"chat_template_kwargs": {"enable_thinking": 0}}):
        client.post(CHAT, json={"messages": QUESTION, "reasoning_effort": "high", **switch})
        assert "<|think|>" not in backend.prompts[-1]
    client.post(CHAT, json={"messages": QUESTION, "chat_template_kwargs": {"enable_thinking": 1}})
    assert "<|think|>" in backend.prompts[-1]


def test_a_thinking_budget_reaches_the_engine_as_a_grammar(
    client: TestClient, model_says: Callable[[str], None], backend: Gemma4Backend
) -> None:
    model_says("Sunny.")
    on = {"messages": QUESTION, "reasoning_effort": "low", "max_tokens": 200}
    client.post(CHAT, json={**on, "max_thinking_tokens": 20})
    client.post(CHAT, json=on)  # three quarters of max_tokens
    client.post(CHAT, json={"messages": QUESTION, "max_tokens": 200})  # thinking off
    explicit, default, off = (p.grammar for p in backend.sampling)
    close = backend.tokenize("<channel|>", add_special=False, parse_special=True)[0]
    assert explicit is not None and f"!<[{close}]>" in explicit and "{0,20}" in explicit
    assert default is not None and "thought-block{0,0}" not in default and "{0,150}" in default
    assert off is None


def test_forced_calls_are_forced_in_gemma4_syntax(
    client: TestClient, model_says: Callable[[str], None], backend: Gemma4Backend
) -> None:
    model_says(CALL)
    body = {"messages": QUESTION, "tools": [WEATHER], "tool_choice": "required"}
    choice = client.post(CHAT, json=body).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    grammar = backend.sampling[0].grammar
    assert grammar is not None and '"<|tool_call>"' in grammar and '"call:get_weather"' in grammar


def test_a_template_kwarg_cannot_replace_the_messages(client: TestClient) -> None:
    body = {"messages": QUESTION, "chat_template_kwargs": {"messages": []}}
    r = client.post(CHAT, json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "chat_template_kwargs.messages"


def test_models_and_healthz_report_the_chat_format(client: TestClient) -> None:
    card = client.get("/v1/models/gemma-fake").json()
    expected = {
        "family": "gemma4",
        "family_name": "Gemma 4",
        "chat_template": "gguf",
        "tools": "native",
        "tool_call_syntax": "gemma4",
        "thinking": True,
    }
    assert {k: card["meta"][k] for k in expected} == expected
    assert client.get("/healthz").json()["chat_format"] == expected


def test_the_native_api_keeps_the_thought_apart(
    client: TestClient, model_says: Callable[[str], None]
) -> None:
    model_says(THOUGHT + "Sunny.")
    body = {"messages": QUESTION, "think": True}
    r = client.post("/chat", json=body).json()
    assert (r["response"], r["reasoning"]) == ("Sunny.", "The user wants Paris.")
    events = sse_events(client, "/chat/stream", body)
    assert "".join(e["token"] for e in events) == "Sunny."
    assert "".join(e.get("reasoning", "") for e in events) == "The user wants Paris."


def test_a_model_without_a_template_reports_the_builtin_format(make_client: MakeClient) -> None:
    client = make_client(FakeBackend())
    meta = client.get("/v1/models/gemma-fake").json()["meta"]
    assert meta["chat_template"] == "builtin" and meta["tools"] == "prompted"
    assert meta["thinking"] is False and meta["tool_call_syntax"] == "json"


def test_a_conversation_keeps_the_answer_not_the_thought(
    client: TestClient, model_says: Callable[[str], None], backend: Gemma4Backend
) -> None:
    model_says(THOUGHT + "Sunny.")
    body = {"messages": QUESTION, "conversation_id": "trip", "reasoning_effort": "high"}
    client.post(CHAT, json=body)
    client.post(CHAT, json={**body, "messages": [{"role": "user", "content": "And Rome?"}]})
    history = backend.prompts[-1]
    assert "<|turn>model\nSunny.<turn|>" in history
    assert "The user wants Paris." not in history
