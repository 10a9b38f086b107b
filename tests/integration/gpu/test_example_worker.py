"""The example transcription worker pauses when a higher-priority service needs the GPU."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gemma_service.gpu.lease_client import AsyncLeaseClient
from gemma_service.gpu.testing import CoordinatorProcess, JsonLinesProcess

pytestmark = pytest.mark.timeout(60)

Spawn = Callable[..., JsonLinesProcess]


async def test_worker_pauses_on_preempt_and_resumes_after_the_gpu_is_released(
    coordinator: CoordinatorProcess, spawn: Spawn
) -> None:
    worker = spawn("-m", "gemma_service.gpu.example_worker", "--coordinator", coordinator.url)
    first = await worker.wait_for_event_async("acquired", 30)
    async with AsyncLeaseClient(coordinator.url, "gemma") as gemma:
        lease = await gemma.acquire(priority=10, ttl_s=5, wait_s=15)
        released = await worker.wait_for_event_async("released", 10)
        pausing = await worker.wait_for_event_async("pausing", 10)
        preempt = await worker.wait_for_event_async("preempt_received", 10)
        assert pausing["reason"] == "preempted"
        assert released["token"] == preempt["token"] == first["token"]
        assert lease.token == first["token"] + 1
        mark = len(worker.events)
        await gemma.release(lease)
    resumed = await worker.wait_for_async(
        lambda e: e["event"] == "acquired" and e["token"] > lease.token, 15, after=mark
    )
    assert resumed["token"] == lease.token + 1
    assert worker.terminate() == 0
    assert worker.events[-1]["event"] == "stopped"
