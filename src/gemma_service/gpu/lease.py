"""A GPU lease as its holder sees it, and the errors of the lease client.

The holder trusts its own clock: a lease is valid only until a third of a TTL before the earliest
moment the coordinator could expire it, so the holder stops using the GPU first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# Share of the TTL the holder gives up at the end of each confirmed period; covers clock-rate
# drift between processes and the time the holder needs to notice and stop.
CLOCK_SAFETY_FRACTION = 1 / 3
# Renew this often (as a share of the TTL): two renewals may fail before the lease lapses locally.
RENEW_FRACTION = 1 / 4


class LeaseError(Exception):
    """Base of the lease client's errors."""


class CoordinatorUnavailable(LeaseError):
    """The coordinator could not be reached, timed out, or failed (5xx)."""


class LeaseNotGranted(LeaseError):
    """The coordinator did not grant the lease in time: busy (409) or wait_s ran out (408)."""

    def __init__(self, message: str, *, status_code: int, code: str | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class LeaseLost(LeaseError):
    """The lease lapsed or was taken away; the holder must already have stopped using the GPU."""


class Lease:
    """One grant of the GPU: ``token`` fences it; ``is_valid()`` says whether it may be used."""

    def __init__(
        self,
        *,
        lease_id: str,
        token: int,
        holder: str,
        priority: int,
        ttl_s: float,
        confirmed_at: float,
        expires_in_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease_id = lease_id
        self.token = token
        self.holder = holder
        self.priority = priority
        self.ttl_s = ttl_s
        self._clock = clock
        self._valid_until = 0.0
        self._preempted = threading.Event()
        self._ended = threading.Event()
        self.lost_reason: str | None = None
        self.preempted_at: float | None = None
        self.confirm(confirmed_at, expires_in_s)

    def __repr__(self) -> str:
        return f"Lease(holder={self.holder!r}, token={self.token}, valid={self.is_valid()})"

    def is_valid(self) -> bool:
        """True while the GPU may be used: not released, not lost, and not lapsed by our clock."""
        if self._ended.is_set():
            return False
        if self._clock() >= self._valid_until:
            self.end("lapsed: no renewal confirmed in time")
            return False
        return True

    def remaining_s(self) -> float:
        """Seconds the lease stays valid by our clock unless renewed (0 once ended)."""
        if self._ended.is_set():
            return 0.0
        return max(0.0, self._valid_until - self._clock())

    def ensure_valid(self) -> None:
        """Raise LeaseLost unless the lease may still be used."""
        if not self.is_valid():
            raise LeaseLost(f"lease {self.token} of {self.holder}: {self.lost_reason or 'ended'}")

    @property
    def preempted(self) -> bool:
        """A higher-priority request asked for the GPU: release as soon as you can."""
        return self._preempted.is_set()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def wait_preempted(self, timeout: float | None = None) -> bool:
        """Block (threads only) until preempted or ``timeout``; True if preempted."""
        return self._preempted.wait(timeout)

    # --- updated by the client ---------------------------------------------------------------

    def confirm(self, sent_at: float, expires_in_s: float) -> None:
        """The coordinator answered a request sent at ``sent_at``: expiry is ``expires_in_s`` on."""
        if self._ended.is_set():
            return
        self._valid_until = sent_at + expires_in_s - self.ttl_s * CLOCK_SAFETY_FRACTION

    def mark_preempted(self) -> None:
        # Validity is left to renewals: the coordinator caps them at the yield deadline.
        self.preempted_at = self._clock()
        self._preempted.set()

    def end(self, lost_reason: str | None) -> bool:
        """Stop the lease (released when ``lost_reason`` is None); False if it had already ended."""
        if self._ended.is_set():
            return False
        self.lost_reason = lost_reason
        self._ended.set()
        return True
