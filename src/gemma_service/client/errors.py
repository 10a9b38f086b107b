"""The client's exceptions: one base, an HTTP error with the server's OpenAI-shaped body, and
"the service stayed unavailable" once retries are spent."""

from __future__ import annotations

from typing import Any


class GemmaClientError(Exception):
    """Base of every error the gemma-service client raises."""


class GemmaAPIError(GemmaClientError):
    """The service answered with an error status; ``code`` and ``message`` come from its body."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        body: Any = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.code = code
        self.body = body
        self.retry_after_s = retry_after_s


class GemmaUnavailableError(GemmaClientError):
    """Every attempt failed with a retryable error (429/503, connection refused, ...)."""

    def __init__(self, attempts: int, last_error: BaseException) -> None:
        super().__init__(f"gemma-service unavailable after {attempts} attempt(s): {last_error}")
        self.attempts = attempts
        self.last_error = last_error


class GemmaStreamError(GemmaClientError):
    """A stream that had started ended with an error event (e.g. the request timed out)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
