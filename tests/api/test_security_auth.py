"""Every route but the probes and the static chat page needs a valid key or JWT."""

from __future__ import annotations

import re
import time
from typing import Any

import jwt
import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from gemma_service.api.request_log import flat_routes
from gemma_service.api.security.principal import is_public_path
from gemma_service.api.state import CurrentPrincipal

from .conftest import MakeClient

KEY = "sk-test-0123456789"
SECRET = "jwt-secret-for-tests-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def every_route(client: TestClient) -> list[tuple[str, str]]:
    """(method, concrete path) for every registered route, path parameters filled in."""
    out = []
    for route in flat_routes(client.app.router.routes):  # type: ignore[attr-defined]
        path = re.sub(r"\{[^}]+\}", "x", getattr(route, "path", ""))
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD":
                out.append((method, path))
    return out


def is_auth_error(path: str, body: Any) -> bool:
    """A 401 body in the shape of the protocol the path belongs to."""
    if path.startswith("/v1/messages"):  # Anthropic's shape
        return body["type"] == "error" and body["error"]["type"] == "authentication_error"
    if path.startswith("/api/"):  # Ollama's: one message
        return isinstance(body["error"], str) and "API key" in body["error"]
    return bool(body["error"]["type"] == "authentication_error")


def test_every_route_refuses_a_request_without_credentials(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEY)
    routes = every_route(client)
    for route in [
        ("POST", "/v1/chat/completions"),
        ("GET", "/metrics"),
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/x"),
        ("DELETE", "/v1/responses/x"),
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
        ("POST", "/api/chat"),
        ("POST", "/api/generate"),
        ("GET", "/api/tags"),
        ("POST", "/api/show"),
        ("GET", "/api/ps"),
        ("POST", "/api/embed"),
        ("POST", "/api/embeddings"),
        ("GET", "/api/version"),
        ("POST", "/tokenize"),
        ("POST", "/detokenize"),
    ]:
        assert route in routes, route
    public = set()
    for method, path in routes:
        r = client.request(method, path, json={})
        if is_public_path(path):
            public.add(path)
            assert r.status_code != 401, (method, path)
            continue
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
        assert is_auth_error(path, r.json()), (method, path, r.json())
        wrong = client.request(method, path, json={}, headers={"X-Api-Key": KEY + "x"})
        assert wrong.status_code == 401, (method, path)
        for right in (AUTH, {"X-Api-Key": KEY}):  # x-api-key: what the Anthropic SDK sends
            answer = client.request(method, path, json={}, headers=right)
            assert answer.status_code != 401, (method, path)
    assert public == {"/livez", "/readyz", "/health", "/healthz", "/", "/static/x"}


def test_unknown_paths_need_credentials_too(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEY)
    assert client.get("/v1/secret-route").status_code == 401
    assert client.get("/v1/secret-route", headers=AUTH).status_code == 404


def test_keys_from_a_file_and_from_x_api_key(make_client: MakeClient, tmp_path: Any) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# ops\nsk-from-file-1\n")
    client = make_client(api_keys_file=keys)
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 401
    ok = client.post("/v1/chat/completions", json=CHAT, headers={"X-Api-Key": "sk-from-file-1"})
    assert ok.status_code == 200


def make_token(**claims: Any) -> str:
    body = {"sub": "alice", "exp": int(time.time()) + 300, **claims}
    return jwt.encode(body, SECRET, algorithm="HS256")


def test_jwts_are_checked_for_expiry_audience_and_issuer(make_client: MakeClient) -> None:
    client = make_client(jwt_secret=SECRET, jwt_audience="gemma", jwt_issuer="https://idp")

    def chat(token: str) -> Any:
        return client.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {token}"}
        )

    assert chat(make_token(aud="gemma", iss="https://idp")).status_code == 200
    expired = chat(make_token(aud="gemma", iss="https://idp", exp=int(time.time()) - 120))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert chat(make_token(aud="other", iss="https://idp")).status_code == 401
    assert chat(make_token(aud="gemma", iss="https://elsewhere")).status_code == 401
    future = chat(make_token(aud="gemma", iss="https://idp", nbf=int(time.time()) + 600))
    assert future.status_code == 401


def test_jwt_only_refuses_static_keys(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEY, jwt_secret=SECRET, jwt_only=True)
    refused = client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert refused.status_code == 401 and "only JWTs" in refused.json()["error"]["message"]
    token = {"Authorization": f"Bearer {make_token()}"}
    assert client.post("/v1/chat/completions", json=CHAT, headers=token).status_code == 200


def test_without_keys_a_loopback_server_runs_open(client: TestClient) -> None:
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/health"])
def test_probes_reveal_nothing_secret(make_client: MakeClient, path: str) -> None:
    client = make_client(api_keys=KEY, jwt_secret=SECRET)
    r = client.get(path)
    assert r.status_code == 200
    assert KEY not in r.text and SECRET not in r.text


def test_routes_can_ask_who_is_calling(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEY, jwt_secret=SECRET)

    @client.app.get("/whoami")  # type: ignore[untyped-decorator]
    async def whoami(caller: CurrentPrincipal) -> dict[str, str]:
        return {"id": caller.id, "method": caller.method}

    assert client.get("/whoami").status_code == 401  # a new route is guarded too
    by_key = client.get("/whoami", headers=AUTH).json()
    assert by_key["method"] == "api_key" and by_key["id"].startswith("key:")
    assert KEY not in by_key["id"]
    token = {"Authorization": f"Bearer {make_token(sub='svc-7')}"}
    assert client.get("/whoami", headers=token).json() == {"id": "jwt:svc-7", "method": "jwt"}


def test_websocket_routes_are_guarded_too(make_client: MakeClient) -> None:
    client = make_client(api_keys=KEY)

    @client.app.websocket("/ws")  # type: ignore[untyped-decorator]
    async def echo(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text("hello")
        await socket.close()

    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/ws"):
        pass
    assert refused.value.code == 1008
    with client.websocket_connect("/ws", headers=AUTH) as socket:
        assert socket.receive_text() == "hello"
