"""A lease as its holder sees it: valid only while its own clock says it may be."""

from __future__ import annotations

import pytest

from gemma_service.gpu.lease import Lease, LeaseLost


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def make_lease(clock: FakeClock, ttl_s: float = 9.0) -> Lease:
    return Lease(
        lease_id="l1",
        token=3,
        holder="gemma",
        priority=10,
        ttl_s=ttl_s,
        confirmed_at=clock.now,
        expires_in_s=ttl_s,
        clock=clock,
    )


def test_holder_stops_a_third_of_a_ttl_before_the_coordinator_could_expire_it() -> None:
    clock = FakeClock()
    lease = make_lease(clock)
    clock.now += 5.99
    assert lease.is_valid()
    assert lease.remaining_s() == pytest.approx(0.01)
    clock.now += 0.01
    assert not lease.is_valid()
    assert lease.lost_reason is not None and "lapsed" in lease.lost_reason


def test_a_confirmed_renewal_counts_from_when_it_was_sent() -> None:
    clock = FakeClock()
    lease = make_lease(clock)
    sent_at = clock.now + 5.0
    clock.now += 5.5
    lease.confirm(sent_at, 9.0)
    assert lease.remaining_s() == pytest.approx(sent_at + 6.0 - clock.now)


def test_a_lapsed_lease_stays_lost_even_if_a_late_renewal_succeeds() -> None:
    clock = FakeClock()
    lease = make_lease(clock)
    clock.now += 7.0
    assert not lease.is_valid()
    lease.confirm(clock.now, 9.0)
    assert not lease.is_valid()
    with pytest.raises(LeaseLost):
        lease.ensure_valid()


def test_a_released_lease_is_not_valid_and_not_lost() -> None:
    clock = FakeClock()
    lease = make_lease(clock)
    assert lease.end(None)
    assert not lease.is_valid()
    assert lease.lost_reason is None
    assert not lease.end("late")
