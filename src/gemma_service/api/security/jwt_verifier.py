"""JWT verification: HS256 with a shared secret, RS256/ES256 with a public key or a JWKS file.

Each key accepts only its own algorithm, so a token cannot pick a weaker one (no ``none``, no
HS256 signed with a public key). ``exp`` is required; ``nbf``, ``aud`` and ``iss`` are checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gemma_service.errors import AuthenticationError

ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")

# Failures by type (never by message text); the wording is what the client reads.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf)"),
    (jwt.InvalidAudienceError, "the token's audience (aud) is not accepted here"),
    (jwt.InvalidIssuerError, "the token's issuer (iss) is not accepted here"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
)


class JwtConfigError(ValueError):
    """A JWT key setting cannot be used (unreadable file, unsupported key type)."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    algorithm: str
    key: Any
    kid: str | None = None


def public_key_from_pem(path: Path) -> VerificationKey:
    try:
        key = load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise JwtConfigError(f"cannot read the JWT public key {path}: {exc}") from exc
    if isinstance(key, rsa.RSAPublicKey):
        return VerificationKey("RS256", key)
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return VerificationKey("ES256", key)
    raise JwtConfigError(f"{path}: only RSA and P-256 EC public keys are supported")


def keys_from_jwks(path: Path) -> list[VerificationKey]:
    try:
        keyset = jwt.PyJWKSet.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, jwt.PyJWTError) as exc:
        raise JwtConfigError(f"cannot read the JWKS file {path}: {exc}") from exc
    keys = [
        VerificationKey(k.algorithm_name, k.key, k.key_id)
        for k in keyset
        if k.algorithm_name in ASYMMETRIC_ALGORITHMS
    ]
    if not keys:
        raise JwtConfigError(f"{path}: no RS256 or ES256 key in the JWKS")
    return keys


class JwtVerifier:
    """Verifies a token against the configured keys and claims; returns its claims."""

    def __init__(
        self,
        keys: list[VerificationKey],
        *,
        audience: str | None = None,
        issuer: str | None = None,
        leeway_s: float = 30.0,
    ) -> None:
        if not keys:
            raise JwtConfigError("a JWT verifier needs at least one key")
        self._keys = keys
        self._audience = audience
        self._issuer = issuer
        self._leeway_s = leeway_s

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError(_reason(exc)) from exc
        failure: jwt.PyJWTError | None = None
        for key in self._keys_for(header):
            try:
                return self._decode(token, key)
            except jwt.InvalidSignatureError as exc:  # another key of the set may sign it
                failure = exc
        assert failure is not None
        raise AuthenticationError(_reason(failure)) from failure

    def _decode(self, token: str, key: VerificationKey) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.InvalidSignatureError:
            raise
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"the token lacks the '{exc.claim}' claim") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(_reason(exc)) from exc
        return claims

    def _keys_for(self, header: dict[str, Any]) -> list[VerificationKey]:
        alg, kid = header.get("alg"), header.get("kid")
        usable = [k for k in self._keys if k.algorithm == alg]
        if kid is not None:
            usable = [k for k in usable if k.kid in (kid, None)]
        if not usable:
            raise AuthenticationError(f"tokens signed with {alg!r} are not accepted here")
        return usable


def _reason(exc: jwt.PyJWTError) -> str:
    for cls, reason in _REASONS:
        if isinstance(exc, cls):
            return reason
    return "the token is not a valid JWT"
