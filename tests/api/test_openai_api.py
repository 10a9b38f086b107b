"""The OpenAI-compatible routes over the fake engine: shapes, streaming, limits, errors."""

from __future__ import annotations

import json
import threading
from typing import Any

from fastapi.testclient import TestClient

from gemma_service.engine.fake_backend import FakeBackend

from .conftest import MakeClient

CHAT = "/v1/chat/completions"


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def sse_events(client: TestClient, path: str, body: dict[str, Any]) -> list[Any]:
    events: list[Any] = []
    with client.stream("POST", path, json=body) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_chat_completion_shape_and_usage(client: TestClient) -> None:
    r = client.post(CHAT, json={"messages": user("hi"), "temperature": 0})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("Hello from gemma-fake")
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == len(choice["message"]["content"].encode())


def test_stream_deltas_equal_the_non_streamed_text(client: TestClient) -> None:
    body = {"messages": user("same"), "seed": 3, "temperature": 0.7}
    full = client.post(CHAT, json=body).json()["choices"][0]["message"]["content"]
    events = sse_events(
        client, CHAT, {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == full
    assert "\ufffd" not in text  # multi-byte characters arrive whole
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0


def test_max_tokens_gives_finish_reason_length(client: TestClient) -> None:
    r = client.post(CHAT, json={"messages": user("hi"), "max_tokens": 5})
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert r.json()["usage"]["completion_tokens"] == 5


def test_max_completion_tokens_is_honoured(client: TestClient) -> None:
    r = client.post(CHAT, json={"messages": user("hi"), "max_completion_tokens": 3})
    assert r.json()["usage"]["completion_tokens"] == 3


def test_stop_string_ends_generation_and_is_not_returned(client: TestClient) -> None:
    full = client.post(CHAT, json={"messages": user("x")}).json()["choices"][0]["message"]
    stop = full["content"][10:13]
    r = client.post(CHAT, json={"messages": user("x"), "stop": [stop]})
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == full["content"][:10]
    streamed = sse_events(client, CHAT, {"messages": user("x"), "stop": stop, "stream": True})
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in streamed[:-1])
    assert text == full["content"][:10]


def test_n_choices_differ_by_seed_and_share_one_prompt_count(client: TestClient) -> None:
    r = client.post(CHAT, json={"messages": user("n"), "n": 3, "seed": 1})
    body = r.json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    texts = {c["message"]["content"] for c in body["choices"]}
    assert len(texts) == 3
    one = client.post(CHAT, json={"messages": user("n"), "seed": 1}).json()
    assert body["usage"]["prompt_tokens"] == one["usage"]["prompt_tokens"]


def test_logprobs_are_returned_per_token(client: TestClient) -> None:
    r = client.post(
        CHAT, json={"messages": user("lp"), "logprobs": True, "top_logprobs": 2, "max_tokens": 4}
    )
    content = r.json()["choices"][0]["logprobs"]["content"]
    assert len(content) == 4
    assert all(len(t["top_logprobs"]) == 2 and t["logprob"] <= 0 for t in content)


def test_prefix_cache_reports_cached_tokens(client: TestClient) -> None:
    long = "shared context " * 20
    first = client.post(CHAT, json={"messages": user(long + "one")}).json()
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    second = client.post(CHAT, json={"messages": user(long + "two")}).json()
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] > 250


def test_completions_raw_prompt_and_stream(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": "Once upon", "max_tokens": 8})
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["finish_reason"] == "length"
    events = sse_events(
        client, "/v1/completions", {"prompt": "Once upon", "max_tokens": 8, "stream": True}
    )
    text = "".join(e["choices"][0]["text"] for e in events[:-1])
    assert text == body["choices"][0]["text"]


def test_completions_accepts_token_ids(client: TestClient) -> None:
    r = client.post("/v1/completions", json={"prompt": [256, 72, 105], "max_tokens": 2})
    assert r.status_code == 200
    bad = client.post("/v1/completions", json={"prompt": [999999], "max_tokens": 2})
    assert bad.status_code == 400 and "vocabulary" in bad.json()["error"]["message"]


def test_models_list_and_get(client: TestClient) -> None:
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == ["gemma-fake"]
    assert client.get("/v1/models/gemma-fake").json()["id"] == "gemma-fake"
    missing = client.get("/v1/models/gpt-4")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_queue_full_is_429_with_retry_after(make_client: MakeClient) -> None:
    client = make_client(FakeBackend(step_delay_s=0.02), parallel=1, max_queue=1)
    responses: list[Any] = []

    def call() -> None:
        responses.append(client.post(CHAT, json={"messages": user("q"), "max_tokens": 30}))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) >= 2 and 429 in codes  # one running + one queued get served
    rejected = next(r for r in responses if r.status_code == 429)
    assert int(rejected.headers["retry-after"]) >= 1
    assert rejected.json()["error"]["type"] == "rate_limit_error"
    # Capacity frees up again once the burst is done.
    assert client.post(CHAT, json={"messages": user("q"), "max_tokens": 1}).status_code == 200


def test_request_timeout_ends_with_a_clear_error(make_client: MakeClient) -> None:
    client = make_client(FakeBackend(step_delay_s=0.05), request_timeout=0.2)
    r = client.post(CHAT, json={"messages": user("slow"), "max_tokens": 500})
    assert r.status_code == 408
    assert "deadline" in r.json()["error"]["message"]
    # The sequence was freed: the server answers the next request.
    assert client.post(CHAT, json={"messages": user("x"), "max_tokens": 1}).status_code == 200
