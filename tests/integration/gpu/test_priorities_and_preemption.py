"""Lease clients against a real coordinator process: priorities, preemption, bounded yield."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from gemma_service.gpu.lease import Lease, LeaseNotGranted
from gemma_service.gpu.lease_client import AsyncLeaseClient
from gemma_service.gpu.testing import CoordinatorProcess, poll_until

pytestmark = pytest.mark.timeout(60)


async def queue_length(url: str) -> int:
    async with httpx.AsyncClient() as http:
        state = (await http.get(f"{url}/leases", timeout=5)).json()
    return len(state["queue"])


async def until_queued(url: str, length: int) -> None:
    async def queued() -> bool:
        return await queue_length(url) >= length

    await poll_until(queued, 10)


async def test_higher_priority_request_preempts_and_waiters_go_by_priority_then_arrival(
    coordinator: CoordinatorProcess,
) -> None:
    preempts: list[str] = []
    grants: list[tuple[str, int]] = []

    def note_preempt(lease: Lease) -> None:
        preempts.append(lease.holder)

    clients = {
        name: AsyncLeaseClient(coordinator.url, name, on_preempt=note_preempt)
        for name in ("transcriber", "mid-a", "mid-b", "gemma")
    }

    async def take_turn(name: str, priority: int) -> None:
        lease = await clients[name].acquire(priority=priority, ttl_s=5, wait_s=20)
        grants.append((name, lease.token))
        await clients[name].release(lease)

    try:
        low = await clients["transcriber"].acquire(priority=1, ttl_s=5)
        waiters = []
        for count, (name, priority) in enumerate([("mid-a", 5), ("mid-b", 5), ("gemma", 9)]):
            waiters.append(asyncio.create_task(take_turn(name, priority)))
            await until_queued(coordinator.url, count + 1)
        await poll_until(lambda: low.preempted, 5)
        await clients["transcriber"].release(low)
        await asyncio.wait_for(asyncio.gather(*waiters), 20)
    finally:
        for client in clients.values():
            await client.aclose()
    assert preempts == ["transcriber"]
    assert [name for name, _ in grants] == ["gemma", "mid-a", "mid-b"]
    assert [token for _, token in grants] == [low.token + 1, low.token + 2, low.token + 3]


async def test_holder_that_yields_on_preempt_hands_over_quickly(
    coordinator: CoordinatorProcess,
) -> None:
    async def yield_gpu(lease: Lease) -> None:
        await transcriber.release(lease)

    transcriber = AsyncLeaseClient(coordinator.url, "transcriber", on_preempt=yield_gpu)
    gemma = AsyncLeaseClient(coordinator.url, "gemma")
    try:
        low = await transcriber.acquire(priority=1, ttl_s=10)
        asked_at = time.monotonic()
        high = await gemma.acquire(priority=10, ttl_s=10, wait_s=10)
        handover_s = time.monotonic() - asked_at
        assert not low.is_valid()
        assert high.is_valid() and high.token == low.token + 1
        # Far below the 10 s TTL: the holder released when asked instead of timing out.
        assert handover_s < 3.0
    finally:
        await transcriber.aclose()
        await gemma.aclose()


async def test_holder_ignoring_preempt_loses_the_lease_by_its_ttl_and_has_stopped_by_then(
    coordinator: CoordinatorProcess,
) -> None:
    lost: list[Lease] = []

    def note_lost(lease: Lease) -> None:
        lost.append(lease)

    stubborn = AsyncLeaseClient(coordinator.url, "stubborn", on_lost=note_lost)
    gemma = AsyncLeaseClient(coordinator.url, "gemma")
    ttl_s = 1.5
    try:
        held = await stubborn.acquire(priority=1, ttl_s=ttl_s)
        asked_at = time.monotonic()
        high = await gemma.acquire(priority=10, ttl_s=ttl_s, wait_s=10)
        waited_s = time.monotonic() - asked_at
        assert not held.is_valid(), "the old holder still thinks it may use the GPU"
        assert high.token == held.token + 1
        assert waited_s <= ttl_s + ttl_s / 4 + 0.5
        await poll_until(lambda: bool(lost), 5)
        assert lost == [held] and held.lost_reason is not None
    finally:
        await stubborn.aclose()
        await gemma.aclose()


async def test_not_granted_in_time_raises_lease_not_granted(
    coordinator: CoordinatorProcess,
) -> None:
    async with (
        AsyncLeaseClient(coordinator.url, "a") as first,
        AsyncLeaseClient(coordinator.url, "b") as second,
    ):
        async with first.lease(priority=5, ttl_s=5) as held:
            with pytest.raises(LeaseNotGranted) as busy:
                await second.acquire(priority=5, wait_s=0)
            with pytest.raises(LeaseNotGranted) as timed_out:
                await second.acquire(priority=5, wait_s=0.3)
            assert held.is_valid()
        assert (busy.value.status_code, timed_out.value.status_code) == (409, 408)
        async with second.lease(wait_s=1) as after:
            assert after.token == held.token + 1
