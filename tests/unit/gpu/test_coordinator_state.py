"""The lease table: grants, queue order, preemption, expiry and fencing, on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gemma_service.gpu.coordinator_errors import LeaseNotHeldError, StaleTokenError
from gemma_service.gpu.coordinator_state import EndReason, Lease, LeaseTable, Ticket
from gemma_service.gpu.token_store import TokenRecord


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Recorder:
    grants: list[tuple[str, int, float]] = field(default_factory=list)
    preempts: list[tuple[str, str]] = field(default_factory=list)
    ended: list[tuple[str, EndReason]] = field(default_factory=list)
    stored: list[TokenRecord] = field(default_factory=list)

    def lease_granted(self, lease: Lease, ticket: Ticket, waited_s: float) -> None:
        self.grants.append((lease.holder, lease.token, waited_s))

    def preempt_requested(self, lease: Lease, by: Ticket) -> None:
        self.preempts.append((lease.holder, by.holder))

    def lease_ended(self, lease: Lease, reason: EndReason) -> None:
        self.ended.append((lease.holder, reason))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> Recorder:
    return Recorder()


def make_table(
    clock: FakeClock, events: Recorder, initial: TokenRecord | None = None
) -> LeaseTable:
    return LeaseTable(
        initial=initial or TokenRecord(),
        store_token=events.stored.append,
        observer=events,
        clock=clock,
    )


def granted(ticket: Ticket) -> Lease:
    assert ticket.lease is not None, f"{ticket.holder} was not granted"
    return ticket.lease


def test_free_gpu_is_granted_at_once_and_tokens_increase(
    clock: FakeClock, events: Recorder
) -> None:
    table = make_table(clock, events)
    first = granted(table.request("a", 0, 10.0))
    table.release(first.lease_id, first.token)
    second = granted(table.request("b", 0, 10.0))
    assert (first.token, second.token) == (1, 2)
    assert first.lease_id != second.lease_id


def test_waiters_are_served_by_priority_then_arrival(clock: FakeClock, events: Recorder) -> None:
    table = make_table(clock, events)
    holder = granted(table.request("holder", 9, 10.0))
    for name, priority in [("low-1", 1), ("mid-1", 3), ("mid-2", 3), ("low-2", 1)]:
        table.request(name, priority, 10.0)
        clock.advance(0.1)
    order = []
    lease = holder
    while True:
        table.release(lease.lease_id, lease.token)
        if table.holder is None:
            break
        lease = table.holder
        order.append(lease.holder)
    assert order == ["mid-1", "mid-2", "low-1", "low-2"]
    assert [token for _, token, _ in events.grants] == [1, 2, 3, 4, 5]


def test_higher_priority_request_preempts_the_holder_once(
    clock: FakeClock, events: Recorder
) -> None:
    table = make_table(clock, events)
    holder = granted(table.request("transcriber", 1, 10.0))
    table.request("gemma", 10, 10.0)
    table.request("urgent", 20, 10.0)
    assert events.preempts == [("transcriber", "gemma")]
    assert holder.preempted_at == clock.now
    table.release(holder.lease_id, holder.token)
    assert table.holder is not None and table.holder.holder == "urgent"


def test_equal_or_lower_priority_and_probes_do_not_preempt(
    clock: FakeClock, events: Recorder
) -> None:
    table = make_table(clock, events)
    table.request("gemma", 10, 10.0)
    table.request("peer", 10, 10.0)
    table.request("transcriber", 1, 10.0)
    table.request("probe", 50, 10.0, may_preempt=False)
    assert events.preempts == []


def test_preempted_holder_cannot_renew_past_its_yield_deadline(
    clock: FakeClock, events: Recorder
) -> None:
    table = make_table(clock, events)
    holder = granted(table.request("transcriber", 1, 10.0))
    clock.advance(4)
    table.request("gemma", 10, 10.0)  # preempt at t+4: the holder has until t+14
    clock.advance(5)
    renewed = table.renew(holder.lease_id, holder.token)
    assert renewed.expires_at == pytest.approx(clock.now + 5)
    clock.advance(5)
    table.advance()
    assert table.holder is not None and table.holder.holder == "gemma"
    assert events.ended == [("transcriber", "expired")]


def test_unrenewed_lease_expires_after_its_ttl(clock: FakeClock, events: Recorder) -> None:
    table = make_table(clock, events)
    granted(table.request("a", 0, 2.0))
    table.request("b", 0, 2.0)
    clock.advance(1.99)
    table.advance()
    assert table.holder is not None and table.holder.holder == "a"
    clock.advance(0.01)
    table.advance()
    assert table.holder is not None and table.holder.holder == "b"


def test_renewal_extends_by_the_ttl_from_now(clock: FakeClock, events: Recorder) -> None:
    table = make_table(clock, events)
    lease = granted(table.request("a", 0, 2.0))
    for _ in range(5):
        clock.advance(1.5)
        table.renew(lease.lease_id, lease.token)
    clock.advance(1.9)
    table.advance()
    assert table.holder is lease


def test_stale_token_is_rejected_after_a_newer_grant(clock: FakeClock, events: Recorder) -> None:
    table = make_table(clock, events)
    old = granted(table.request("a", 0, 1.0))
    table.request("b", 0, 1.0)
    clock.advance(1.0)
    table.advance()
    new = granted_holder(table)
    assert table.validate(new.lease_id, new.token) is new
    with pytest.raises(StaleTokenError) as renew_error:
        table.renew(old.lease_id, old.token)
    with pytest.raises(StaleTokenError):
        table.validate(old.lease_id, old.token)
    with pytest.raises(StaleTokenError):
        table.release(old.lease_id, old.token)
    assert renew_error.value.status_code == 409
    assert renew_error.value.to_body()["error"] == {
        "message": f"token {old.token} is stale: token {new.token} has been issued since",
        "type": "conflict_error",
        "param": "token",
        "code": "stale_token",
    }
    assert table.holder is new


def test_released_lease_is_no_longer_held(clock: FakeClock, events: Recorder) -> None:
    table = make_table(clock, events)
    lease = granted(table.request("a", 0, 5.0))
    table.release(lease.lease_id, lease.token)
    with pytest.raises(LeaseNotHeldError) as error:
        table.renew(lease.lease_id, lease.token)
    assert error.value.code == "lease_not_held"


def test_a_withdrawn_request_is_never_granted(clock: FakeClock, events: Recorder) -> None:
    table = make_table(clock, events)
    holder = granted(table.request("a", 0, 5.0))
    waiting = table.request("b", 0, 5.0)
    assert table.withdraw(waiting) is None
    table.release(holder.lease_id, holder.token)
    assert table.holder is None
    assert waiting.lease is None


def test_token_is_stored_before_anyone_can_see_it(clock: FakeClock, events: Recorder) -> None:
    holders_when_stored: list[Lease | None] = []
    table = LeaseTable(
        initial=TokenRecord(),
        store_token=lambda record: holders_when_stored.append(table.holder),
        clock=clock,
    )
    lease = granted(table.request("a", 0, 5.0))
    assert holders_when_stored == [None]
    assert lease.token == 1


def test_failed_store_grants_nothing_and_a_later_advance_retries(clock: FakeClock) -> None:
    disk_full = True

    def store(record: TokenRecord) -> None:
        if disk_full:
            raise OSError("no space left on device")

    table = LeaseTable(initial=TokenRecord(7, 0.0), store_token=store, clock=clock)
    with pytest.raises(OSError):
        table.request("a", 0, 5.0)
    assert table.holder is None and table.last_token == 7
    disk_full = False
    table.advance()
    assert table.holder is not None and table.holder.token == 8


def test_stored_record_says_whether_a_lease_may_be_live(clock: FakeClock, events: Recorder) -> None:
    table = make_table(clock, events)
    lease = granted(table.request("a", 0, 7.0))
    assert events.stored[-1] == TokenRecord(1, 7.0)
    table.release(lease.lease_id, lease.token)
    assert events.stored[-1] == TokenRecord(1, 0.0)


def test_restart_continues_above_the_stored_token_after_the_live_lease_ttl(
    clock: FakeClock, events: Recorder
) -> None:
    table = make_table(clock, events, initial=TokenRecord(41, 5.0))
    ticket = table.request("a", 0, 5.0)
    assert ticket.lease is None  # the previous incarnation's lease may still be in use
    clock.advance(5.0)
    table.advance()
    assert granted(ticket).token == 42


def granted_holder(table: LeaseTable) -> Lease:
    assert table.holder is not None
    return table.holder
