"""Where the model lives when the GPU is shared: on CPU when idle, on GPU under a lease.

``GpuResidency`` is the engine's state machine: requests create demand, demand acquires the lease
and moves the model to the GPU, an idle window or a preempt moves it back and releases the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from gemma_service.gpu.lease import CoordinatorUnavailable, Lease, LeaseNotGranted
from gemma_service.gpu.lease_client import AsyncLeaseClient

logger = logging.getLogger(__name__)

YieldReason = Literal["idle", "preempted", "lost", "stopping"]


class ModelPlacement(Protocol):
    """The engine side: reload the model with ``gpu_layers`` offloaded; sequences continue after."""

    async def relocate(self, gpu_layers: int) -> None: ...


class Residency(enum.StrEnum):
    NO_GPU = "no_gpu"  # no usable GPU (or 0 layers configured): CPU only, no lease
    EXCLUSIVE = "exclusive"  # no coordinator: GPU held for the process lifetime
    CPU = "cpu"  # idle on CPU, no lease
    WAITING = "waiting"  # asked the coordinator for the lease
    LOADING = "loading"  # lease held, moving the model to the GPU
    ON_GPU = "on_gpu"  # lease held, serving on the GPU
    OFFLOADING = "offloading"  # moving back to CPU; the lease is released after
    CPU_FALLBACK = "cpu_fallback"  # coordinator unreachable or GPU load failed: CPU, retry later


# States in which a new request is served at once, on whatever device the model is on.
_SERVING_NOW = {Residency.NO_GPU, Residency.EXCLUSIVE, Residency.ON_GPU, Residency.CPU_FALLBACK}


class GpuResidency:
    """Moves the model between CPU and GPU under the coordinator's lease, driven by requests."""

    def __init__(
        self,
        placement: ModelPlacement,
        *,
        coordinator_url: str | None,
        gpu_layers: int,
        keep_s: float,
        holder: str = "gemma-service",
        priority: int = 10,
        ttl_s: float = 10.0,
        gpu_available: bool = True,
        max_gpu_wait_s: float = 10.0,
        acquire_wait_s: float = 60.0,
        retry_s: float = 5.0,
        loaded_gpu_layers: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._placement = placement
        self._coordinator_url = coordinator_url
        self._gpu_layers = gpu_layers
        self._keep_s = keep_s
        self._holder = holder
        self._priority = priority
        self._ttl_s = ttl_s
        self._gpu_available = gpu_available
        self._max_gpu_wait_s = max_gpu_wait_s
        self._acquire_wait_s = acquire_wait_s
        self._retry_s = retry_s
        self._clock = clock
        self._layers = loaded_gpu_layers
        self._state = Residency.CPU
        self._state_changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._active = 0
        self._idle_since = clock()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._client: AsyncLeaseClient | None = None
        self._lease: Lease | None = None
        self._driver: asyncio.Task[None] | None = None
        self._relocation: asyncio.Task[None] | None = None
        self._reachable: bool | None = None
        self._last_error: str | None = None
        self._last_relocation_s: float | None = None
        self._last_yield_s: float | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Without a coordinator: move to the GPU once, for life. With one: idle on CPU."""
        if not self._gpu_available or self._gpu_layers == 0:
            self._set_state(Residency.NO_GPU)
            return
        if self._coordinator_url is None:
            if self._layers != self._gpu_layers:
                await self._relocate(self._gpu_layers)
            self._set_state(Residency.EXCLUSIVE)
            return
        self._client = AsyncLeaseClient(
            self._coordinator_url,
            self._holder,
            on_preempt=self._on_lease_event,
            on_lost=self._on_lease_event,
        )
        if self._layers != 0:
            await self._relocate(0)
        self._set_state(Residency.CPU)
        self._driver = asyncio.create_task(self._drive(), name="gpu-residency")

    async def stop(self, *, offload: bool = True) -> None:
        """Move the model back to CPU (when shared) and release the lease.

        Pass ``offload=False`` when the engine has already freed the model's GPU memory.
        """
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        if self._driver is not None:
            self._driver.cancel()
            await asyncio.gather(self._driver, return_exceptions=True)
        if self._relocation is not None:
            await asyncio.gather(self._relocation, return_exceptions=True)
        if self._client is None:
            return
        if offload and self._layers != 0:
            with contextlib.suppress(Exception):
                await self._relocate(0)
        if self._lease is not None:
            await self._client.release(self._lease)
            self._lease = None
        await self._client.aclose()
        self._set_state(Residency.CPU)

    # --- requests --------------------------------------------------------------------------

    async def request_started(self) -> float:
        """Wait until the model is placed to serve (bounded); returns the seconds waited."""
        started = self._clock()
        self._active += 1
        self._wake.set()
        if self._ready_to_serve():
            return 0.0
        try:
            while not self._ready_to_serve():
                remaining = started + self._max_gpu_wait_s - self._clock()
                if remaining <= 0:
                    break  # serve on CPU now; the lease may still come while we run
                changed = self._state_changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
        except asyncio.CancelledError:
            self.request_finished()
            raise
        return self._clock() - started

    def request_finished(self) -> None:
        """Call once per request_started that returned; the last one out starts the idle timer."""
        self._active = max(0, self._active - 1)
        if self._active == 0:
            self._idle_since = self._clock()
            self._wake.set()

    def status(self) -> dict[str, object]:
        """What /healthz reports about the GPU."""
        lease = self._lease
        return {
            "device": "cuda" if self._gpu_available and self._layers != 0 else "cpu",
            "gpu_layers": self._layers,
            "gpu_layers_resident": self._gpu_layers,
            "gpu_available": self._gpu_available,
            "gpu_sharing": "coordinator" if self._coordinator_url else "exclusive",
            "residency": self._state.value,
            "lease_state": self._lease_state(),
            "lease_token": lease.token if lease is not None else None,
            "coordinator_url": _without_secrets(self._coordinator_url),
            "coordinator_reachable": self._reachable,
            "active_requests": self._active,
            "keep_s": self._keep_s,
            "last_relocation_s": self._last_relocation_s,
            "last_preempt_yield_s": self._last_yield_s,
            "last_error": self._last_error,
        }

    # --- the driver ------------------------------------------------------------------------

    async def _drive(self) -> None:
        while not self._stopping:
            try:
                await self._serve_one_lease()
            except Exception as exc:
                logger.exception("GPU residency cycle failed")
                self._last_error = f"residency failed: {exc!r}"
                self._set_state(Residency.CPU_FALLBACK)
                await self._pause(self._retry_s)

    async def _serve_one_lease(self) -> None:
        while self._active == 0 and not self._stopping:
            self._wake.clear()
            await self._wake.wait()
        if self._stopping:
            return
        lease = await self._acquire()
        if lease is None:
            return
        if self._active == 0 or lease.preempted:
            # Nobody left to serve (they ran on CPU), or a rival already wants it: skip the load.
            await self._give_back(lease)
            return
        if not await self._move_to_gpu(lease):
            return
        reason = await self._hold(lease)
        await self._move_to_cpu(lease, reason)

    async def _acquire(self) -> Lease | None:
        assert self._client is not None
        self._set_state(Residency.WAITING)
        try:
            lease = await self._client.acquire(
                priority=self._priority, ttl_s=self._ttl_s, wait_s=self._acquire_wait_s
            )
        except (CoordinatorUnavailable, ValueError) as exc:
            self._reachable = not isinstance(exc, CoordinatorUnavailable)
            self._last_error = f"coordinator: {exc}"
            logger.warning("serving on CPU: %s", self._last_error)
            self._set_state(Residency.CPU_FALLBACK)
            await self._pause(self._retry_s)
            return None
        except LeaseNotGranted as exc:
            self._reachable = True
            self._last_error = f"GPU lease not granted: {exc}"
            self._set_state(Residency.CPU)
            return None
        self._reachable = True
        self._lease = lease
        return lease

    async def _move_to_gpu(self, lease: Lease) -> bool:
        self._set_state(Residency.LOADING)
        try:
            await self._relocate(self._gpu_layers)
        except Exception as exc:
            logger.exception("moving the model to the GPU failed")
            self._last_error = f"GPU load failed: {exc!r}"
            with contextlib.suppress(Exception):
                await self._relocate(0)
            await self._give_back(lease)
            self._set_state(Residency.CPU_FALLBACK)
            await self._pause(self._retry_s)
            return False
        self._set_state(Residency.ON_GPU)
        return True

    async def _hold(self, lease: Lease) -> YieldReason:
        """Serve on the GPU until idle for keep_s, preempted, lost, or stopping."""
        while True:
            if self._stopping:
                return "stopping"
            if lease.preempted:
                return "preempted"
            if not lease.is_valid():
                return "lost"
            timeout = lease.remaining_s()
            if self._active == 0:
                idle_left = self._idle_since + self._keep_s - self._clock()
                if idle_left <= 0:
                    return "idle"
                timeout = min(timeout, idle_left)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _move_to_cpu(self, lease: Lease, reason: YieldReason) -> None:
        logger.info("moving the model to CPU (%s)", reason)
        self._set_state(Residency.OFFLOADING)
        try:
            await self._relocate(0)
        except Exception as exc:
            logger.exception("moving the model to CPU failed")
            self._last_error = f"GPU offload failed: {exc!r}"
        await self._give_back(lease)
        if reason == "preempted" and lease.preempted_at is not None:
            self._last_yield_s = time.monotonic() - lease.preempted_at
        if reason == "lost":
            self._last_error = f"GPU lease lost: {lease.lost_reason}"
        self._set_state(Residency.CPU)

    async def _give_back(self, lease: Lease) -> None:
        assert self._client is not None
        await self._client.release(lease)
        self._lease = None

    # --- helpers ---------------------------------------------------------------------------

    async def _relocate(self, gpu_layers: int) -> None:
        # Shielded: cancelling the driver (stop) must not tear a reload in half.
        async def relocate() -> None:
            started = self._clock()
            await self._placement.relocate(gpu_layers)
            self._layers = gpu_layers
            self._last_relocation_s = self._clock() - started

        self._relocation = asyncio.create_task(relocate(), name=f"relocate-{gpu_layers}")
        await asyncio.shield(self._relocation)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake early on stop (not on new requests: they are served on CPU)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    def _on_lease_event(self, lease: Lease) -> None:
        self._wake.set()

    def _ready_to_serve(self) -> bool:
        return self._stopping or self._driver is None or self._state in _SERVING_NOW

    def _set_state(self, state: Residency) -> None:
        self._state = state
        # Wake every waiting request; each re-checks whether it may run now.
        self._state_changed.set()
        self._state_changed = asyncio.Event()

    def _lease_state(self) -> str:
        if self._state is Residency.EXCLUSIVE:
            return "exclusive"
        if self._state is Residency.WAITING:
            return "waiting"
        if self._state is Residency.CPU_FALLBACK and self._reachable is False:
            return "coordinator_unreachable"
        if self._lease is None:
            return "none"
        if self._state is Residency.OFFLOADING:
            return "releasing"
        return "preempted" if self._lease.preempted else "held"


def _without_secrets(url: str | None) -> str | None:
    """``url`` as health checks may show it: no user, password, query or fragment."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
