"""Turns a request's credentials into a ``Principal``, or refuses it with a 401."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from gemma_service.api.security.api_keys import (
    KeyConfigError,
    KeyEntry,
    StaticKeys,
    parse_key_entry,
    read_keys_file,
)
from gemma_service.api.security.jwt_verifier import (
    JwtConfigError,
    JwtVerifier,
    VerificationKey,
    keys_from_jwks,
    public_key_from_pem,
)
from gemma_service.api.security.owners import JwtOwnership
from gemma_service.api.security.principal import Principal
from gemma_service.config import ServiceSettings
from gemma_service.errors import AuthenticationError
from gemma_service.memory.owners import LOCAL_OWNER

# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
MIN_HS256_SECRET_BYTES = 32

_MISSING = "this server needs an API key: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'"


class SecurityConfigError(ValueError):
    """The auth settings cannot be served as given; the server refuses to start."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented: the bearer token or X-Api-Key value, and the peer address."""

    token: str | None
    client_host: str | None = None


class Authenticator:
    """Static keys and/or JWTs; with neither configured, every caller is let in (open mode).
    Each principal names the owner of its data; in open mode that is the local owner."""

    def __init__(
        self,
        keys: StaticKeys,
        jwt_verifier: JwtVerifier | None,
        *,
        jwt_only: bool = False,
        jwt_ownership: JwtOwnership | None = None,
    ) -> None:
        if jwt_only and jwt_verifier is None:
            raise SecurityConfigError(
                "JWT_ONLY needs GEMMA_JWT_SECRET, GEMMA_JWT_PUBLIC_KEY_FILE or GEMMA_JWT_JWKS_FILE"
            )
        self._keys = keys
        self._jwt = jwt_verifier
        self._jwt_only = jwt_only
        self._jwt_ownership = jwt_ownership or JwtOwnership()

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Authenticator:
        try:
            keys = StaticKeys(_key_entries(settings))
        except KeyConfigError as exc:
            raise SecurityConfigError(str(exc)) from exc
        try:
            verifier = _jwt_verifier(settings)
        except JwtConfigError as exc:
            raise SecurityConfigError(str(exc)) from exc
        ownership = JwtOwnership(
            tenant_claim=settings.jwt_tenant_claim,
            admin_claim=settings.jwt_admin_claim,
            admin_value=settings.jwt_admin_value,
        )
        return cls(keys, verifier, jwt_only=settings.jwt_only, jwt_ownership=ownership)

    @property
    def open(self) -> bool:
        """True when no credential is configured: requests need none."""
        return self._jwt is None and len(self._keys) == 0

    def authenticate(self, credentials: Credentials) -> Principal:
        if self.open:
            return Principal(f"anonymous:{credentials.client_host or '-'}", "none", LOCAL_OWNER)
        token = credentials.token
        if not token:
            raise AuthenticationError(_MISSING, code="missing_api_key")
        if self._jwt is not None and _looks_like_jwt(token):
            claims = self._jwt.verify(token)
            subject = claims.get("sub")
            return Principal(
                f"jwt:{subject if isinstance(subject, str) else '-'}",
                "jwt",
                self._jwt_ownership.owner(claims),
                self._jwt_ownership.is_admin(claims),
                claims,
            )
        if self._jwt_only:
            raise AuthenticationError("this server accepts only JWTs, not API keys")
        holder = self._keys.match(token)
        if holder is None:
            raise AuthenticationError("the API key is not valid")
        return Principal(holder.id, "api_key", holder.owner, holder.admin)


def _key_entries(settings: ServiceSettings) -> list[KeyEntry]:
    entries = []
    for number, entry in enumerate(settings.api_key_list, 1):
        try:
            entries.append(parse_key_entry(entry))
        except KeyConfigError as exc:
            raise KeyConfigError(f"GEMMA_API_KEYS entry {number}: {exc}") from None
    if settings.api_keys_file is not None:
        try:
            entries += read_keys_file(settings.api_keys_file)
        except OSError as exc:
            raise KeyConfigError(f"cannot read GEMMA_API_KEYS_FILE: {exc}") from exc
    return entries


def _jwt_verifier(settings: ServiceSettings) -> JwtVerifier | None:
    keys: list[VerificationKey] = []
    if settings.jwt_secret is not None:
        secret = settings.jwt_secret.get_secret_value().encode()
        if len(secret) < MIN_HS256_SECRET_BYTES:
            raise JwtConfigError(
                f"GEMMA_JWT_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes"
            )
        keys.append(VerificationKey("HS256", secret))
    if settings.jwt_public_key_file is not None:
        keys.append(public_key_from_pem(settings.jwt_public_key_file))
    if settings.jwt_jwks_file is not None:
        keys += keys_from_jwks(settings.jwt_jwks_file)
    if not keys:
        return None
    return JwtVerifier(
        keys,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway_s=settings.jwt_leeway_s,
    )


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def bearer_token(authorization: str | None, api_key_header: str | None) -> str | None:
    """The credential of a request: ``Authorization: Bearer`` first, then ``X-Api-Key``."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key_header and api_key_header.strip():
        return api_key_header.strip()
    return None


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_bind_problem(settings: ServiceSettings, authenticator: Authenticator) -> str | None:
    """Why the server must not start as configured: open to a network without consent."""
    if not authenticator.open or settings.allow_unauthenticated:
        return None
    if is_loopback_host(settings.host):
        return None
    return (
        f"refusing to serve without authentication on {settings.host}: set GEMMA_API_KEYS, "
        "GEMMA_API_KEYS_FILE or a JWT key, bind to 127.0.0.1, or pass --allow-unauthenticated"
    )
