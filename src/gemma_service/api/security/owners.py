"""Whose data a caller's requests use: the owner of a JWT's data (its subject, or its tenant),
who is an admin, and the scope a request acts in (``X-Gemma-Owner``).

Owners by credential (docs/security.md, "Owners"):

- a named static key: its name (``alice``); an unnamed one: its fingerprint (``key:3fa2…``);
- a JWT: ``jwt:<sub>``, or ``tenant:<value>`` when GEMMA_JWT_TENANT_CLAIM names a claim the
  token carries, so that everyone of one tenant shares one space;
- no auth configured: ``local``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma_service.api.security.principal import Principal
from gemma_service.errors import AuthenticationError, InvalidRequestError, PermissionDeniedError
from gemma_service.memory.owners import EVERY_OWNER, OwnerScope, check_owner

# The request header by which an admin names the owner to act for ('*': read every owner's).
OWNER_HEADER = "X-Gemma-Owner"


@dataclass(frozen=True, slots=True)
class JwtOwnership:
    """How a verified token's claims name its owner and whether it is an admin."""

    tenant_claim: str | None = None
    admin_claim: str | None = None
    admin_value: str = "admin"

    def owner(self, claims: dict[str, Any]) -> str:
        """``tenant:<value>`` when the tenant claim is set and present, else ``jwt:<sub>``."""
        if self.tenant_claim is not None and claims.get(self.tenant_claim) is not None:
            return _owner_from(self.tenant_claim, claims[self.tenant_claim], "tenant")
        subject = claims.get("sub")
        if subject is None:
            raise AuthenticationError(
                "the token lacks the 'sub' claim, so what it stores would belong to no one"
            )
        return _owner_from("sub", subject, "jwt")

    def is_admin(self, claims: dict[str, Any]) -> bool:
        """The admin claim equals the admin value, lists it, has it among its space-separated
        words (an OAuth ``scope``), or is JSON ``true``."""
        if self.admin_claim is None:
            return False
        value = claims.get(self.admin_claim)
        if value is True:
            return True
        if isinstance(value, str):
            return self.admin_value in value.split()
        if isinstance(value, list):
            return self.admin_value in value
        return False


def _owner_from(claim: str, value: Any, kind: str) -> str:
    # An empty value would put every such token into one shared space.
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise AuthenticationError(f"the token's '{claim}' claim must be a non-empty string")
    try:
        return check_owner(f"{kind}:{value}")
    except ValueError as exc:
        raise AuthenticationError(
            f"the token's '{claim}' claim cannot name an owner: {exc}"
        ) from exc


def scope_for(principal: Principal, requested: str | None) -> OwnerScope:
    """The scope a request acts in: the caller's own owner, or (admins only) the owner named by
    ``X-Gemma-Owner``; '*' lets an admin's reads reach every owner while what it stores stays
    its own."""
    if not requested or requested == principal.owner:
        return OwnerScope(principal.owner)
    if not principal.admin:
        raise PermissionDeniedError(
            f"only an admin may act for another owner ({OWNER_HEADER})",
            param=OWNER_HEADER,
            code="not_admin",
        )
    if requested == EVERY_OWNER:
        return OwnerScope(principal.owner, every_owner=True)
    try:
        return OwnerScope(requested)
    except ValueError as exc:
        raise InvalidRequestError(f"{OWNER_HEADER}: {exc}", param=OWNER_HEADER) from exc
