"""The lease logic of the coordinator: one GPU, one holder, a priority queue and fencing tokens.

Pure and synchronous (no I/O, no asyncio): time comes from an injected clock, durability from an
injected ``store_token`` callback, and side effects leave through a ``LeaseObserver``.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from gemma_service.gpu.coordinator_errors import LeaseNotHeldError, StaleTokenError
from gemma_service.gpu.token_store import TokenRecord

EndReason = Literal["released", "expired"]


@dataclass(slots=True)
class Lease:
    """A grant of the GPU to one holder, identified by ``lease_id`` and fenced by ``token``."""

    lease_id: str
    holder: str
    priority: int
    ttl_s: float
    token: int
    granted_at: float
    expires_at: float
    # When a higher-priority request asked this holder to yield; renewals stop extending then.
    preempted_at: float | None = None


@dataclass(slots=True)
class Ticket:
    """A request for the lease, waiting in the queue until it is granted or withdrawn."""

    ticket_id: int
    holder: str
    priority: int
    ttl_s: float
    arrived_at: float
    may_preempt: bool = True
    lease: Lease | None = None


class LeaseObserver(Protocol):
    """Receives what happened inside the table, synchronously, while it happens."""

    def lease_granted(self, lease: Lease, ticket: Ticket, waited_s: float) -> None: ...

    def preempt_requested(self, lease: Lease, by: Ticket) -> None: ...

    def lease_ended(self, lease: Lease, reason: EndReason) -> None: ...


class _SilentObserver:
    def lease_granted(self, lease: Lease, ticket: Ticket, waited_s: float) -> None:
        return None

    def preempt_requested(self, lease: Lease, by: Ticket) -> None:
        return None

    def lease_ended(self, lease: Lease, reason: EndReason) -> None:
        return None


def _new_lease_id() -> str:
    return uuid.uuid4().hex


class LeaseTable:
    """Who holds the GPU, who waits (priority, then arrival), and the last fencing token."""

    def __init__(
        self,
        *,
        initial: TokenRecord,
        store_token: Callable[[TokenRecord], None],
        observer: LeaseObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        new_lease_id: Callable[[], str] = _new_lease_id,
    ) -> None:
        self._clock = clock
        self._store_token = store_token
        self._observer: LeaseObserver = observer or _SilentObserver()
        self._new_lease_id = new_lease_id
        self._last_token = initial.last_token
        # A lease granted before a restart may still be in use until its TTL runs out.
        self.grants_paused_until = clock() + initial.live_lease_ttl_s
        self._holder: Lease | None = None
        self._queue: list[Ticket] = []
        self._ticket_ids = itertools.count(1)

    @property
    def holder(self) -> Lease | None:
        return self._holder

    @property
    def queue(self) -> tuple[Ticket, ...]:
        return tuple(self._queue)

    @property
    def last_token(self) -> int:
        return self._last_token

    def now(self) -> float:
        return self._clock()

    def request(
        self, holder: str, priority: int, ttl_s: float, *, may_preempt: bool = True
    ) -> Ticket:
        """Queue a request; it is granted at once when the GPU is free and nobody outranks it."""
        self.advance()
        ticket = Ticket(
            ticket_id=next(self._ticket_ids),
            holder=holder,
            priority=priority,
            ttl_s=ttl_s,
            arrived_at=self._clock(),
            may_preempt=may_preempt,
        )
        self._queue.append(ticket)
        self._queue.sort(key=lambda t: (-t.priority, t.ticket_id))
        self._grant_next()
        self._preempt_if_outranked()
        return ticket

    def withdraw(self, ticket: Ticket) -> Lease | None:
        """Stop waiting. Returns the lease if the ticket was granted meanwhile."""
        if ticket.lease is not None:
            return ticket.lease
        if ticket in self._queue:
            self._queue.remove(ticket)
        return None

    def renew(self, lease_id: str, token: int) -> Lease:
        """Extend the lease by its TTL; a preempted lease is never extended past its deadline."""
        self.advance()
        lease = self._current(lease_id, token)
        now = self._clock()
        extended = now + lease.ttl_s
        if lease.preempted_at is not None:
            extended = min(extended, lease.preempted_at + lease.ttl_s)
        lease.expires_at = max(lease.expires_at, extended)
        return lease

    def release(self, lease_id: str, token: int) -> Lease:
        """End the lease early; the next waiter is granted at once."""
        self.advance()
        lease = self._current(lease_id, token)
        self._end(lease, "released")
        return lease

    def validate(self, lease_id: str, token: int) -> Lease:
        """The current lease if ``token`` still fences it; raises otherwise."""
        self.advance()
        return self._current(lease_id, token)

    def advance(self) -> None:
        """Expire a lapsed lease and grant the next waiter; call it often (the reaper does)."""
        lease = self._holder
        if lease is not None and self._clock() >= lease.expires_at:
            self._end(lease, "expired")
        self._grant_next()

    def _current(self, lease_id: str, token: int) -> Lease:
        lease = self._holder
        if lease is not None and lease.lease_id == lease_id and lease.token == token:
            return lease
        if lease is not None and lease.lease_id == lease_id:
            raise StaleTokenError(f"token {token} does not fence lease {lease_id}", param="token")
        if token < self._last_token:
            raise StaleTokenError(
                f"token {token} is stale: token {self._last_token} has been issued since",
                param="token",
            )
        raise LeaseNotHeldError(f"lease {lease_id} is not held (released or expired)")

    def _end(self, lease: Lease, reason: EndReason) -> None:
        self._holder = None
        self._observer.lease_ended(lease, reason)
        if not self._grant_next():
            self._store_token(TokenRecord(self._last_token, 0.0))

    def _grant_next(self) -> bool:
        if self._holder is not None or not self._queue:
            return False
        now = self._clock()
        if now < self.grants_paused_until:
            return False
        ticket = self._queue[0]
        token = self._last_token + 1
        # Durable before anyone can see it: a restart must never issue this token again.
        self._store_token(TokenRecord(token, ticket.ttl_s))
        self._queue.pop(0)
        self._last_token = token
        lease = Lease(
            lease_id=self._new_lease_id(),
            holder=ticket.holder,
            priority=ticket.priority,
            ttl_s=ticket.ttl_s,
            token=token,
            granted_at=now,
            expires_at=now + ticket.ttl_s,
        )
        self._holder = lease
        ticket.lease = lease
        self._observer.lease_granted(lease, ticket, now - ticket.arrived_at)
        self._preempt_if_outranked()
        return True

    def _preempt_if_outranked(self) -> None:
        lease = self._holder
        if lease is None or lease.preempted_at is not None:
            return
        rival = next((t for t in self._queue if t.may_preempt), None)
        if rival is not None and rival.priority > lease.priority:
            lease.preempted_at = self._clock()
            self._observer.preempt_requested(lease, rival)
