"""`gemma-service chat` against the real server, driven through standard input."""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest

from .conftest import RunningServer, free_port

pytestmark = pytest.mark.integration


def run_chat(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gemma_service.cli", "chat", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)


def test_terminal_chat_streams_answers_for_each_line(server: RunningServer) -> None:
    done = run_chat(
        "--url", server.url, "--max-tokens", "6", stdin="Hello there\nAnd again?\n/quit\n"
    )
    assert done.returncode == 0, done.stderr
    # The base model's answers may hold newlines of their own, so count nothing per line.
    assert done.stdout.strip() and "error:" not in done.stdout, done.stdout


def test_terminal_chat_reports_a_service_that_is_down() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run_chat("--url", url, "--attempts", "1", stdin="Hello\n")
    assert done.returncode == 0
    assert "error: gemma-service unavailable after 1 attempt(s)" in done.stdout


def test_terminal_chat_with_memory_lists_the_cited_sources(server: RunningServer) -> None:
    project = f"Project-{uuid.uuid4().hex[:8]}"  # other tests share this server's memory
    memory = {"text": f"Ann: the {project} budget was approved on Monday.", "speaker": "Ann"}
    stored = httpx.post(server.url + "/v1/memories", json=memory, timeout=60)
    if stored.status_code == 404:
        pytest.skip("the memory API (/v1/memories) is not mounted in this build yet")
    question = f"Was the {project} budget approved?\n"
    done = run_chat("--url", server.url, "--memory", "--max-tokens", "6", stdin=question)
    assert done.returncode == 0, done.stderr
    cited = [line for line in done.stdout.splitlines() if line.startswith("  [")]
    assert any(project in line and "Ann" in line for line in cited), done.stdout
