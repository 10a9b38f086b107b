"""The asyncio side of the coordinator: waiting for grants, preempt notices, the expiry reaper."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from gemma_service.gpu.coordinator_errors import LeaseBusyError, LeaseWaitTimeoutError
from gemma_service.gpu.coordinator_metrics import CoordinatorMetrics
from gemma_service.gpu.coordinator_state import EndReason, Lease, LeaseTable, Ticket
from gemma_service.gpu.token_store import TokenStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PreemptNotice:
    """Asks ``holder`` to release ``lease_id``; it expires ``yield_within_s`` later anyway."""

    lease_id: str
    token: int
    holder: str
    requested_by: str
    requested_priority: int
    yield_within_s: float


class LeaseCoordinator:
    """Serves the LeaseTable to concurrent HTTP handlers and event-stream subscribers."""

    def __init__(
        self,
        store: TokenStore,
        metrics: CoordinatorMetrics,
        *,
        reap_interval_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self._reap_interval_s = reap_interval_s
        self._grant_events: dict[int, asyncio.Event] = {}
        self._subscribers: dict[str, set[asyncio.Queue[PreemptNotice]]] = defaultdict(set)
        self.table = LeaseTable(
            initial=store.load(), store_token=store.save, observer=self, clock=clock
        )
        metrics.watch(self.table)

    async def acquire(self, holder: str, priority: int, ttl_s: float, wait_s: float) -> Lease:
        """Grant the lease, waiting up to ``wait_s``; raises LeaseBusy/LeaseWaitTimeout."""
        ticket = self.table.request(holder, priority, ttl_s, may_preempt=wait_s > 0)
        if ticket.lease is not None:
            return ticket.lease
        if wait_s <= 0:
            self.table.withdraw(ticket)
            raise LeaseBusyError(f"the GPU lease is held by {self._holder_name()}")
        granted = asyncio.Event()
        self._grant_events[ticket.ticket_id] = granted
        try:
            async with asyncio.timeout(wait_s):
                await granted.wait()
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._abandon(ticket)
            raise
        finally:
            self._grant_events.pop(ticket.ticket_id, None)
        lease = self.table.withdraw(ticket)
        if lease is None:
            self.metrics.wait_timeouts.inc()
            raise LeaseWaitTimeoutError(
                f"the GPU lease was not granted within {wait_s:g} s "
                f"(held by {self._holder_name()})",
                param="wait_s",
            )
        return lease

    def _abandon(self, ticket: Ticket) -> None:
        # The caller went away: a grant nobody will ever renew would block the GPU for a TTL.
        lease = self.table.withdraw(ticket)
        if lease is not None and lease is self.table.holder:
            self.table.release(lease.lease_id, lease.token)

    def _holder_name(self) -> str:
        lease = self.table.holder
        return lease.holder if lease is not None else "nobody (restart grace period)"

    @contextlib.asynccontextmanager
    async def subscribe(self, holder: str) -> AsyncIterator[asyncio.Queue[PreemptNotice]]:
        """A queue of preempt notices for ``holder``; a pending one is delivered at once."""
        queue: asyncio.Queue[PreemptNotice] = asyncio.Queue()
        self._subscribers[holder].add(queue)
        lease = self.table.holder
        if lease is not None and lease.holder == holder and lease.preempted_at is not None:
            rival = self.table.queue[0] if self.table.queue else None
            queue.put_nowait(self._notice(lease, rival))
        try:
            yield queue
        finally:
            self._subscribers[holder].discard(queue)
            if not self._subscribers[holder]:
                del self._subscribers[holder]

    async def run_reaper(self) -> None:
        """Expire lapsed leases and hand the GPU on, forever (cancel to stop)."""
        while True:
            try:
                self.table.advance()
            except OSError:
                logger.exception("cannot persist the coordinator state; retrying")
            await asyncio.sleep(self._reap_interval_s)

    # --- LeaseObserver ---------------------------------------------------------------------

    def lease_granted(self, lease: Lease, ticket: Ticket, waited_s: float) -> None:
        self.metrics.grants.inc()
        self.metrics.wait_seconds.observe(waited_s)
        logger.info("lease %s (token %d) granted to %s", lease.lease_id, lease.token, lease.holder)
        event = self._grant_events.get(ticket.ticket_id)
        if event is not None:
            event.set()

    def preempt_requested(self, lease: Lease, by: Ticket) -> None:
        self.metrics.preemptions.inc()
        logger.info("asking %s to yield the GPU to %s", lease.holder, by.holder)
        notice = self._notice(lease, by)
        for queue in self._subscribers.get(lease.holder, ()):
            queue.put_nowait(notice)

    def lease_ended(self, lease: Lease, reason: EndReason) -> None:
        self.metrics.ended.labels(reason=reason).inc()
        logger.info("lease %s of %s %s", lease.lease_id, lease.holder, reason)

    def _notice(self, lease: Lease, rival: Ticket | None) -> PreemptNotice:
        return PreemptNotice(
            lease_id=lease.lease_id,
            token=lease.token,
            holder=lease.holder,
            requested_by=rival.holder if rival else "",
            requested_priority=rival.priority if rival else lease.priority,
            yield_within_s=max(0.0, lease.expires_at - self.table.now()),
        )
