"""Which protocol a request speaks, told by its path, and how that protocol shapes an error.

A refusal made before any route runs (auth, limits, drain, unknown paths, validation) must
still reach the client in its own protocol's shape: an Anthropic SDK reads
``{"type": "error", "error": {"type", "message"}}``, an Ollama client ``{"error": "..."}``,
everyone else OpenAI's ``{"error": {"message", "type", "param", "code"}}``. The same name is
the ``protocol`` label of the request metrics.
"""

from __future__ import annotations

from typing import Any, Literal

from gemma_service.errors import InvalidRequestError, ServiceError

Protocol = Literal[
    "openai", "responses", "anthropic", "ollama", "native", "llama", "memory", "service"
]

_BY_PREFIX: tuple[tuple[str, Protocol], ...] = (
    ("/v1/responses", "responses"),
    ("/v1/messages", "anthropic"),
    ("/v1/memories", "memory"),
    ("/v1/", "openai"),
    ("/api/", "ollama"),
)
_BY_PATH: dict[str, Protocol] = {
    "/chat": "native",
    "/chat/stream": "native",
    "/generate": "native",
    "/tokenize": "llama",  # llama-server's shapes
    "/detokenize": "llama",
}

# Anthropic names its errors by kind; the HTTP status says which.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def protocol_of(path: str) -> Protocol:
    """The protocol a request path belongs to ("service" for probes, metrics and the page)."""
    exact = _BY_PATH.get(path)
    if exact is not None:
        return exact
    for prefix, protocol in _BY_PREFIX:
        if path == prefix.rstrip("/") or path.startswith(prefix):
            return protocol
    return "service"


def anthropic_error_type(status: int) -> str:
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(exc: ServiceError, protocol: Protocol) -> dict[str, Any]:
    """``exc`` as ``protocol`` writes an error."""
    if protocol == "anthropic":
        return anthropic_error_body(exc)
    if protocol == "ollama":
        return {"error": exc.message}
    return exc.to_body()


def anthropic_error_body(exc: ServiceError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": anthropic_error_type(exc.status_code), "message": exc.message},
    }


def renamed_fields(exc: InvalidRequestError, old: str, new: str) -> InvalidRequestError:
    """``exc`` with ``old`` replaced by ``new`` in its message and param: a check shared with
    OpenAI chat (``tools[0].function.name``) names the field as this protocol spells it."""
    param = exc.param.replace(old, new) if exc.param else None
    return InvalidRequestError(exc.message.replace(old, new), param=param, code=exc.code)
