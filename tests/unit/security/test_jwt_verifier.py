"""JWTs: signature, algorithm, exp, nbf, aud and iss are all enforced."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gemma_service.api.security.jwt_verifier import (
    JwtConfigError,
    JwtVerifier,
    VerificationKey,
    keys_from_jwks,
    public_key_from_pem,
)
from gemma_service.errors import AuthenticationError

SECRET = b"s" * 32


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "exp": now + 300, "iat": now, **overrides}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def verifier(**kwargs: Any) -> JwtVerifier:
    return JwtVerifier([VerificationKey("HS256", SECRET)], leeway_s=0, **kwargs)


def refusal(v: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        v.verify(token)
    return info.value.message


def test_a_valid_token_yields_its_claims() -> None:
    assert verifier().verify(hs256())["sub"] == "alice"


@pytest.mark.parametrize(
    ("offsets", "reason"),
    [
        ({"exp": -60}, "expired"),
        ({"nbf": 600}, "not valid yet"),
        ({"exp": None}, "'exp'"),
    ],
)
def test_time_claims_are_enforced(offsets: dict[str, int | None], reason: str) -> None:
    # Times are taken when the test runs, not at collection: a long suite must not age them.
    now = int(time.time())
    overrides = {k: None if v is None else now + v for k, v in offsets.items()}
    token = jwt.encode(
        {k: v for k, v in claims(**overrides).items() if v is not None}, SECRET, "HS256"
    )
    assert reason in refusal(verifier(), token)


def test_audience_and_issuer_must_match_when_configured() -> None:
    v = verifier(audience="gemma", issuer="https://idp.example")
    assert v.verify(hs256(aud="gemma", iss="https://idp.example"))["sub"] == "alice"
    assert "audience" in refusal(v, hs256(aud="other", iss="https://idp.example"))
    assert "issuer" in refusal(v, hs256(aud="gemma", iss="https://evil.example"))
    assert "'aud'" in refusal(v, hs256(iss="https://idp.example"))


def test_a_wrong_signature_and_unsigned_tokens_are_refused() -> None:
    forged = jwt.encode(claims(), b"x" * 32, algorithm="HS256")
    assert "signature" in refusal(verifier(), forged)
    unsigned = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]
    assert "'none'" in refusal(verifier(), unsigned)
    assert "not a valid JWT" in refusal(verifier(), "eyJhbGciOi.garbage.x")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_hs256(payload: dict[str, Any], secret: bytes) -> str:
    """An HS256 token built by hand (PyJWT itself refuses to sign with a PEM key)."""
    signing_input = (
        b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + b64url(json.dumps(payload).encode())
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def rsa_pair(tmp_path: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "public.pem"
    path.write_bytes(pem)
    return private, path


def test_rs256_with_a_pem_public_key_and_no_algorithm_confusion(tmp_path: Path) -> None:
    private, pem_path = rsa_pair(tmp_path)
    v = JwtVerifier([public_key_from_pem(pem_path)])
    assert v.verify(jwt.encode(claims(), private, algorithm="RS256"))["sub"] == "alice"
    # The classic attack: HS256 "signed" with the public key's PEM text as the secret.
    confused = forge_hs256(claims(), secret=pem_path.read_bytes())
    assert "'HS256'" in refusal(v, confused)


def test_es256_from_a_jwks_file_is_chosen_by_kid(tmp_path: Path) -> None:
    first, second = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key())), "kid": kid}
            for k, kid in ((first, "k1"), (second, "k2"))
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    v = JwtVerifier(keys_from_jwks(path))
    token = jwt.encode(claims(), second, algorithm="ES256", headers={"kid": "k2"})
    assert v.verify(token)["sub"] == "alice"
    mislabelled = jwt.encode(claims(), second, algorithm="ES256", headers={"kid": "k1"})
    assert "signature" in refusal(v, mislabelled)


def test_unusable_key_files_are_configuration_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.pem"
    path.write_text("not a key")
    with pytest.raises(JwtConfigError):
        public_key_from_pem(path)
    with pytest.raises(JwtConfigError):
        keys_from_jwks(tmp_path / "missing.json")
