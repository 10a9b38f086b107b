"""Credentials → principal: keys, JWTs, JWT_ONLY, open mode, and the refusal to run open."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from gemma_service.api.security.authenticator import (
    Authenticator,
    Credentials,
    SecurityConfigError,
    bearer_token,
    open_bind_problem,
)
from gemma_service.config import ServiceSettings
from gemma_service.errors import AuthenticationError

SECRET = "a-jwt-secret-of-at-least-32-bytes!"


def settings(**overrides: Any) -> ServiceSettings:
    return ServiceSettings(**overrides)


def token(sub: str = "alice") -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")


def test_without_credentials_configured_everyone_is_anonymous() -> None:
    auth = Authenticator.from_settings(settings())
    assert auth.open
    principal = auth.authenticate(Credentials(None, "10.1.2.3"))
    assert principal.method == "none" and principal.id == "anonymous:10.1.2.3"


def test_keys_and_jwts_are_both_accepted_by_default() -> None:
    auth = Authenticator.from_settings(settings(api_keys="sk-1,sk-2", jwt_secret=SECRET))
    assert auth.authenticate(Credentials("sk-2")).method == "api_key"
    assert auth.authenticate(Credentials(token("bob"))).id == "jwt:bob"
    with pytest.raises(AuthenticationError, match="not valid"):
        auth.authenticate(Credentials("sk-3"))
    with pytest.raises(AuthenticationError) as missing:
        auth.authenticate(Credentials(None))
    assert missing.value.code == "missing_api_key"


def test_jwt_only_refuses_static_keys() -> None:
    auth = Authenticator.from_settings(settings(api_keys="sk-1", jwt_secret=SECRET, jwt_only=True))
    assert auth.authenticate(Credentials(token())).method == "jwt"
    with pytest.raises(AuthenticationError, match="only JWTs"):
        auth.authenticate(Credentials("sk-1"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwt_only": True}, "JWT_ONLY needs"),
        ({"jwt_secret": "short"}, "at least 32 bytes"),
        ({"api_keys_file": "/nonexistent/keys"}, "GEMMA_API_KEYS_FILE"),
    ],
)
def test_unusable_auth_settings_refuse_to_start(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SecurityConfigError, match=message):
        Authenticator.from_settings(settings(**overrides))


def test_bearer_header_wins_over_x_api_key() -> None:
    assert bearer_token("Bearer abc", "def") == "abc"
    assert bearer_token("bearer  abc ", None) == "abc"
    assert bearer_token("Basic dXNlcjpwYXNz", "def") == "def"
    assert bearer_token(None, None) is None
    assert bearer_token("Bearer ", "") is None


@pytest.mark.parametrize(
    ("host", "overrides", "refused"),
    [
        ("127.0.0.1", {}, False),
        ("::1", {}, False),
        ("localhost", {}, False),
        ("0.0.0.0", {}, True),
        ("192.168.1.10", {}, True),
        ("0.0.0.0", {"allow_unauthenticated": True}, False),
        ("0.0.0.0", {"api_keys": "sk-1"}, False),
        ("0.0.0.0", {"jwt_secret": SECRET}, False),
    ],
)
def test_an_open_server_binds_only_to_loopback_unless_told(
    host: str, overrides: dict[str, Any], refused: bool
) -> None:
    s = settings(host=host, **overrides)
    problem = open_bind_problem(s, Authenticator.from_settings(s))
    assert (problem is not None) == refused
    if refused:
        assert problem is not None and "--allow-unauthenticated" in problem


def claims_token(**claims: Any) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, SECRET, algorithm="HS256")


def test_each_principal_names_the_owner_of_its_data(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("alice:sk-alice-1\nops:sk-ops-1 admin\nsk-anon-1\n")
    auth = Authenticator.from_settings(
        settings(api_keys_file=keys, api_keys="bob:sk-bob-1", jwt_secret=SECRET)
    )

    alice = auth.authenticate(Credentials("sk-alice-1"))
    bob = auth.authenticate(Credentials("sk-bob-1"))
    ops = auth.authenticate(Credentials("sk-ops-1"))
    anon = auth.authenticate(Credentials("sk-anon-1"))
    carol = auth.authenticate(Credentials(claims_token(sub="carol")))

    assert (alice.id, alice.owner, alice.admin) == ("key:alice", "alice", False)
    assert bob.owner == "bob" and ops.admin and ops.owner == "ops"
    assert anon.owner == anon.id and anon.owner.startswith("key:")
    assert (carol.owner, carol.admin) == ("jwt:carol", False)
    assert Authenticator.from_settings(settings()).authenticate(Credentials(None)).owner == "local"


def test_a_tenant_claim_shares_one_owner_within_a_tenant() -> None:
    auth = Authenticator.from_settings(settings(jwt_secret=SECRET, jwt_tenant_claim="org"))

    def owner(**claims: Any) -> str:
        return auth.authenticate(Credentials(claims_token(**claims))).owner

    assert owner(sub="u1", org="acme") == owner(sub="u2", org="acme") == "tenant:acme"
    assert owner(sub="u3", org="globex") == "tenant:globex"
    assert owner(sub="u1") == "jwt:u1"  # no tenant in the token: the subject's own space
    for bad in ({"sub": "u1", "org": ""}, {"sub": "u1", "org": ["acme"]}, {"org": True}):
        with pytest.raises(AuthenticationError, match="'org' claim"):
            owner(**bad)
    with pytest.raises(AuthenticationError, match="'sub'"):
        owner(name="no subject")


@pytest.mark.parametrize(
    ("claim_value", "admin"),
    [
        ("admin", True),
        (["reader", "admin"], True),
        ("openid gemma admin", True),
        (True, True),
        ("administrator", False),
        (["reader"], False),
        (None, False),
    ],
)
def test_a_jwt_claim_marks_an_admin(claim_value: Any, admin: bool) -> None:
    auth = Authenticator.from_settings(settings(jwt_secret=SECRET, jwt_admin_claim="roles"))
    claims: dict[str, Any] = {"sub": "eve"}
    if claim_value is not None:
        claims["roles"] = claim_value
    assert auth.authenticate(Credentials(claims_token(**claims))).admin is admin


def test_bad_key_entries_refuse_to_start() -> None:
    with pytest.raises(SecurityConfigError, match="GEMMA_API_KEYS entry 2"):
        Authenticator.from_settings(settings(api_keys="alice:sk-1,alice:"))
