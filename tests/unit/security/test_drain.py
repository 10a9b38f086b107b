"""The drain: done when in-flight requests reach zero, or when the drain time is up."""

from __future__ import annotations

from gemma_service.api.drain import RequestDrain


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_not_done_before_it_begins() -> None:
    assert not RequestDrain(5.0).done()


def test_done_when_the_last_request_ends() -> None:
    drain = RequestDrain(30.0, clock=Clock())
    drain.inflight = 2
    flipped: list[bool] = []
    drain.on_begin(lambda: flipped.append(True))
    drain.begin()
    assert drain.draining and flipped == [True]
    assert not drain.done()
    drain.inflight = 0
    assert drain.done()


def test_done_when_time_is_up_even_with_requests_left() -> None:
    clock = Clock()
    drain = RequestDrain(10.0, clock=clock)
    drain.inflight = 1
    drain.begin()
    clock.now = 9.9
    assert not drain.done()
    clock.now = 10.0
    assert drain.done()
