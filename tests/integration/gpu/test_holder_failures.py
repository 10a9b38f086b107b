"""Holders that die or freeze, and coordinator restarts: the GPU moves on, old tokens stay dead."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import httpx
import pytest

from gemma_service.gpu.lease import RENEW_FRACTION
from gemma_service.gpu.lease_client import AsyncLeaseClient
from gemma_service.gpu.testing import CoordinatorProcess, JsonLinesProcess, poll_until

pytestmark = pytest.mark.timeout(90)

Spawn = Callable[..., JsonLinesProcess]


async def until_queued(url: str, length: int) -> None:
    async with httpx.AsyncClient() as http:

        async def queued() -> bool:
            return len((await http.get(f"{url}/leases", timeout=5)).json()["queue"]) >= length

        await poll_until(queued, 10)


async def fencing_status(url: str, lease_id: str, token: int) -> tuple[int, str | None]:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{url}/leases/validate", json={"lease_id": lease_id, "token": token}, timeout=5
        )
    code = response.json()["error"]["code"] if response.status_code != 200 else None
    return response.status_code, code


async def test_holder_killed_with_sigkill_loses_the_lease_within_ttl_plus_one_renewal(
    coordinator: CoordinatorProcess, spawn: Spawn, holder_script: str
) -> None:
    ttl_s = 2.0
    holder = spawn(holder_script, "--url", coordinator.url, "--ttl", str(ttl_s))
    acquired = await holder.wait_for_event_async("acquired", 30)
    async with AsyncLeaseClient(coordinator.url, "next") as waiter:
        grant = asyncio.create_task(waiter.acquire(ttl_s=ttl_s, wait_s=20))
        await until_queued(coordinator.url, 1)
        await asyncio.sleep(ttl_s / 2)  # the killed holder has renewed at least once
        holder.kill()
        killed_at = time.monotonic()
        lease = await asyncio.wait_for(grant, 20)
        handed_over_s = time.monotonic() - killed_at
        # It waited longer than its own TTL, yet its lease counts from the grant, not the ask.
        assert lease.is_valid() and lease.remaining_s() > ttl_s / 3
        assert lease.token == acquired["token"] + 1
        assert handed_over_s <= ttl_s + ttl_s * RENEW_FRACTION
        await waiter.release(lease)


async def test_frozen_holder_finds_its_token_rejected_after_it_resumes(
    coordinator: CoordinatorProcess, spawn: Spawn, holder_script: str
) -> None:
    ttl_s = 1.5
    holder = spawn(holder_script, "--url", coordinator.url, "--ttl", str(ttl_s))
    acquired = await holder.wait_for_event_async("acquired", 30)
    async with AsyncLeaseClient(coordinator.url, "next") as waiter:
        holder.send_signal(signal.SIGSTOP)
        try:
            lease = await waiter.acquire(ttl_s=10, wait_s=20)
            granted_at = time.monotonic()
        finally:
            holder.send_signal(signal.SIGCONT)
        resumed = await holder.wait_for_event_async("invalid", 20)
        check = await holder.wait_for_event_async("fencing_check", 20)
        # The frozen holder's last use of the GPU came before the new grant, never after.
        assert resumed["last_valid_t"] < granted_at
        assert (check["status"], check["code"]) == (409, "stale_token")
        assert await fencing_status(coordinator.url, acquired["lease_id"], acquired["token"]) == (
            409,
            "stale_token",
        )
        assert await fencing_status(coordinator.url, lease.lease_id, lease.token) == (200, None)
        assert lease.token == acquired["token"] + 1
        await waiter.release(lease)


async def test_coordinator_restart_keeps_tokens_increasing(
    coordinator: CoordinatorProcess,
) -> None:
    tokens = []
    async with AsyncLeaseClient(coordinator.url, "a") as client:
        for _ in range(3):
            async with client.lease(ttl_s=5) as lease:
                tokens.append(lease.token)
    coordinator.kill()
    await asyncio.to_thread(coordinator.start)
    async with AsyncLeaseClient(coordinator.url, "a") as client, client.lease(ttl_s=5) as lease:
        tokens.append(lease.token)
    coordinator.stop()  # graceful this time
    await asyncio.to_thread(coordinator.start)
    async with AsyncLeaseClient(coordinator.url, "a") as client, client.lease(ttl_s=5) as lease:
        tokens.append(lease.token)
    assert tokens == sorted(set(tokens)), tokens
    assert tokens[0] >= 1


async def test_restarted_coordinator_waits_out_a_lease_that_may_still_be_in_use(
    coordinator: CoordinatorProcess,
) -> None:
    # Long enough that the old holder is still valid by its own clock when the restart is done.
    ttl_s = 9.0
    async with (
        AsyncLeaseClient(coordinator.url, "old") as old_client,
        AsyncLeaseClient(coordinator.url, "new") as new_client,
    ):
        old = await old_client.acquire(ttl_s=ttl_s)
        coordinator.kill()
        await asyncio.to_thread(coordinator.start)
        new = await new_client.acquire(ttl_s=ttl_s, wait_s=30)
        # The old holder got no renewal from the new coordinator, so its clock ran out first.
        assert not old.is_valid()
        assert new.token > old.token
        await new_client.release(new)
