"""Readiness over real HTTP: red while the engine is wedged, green again once it steps."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import stop_server
from .fake_engine_server import start_fake_server

pytestmark = pytest.mark.integration


def test_a_wedged_engine_turns_readyz_red_and_back(tmp_path: Path) -> None:
    # Each engine step takes 1.5 s; more than 0.5 s without a step while work waits is "wedged".
    server = start_fake_server(tmp_path, "--step-delay", "1.5", env={"GEMMA_WEDGED_AFTER_S": "0.5"})
    try:
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        worker = threading.Thread(
            target=lambda: httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
        )
        worker.start()
        statuses = set()
        while worker.is_alive():
            r = httpx.get(server.url + "/readyz", timeout=5)
            statuses.add((r.status_code, r.json()["status"]))
            time.sleep(0.05)
        assert (503, "wedged") in statuses
        assert httpx.get(server.url + "/readyz", timeout=5).status_code == 200
    finally:
        stop_server(server)
