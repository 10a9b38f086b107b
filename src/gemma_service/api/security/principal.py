"""The authenticated caller of a request, and the paths anyone may call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Probes reveal nothing secret and must answer without credentials (load balancers, kubelet).
PUBLIC_PATHS = frozenset({"/livez", "/readyz", "/health", "/healthz"})
# The chat page and its assets are static files a browser loads before it can send a key;
# every API call the page makes needs one.
PUBLIC_PAGE_PATHS = frozenset({"/"})
PUBLIC_PAGE_PREFIX = "/static/"

# Where the auth middleware leaves the principal in the ASGI scope.
PRINCIPAL_SCOPE_KEY = "gemma.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller. ``id`` is stable and safe to log (never a key or token); ``owner`` owns what
    the caller stores (docs/security.md, "Owners"); an ``admin`` may act for other owners."""

    id: str
    method: Literal["api_key", "jwt", "none"]
    owner: str
    admin: bool = False
    claims: dict[str, Any] = field(default_factory=dict)


def is_public_path(path: str) -> bool:
    """Paths answered without credentials: probes, and the chat page's static files."""
    return path in PUBLIC_PATHS or path in PUBLIC_PAGE_PATHS or path.startswith(PUBLIC_PAGE_PREFIX)
