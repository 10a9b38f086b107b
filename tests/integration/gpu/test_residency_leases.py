"""The engine's residency state machine against a real coordinator, with a recording placement."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gemma_service.gpu.lease_client import AsyncLeaseClient
from gemma_service.gpu.residency import GpuResidency
from gemma_service.gpu.testing import CoordinatorProcess, JsonLinesProcess, poll_until

pytestmark = pytest.mark.timeout(90)

Spawn = Callable[..., JsonLinesProcess]
RELOAD_S = 0.1


class RecordingPlacement:
    """A fake engine whose reloads take RELOAD_S; records (layers, finished_at) per move."""

    def __init__(self) -> None:
        self.moves: list[tuple[int, float]] = []

    async def relocate(self, gpu_layers: int) -> None:
        await asyncio.sleep(RELOAD_S)
        self.moves.append((gpu_layers, time.monotonic()))

    @property
    def layers(self) -> list[int]:
        return [layers for layers, _ in self.moves]


async def holder_of(url: str) -> str | None:
    async with httpx.AsyncClient() as http:
        holder: dict[str, Any] | None = (await http.get(f"{url}/leases", timeout=5)).json()[
            "holder"
        ]
    return holder["holder"] if holder else None


@pytest.fixture
async def residency_for(
    coordinator: CoordinatorProcess,
) -> AsyncIterator[Callable[..., GpuResidency]]:
    made: list[GpuResidency] = []

    def make(placement: RecordingPlacement, **options: Any) -> GpuResidency:
        settings: dict[str, Any] = {"gpu_layers": 25, "keep_s": 0.5, "ttl_s": 3.0, **options}
        residency = GpuResidency(placement, coordinator_url=coordinator.url, **settings)
        made.append(residency)
        return residency

    yield make
    for residency in made:
        await residency.stop()


async def test_burst_loads_once_keeps_the_gpu_for_the_idle_window_then_releases(
    coordinator: CoordinatorProcess, residency_for: Callable[..., GpuResidency]
) -> None:
    placement = RecordingPlacement()
    residency = residency_for(placement, keep_s=0.6)
    await residency.start()
    waits = await asyncio.gather(*(residency.request_started() for _ in range(4)))
    assert placement.layers == [25]
    assert all(RELOAD_S <= wait < 5 for wait in waits)  # the lease plus one reload, shared
    assert residency.status()["device"] == "cuda"
    assert residency.status()["lease_state"] == "held"
    assert await holder_of(coordinator.url) == "gemma-service"
    for _ in waits:
        residency.request_finished()
    await asyncio.sleep(0.2)
    assert await residency.request_started() == 0.0  # within keep_s: served at once, no reload
    residency.request_finished()
    last_finished = time.monotonic()
    await poll_until(lambda: placement.layers == [25, 0], 5)
    offloaded_at = placement.moves[-1][1]
    assert offloaded_at - last_finished >= 0.6
    await poll_until(lambda: residency.status()["lease_state"] == "none", 5)
    assert await holder_of(coordinator.url) is None
    assert residency.status()["device"] == "cpu"


async def test_preempt_moves_the_model_to_cpu_releases_and_queues_again(
    coordinator: CoordinatorProcess, residency_for: Callable[..., GpuResidency]
) -> None:
    placement = RecordingPlacement()
    residency = residency_for(placement, priority=10, ttl_s=5.0)
    await residency.start()
    await residency.request_started()  # a long request keeps running through the preempt
    async with AsyncLeaseClient(coordinator.url, "urgent") as urgent:
        asked_at = time.monotonic()
        lease = await urgent.acquire(priority=50, ttl_s=5, wait_s=10)
        yielded_s = time.monotonic() - asked_at
        assert placement.layers == [25, 0]
        assert placement.moves[-1][1] <= time.monotonic()
        assert yielded_s < 5.0  # well inside the TTL, not by expiry
        await poll_until(lambda: residency.status()["lease_state"] == "waiting", 5)
        assert residency.status()["device"] == "cpu"
        assert isinstance(residency.status()["last_preempt_yield_s"], float)
        await urgent.release(lease)
    await poll_until(lambda: placement.layers == [25, 0, 25], 10)
    assert residency.status()["lease_state"] == "held"
    residency.request_finished()


async def test_request_runs_on_cpu_when_the_gpu_is_not_granted_within_the_bound(
    coordinator: CoordinatorProcess, residency_for: Callable[..., GpuResidency]
) -> None:
    placement = RecordingPlacement()
    residency = residency_for(placement, priority=10, max_gpu_wait_s=0.5)
    await residency.start()
    async with AsyncLeaseClient(coordinator.url, "training") as training:
        lease = await training.acquire(priority=90, ttl_s=5)
        waited = await residency.request_started()
        assert 0.5 <= waited < 3.0
        assert placement.layers == []
        assert residency.status()["device"] == "cpu"
        await training.release(lease)
    # Still running: the lease arrives and the model moves to the GPU under the request.
    await poll_until(lambda: placement.layers == [25], 10)
    residency.request_finished()


async def test_low_priority_worker_pauses_for_a_request_and_resumes_after(
    coordinator: CoordinatorProcess, residency_for: Callable[..., GpuResidency], spawn: Spawn
) -> None:
    worker = spawn("-m", "gemma_service.gpu.example_worker", "--coordinator", coordinator.url)
    await worker.wait_for_event_async("acquired", 30)
    placement = RecordingPlacement()
    residency = residency_for(placement, keep_s=0.2)
    await residency.start()
    gpu_wait = await residency.request_started()
    paused = await worker.wait_for_event_async("released", 5)
    assert placement.moves[0][1] > paused["t"]  # the model moved only after the worker let go
    assert gpu_wait < 5.0
    mark = len(worker.events)
    residency.request_finished()
    await worker.wait_for_event_async("acquired", 10, after=mark)
    assert placement.layers == [25, 0]


async def test_coordinator_loss_moves_the_model_to_cpu_and_recovers_later(
    coordinator: CoordinatorProcess, residency_for: Callable[..., GpuResidency]
) -> None:
    placement = RecordingPlacement()
    residency = residency_for(placement, ttl_s=1.5, retry_s=0.5, keep_s=30)
    await residency.start()
    await residency.request_started()
    assert placement.layers == [25]
    coordinator.kill()
    # Renewals fail; by our own clock the lease lapses within 2/3 of the TTL and we leave the GPU.
    await poll_until(lambda: placement.layers == [25, 0], 5)
    await poll_until(lambda: residency.status()["coordinator_reachable"] is False, 5)
    assert residency.status()["device"] == "cpu"
    await asyncio.to_thread(coordinator.start)
    await poll_until(lambda: placement.layers == [25, 0, 25], 20)
    assert residency.status()["coordinator_reachable"] is True
    residency.request_finished()
