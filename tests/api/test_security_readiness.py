"""Readiness is red while the engine is wedged or dead, and from the first moment of a drain."""

from __future__ import annotations

import threading
import time
from typing import Any

from gemma_service.engine.fake_backend import FakeBackend
from gemma_service.engine.scheduler import StepPlan

from .conftest import MakeClient

CHAT = "/v1/chat/completions"
HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def wait_for_status(client: Any, status: str, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.json()["status"] == status:
            body: dict[str, Any] = r.json()
            assert r.status_code == (200 if status == "ready" else 503)
            return body
        time.sleep(0.02)
    raise AssertionError(f"/readyz never reported {status!r}")


def test_a_wedged_engine_turns_readiness_red_until_it_steps_again(make_client: MakeClient) -> None:
    backend = FakeBackend(step_delay_s=0.6)
    client = make_client(backend, wedged_after_s=0.2)
    assert client.get("/readyz").status_code == 200
    worker = threading.Thread(target=lambda: client.post(CHAT, json=HI))
    worker.start()
    wait_for_status(client, "wedged")
    assert client.get("/healthz").json()["status"] == "wedged"
    worker.join()
    wait_for_status(client, "ready")


class DyingBackend(FakeBackend):
    def execute(self, plan: StepPlan, want_logprobs: dict[str, int]) -> Any:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_a_dead_engine_turns_readiness_red(make_client: MakeClient) -> None:
    client = make_client(DyingBackend())
    r = client.post(CHAT, json=HI)
    assert r.status_code >= 500
    body = wait_for_status(client, "error")
    assert body["status"] == "error"
    assert client.get("/livez").status_code == 200


def test_a_drain_turns_readiness_red_and_refuses_new_work(make_client: MakeClient) -> None:
    client = make_client()
    client.app.state.drain.begin()  # type: ignore[attr-defined]
    wait_for_status(client, "draining")
    refused = client.post(CHAT, json=HI)
    assert refused.status_code == 503 and "shutting down" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 0
    assert client.get("/livez").status_code == 200


def test_a_drain_refuses_every_protocol_in_its_own_shape(make_client: MakeClient) -> None:
    client = make_client()
    client.app.state.drain.begin()  # type: ignore[attr-defined]
    hi = [{"role": "user", "content": "hi"}]
    anthropic = client.post("/v1/messages", json={"model": "m", "max_tokens": 4, "messages": hi})
    assert anthropic.status_code == 503
    assert anthropic.json()["error"] == {
        "type": "overloaded_error",
        "message": "the server is shutting down",
    }
    ollama = client.post("/api/chat", json={"model": "m", "messages": hi})
    assert (ollama.status_code, ollama.json()) == (503, {"error": "the server is shutting down"})
    responses = client.post("/v1/responses", json={"input": "hi"})
    assert (
        responses.status_code == 503 and responses.json()["error"]["code"] == "service_unavailable"
    )
    assert client.post("/tokenize", json={"content": "hi"}).status_code == 503
    assert all(r.headers["Retry-After"] for r in (anthropic, ollama, responses))
