"""The one error hierarchy. Each class carries its HTTP status and OpenAI error type/code.

Lower layers raise these; ``api/error_handlers.py`` turns them into OpenAI-shaped bodies
(``{"error": {"message", "type", "param", "code"}}``) in one place.

Engine errors come in two tiers. A per-request failure (``InvalidGrammarError``,
``KvCacheExhaustedError``, ``RequestTimeoutError``, ``GenerationFailedError``) ends that request
with its own status while the engine serves on; only ``EngineDeadError`` means no request can be
served, and turns readiness red.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service reports to a client."""

    status_code: int = 500
    error_type: str = "server_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}

    def to_body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(ServiceError):
    """The request is malformed or asks for something impossible (400)."""

    status_code = 400
    error_type = "invalid_request_error"


class ContextLengthExceededError(InvalidRequestError):
    """The prompt (plus requested tokens) does not fit the context window."""

    default_code = "context_length_exceeded"


class InvalidGrammarError(InvalidRequestError):
    """The engine could not parse the grammar that constrains a request's sampling."""

    default_code = "invalid_grammar"


class AuthenticationError(ServiceError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(ServiceError):
    status_code = 403
    error_type = "permission_error"


class NotFoundError(ServiceError):
    status_code = 404
    error_type = "not_found_error"


class PayloadTooLargeError(ServiceError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "payload_too_large"


class RateLimitError(ServiceError):
    """Too many requests: the queue is full or a rate limit is hit (429, with Retry-After)."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(
            message, code=code, headers={"Retry-After": str(max(1, round(retry_after_s)))}
        )
        self.retry_after_s = retry_after_s


class RequestTimeoutError(ServiceError):
    """The request ran past its deadline (GEMMA_REQUEST_TIMEOUT)."""

    status_code = 408
    error_type = "timeout_error"
    default_code = "request_timeout"


class ServiceUnavailableError(ServiceError):
    """Loading, draining, or the engine is dead (503, with Retry-After)."""

    status_code = 503
    error_type = "service_unavailable"
    default_code = "service_unavailable"

    def __init__(self, message: str, *, retry_after_s: float = 5.0) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, round(retry_after_s)))})


class KvCacheExhaustedError(ServiceUnavailableError):
    """The KV cache had no room for this request, even after freeing what it could (503).

    Per request: the engine serves on and readiness stays green.
    """

    default_code = "kv_cache_full"


class GenerationFailedError(ServiceError):
    """One request's generation failed unexpectedly; the engine serves on (500)."""

    default_code = "generation_failed"


class UpstreamFailedError(GenerationFailedError):
    """An upstream server (remote engine) failed mid-answer (502)."""

    status_code = 502
    default_code = "upstream_failed"


class EngineDeadError(ServiceUnavailableError):
    """The engine failed in a way no request can recover from; readiness turns red."""

    default_code = "engine_dead"


class ModelFileError(Exception):
    """A model file is missing or corrupt. Raised at start-up; the CLI prints one line."""
