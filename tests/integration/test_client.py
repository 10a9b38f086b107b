"""gemma_service.client against the real server: answers, retries through 503s and a cold
start, the fallback when the service is down, and the memory calls."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from gemma_service.client import (
    AsyncGemmaClient,
    FallbackRequest,
    GemmaClient,
    GemmaUnavailableError,
    RetryPolicy,
)

from .conftest import RunningServer, free_port, stop_server

pytestmark = pytest.mark.integration

HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "host"}


class FlakyProxy:
    """A loopback proxy that answers 503 (with Retry-After) to its first ``failures`` requests,
    then forwards everything to ``upstream``, streaming the answer through."""

    def __init__(self, upstream: str, failures: int, retry_after_s: int = 1) -> None:
        self.upstream = upstream
        self.failures_left = failures
        self.retry_after_s = retry_after_s
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def take_failure(self) -> bool:
        with self._lock:
            if self.failures_left <= 0:
                return False
            self.failures_left -= 1
            self.statuses.append(503)
            return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.take_failure():
                    self._busy()
                else:
                    self._forward(body)

            def _busy(self) -> None:
                payload = json.dumps({"error": {"message": "busy", "code": "busy"}}).encode()
                self.send_response(503)
                self.send_header("Retry-After", str(proxy.retry_after_s))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _forward(self, body: bytes) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                url = proxy.upstream + self.path
                with httpx.stream(
                    self.command, url, content=body, headers=headers, timeout=120
                ) as upstream:
                    proxy.statuses.append(upstream.status_code)
                    self.send_response(upstream.status_code)
                    for key, value in upstream.headers.items():
                        if key.lower() not in HOP_BY_HOP:
                            self.send_header(key, value)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in upstream.iter_raw():
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")

        return Handler


def test_generate_chat_and_stream_answer(server: RunningServer) -> None:
    with GemmaClient(server.url) as gemma:
        generated = gemma.generate("Once upon a time", max_tokens=6)
        chat = gemma.chat("Say hello.", max_tokens=6)
        events = list(gemma.chat_stream("Count to three.", max_tokens=6))
    assert generated.text and generated.usage and generated.usage.completion_tokens == 6
    assert chat.response and chat.model == "gemma-3-270m-q4_k_m" and not chat.from_fallback
    assert events[-1].done and events[-1].usage is not None
    assert "".join(e.token for e in events[:-1])


def test_client_retries_503s_then_gets_the_real_answer(server: RunningServer) -> None:
    with FlakyProxy(server.url, failures=2) as proxy, GemmaClient(proxy.url) as gemma:
        started = time.monotonic()
        result = gemma.generate("The sky is", max_tokens=4)
        waited = time.monotonic() - started
    assert result.text and not result.from_fallback
    assert proxy.statuses == [503, 503, 200]
    assert waited >= 2.0  # it honoured Retry-After: 1 twice


def test_stream_retries_before_the_first_token(server: RunningServer) -> None:
    with FlakyProxy(server.url, failures=1) as proxy, GemmaClient(proxy.url) as gemma:
        tokens = [e.token for e in gemma.chat_stream("Hello", max_tokens=5)]
    assert proxy.statuses == [503, 200]
    assert "".join(tokens)


async def test_async_client_retries_then_streams(server: RunningServer) -> None:
    with FlakyProxy(server.url, failures=1) as proxy:
        async with AsyncGemmaClient(proxy.url) as gemma:
            events = [e async for e in gemma.chat_stream("Hello", max_tokens=5)]
    assert proxy.statuses == [503, 200] and events[-1].done


def test_fallback_answers_when_the_service_is_down() -> None:
    asked: list[FallbackRequest] = []

    def fallback(request: FallbackRequest) -> str:
        asked.append(request)
        return "the service is down; here is a canned answer"

    retry = RetryPolicy(max_attempts=3, backoff_initial_s=0.05)
    with GemmaClient(f"http://127.0.0.1:{free_port()}", retry=retry, fallback=fallback) as gemma:
        result = gemma.chat("Are you there?")
    assert result.from_fallback and result.response.startswith("the service is down")
    assert asked[0].error.attempts == 3
    assert isinstance(asked[0].error.last_error, httpx.ConnectError)


@pytest.fixture
def cold_server(tmp_path: Path, model_path: Path) -> Iterator[RunningServer]:
    """A server that is started but not waited for: requests meet it while it boots."""
    port = free_port()
    log_path = tmp_path / "cold.log"
    cmd = [sys.executable, "-m", "gemma_service.cli", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--model", str(model_path), "--ctx-size", "2048"]
    cmd += ["--threads", "2", "--data-dir", str(tmp_path / "data")]
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    yield server
    stop_server(server)


def test_client_rides_out_a_cold_start_then_falls_back_when_it_stops(
    cold_server: RunningServer,
) -> None:
    statuses: list[int | str] = []

    retry = RetryPolicy(max_attempts=40, backoff_initial_s=0.2, backoff_max_s=1.0)
    transport = _RecordingTransport(statuses)
    with GemmaClient(cold_server.url, retry=retry, transport=transport) as gemma:
        result = gemma.generate("Hello", max_tokens=3)
        assert result.text and not result.from_fallback, cold_server.log()
        assert statuses[-1] == 200 and len(statuses) > 1  # it failed first, then got through
        assert set(statuses[:-1]) <= {"refused", 503}
        stop_server(cold_server)
        gemma.retry = RetryPolicy(max_attempts=2, backoff_initial_s=0.05)
        with pytest.raises(GemmaUnavailableError):
            gemma.generate("Hello", max_tokens=3)
        gemma.fallback = lambda request: "fallback"
        assert gemma.generate("Hello", max_tokens=3).from_fallback


class _RecordingTransport(httpx.HTTPTransport):
    """Records each attempt's outcome: the status, or "refused" when nothing listened."""

    def __init__(self, outcomes: list[int | str]) -> None:
        super().__init__()
        self.outcomes = outcomes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except httpx.ConnectError:
            self.outcomes.append("refused")
            raise
        self.outcomes.append(response.status_code)
        return response


def test_memory_calls_round_trip(server: RunningServer) -> None:
    if httpx.get(server.url + "/v1/memories/search", params={"q": "x"}).status_code == 404:
        pytest.skip("the memory API (/v1/memories) is not mounted in this build yet")
    project = f"Project-{uuid.uuid4().hex[:8]}"  # other tests share this server's memory
    question = f"When is the launch of {project}?"
    with GemmaClient(server.url) as gemma:
        ids = gemma.add_memory(
            f"Priya said the launch of {project} moves to the 14th of March.",
            kind="transcript",
            speaker="Priya",
            timestamp="2025-02-01T10:00:00Z",
        )
        hits = gemma.search_memories(question, top_k=3)
        stored = gemma.get_memory(ids[0])
        gemma.delete_memory(ids[0])
        after = [h.id for h in gemma.search_memories(question, top_k=3)]
    assert ids and ids[0] in [h.id for h in hits]
    assert stored["speaker"] == "Priya"
    assert ids[0] not in after


def test_embed_returns_one_vector_per_text(server: RunningServer) -> None:
    if httpx.post(server.url + "/v1/embeddings", json={"input": "x"}).status_code == 404:
        pytest.skip("/v1/embeddings is not mounted in this build yet")
    with GemmaClient(server.url) as gemma:
        vectors = gemma.embed(["a red apple", "a green pear"])
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 0
