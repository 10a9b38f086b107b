"""Residency wired into the app: a real coordinator process, the engine over the fake backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gemma_service.engine.fake_backend import FakeBackend
from gemma_service.gpu.testing import CoordinatorProcess

from .conftest import MakeClient


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[CoordinatorProcess]:
    with CoordinatorProcess(tmp_path / "coordinator-state") as process:
        yield process


def wait_for(check: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_model_moves_to_gpu_for_requests_and_back_after_the_keep_window(
    make_client: MakeClient, coordinator: CoordinatorProcess
) -> None:
    fake = FakeBackend()
    fake.gpu_available = True  # a CUDA build, as far as the residency can tell
    client = make_client(fake, gpu_coordinator_url=coordinator.url, gpu_keep_s=0.5, gpu_layers=25)
    health = client.get("/healthz").json()
    assert health["gpu_sharing"] == "coordinator" and health["device"] == "cpu"
    assert fake.reloads == []  # idles on CPU: loaded with 0 layers, no lease taken

    r = client.post("/chat", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    body = r.json()
    assert body["gpu_wait_time"] > 0  # it waited for the lease and the reload
    assert fake.reloads[0] == 25

    # After the keep window the model goes back to CPU and the lease is released.
    wait_for(lambda: fake.reloads[-1] == 0)
    wait_for(lambda: client.get("/healthz").json()["lease_state"] != "held")
    leases = httpx.get(coordinator.url + "/leases").json()
    assert not leases.get("holder")


def test_burst_shares_one_lease(make_client: MakeClient, coordinator: CoordinatorProcess) -> None:
    fake = FakeBackend(step_delay_s=0.01)
    fake.gpu_available = True
    client = make_client(fake, gpu_coordinator_url=coordinator.url, gpu_keep_s=5)
    for _ in range(3):
        assert (
            client.post("/chat", json={"messages": [{"role": "user", "content": "x"}]}).status_code
            == 200
        )
    assert fake.reloads == [25]  # one move to the GPU for the whole burst
    assert client.get("/healthz").json()["device"] == "cuda"


def test_unreachable_coordinator_serves_on_cpu_and_says_so(make_client: MakeClient) -> None:
    fake = FakeBackend()
    fake.gpu_available = True
    client = make_client(fake, gpu_coordinator_url="http://127.0.0.1:9", gpu_max_wait_s=0.5)
    r = client.post("/chat", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    health = client.get("/healthz").json()
    assert health["device"] == "cpu"
    assert health["coordinator_reachable"] is False
