"""How long the client waits between attempts, and when it stops."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from gemma_service.client.errors import GemmaAPIError, GemmaUnavailableError
from gemma_service.client.retry import RetryPolicy, parse_retry_after

NO_JITTER = RetryPolicy(jitter=0.0, backoff_initial_s=0.5, backoff_max_s=4.0, max_attempts=10)


def busy(status: int = 503, retry_after_s: float | None = None) -> GemmaAPIError:
    return GemmaAPIError(status, "busy", retry_after_s=retry_after_s)


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = [NO_JITTER.delay_after(n, busy()) for n in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_retry_after_is_a_floor_on_the_wait() -> None:
    assert NO_JITTER.delay_after(1, busy(retry_after_s=3.0)) == 3.0
    assert NO_JITTER.delay_after(4, busy(retry_after_s=0.1)) == 4.0


def test_gives_up_when_asked_to_wait_longer_than_allowed() -> None:
    policy = RetryPolicy(max_retry_after_s=10.0)
    assert policy.delay_after(1, busy(retry_after_s=3600.0)) is None
    assert isinstance(policy.final_error(1, busy(retry_after_s=3600.0)), GemmaUnavailableError)


def test_stops_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay_after(2, busy()) is not None
    assert policy.delay_after(3, busy()) is None


def test_client_errors_are_not_retried_and_are_raised_as_they_are() -> None:
    bad_request = GemmaAPIError(400, "bad 'max_tokens'")
    assert NO_JITTER.delay_after(1, bad_request) is None
    assert NO_JITTER.final_error(1, bad_request) is bad_request


def test_a_broken_connection_is_retried_only_for_idempotent_calls() -> None:
    broken = httpx.ReadError("connection reset")
    refused = httpx.ConnectError("connection refused")
    assert NO_JITTER.delay_after(1, broken, idempotent=True) == 0.5
    assert NO_JITTER.delay_after(1, broken, idempotent=False) is None
    assert NO_JITTER.delay_after(1, refused, idempotent=False) == 0.5
    assert NO_JITTER.delay_after(1, busy(502), idempotent=False) is None
    assert NO_JITTER.delay_after(1, busy(503), idempotent=False) == 0.5
