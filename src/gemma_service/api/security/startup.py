"""Whether the auth settings may be served at all: checked before the model loads."""

from __future__ import annotations

from gemma_service.api.security.authenticator import (
    Authenticator,
    SecurityConfigError,
    open_bind_problem,
)
from gemma_service.config import ServiceSettings


def startup_problem(settings: ServiceSettings) -> str | None:
    """Why the server must not start with these settings (None: it may)."""
    try:
        authenticator = Authenticator.from_settings(settings)
    except SecurityConfigError as exc:
        return str(exc)
    return open_bind_problem(settings, authenticator)
