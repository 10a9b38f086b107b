"""ModelPool: shared loads, bounded waits, the LRU budget, idle unload, admin load/unload."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gemma_service.engine.protocol import EngineHealth
from gemma_service.errors import NotFoundError, ServiceUnavailableError
from gemma_service.models.catalogue import CatalogueEntry, ModelCatalogue
from gemma_service.models.pool import ModelBudget, ModelPool


class CountingEngine:
    """An engine that only loads and unloads, counting both; a load may be held open."""

    def __init__(self) -> None:
        self.starts = 0
        self.shutdowns = 0
        self.loaded = False
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def start(self) -> None:
        self.starts += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.loaded = True

    async def shutdown(self) -> None:
        self.shutdowns += 1
        self.loaded = False

    def health(self) -> EngineHealth:
        return EngineHealth("ready" if self.loaded else "stopped", "cpu", 0, False, 0, 0)


def make_pool(
    tmp_path: Path, ids: list[str], budget: ModelBudget | None = None, **entry: object
) -> tuple[ModelPool, dict[str, CountingEngine]]:
    entries = []
    for model_id in ids:
        path = tmp_path / f"{model_id}.gguf"
        path.write_bytes(b"GGUF" + b"\0" * 100)
        extra = entry if model_id == ids[-1] else {}
        entries.append(CatalogueEntry(model_id, path, **extra))  # type: ignore[arg-type]
    engines: dict[str, CountingEngine] = {}

    def factory(e: CatalogueEntry) -> CountingEngine:
        engines[e.id] = CountingEngine()
        return engines[e.id]

    pool = ModelPool(ModelCatalogue(entries, ids[0]), factory, budget)  # type: ignore[arg-type]
    return pool, engines


def states(pool: ModelPool) -> dict[str, str]:
    return {s.id: s.state for s in pool.status()}


async def test_start_loads_only_the_default(tmp_path: Path) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b"])
    await pool.start()
    assert states(pool) == {"a": "loaded", "b": "unloaded"}
    assert engines["b"].starts == 0
    await pool.close()
    assert engines["a"].shutdowns == 1


async def test_an_unknown_model_is_a_404_listing_the_models(tmp_path: Path) -> None:
    pool, _ = make_pool(tmp_path, ["a", "b"])
    with pytest.raises(NotFoundError) as caught:
        await pool.acquire("nope")
    assert caught.value.code == "model_not_found"
    assert "a, b" in str(caught.value)


async def test_sixteen_first_requests_share_one_load(tmp_path: Path) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b"])
    await pool.start()
    engines["b"].gate = asyncio.Event()
    waiters = [asyncio.create_task(pool.acquire("b")) for _ in range(16)]
    await asyncio.sleep(0.05)
    assert states(pool)["b"] == "loading"
    engines["b"].gate.set()
    leases = await asyncio.gather(*waiters)
    assert engines["b"].starts == 1
    assert pool.status("b")[0].in_use == 16
    for lease in leases:
        lease.release()
    assert pool.status("b")[0].in_use == 0
    await pool.close()


async def test_a_slow_load_answers_503_with_retry_after_and_carries_on(tmp_path: Path) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b"], ModelBudget(load_wait_s=0.1))
    await pool.start()
    engines["b"].gate = asyncio.Event()
    with pytest.raises(ServiceUnavailableError) as caught:
        await pool.acquire("b")
    assert int(caught.value.headers["Retry-After"]) >= 1
    engines["b"].gate.set()
    lease = await pool.acquire("b")  # the same load finished it
    assert engines["b"].starts == 1
    lease.release()
    await pool.close()


async def test_a_failed_load_is_a_503_and_the_next_request_tries_again(tmp_path: Path) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b"])
    await pool.start()
    engines["b"].fail = RuntimeError("bad tensor")
    with pytest.raises(ServiceUnavailableError, match="bad tensor"):
        await pool.acquire("b")
    assert states(pool)["b"] == "unloaded"
    engines["b"].fail = None
    (await pool.acquire("b")).release()
    assert engines["b"].starts == 2
    await pool.close()


async def test_a_budget_of_one_swaps_the_least_recently_used(tmp_path: Path) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b", "c"], ModelBudget(max_loaded=2))
    await pool.start()
    (await pool.acquire("b")).release()
    (await pool.acquire("a")).release()  # a used after b: b is the least recent
    (await pool.acquire("c")).release()
    assert states(pool) == {"a": "loaded", "b": "unloaded", "c": "loaded"}
    assert engines["b"].shutdowns == 1
    await pool.close()


async def test_a_model_with_running_requests_is_never_unloaded_to_make_room(
    tmp_path: Path,
) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b"], ModelBudget(max_loaded=1))
    await pool.start()
    running = await pool.acquire("a")
    wanting_b = asyncio.create_task(pool.acquire("b"))
    await asyncio.sleep(0.05)
    assert states(pool) == {"a": "loaded", "b": "loading"}  # b waits for room
    assert engines["a"].shutdowns == 0
    running.release()  # a's request ends: now it may go
    lease = await wanting_b
    assert states(pool) == {"a": "unloaded", "b": "loaded"}
    lease.release()
    await pool.close()


async def test_no_room_within_the_wait_is_a_503(tmp_path: Path) -> None:
    pool, _ = make_pool(tmp_path, ["a", "b"], ModelBudget(max_loaded=1, load_wait_s=0.1))
    await pool.start()
    running = await pool.acquire("a")
    with pytest.raises(ServiceUnavailableError):
        await pool.acquire("b")
    running.release()
    await pool.close()


async def test_the_byte_budget_counts_model_files(tmp_path: Path) -> None:
    # Each file is 104 bytes: two fit in 250, three do not.
    pool, _ = make_pool(tmp_path, ["a", "b", "c"], ModelBudget(max_bytes=250))
    await pool.start()
    (await pool.acquire("b")).release()
    (await pool.acquire("c")).release()
    assert states(pool) == {"a": "unloaded", "b": "loaded", "c": "loaded"}
    await pool.close()


async def test_a_pinned_model_is_never_unloaded_to_make_room(tmp_path: Path) -> None:
    pool, _ = make_pool(tmp_path, ["a", "b", "c"], ModelBudget(max_loaded=2), pinned=True)
    await pool.start()
    (await pool.acquire("c")).release()  # c is pinned
    (await pool.acquire("b")).release()  # room comes from a, not c
    assert states(pool) == {"a": "unloaded", "b": "loaded", "c": "loaded"}
    await pool.close()


async def test_an_idle_model_unloads_after_its_idle_time(tmp_path: Path) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b"], ModelBudget(idle_s=0.2))
    await pool.start()
    lease = await pool.acquire("b")
    await asyncio.sleep(0.5)
    assert states(pool)["b"] == "loaded"  # held: not idle
    lease.release()
    await asyncio.sleep(0.5)
    assert states(pool) == {"a": "unloaded", "b": "unloaded"}
    assert engines["b"].shutdowns == 1
    await pool.close()


async def test_a_per_model_idle_time_overrides_the_servers(tmp_path: Path) -> None:
    pool, _ = make_pool(tmp_path, ["a", "b"], ModelBudget(idle_s=0), idle_s=0.1)
    await pool.start()
    (await pool.acquire("b")).release()
    await asyncio.sleep(0.4)
    assert states(pool) == {"a": "loaded", "b": "unloaded"}
    await pool.close()


async def test_unload_waits_for_running_requests(tmp_path: Path) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b"])
    await pool.start()
    lease = await pool.acquire("b")
    status = await pool.unload("b")
    assert status.state == "loaded" and engines["b"].shutdowns == 0
    lease.release()
    await asyncio.sleep(0.05)
    assert states(pool)["b"] == "unloaded"
    # Unloaded, it loads again on the next request.
    (await pool.acquire("b")).release()
    assert engines["b"].starts == 2
    await pool.close()


async def test_admin_load_and_unload_name_models_exactly(tmp_path: Path) -> None:
    pool, _ = make_pool(tmp_path, ["a"])
    await pool.start()
    with pytest.raises(NotFoundError):
        await pool.unload("whatever")  # one model answers any request name, not admin ones
    assert (await pool.unload("a")).state == "unloaded"
    assert (await pool.load("a")).state == "loaded"
    await pool.close()


async def test_a_request_during_an_unload_waits_and_reloads(tmp_path: Path) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b"])
    await pool.start()
    (await pool.acquire("b")).release()
    unloading = asyncio.create_task(pool.unload("b"))
    await asyncio.sleep(0)
    lease = await pool.acquire("b")
    await unloading
    assert engines["b"].loaded and pool.status("b")[0].state == "loaded"
    lease.release()
    await pool.close()


async def test_a_request_waiting_for_a_load_gets_a_503_when_the_server_stops(
    tmp_path: Path,
) -> None:
    pool, engines = make_pool(tmp_path, ["a", "b"])
    await pool.start()
    engines["b"].gate = asyncio.Event()
    waiting = asyncio.create_task(pool.acquire("b"))
    await asyncio.sleep(0.05)
    await pool.close()
    with pytest.raises(ServiceUnavailableError, match="shutting down"):
        await waiting
