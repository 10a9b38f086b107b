"""Integration fixtures: the real `gemma-service serve` as a subprocess, with the real model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gemma_service.config import ServiceSettings
from gemma_service.model_files import prepare_default_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    tmp: Path, *args: str, env: dict[str, str] | None = None, ready_timeout_s: float = 120.0
) -> RunningServer:
    """Start `gemma-service serve` on a free loopback port and wait until /readyz is 200."""
    port = free_port()
    log_path = tmp / f"server-{port}.log"
    full_env = {**os.environ, "GEMMA_DATA_DIR": str(tmp / "data"), **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "gemma_service.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    server = RunningServer(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise AssertionError(f"server not ready in {ready_timeout_s}s:\n{server.log()}")


def stop_server(server: RunningServer, timeout_s: float = 30.0) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="session")
def model_path() -> Path:
    return prepare_default_model(ServiceSettings().model_cache_dir, progress=False)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[RunningServer]:
    """One real server for the integration session: small context, 2 threads like CI."""
    tmp = tmp_path_factory.mktemp("server")
    srv = start_server(
        tmp, "--model", str(model_path), "--ctx-size", "8192", "--threads", "2", "--parallel", "8"
    )
    yield srv
    stop_server(srv)
