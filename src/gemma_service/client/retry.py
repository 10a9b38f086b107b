"""When the client retries: which failures, how long it waits (backoff or ``Retry-After``),
and what it raises once it gives up."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from gemma_service.client.errors import (
    GemmaAPIError,
    GemmaClientError,
    GemmaUnavailableError,
)

# 429 and 503 are the service's "busy / loading, come back" answers; 502 is what a proxy or
# Cloud Run's front end answers while an instance starts or restarts.
RETRYABLE_STATUSES = frozenset({429, 502, 503})
# Errors after which the request surely never reached the service: safe to resend anything.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
# The connection broke mid-exchange: the service may have acted, so only idempotent calls retry.
BROKEN_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a ``Retry-After`` from the service is a floor."""

    max_attempts: int = 4
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    jitter: float = 0.2
    max_retry_after_s: float = 60.0
    retry_statuses: frozenset[int] = field(default=RETRYABLE_STATUSES)

    def is_retryable(self, exc: BaseException, *, idempotent: bool = True) -> bool:
        if isinstance(exc, GemmaAPIError):
            # A 502 may come after the service acted; 429/503 are refusals before any work.
            return exc.status_code in self.retry_statuses and (idempotent or exc.status_code != 502)
        if isinstance(exc, NOT_SENT_ERRORS):
            return True
        return idempotent and isinstance(exc, BROKEN_CONNECTION_ERRORS)

    def delay_after(
        self, attempt: int, exc: BaseException, *, idempotent: bool = True
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up now."""
        if attempt >= self.max_attempts or not self.is_retryable(exc, idempotent=idempotent):
            return None
        backoff = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** (attempt - 1))
        backoff *= random.uniform(1.0 - self.jitter, 1.0)
        retry_after = exc.retry_after_s if isinstance(exc, GemmaAPIError) else None
        if retry_after is None:
            return backoff
        if retry_after > self.max_retry_after_s:
            return None  # the service asks for longer than we may wait: report it down now
        return max(backoff, retry_after)

    def final_error(
        self, attempts: int, exc: BaseException, *, idempotent: bool = True
    ) -> GemmaClientError:
        """The exception a call raises when it stops after ``attempts`` tries."""
        if self.is_retryable(exc, idempotent=idempotent):
            return GemmaUnavailableError(attempts, exc)
        if isinstance(exc, GemmaClientError):
            return exc
        if isinstance(exc, httpx.TimeoutException):
            return GemmaClientError(f"gemma-service did not answer in time: {exc!r}")
        return GemmaClientError(f"request to gemma-service failed: {exc!r}")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def api_error_from_response(response: httpx.Response) -> GemmaAPIError:
    """A GemmaAPIError with the message and code of an (already read) error response."""
    body: Any = None
    message = response.reason_phrase or "error"
    code: str | None = None
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        message = text[:500] or message
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or message)
            code = str(error["code"]) if error.get("code") is not None else None
        elif "detail" in body:
            message = str(body["detail"])
    return GemmaAPIError(
        response.status_code,
        message,
        code=code,
        body=body,
        retry_after_s=parse_retry_after(response.headers.get("retry-after")),
    )
