"""A fleet of real upstream servers for the remote engine, and the front over them.

Upstreams are two llama-servers from the benchmark's cached build of the pinned llama.cpp
(~/.cache/gemma-service/bench/llama-server-build) where that build exists, else two
gemma-service processes (so CI, without the cache, stays inside its time). Each is started on
a fixed port, so a killed one can come back where the front expects it.
GEMMA_TEST_UPSTREAM=gemma-service forces the fallback.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from gemma_service.bench.peer_builds import default_bench_dir

from ..conftest import RunningServer, free_port, start_server, stop_server

# Gemma's end-of-generation tokens (<eos>, <end_of_turn>), banned so a stream runs its length.
NO_END = {"1": -100.0, "106": -100.0}
IN_FLIGHT = "gemma_upstream_in_flight"


def openai_client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)


def upstream_series(server: RunningServer, name: str) -> dict[str, float]:
    """One per-upstream series of /metrics, by upstream URL."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    pattern = rf'^{name}{{upstream="([^"]+)"}} ([0-9.e+-]+)$'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.MULTILINE)}


LLAMA_SERVER = default_bench_dir() / "llama-server-build" / "bin" / "llama-server"


@dataclass
class UpstreamServer:
    """One upstream process on a fixed port: started, killed (SIGKILL) and started again."""

    argv: list[str]
    port: int
    ready_path: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout_s: float = 120.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"upstream exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"upstream not ready:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Fleet:
    kind: str  # GEMMA_UPSTREAM_KIND
    upstreams: list[UpstreamServer]

    @property
    def urls(self) -> str:
        return ",".join(u.url for u in self.upstreams)


def _llama_server(model: Path, port: int, tmp: Path, parallel: int) -> UpstreamServer:
    argv = [
        str(LLAMA_SERVER),
        "-m", str(model),
        "-t", "1", "-tb", "1",
        "-np", str(parallel),
        "-c", str(parallel * 2048),
        "--cont-batching",
        "--no-jinja", "--chat-template", "gemma",
        "--host", "127.0.0.1", "--port", str(port),
        "--no-webui",
    ]  # fmt: skip
    return UpstreamServer(argv, port, "/health", tmp / f"llama-server-{port}.log")


def _gemma_service(model: Path, port: int, tmp: Path, parallel: int) -> UpstreamServer:
    argv = [
        sys.executable, "-m", "gemma_service.cli", "serve",
        "--model", str(model),
        "--host", "127.0.0.1", "--port", str(port),
        "--threads", "1",
        "--parallel", str(parallel),
        "--ctx-size", str(parallel * 2048),
    ]  # fmt: skip
    env = {"GEMMA_DATA_DIR": str(tmp / f"upstream-{port}")}
    return UpstreamServer(argv, port, "/readyz", tmp / f"gemma-service-{port}.log", env)


def start_fleet(model: Path, tmp: Path, *, parallel: int = 2) -> Fleet:
    """Two upstreams (llama-servers where the cached build exists), started and ready."""
    forced = os.environ.get("GEMMA_TEST_UPSTREAM")
    if LLAMA_SERVER.is_file() and forced != "gemma-service":
        kind, make = "llama-server", _llama_server
    else:
        kind, make = "gemma-service", _gemma_service
    fleet = Fleet(kind, [make(model, free_port(), tmp, parallel) for _ in range(2)])
    for upstream in fleet.upstreams:
        upstream.start()
    return fleet


def stop_fleet(fleet: Fleet) -> None:
    for upstream in fleet.upstreams:
        upstream.stop()


def start_front(tmp: Path, model: Path, fleet: Fleet, *args: str) -> RunningServer:
    """gemma-service with the remote engine over ``fleet`` (health checked twice a second)."""
    env = {
        "GEMMA_ENGINE": "remote",
        "GEMMA_UPSTREAM_URLS": fleet.urls,
        "GEMMA_UPSTREAM_KIND": fleet.kind,
        "GEMMA_UPSTREAM_HEALTH_INTERVAL_S": "0.5",
    }
    return start_server(tmp, "--model", str(model), *args, env=env)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Fleet]:
    started = start_fleet(model_path, tmp_path_factory.mktemp("fleet"))
    yield started
    stop_fleet(started)


@pytest.fixture(scope="module")
def front(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, fleet: Fleet
) -> Iterator[RunningServer]:
    server = start_front(tmp_path_factory.mktemp("front"), model_path, fleet)
    yield server
    stop_server(server)
