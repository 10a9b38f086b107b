"""Client of the GPU lease coordinator: acquire, renew in the background, release, hear preempts.

``AsyncLeaseClient`` is for asyncio code; ``LeaseClient`` is its blocking twin for threaded code.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx

from gemma_service.gpu.lease import (
    RENEW_FRACTION,
    CoordinatorUnavailable,
    Lease,
    LeaseNotGranted,
)
from gemma_service.sse import aiter_sse

logger = logging.getLogger(__name__)

LeaseCallback = Callable[[Lease], Awaitable[None] | None]
T = TypeVar("T")
_EVENTS_READ_TIMEOUT_S = 30.0  # the coordinator sends a keep-alive every few seconds


class _Rejected(Exception):
    """The coordinator answered 4xx; carries its status and error code."""

    def __init__(self, status_code: int, code: str | None, message: str) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code


class AsyncLeaseClient:
    """Holds GPU leases for one ``holder`` name; renews them and reports preempts and losses."""

    def __init__(
        self,
        coordinator_url: str,
        holder: str,
        *,
        on_preempt: LeaseCallback | None = None,
        on_lost: LeaseCallback | None = None,
        request_timeout_s: float = 5.0,
    ) -> None:
        self.holder = holder
        self._on_preempt = on_preempt
        self._on_lost = on_lost
        self._timeout_s = request_timeout_s
        self._http = httpx.AsyncClient(
            base_url=coordinator_url.rstrip("/"), timeout=request_timeout_s
        )
        self._leases: dict[str, Lease] = {}
        self._renewers: dict[str, asyncio.Task[None]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._callbacks: set[asyncio.Task[None]] = set()
        # Preempts that arrived before the grant's response did.
        self._early_preempts: deque[str] = deque(maxlen=64)

    async def __aenter__(self) -> AsyncLeaseClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def acquire(
        self, *, priority: int = 0, ttl_s: float = 10.0, wait_s: float = 30.0
    ) -> Lease:
        """Wait up to ``wait_s`` for the lease; raises LeaseNotGranted or CoordinatorUnavailable."""
        self._ensure_listening()
        sent_at = time.monotonic()
        payload = {"holder": self.holder, "priority": priority, "ttl_s": ttl_s, "wait_s": wait_s}
        try:
            body = await self._call(
                "POST", "/leases", json=payload, timeout_s=wait_s + self._timeout_s
            )
        except _Rejected as exc:
            if exc.status_code in (408, 409):
                raise LeaseNotGranted(str(exc), status_code=exc.status_code, code=exc.code) from exc
            raise ValueError(f"the coordinator refused the request: {exc}") from exc
        lease = Lease(
            lease_id=str(body["lease_id"]),
            token=int(body["token"]),
            holder=self.holder,
            priority=priority,
            ttl_s=float(body["ttl_s"]),
            # The grant came waited_s after the request arrived, and it arrived after sent_at.
            confirmed_at=sent_at + float(body.get("waited_s", 0.0)),
            expires_in_s=float(body["expires_in_s"]),
        )
        self._leases[lease.lease_id] = lease
        self._renewers[lease.lease_id] = asyncio.create_task(
            self._keep_renewed(lease), name=f"renew-{lease.token}"
        )
        if lease.lease_id in self._early_preempts or body.get("preempted"):
            self._preempt(lease)
        return lease

    async def release(self, lease: Lease) -> None:
        """Stop using and give back the lease; an already expired lease is not an error."""
        lease.end(None)
        await self._forget(lease)
        try:
            await self._call("DELETE", f"/leases/{lease.lease_id}", params={"token": lease.token})
        except _Rejected as exc:
            logger.info("lease %d was already gone on release: %s", lease.token, exc)
        except CoordinatorUnavailable as exc:
            logger.warning("could not release lease %d (it will expire): %s", lease.token, exc)

    @contextlib.asynccontextmanager
    async def lease(
        self, *, priority: int = 0, ttl_s: float = 10.0, wait_s: float = 30.0
    ) -> AsyncIterator[Lease]:
        """``async with client.lease(...) as lease``: acquired on entry, released on exit."""
        held = await self.acquire(priority=priority, ttl_s=ttl_s, wait_s=wait_s)
        try:
            yield held
        finally:
            await self.release(held)

    async def aclose(self) -> None:
        """Release every lease still held and stop the background tasks."""
        for lease in list(self._leases.values()):
            await self.release(lease)
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        await asyncio.gather(*self._callbacks, return_exceptions=True)
        await self._http.aclose()

    async def _forget(self, lease: Lease) -> None:
        self._leases.pop(lease.lease_id, None)
        renewer = self._renewers.pop(lease.lease_id, None)
        if renewer is not None and renewer is not asyncio.current_task():
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _call(
        self, method: str, path: str, *, timeout_s: float | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method, path, timeout=timeout_s or self._timeout_s, **kwargs
            )
        except httpx.HTTPError as exc:
            raise CoordinatorUnavailable(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 500:
            raise CoordinatorUnavailable(f"{method} {path}: HTTP {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise CoordinatorUnavailable(f"{method} {path}: not JSON") from exc
        if response.status_code >= 400:
            error = body.get("error") or {}
            raise _Rejected(response.status_code, error.get("code"), str(error.get("message")))
        return body

    async def _keep_renewed(self, lease: Lease) -> None:
        interval = lease.ttl_s * RENEW_FRACTION
        delay = interval
        while True:
            await asyncio.sleep(delay)
            if not lease.is_valid():
                if lease.lost_reason is not None:  # lapsed by our clock, not released
                    await self._lose(lease, lease.lost_reason, give_back=True)
                return
            sent_at = time.monotonic()
            try:
                body = await self._call(
                    "POST",
                    f"/leases/{lease.lease_id}/renew",
                    json={"token": lease.token},
                    timeout_s=max(0.1, min(self._timeout_s, lease.remaining_s())),
                )
            except _Rejected as exc:
                await self._lose(lease, f"the coordinator refused the renewal: {exc}")
                return
            except CoordinatorUnavailable as exc:
                logger.warning("renewing lease %d failed: %s", lease.token, exc)
                delay = interval / 2
                continue
            lease.confirm(sent_at, float(body["expires_in_s"]))
            delay = interval

    async def _lose(self, lease: Lease, reason: str, *, give_back: bool = False) -> None:
        lease.end(reason)
        logger.warning("lease %d of %s lost: %s", lease.token, self.holder, reason)
        await self._forget(lease)
        self._run_callback(self._on_lost, lease)
        if give_back:
            # The coordinator may still count us as holder; free the GPU for the next one.
            with contextlib.suppress(_Rejected, CoordinatorUnavailable):
                await self._call(
                    "DELETE", f"/leases/{lease.lease_id}", params={"token": lease.token}
                )

    def _ensure_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name=f"events-{self.holder}")

    async def _listen(self) -> None:
        backoff_s = 0.2
        timeout = httpx.Timeout(self._timeout_s, read=_EVENTS_READ_TIMEOUT_S)
        while True:
            try:
                async with self._http.stream(
                    "GET", "/events", params={"holder": self.holder}, timeout=timeout
                ) as response:
                    if response.status_code != 200:
                        raise CoordinatorUnavailable(f"/events: HTTP {response.status_code}")
                    backoff_s = 0.2
                    async for event in aiter_sse(response.aiter_lines()):
                        if event.event == "preempt":
                            self._handle_preempt_event(json.loads(event.data))
            except (httpx.HTTPError, CoordinatorUnavailable, ValueError) as exc:
                logger.debug("event stream of %s interrupted: %r", self.holder, exc)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 5.0)

    def _handle_preempt_event(self, payload: dict[str, Any]) -> None:
        lease_id = str(payload.get("lease_id"))
        lease = self._leases.get(lease_id)
        if lease is None:
            self._early_preempts.append(lease_id)
        else:
            self._preempt(lease)

    def _preempt(self, lease: Lease) -> None:
        if lease.preempted or lease.ended:
            return
        logger.info("lease %d of %s preempted", lease.token, self.holder)
        lease.mark_preempted()
        self._run_callback(self._on_preempt, lease)

    def _run_callback(self, callback: LeaseCallback | None, lease: Lease) -> None:
        if callback is None:
            return

        async def invoke() -> None:
            try:
                result = callback(lease)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("lease callback of %s failed", self.holder)

        task = asyncio.create_task(invoke())
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)


def _in_worker_thread(callback: Callable[[Lease], None] | None) -> LeaseCallback | None:
    if callback is None:
        return None
    return lambda lease: asyncio.to_thread(callback, lease)


class LeaseClient:
    """Blocking twin of AsyncLeaseClient; callbacks run on a worker thread, so keep them short."""

    def __init__(
        self,
        coordinator_url: str,
        holder: str,
        *,
        on_preempt: Callable[[Lease], None] | None = None,
        on_lost: Callable[[Lease], None] | None = None,
        request_timeout_s: float = 5.0,
    ) -> None:
        self.holder = holder
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"lease-client-{holder}", daemon=True
        )
        self._thread.start()
        self._closed = False

        async def create() -> AsyncLeaseClient:
            return AsyncLeaseClient(
                coordinator_url,
                holder,
                on_preempt=_in_worker_thread(on_preempt),
                on_lost=_in_worker_thread(on_lost),
                request_timeout_s=request_timeout_s,
            )

        self._client = self._run(create())

    def __enter__(self) -> LeaseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def acquire(self, *, priority: int = 0, ttl_s: float = 10.0, wait_s: float = 30.0) -> Lease:
        """Block up to ``wait_s`` for the lease; raises LeaseNotGranted/CoordinatorUnavailable."""
        return self._run(self._client.acquire(priority=priority, ttl_s=ttl_s, wait_s=wait_s))

    def release(self, lease: Lease) -> None:
        """Stop using and give back the lease."""
        self._run(self._client.release(lease))

    @contextlib.contextmanager
    def lease(
        self, *, priority: int = 0, ttl_s: float = 10.0, wait_s: float = 30.0
    ) -> Iterator[Lease]:
        """``with client.lease(...) as lease``: acquired on entry, released on exit."""
        held = self.acquire(priority=priority, ttl_s=ttl_s, wait_s=wait_s)
        try:
            yield held
        finally:
            self.release(held)

    def close(self) -> None:
        """Release what is held, stop the background loop."""
        if self._closed:
            return
        try:
            self._run(self._client.aclose())
            self._run(self._loop.shutdown_default_executor())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the LeaseClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()
