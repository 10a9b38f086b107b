"""``ModelPool``: loads catalogue models on demand, each into its own engine, within a budget.

A request takes a ``ModelLease`` (``acquire``) and gives it back when its run ends. Requests for
an unloaded model wait for one shared load, up to ``load_wait_s`` (then 503 with Retry-After;
the load carries on). A load that would pass the budget (models loaded, bytes of model files)
first unloads the least recently used model that no request holds or waits for; a pinned
model, or one with running requests, is never chosen. Idle models unload after their idle time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from gemma_service.engine.protocol import EngineClient
from gemma_service.errors import ServiceError, ServiceUnavailableError
from gemma_service.gpu.residency import GpuResidency
from gemma_service.models.catalogue import CatalogueEntry, ModelCatalogue

log = logging.getLogger(__name__)

ModelState = Literal["unloaded", "loading", "loaded", "unloading"]
EngineFactory = Callable[[CatalogueEntry], EngineClient]
Placement = Callable[[CatalogueEntry, EngineClient], Awaitable[GpuResidency]]


@dataclass(frozen=True, slots=True)
class ModelBudget:
    """How much may be loaded at once, and for how long an idle model stays."""

    max_loaded: int = 0  # models loaded together (0: no limit)
    max_bytes: int = 0  # bytes of their model files (0: no limit)
    idle_s: float = 0.0  # idle seconds before unload (0: never); entries may override
    load_wait_s: float = 120.0  # longest a request waits for its model to load


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """One model as /v1/models, /healthz and the metrics show it."""

    id: str
    state: ModelState
    aliases: tuple[str, ...]
    path: str
    size_bytes: int
    pinned: bool
    in_use: int
    device: str | None
    loads: int
    load_s: float | None
    idle_s: float | None
    error: str | None
    # Seconds until the idle unload, if the model is idle and has an idle limit.
    unload_in_s: float | None = None


class _Slot:
    """One catalogue entry's engine and where it is in its life."""

    def __init__(self, entry: CatalogueEntry, engine: EngineClient) -> None:
        self.entry = entry
        self.engine = engine
        self.residency: GpuResidency | None = None
        self.state: ModelState = "unloaded"
        self.holds_room = False  # counted against the budget (loading, loaded or unloading)
        self.in_use = 0
        self.waiting = 0
        self.last_used = 0.0
        self.loads = 0
        self.load_s: float | None = None
        self.error: str | None = None
        self.unload_when_idle = False
        self.load_task: asyncio.Task[None] | None = None
        self.unload_task: asyncio.Task[None] | None = None


class ModelLease:
    """A request's hold on a loaded model: it is not unloaded until every lease is released."""

    def __init__(self, pool: ModelPool, slot: _Slot) -> None:
        self._pool = pool
        self._slot = slot
        self.model_id = slot.entry.id
        self.engine = slot.engine
        self.residency = slot.residency
        self.generation = slot.loads  # which load of the model this is
        self._held = True

    def release(self) -> None:
        """Give the model back (idempotent)."""
        if self._held:
            self._held = False
            self._pool._release(self._slot)


