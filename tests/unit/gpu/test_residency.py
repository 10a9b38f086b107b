"""The residency state machine without a coordinator, without a GPU, and with none reachable."""

from __future__ import annotations

import asyncio
import time

import pytest

from gemma_service.gpu.residency import GpuResidency
from gemma_service.gpu.testing import free_port


class RecordingPlacement:
    """A fake engine: records every relocation (layers, when) and takes ``delay_s`` for each."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.moves: list[int] = []

    async def relocate(self, gpu_layers: int) -> None:
        await asyncio.sleep(self.delay_s)
        self.moves.append(gpu_layers)


async def test_without_a_coordinator_the_model_moves_to_the_gpu_once_for_life() -> None:
    placement = RecordingPlacement()
    residency = GpuResidency(placement, coordinator_url=None, gpu_layers=25, keep_s=0.01)
    await residency.start()
    waits = [await residency.request_started() for _ in range(3)]
    for _ in waits:
        residency.request_finished()
    await asyncio.sleep(0.05)
    await residency.stop()
    assert placement.moves == [25]
    assert waits == [0.0, 0.0, 0.0]
    status = residency.status()
    assert (status["device"], status["gpu_layers"], status["lease_state"]) == (
        "cuda",
        25,
        "exclusive",
    )


async def test_without_a_usable_gpu_nothing_moves_and_health_says_cpu() -> None:
    placement = RecordingPlacement()
    residency = GpuResidency(
        placement,
        coordinator_url=f"http://127.0.0.1:{free_port()}",
        gpu_layers=25,
        keep_s=1,
        gpu_available=False,
    )
    await residency.start()
    assert await residency.request_started() == 0.0
    residency.request_finished()
    await residency.stop()
    assert placement.moves == []
    status = residency.status()
    assert (status["device"], status["gpu_available"], status["lease_state"]) == (
        "cpu",
        False,
        "none",
    )


@pytest.mark.timeout(30)
async def test_unreachable_coordinator_serves_on_cpu_and_says_so() -> None:
    placement = RecordingPlacement()
    residency = GpuResidency(
        placement,
        coordinator_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        gpu_layers=25,
        keep_s=1,
        max_gpu_wait_s=10,
        retry_s=60,
        loaded_gpu_layers=25,
    )
    await residency.start()
    started = time.monotonic()
    waited = await residency.request_started()
    second_wait = await residency.request_started()
    try:
        assert time.monotonic() - started < 5  # connection refused: no waiting out the bound
        assert waited < 5 and second_wait == 0.0
        status = residency.status()
        assert status["device"] == "cpu"
        assert status["coordinator_reachable"] is False
        assert status["lease_state"] == "coordinator_unreachable"
        assert "coordinator" in str(status["last_error"])
        # It was loaded on the GPU, but shared mode idles on CPU; it never went back.
        assert placement.moves == [0]
    finally:
        residency.request_finished()
        residency.request_finished()
        await residency.stop()


def test_health_shows_the_coordinator_url_without_credentials() -> None:
    residency = GpuResidency(
        RecordingPlacement(),
        coordinator_url="http://lease:s3cret@coordinator.internal:8700/v1?token=abc",
        gpu_layers=25,
        keep_s=1.0,
    )
    shown = residency.status()["coordinator_url"]
    assert shown == "http://coordinator.internal:8700/v1"
    assert "s3cret" not in str(shown) and "abc" not in str(shown)
