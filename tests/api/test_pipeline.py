"""One request pipeline: refusals before any stream byte, per-request engine errors that keep
readiness green, and clean-up of runs whose client went away."""

from __future__ import annotations

import json
import threading
from typing import Any

from fastapi.testclient import TestClient

from gemma_service.engine.fake_backend import FakeBackend
from gemma_service.engine.protocol import SamplingParams
from gemma_service.errors import InvalidRequestError

from .conftest import MakeClient

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
LONG = [{"role": "user", "content": "tell me about " + "the sea " * 40}]


def sse_data(r: Any) -> list[Any]:
    lines = [line[len("data: ") :] for line in r.text.splitlines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def assert_json_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """A refusal decided before the answer began: a JSON error, not an event stream."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err: dict[str, Any] = r.json()["error"]
    if code is not None:
        assert err["code"] == code
    return err


def test_a_full_kv_cache_fails_that_request_with_its_own_error(make_client: MakeClient) -> None:
    client = make_client(FakeBackend(kv_capacity=64))
    r = client.post(CHAT, json={"messages": LONG})
    err = assert_json_error(r, 503, "kv_cache_full")
    assert "KV cache" in err["message"] and int(r.headers["Retry-After"]) >= 1
    assert client.get("/readyz").status_code == 200  # the engine is fine: only that request
    streamed = client.post(CHAT, json={"messages": LONG, "stream": True})
    events = sse_data(streamed)
    assert events[-1]["error"]["code"] == "kv_cache_full" and "[DONE]" not in events
    assert client.post(CHAT, json={"messages": HI, "max_tokens": 5}).status_code == 200
    assert client.get("/readyz").status_code == 200


class GrammarRefusingBackend(FakeBackend):
    """Refuses every grammar the way the llama.cpp backend refuses one it cannot parse."""

    def add_sampler(self, request_id: str, params: SamplingParams) -> None:
        if params.grammar is not None:
            raise InvalidRequestError("the grammar could not be parsed", param="grammar")
        super().add_sampler(request_id, params)


def test_a_grammar_the_engine_refuses_is_400_before_any_byte(make_client: MakeClient) -> None:
    client = make_client(GrammarRefusingBackend())
    body = {"messages": HI, "response_format": {"type": "json_object"}}
    for stream in (False, True):
        err = assert_json_error(client.post(CHAT, json={**body, "stream": stream}), 400)
        assert "grammar could not be parsed" in err["message"]
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").json()["running"] == 0  # nothing left behind
    assert client.post(CHAT, json={"messages": HI, "max_tokens": 3}).status_code == 200


def test_auth_context_and_limits_refuse_a_stream_before_it_starts(
    make_client: MakeClient,
) -> None:
    client = make_client(FakeBackend(n_ctx=64), api_keys="sk-a", max_tokens_cap=50)
    key = {"X-Api-Key": "sk-a"}
    streamed = {"messages": HI, "stream": True}
    assert_json_error(client.post(CHAT, json=streamed), 401)
    too_long = {"messages": LONG, "stream": True}
    assert_json_error(client.post(CHAT, json=too_long, headers=key), 400, "context_length_exceeded")
    too_many = {**streamed, "max_tokens": 51}
    assert_json_error(client.post(CHAT, json=too_many, headers=key), 400, "invalid_value")
    for path, body in (
        ("/chat/stream", {"messages": LONG}),
        ("/v1/completions", {"prompt": "x" * 100, "stream": True}),
    ):
        assert_json_error(client.post(path, json=body, headers=key), 400, "context_length_exceeded")


def test_a_full_queue_refuses_streams_with_429_before_they_start(
    make_client: MakeClient,
) -> None:
    client = make_client(FakeBackend(step_delay_s=0.02), parallel=1, max_queue=1)
    responses: list[Any] = []

    def call() -> None:
        body = {"messages": HI, "max_tokens": 30, "stream": True}
        responses.append(client.post(CHAT, json=body))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [r for r in responses if r.status_code == 429]
    served = [r for r in responses if r.status_code == 200]
    assert refused and len(served) >= 2
    for r in refused:
        assert_json_error(r, 429, "queue_full")
    for r in served:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert sse_data(r)[-1] == "[DONE]"


def test_choices_of_one_request_stream_interleaved_and_end_each(client: TestClient) -> None:
    body = {"messages": HI, "n": 3, "seed": 4, "stream": True, "max_tokens": 20}
    events = sse_data(client.post(CHAT, json=body))
    chunks = [e for e in events if e != "[DONE]"]
    ends = [c["choices"][0] for c in chunks if c["choices"][0]["finish_reason"]]
    assert sorted(e["index"] for e in ends) == [0, 1, 2]
    whole = client.post(CHAT, json={**body, "stream": False}).json()
    for choice in whole["choices"]:
        text = "".join(
            c["choices"][0]["delta"].get("content") or ""
            for c in chunks
            if c["choices"][0]["index"] == choice["index"]
        )
        assert text == choice["message"]["content"]


def test_runs_are_closed_whatever_the_answer(make_client: MakeClient) -> None:
    """Finished, failed and refused requests leave no sequence, held request or GPU demand."""
    client = make_client(FakeBackend(kv_capacity=64))
    client.post(CHAT, json={"messages": HI, "max_tokens": 4})
    client.post(CHAT, json={"messages": HI, "max_tokens": 4, "stream": True})
    client.post(CHAT, json={"messages": LONG})
    client.post(CHAT, json={"messages": LONG, "stream": True})
    health = client.get("/healthz").json()
    assert health["running"] == 0 and health["waiting"] == 0
    assert health["active_requests"] == 0  # every GPU placement was released
