"""SIGTERM: readiness 503 at once, new requests 503, in-flight streams finish, exit 0."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gemma_service.gpu.testing import CoordinatorProcess

from .conftest import start_server, stop_server
from .fake_engine_server import start_fake_server

pytestmark = pytest.mark.integration

# Generous: on a loaded 2-core machine, 8 streams of the real model can take a minute.
DRAIN_S = 120.0


class Stream(threading.Thread):
    """One streamed chat completion read to the end; records its chunks and how it ended."""

    def __init__(self, url: str, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.url, self.max_tokens = url, max_tokens
        self.started = threading.Event()
        self.finish_reason: str | None = None
        self.done = False
        self.error: BaseException | None = None

    def run(self) -> None:
        body = {
            "messages": [{"role": "user", "content": "Write a long story about the sea."}],
            "max_tokens": self.max_tokens,
            "stream": True,
        }
        try:
            with httpx.stream(
                "POST", self.url + "/v1/chat/completions", json=body, timeout=120
            ) as r:
                for line in r.iter_lines():
                    self.started.set()
                    self._take(line)
        except BaseException as exc:
            self.error = exc
        finally:
            self.started.set()

    def _take(self, line: str) -> None:
        if line == "data: [DONE]":
            self.done = True
        elif line.startswith("data: "):
            chunk: dict[str, Any] = json.loads(line[len("data: ") :])
            for choice in chunk.get("choices", []):
                self.finish_reason = choice.get("finish_reason") or self.finish_reason


def start_streams(url: str, n: int, max_tokens: int) -> list[Stream]:
    streams = [Stream(url, max_tokens) for _ in range(n)]
    for s in streams:
        s.start()
    for s in streams:
        assert s.started.wait(120), "a stream never started"
    return streams


def assert_draining(url: str) -> None:
    deadline = time.monotonic() + 2.0
    while True:
        ready = httpx.get(url + "/readyz", timeout=5)
        if ready.status_code == 503:
            assert ready.json()["status"] == "draining"
            break
        assert time.monotonic() < deadline, "readiness did not turn 503 after SIGTERM"
        time.sleep(0.02)
    late = httpx.get(url + "/v1/models", timeout=5)
    assert late.status_code == 503 and "Retry-After" in late.headers


def test_sigterm_during_8_streams_lets_all_finish_and_exits_0(
    tmp_path: Path, model_path: Path
) -> None:
    args = ["--model", str(model_path), "--ctx-size", "4096", "--threads", "2", "--parallel", "8"]
    server = start_server(tmp_path, *args, env={"GEMMA_DRAIN_S": str(DRAIN_S)})
    try:
        streams = start_streams(server.url, 8, max_tokens=24)
        sent_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert_draining(server.url)
        assert server.process.wait(DRAIN_S + 10) == 0, server.log()
        assert time.monotonic() - sent_at < DRAIN_S
        for s in streams:
            s.join(10)
            assert s.error is None and s.done, s.error
            assert s.finish_reason in ("stop", "length")
    finally:
        stop_server(server)


def test_streams_past_the_drain_time_are_cut_and_the_process_still_exits_0(
    tmp_path: Path,
) -> None:
    server = start_fake_server(tmp_path, "--step-delay", "0.2", env={"GEMMA_DRAIN_S": "1"})
    try:
        [stream] = start_streams(server.url, 1, max_tokens=500)  # ~100 s of generation
        sent_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0, server.log()
        assert time.monotonic() - sent_at < 10
        stream.join(10)
        assert not stream.done  # it was cut, not finished
    finally:
        stop_server(server)


def test_the_gpu_lease_is_released_after_the_drain(tmp_path: Path) -> None:
    with CoordinatorProcess(tmp_path / "coordinator") as coordinator:
        env = {
            "GEMMA_DRAIN_S": "30",
            "GPU_COORDINATOR_URL": coordinator.url,
            "GEMMA_GPU_KEEP_S": "600",
        }
        server = start_fake_server(tmp_path, "--step-delay", "0.02", "--fake-gpu", env=env)
        try:
            streams = start_streams(server.url, 2, max_tokens=60)
            # A stream starts (headers, role chunk) before the GPU wait; the lease follows.
            deadline = time.monotonic() + 10
            while httpx.get(coordinator.url + "/leases").json().get("holder") is None:
                assert time.monotonic() < deadline, "the streams never took the GPU lease"
                time.sleep(0.02)
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(30) == 0, server.log()
            assert all(s.done for s in streams)
            assert httpx.get(coordinator.url + "/leases").json().get("holder") is None
        finally:
            stop_server(server)
