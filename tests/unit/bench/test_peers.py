"""Launch commands for the compared servers and the process wrapper that runs them."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from gemma_service.bench.peers import (
    LLAMA_CPP_PYTHON_BOOTSTRAP,
    ServerProcess,
    ServerSettings,
    ServerSpec,
    ServerStartError,
    free_port,
    llama_cpp_python_spec,
    llama_server_spec,
    ours_spec,
)

SETTINGS = ServerSettings(Path("/m/gemma.gguf"), threads=2, parallel=16, ctx_per_sequence=4096)


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_llama_server_shares_total_context_among_its_slots() -> None:
    spec = llama_server_spec(Path("/b/llama-server"), SETTINGS, 9000)
    assert flag_value(spec.argv, "-c") == str(16 * 4096)
    assert flag_value(spec.argv, "-np") == "16"
    assert flag_value(spec.argv, "-t") == "2"
    assert spec.base_url == "http://127.0.0.1:9000"
    assert spec.ready_path == "/health"
    assert flag_value(spec.argv, "--chat-template") == "gemma" and "--no-jinja" in spec.argv


def test_ours_gets_the_same_threads_parallelism_and_total_context() -> None:
    spec = ours_spec(Path("/v/bin/gemma-service"), SETTINGS, 9001)
    assert spec.argv[:2] == ["/v/bin/gemma-service", "serve"]
    assert flag_value(spec.argv, "--threads") == "2"
    assert flag_value(spec.argv, "--parallel") == "16"
    assert flag_value(spec.argv, "--ctx-size") == str(16 * 4096)
    assert spec.ready_path == "/readyz"


def test_llama_cpp_python_server_uses_gemma_turns_and_the_same_threads() -> None:
    spec = llama_cpp_python_spec(Path("/p/bin/python"), SETTINGS, 9002)
    assert spec.argv[1:4] == ["-c", LLAMA_CPP_PYTHON_BOOTSTRAP, "repack"]
    assert 'run_module("llama_cpp.server"' in LLAMA_CPP_PYTHON_BOOTSTRAP
    assert flag_value(spec.argv, "--n_threads") == "2"
    assert flag_value(spec.argv, "--chat_format") == "gemma"
    assert flag_value(spec.argv, "--n_ctx") == "4096"
    assert flag_value(spec.argv, "--interrupt_requests") == "false"


def test_free_port_is_a_bindable_port() -> None:
    assert 1024 <= free_port() <= 65535


def test_process_is_ready_when_its_route_answers_and_stops_on_exit(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    spec = ServerSpec("static", argv, port, "/", env={"PYTHONUNBUFFERED": "1"})
    server = ServerProcess(spec, tmp_path / "static.log", ready_timeout_s=20)
    with server:
        assert server._process is not None and server._process.poll() is None
        process = server._process
    assert process.poll() is not None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_servers_cpu_time_grows_while_it_works(tmp_path: Path) -> None:
    """What bench-scale reports as the front's own CPU: read from the running process."""
    port = free_port()
    busy = (
        "import http.server, sys, time\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        end = time.process_time() + (0.3 if self.path == '/work' else 0)\n"
        "        while time.process_time() < end: pass\n"
        "        self.send_response(200); self.end_headers()\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    )
    spec = ServerSpec("busy", [sys.executable, "-c", busy, str(port)], port, "/")
    server = ServerProcess(spec, tmp_path / "busy.log", ready_timeout_s=20)
    with server:
        before = server.cpu_seconds()
        httpx.get(spec.base_url + "/work", timeout=10)
        after = server.cpu_seconds()
    assert before is not None and after is not None and after - before >= 0.25
    assert server.cpu_seconds() is None  # stopped


def test_process_that_exits_is_a_start_error(tmp_path: Path) -> None:
    spec = ServerSpec("broken", [sys.executable, "-c", "raise SystemExit(3)"], free_port(), "/")
    with (
        pytest.raises(ServerStartError, match="broken exited"),
        ServerProcess(spec, tmp_path / "broken.log", ready_timeout_s=20),
    ):
        pass


def test_peers_run_without_repacking_where_our_self_check_found_it_crashes() -> None:
    settings = ServerSettings(Path("/m/gemma.gguf"), 2, 16, 4096, repack=False)
    assert "--no-repack" in llama_server_spec(Path("/b/llama-server"), settings, 9000).argv
    assert "--no-repack" not in llama_server_spec(Path("/b/llama-server"), SETTINGS, 9000).argv
    assert llama_cpp_python_spec(Path("/p/bin/python"), settings, 9002).argv[3] == "no-repack"
