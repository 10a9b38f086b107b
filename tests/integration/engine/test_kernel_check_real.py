"""The kernel self-check with the real model and the real server: the probe decodes, a host whose
repacked kernels crash (simulated: the probe kills itself with SIGILL when repacking) gets a
server that loads without repacking, says so in /healthz and serves; the next start reuses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from ..conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration


def test_the_probe_decodes_the_real_model(model_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gemma_service.llama.kernel_probe", "--model", str(model_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_the_running_server_reports_its_kernels(server: RunningServer) -> None:
    kernels = httpx.get(server.url + "/healthz").json()["cpu_kernels"]
    assert kernels["build"] == "dispatch"  # the portable build: CPU modules chosen at start
    assert kernels["variant"] and kernels["checked"] in ("probe", "cache")


def _start(tmp: Path, model_path: Path, cache: Path) -> RunningServer:
    env = {"XDG_CACHE_HOME": str(cache), "GEMMA_KERNEL_PROBE_FAULT": "SIGILL"}
    args = ("--model", str(model_path), "--ctx-size", "2048", "--parallel", "2", "--threads", "2")
    return start_server(tmp, *args, env=env)


def test_a_host_whose_repacked_kernels_crash_is_served_without_repacking(
    tmp_path: Path, model_path: Path
) -> None:
    cache = tmp_path / "cache"
    server = _start(tmp_path, model_path, cache)
    try:
        kernels = httpx.get(server.url + "/healthz").json()["cpu_kernels"]
        assert kernels["repack"] is False and kernels["fallback"] is True
        assert kernels["checked"] == "probe" and "SIGILL" in kernels["reason"]
        reply = httpx.post(
            server.url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8},
            timeout=120,
        )
        assert reply.status_code == 200
        assert reply.json()["usage"]["completion_tokens"] > 0
        assert "weight repacking off" in server.log()
    finally:
        assert stop_server(server) == 0
    # The decision is cached for this CPU and build: the next start probes nothing.
    again = _start(tmp_path, model_path, cache)
    try:
        kernels = httpx.get(again.url + "/healthz").json()["cpu_kernels"]
        assert kernels["checked"] == "cache" and kernels["repack"] is False
    finally:
        stop_server(again)
    assert len(os.listdir(cache / "gemma-service" / "kernel-check")) == 1
