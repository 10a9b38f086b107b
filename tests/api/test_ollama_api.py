"""Ollama's API over the fake engine: /api/chat and /api/generate (NDJSON and whole), options,
format, tools, the model routes, and Ollama's error shape."""

from __future__ import annotations

import json
from typing import Any

import ollama
import pytest
from fastapi.testclient import TestClient

from .conftest import MakeClient, ScriptedModel
from .test_structured_api import RecordingBackend

HI = [{"role": "user", "content": "Hello"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CALL_TEXT = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def lines(client: TestClient, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with client.stream("POST", path, json=body) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in resp.iter_lines() if line]


def test_chat_answers_with_ollamas_shape_and_timings(client: TestClient) -> None:
    body = client.post("/api/chat", json={"model": "gemma3", "messages": HI, "stream": False})
    reply = ollama.ChatResponse.model_validate(body.json())
    assert reply.model == "gemma3"  # the name asked for, as Ollama echoes it
    assert reply.message.role == "assistant"
    assert (reply.message.content or "").startswith("Hello from gemma-fake")
    assert reply.done and reply.done_reason == "stop"
    assert reply.eval_count and reply.prompt_eval_count
    assert reply.total_duration and reply.eval_duration and reply.prompt_eval_duration
    assert reply.total_duration >= reply.prompt_eval_duration + reply.eval_duration


def test_chat_streams_ndjson_by_default_equal_to_the_whole_answer(client: TestClient) -> None:
    body = {"model": "gemma3", "messages": HI, "options": {"seed": 5, "temperature": 0.7}}
    whole = client.post("/api/chat", json={**body, "stream": False}).json()
    parts = lines(client, "/api/chat", body)
    assert all(not p["done"] for p in parts[:-1]) and parts[-1]["done"]
    assert "".join(p["message"]["content"] for p in parts) == whole["message"]["content"]
    assert parts[-1]["eval_count"] == whole["eval_count"]
    assert parts[-1]["done_reason"] == whole["done_reason"]


def test_generate_templated_raw_and_load(make_client: MakeClient) -> None:
    backend = RecordingBackend()
    client = make_client(backend)
    templated = client.post(
        "/api/generate",
        json={"model": "m", "prompt": "Hi", "system": "Be brief.", "stream": False},
    ).json()
    assert templated["response"] and templated["done"]
    raw = lines(client, "/api/generate", {"model": "m", "prompt": "Once upon", "raw": True})
    assert "".join(p["response"] for p in raw) and raw[-1]["done_reason"] in ("stop", "length")
    load = client.post("/api/generate", json={"model": "m"}).json()
    assert load["done"] and load["done_reason"] == "load" and load["response"] == ""
    assert client.post("/api/chat", json={"model": "m"}).json()["done_reason"] == "load"
    unload = client.post("/api/generate", json={"model": "m", "keep_alive": 0}).json()
    assert unload["done_reason"] == "unload"


def test_options_reach_sampling(make_client: MakeClient) -> None:
    backend = RecordingBackend()
    client = make_client(backend)
    options = {
        "num_predict": 6,
        "temperature": 0.3,
        "top_k": 20,
        "top_p": 0.9,
        "min_p": 0.05,
        "repeat_penalty": 1.2,
        "seed": 9,
        "stop": ["\n\n"],
        "num_ctx": 2048,
        "num_gpu": 99,  # load-time options are accepted and changed nothing
    }
    reply = client.post(
        "/api/chat", json={"model": "m", "messages": HI, "options": options, "stream": False}
    ).json()
    assert reply["eval_count"] == 6 and reply["done_reason"] == "length"
    sampling = backend.sampling[-1]
    assert (sampling.temperature, sampling.top_k, sampling.top_p) == (0.3, 20, 0.9)
    assert (sampling.min_p, sampling.repetition_penalty, sampling.seed) == (0.05, 1.2, 9)
    assert "\n\n" in sampling.stop


def test_format_json_and_a_schema_become_grammars(make_client: MakeClient) -> None:
    backend = RecordingBackend()
    client = make_client(backend)
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    for fmt in ("json", schema):
        body = {"model": "m", "messages": HI, "format": fmt, "stream": False}
        assert client.post("/api/chat", json=body).status_code == 200
        assert backend.sampling[-1].grammar is not None
    body = {"model": "m", "messages": HI, "format": "", "stream": False}
    client.post("/api/chat", json=body)
    assert backend.sampling[-1].grammar is None


def test_tool_calls_come_whole_with_object_arguments(
    client: TestClient, scripted: ScriptedModel
) -> None:
    scripted.say(CALL_TEXT)
    body = {"model": "m", "messages": HI, "tools": [WEATHER]}
    whole = client.post("/api/chat", json={**body, "stream": False}).json()
    [call] = whole["message"]["tool_calls"]
    assert call["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}
    streamed = [
        c for p in lines(client, "/api/chat", body) for c in p["message"].get("tool_calls", [])
    ]
    assert [c["function"]["arguments"] for c in streamed] == [{"city": "Paris"}]
    scripted.say("Sunny.")
    turns = [
        *HI,
        {"role": "assistant", "content": "", "tool_calls": [{"function": call["function"]}]},
        {"role": "tool", "content": "sunny, 24C", "tool_name": "get_weather"},
    ]
    after = client.post(
        "/api/chat", json={"model": "m", "messages": turns, "tools": [WEATHER], "stream": False}
    ).json()
    assert after["message"]["content"] == "Sunny."
    assert "sunny, 24C" in scripted.prompts[-1]


def test_model_routes(client: TestClient) -> None:
    [model] = ollama.ListResponse.model_validate(client.get("/api/tags").json()).models
    assert model.model == "gemma-fake" and model.details is not None
    show = client.post("/api/show", json={"model": "gemma-fake:latest"})
    assert ollama.ShowResponse.model_validate(show.json()).capabilities == ["completion", "tools"]
    [loaded] = ollama.ProcessResponse.model_validate(client.get("/api/ps").json()).models
    assert loaded.context_length == 4096
    assert client.get("/api/version").json()["version"]
    assert client.head("/").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "words"),
    [
        ("/api/chat", {"messages": HI}, "model"),
        ("/api/chat", {"model": "m", "messages": [{"role": "robot"}]}, "role"),
        ("/api/chat", {"model": "m", "messages": HI, "options": {"num_ctx": 10**6}}, "num_ctx"),
        ("/api/chat", {"model": "m", "messages": HI, "options": {"mirostat": 2}}, "mirostat"),
        ("/api/chat", {"model": "m", "messages": HI, "options": {"num_predict": 0}}, "num_predict"),
        (
            "/api/chat",
            {"model": "m", "messages": HI, "options": {"temperature": -1}},
            "temperature",
        ),
        ("/api/chat", {"model": "m", "messages": HI, "format": "yaml"}, "format"),
        ("/api/chat", {"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "tool"),
        (
            "/api/chat",
            {"model": "m", "messages": [{**HI[0], "images": ["bm90IGFuIGltYWdl"]}]},
            "PNG",
        ),
        ("/api/generate", {"model": "m", "prompt": "x", "context": [1, 2]}, "context"),
        ("/api/generate", {"model": "m", "prompt": "x", "suffix": "y"}, "suffix"),
        ("/api/embed", {"model": "m", "input": []}, "input"),
        ("/api/embed", {"model": "m", "input": "hello"}, "embedding model"),
    ],
)
def test_bad_input_is_an_ollama_400(client: TestClient, path: str, body: Any, words: str) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    error = r.json()
    assert list(error) == ["error"] and isinstance(error["error"], str)
    assert words in error["error"], error


def test_images_reach_the_pipeline_which_a_text_model_refuses(client: TestClient) -> None:
    png = (  # a 1x1 PNG, base64 as Ollama clients send images
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
        "RU5ErkJggg=="
    )
    message = {"role": "user", "content": "What is this?", "images": [png]}
    r = client.post("/api/chat", json={"model": "m", "messages": [message], "stream": False})
    assert r.status_code == 400 and "text only" in r.json()["error"]
    generate = {"model": "m", "prompt": "What is this?", "images": [png], "stream": False}
    r = client.post("/api/generate", json=generate)
    assert r.status_code == 400 and "text only" in r.json()["error"]


def test_an_unknown_model_to_show_is_an_ollama_404(client: TestClient) -> None:
    r = client.post("/api/show", json={"model": "llama9"})
    assert r.status_code == 404 and r.json() == {"error": "model 'llama9' not found"}
    assert client.get("/api/nothing").json() == {"error": "Not Found"}
