"""Per-caller rate limits over a sliding minute, with the wait reported for Retry-After."""

from __future__ import annotations

import pytest

from gemma_service.api.security.rate_limit import RateLimiter
from gemma_service.errors import RateLimitError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_and_the_wait_until_the_window_slides() -> None:
    clock = Clock()
    limiter = RateLimiter(requests_per_minute=3, clock=clock)
    for _ in range(3):
        limiter.admit("alice")
        clock.now += 10
    with pytest.raises(RateLimitError) as refused:
        limiter.admit("alice")
    # The first request (at t=1000) leaves the window at t=1060; it is now t=1030.
    assert refused.value.headers["Retry-After"] == "30"
    limiter.admit("bob")  # callers are limited separately
    clock.now = 1060.5
    limiter.admit("alice")


def test_tokens_per_minute_are_charged_after_the_fact() -> None:
    clock = Clock()
    limiter = RateLimiter(tokens_per_minute=100, clock=clock)
    limiter.admit("alice")
    limiter.charge_tokens("alice", 60)
    limiter.admit("alice")  # 60 < 100: still admitted
    clock.now += 5
    limiter.charge_tokens("alice", 60)
    with pytest.raises(RateLimitError) as refused:
        limiter.admit("alice")
    assert refused.value.code == "tokens_per_minute_exceeded"
    assert refused.value.headers["Retry-After"] == "55"
    clock.now += 55
    limiter.admit("alice")  # the first 60 tokens have left the window


def test_no_limits_configured_admits_everything() -> None:
    limiter = RateLimiter()
    for _ in range(1000):
        limiter.admit("alice")
    assert not limiter.enabled