class ModelPool:
    """The catalogue's models, each loaded into its own engine when first asked for."""

    def __init__(
        self,
        catalogue: ModelCatalogue,
        engine_factory: EngineFactory,
        budget: ModelBudget | None = None,
        *,
        placement: Placement | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.budget = budget or ModelBudget()
        # Started for each load (GPU placement); the app sets it if the builder did not.
        self.placement = placement
        self._slots = {e.id: _Slot(e, engine_factory(e)) for e in catalogue.entries.values()}
        self._room = asyncio.Lock()  # one load at a time chooses what to unload
        self._changed = asyncio.Event()
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False

    # --- what is there --------------------------------------------------------------------
    def engine(self, model_id: str | None = None) -> EngineClient:
        """The engine of ``model_id`` (default: the default model), loaded or not."""
        return self._slots[model_id or self.catalogue.default_id].engine

    def residency(self, model_id: str | None = None) -> GpuResidency | None:
        return self._slots[model_id or self.catalogue.default_id].residency

    def loaded(self) -> list[tuple[str, EngineClient]]:
        """The models loaded now, with their engines."""
        return [(s.entry.id, s.engine) for s in self._slots.values() if s.state == "loaded"]

    def status(self, model_id: str | None = None) -> list[ModelStatus]:
        """Every model (or the one named), default first."""
        now = time.monotonic()
        slots = [self._slots[model_id]] if model_id else list(self._slots.values())
        return [self._status(s, now) for s in slots]

    def _status(self, slot: _Slot, now: float) -> ModelStatus:
        device = slot.engine.health().device if slot.state == "loaded" else None
        idle = now - slot.last_used if slot.state == "loaded" and slot.in_use == 0 else None
        limit = self._idle_limit(slot)
        unload_in = None
        if idle is not None and limit > 0 and not slot.entry.pinned:
            unload_in = max(0.0, limit - idle)
        return ModelStatus(
            id=slot.entry.id,
            state=slot.state,
            aliases=slot.entry.aliases,
            path=str(slot.entry.path),
            size_bytes=slot.entry.size_bytes,
            pinned=slot.entry.pinned,
            in_use=slot.in_use,
            device=device,
            loads=slot.loads,
            load_s=slot.load_s,
            idle_s=idle,
            error=slot.error,
            unload_in_s=unload_in,
        )

    # --- life -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the default model (raises if it cannot load) and start the idle reaper."""
        await self._ensure_loading(self._slots[self.catalogue.default_id])
        self._reaper = asyncio.create_task(self._reap_idle())

    async def close(self) -> None:
        """Unload every model (the server is stopping; runs have been drained or ended)."""
        self._closing = True
        tasks = [s.load_task for s in self._slots.values() if s.load_task is not None]
        if self._reaper is not None:
            tasks.append(self._reaper)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for slot in self._slots.values():
            if slot.unload_task is not None:
                await asyncio.gather(slot.unload_task, return_exceptions=True)
            if slot.state != "unloaded":
                await self._begin_unload(slot, "the server is stopping")

    # --- requests -------------------------------------------------------------------------
    async def acquire(self, name: str | None) -> ModelLease:
        """Hold the model ``name`` names, loading it first if need be (404 for an unknown name,
        503 with Retry-After when it is not loaded within the wait)."""
        slot = self._slots[self.catalogue.resolve(name).id]
        deadline = time.monotonic() + self.budget.load_wait_s
        slot.waiting += 1
        try:
            while slot.state != "loaded":
                if self._closing:
                    raise ServiceUnavailableError("the server is shutting down", retry_after_s=10)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._still_loading(slot)
                try:
                    await asyncio.wait_for(asyncio.shield(self._ensure_loading(slot)), remaining)
                except TimeoutError:
                    raise self._still_loading(slot) from None
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # this request itself was cancelled
                    # The load was cancelled under us: the server is stopping.
                    raise ServiceUnavailableError(
                        "the server is shutting down", retry_after_s=10
                    ) from None
            slot.in_use += 1
            slot.last_used = time.monotonic()
            return ModelLease(self, slot)
        finally:
            slot.waiting -= 1

    async def load(self, name: str) -> ModelStatus:
        """Load a model now (admin); returns once it is loaded, or raises as ``acquire``."""
        lease = await self.acquire(self._named(name).id)
        lease.release()
        return self.status(lease.model_id)[0]

    async def unload(self, name: str) -> ModelStatus:
        """Unload a model (admin). With requests running it unloads when the last one ends:
        a running stream is never cut."""
        slot = self._slots[self._named(name).id]
        if slot.state == "loaded" and slot.in_use == 0 and slot.waiting == 0:
            await self._begin_unload(slot, "asked to")
        elif slot.state in ("loaded", "loading"):
            slot.unload_when_idle = True
        return self.status(slot.entry.id)[0]

    def _named(self, name: str) -> CatalogueEntry:
        """The entry of this exact id or alias (admin actions name a model exactly)."""
        entry = self.catalogue.find(name)
        if entry is None:
            raise self.catalogue.not_found(name)
        return entry

    def _release(self, slot: _Slot) -> None:
        slot.in_use -= 1
        slot.last_used = time.monotonic()
        if slot.in_use == 0 and slot.waiting == 0 and slot.unload_when_idle:
            self._begin_unload(slot, "asked to")
        self._notify()

    def _still_loading(self, slot: _Slot) -> ServiceError:
        retry = max(1.0, slot.load_s or 5.0)
        return ServiceUnavailableError(
            f"the model '{slot.entry.id}' is still loading; retry shortly", retry_after_s=retry
        )

    # --- loading and unloading ------------------------------------------------------------
    def _ensure_loading(self, slot: _Slot) -> asyncio.Task[None]:
        """The one load of ``slot`` that every waiter shares."""
        if slot.load_task is None:
            slot.load_task = asyncio.create_task(self._load(slot))
        return slot.load_task

    async def _load(self, slot: _Slot) -> None:
        try:
            if slot.unload_task is not None:  # an unload under way finishes first
                await asyncio.shield(slot.unload_task)
            if slot.state == "loaded":
                return
            slot.state, slot.error, slot.unload_when_idle = "loading", None, False
            self._notify()
            async with self._room:
                await self._make_room(slot)
                slot.holds_room = True
            started = time.monotonic()
            await slot.engine.start()
            if self.placement is not None:
                slot.residency = await self.placement(slot.entry, slot.engine)
            slot.load_s = time.monotonic() - started
            slot.loads += 1
            slot.state, slot.last_used = "loaded", time.monotonic()
            log.info("model %s loaded in %.2fs", slot.entry.id, slot.load_s)
            if slot.unload_when_idle and slot.waiting == 0:  # unloaded while it loaded
                self._begin_unload(slot, "asked to")
        except BaseException as exc:
            slot.error = f"{exc}" or type(exc).__name__
            if slot.state == "loading":
                with contextlib.suppress(Exception):
                    await slot.engine.shutdown()
                slot.state, slot.holds_room = "unloaded", False
            if not isinstance(exc, asyncio.CancelledError | ServiceError):
                log.error("model %s failed to load: %s", slot.entry.id, exc)
                raise ServiceUnavailableError(
                    f"the model '{slot.entry.id}' failed to load: {exc}"
                ) from exc
            raise
        finally:
            slot.load_task = None
            self._notify()

    async def _make_room(self, slot: _Slot) -> None:
        """Unload least recently used idle models until ``slot`` fits the budget."""
        try:
            async with asyncio.timeout(self.budget.load_wait_s):
                while self._over_budget(slot):
                    victim = self._least_recently_used()
                    if victim is not None:
                        await self._begin_unload(victim, f"to make room for {slot.entry.id}")
                    else:  # every loaded model is busy or pinned: wait for one to free up
                        await self._wait_for_change()
        except TimeoutError:
            raise ServiceUnavailableError(
                f"no room to load the model '{slot.entry.id}': the loaded models are busy or "
                "pinned; retry later",
                retry_after_s=10,
            ) from None

    def _over_budget(self, slot: _Slot) -> bool:
        others = [s for s in self._slots.values() if s is not slot and s.holds_room]
        if not others:
            return False  # a model alone always loads, whatever its size
        b = self.budget
        if b.max_loaded and len(others) + 1 > b.max_loaded:
            return True
        used = sum(s.entry.size_bytes for s in others)
        return bool(b.max_bytes) and used + slot.entry.size_bytes > b.max_bytes

    def _least_recently_used(self) -> _Slot | None:
        idle = [
            s
            for s in self._slots.values()
            if s.state == "loaded" and s.in_use == 0 and s.waiting == 0 and not s.entry.pinned
        ]
        return min(idle, key=lambda s: s.last_used, default=None)

    def _begin_unload(self, slot: _Slot, why: str) -> asyncio.Future[None]:
        """Mark ``slot`` unloading now (no lease can be taken from here on), unload it in a
        task; the returned future ends when it is unloaded."""
        if slot.unload_task is None:
            slot.state = "unloading"
            self._notify()
            slot.unload_task = asyncio.create_task(self._unload_now(slot, why))
        return asyncio.shield(slot.unload_task)

    async def _unload_now(self, slot: _Slot, why: str) -> None:
        try:
            if slot.residency is not None:
                # The engine frees the model's GPU memory itself right after: no move to CPU.
                await slot.residency.stop(offload=False)
            await slot.engine.shutdown()
            log.info("model %s unloaded (%s)", slot.entry.id, why)
        except Exception:
            log.exception("model %s: unloading failed", slot.entry.id)
        finally:
            slot.residency = None
            slot.state, slot.holds_room, slot.unload_when_idle = "unloaded", False, False
            slot.unload_task = None
            _return_freed_memory()
            self._notify()

    async def _reap_idle(self) -> None:
        """Unload models idle past their idle time (checked a few times per idle period)."""
        while True:
            limits = [self._idle_limit(s) for s in self._slots.values()]
            period = min((t / 4 for t in limits if t > 0), default=5.0)
            await asyncio.sleep(min(5.0, max(0.05, period)))
            now = time.monotonic()
            for slot, limit in zip(self._slots.values(), limits, strict=True):
                idle = slot.state == "loaded" and slot.in_use == 0 and slot.waiting == 0
                if idle and limit > 0 and not slot.entry.pinned and now - slot.last_used > limit:
                    await self._begin_unload(slot, f"idle for {limit:g}s")

    def _idle_limit(self, slot: _Slot) -> float:
        return slot.entry.idle_s if slot.entry.idle_s is not None else self.budget.idle_s

    # --- change notification --------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_for_change(self) -> None:
        await self._changed.wait()


def _return_freed_memory() -> None:
    """Ask glibc to hand freed heap back to the OS, so an unload shows in the process's RSS."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
