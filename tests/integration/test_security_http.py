"""Auth, limits, CORS, metrics, logs and image refusal over real HTTP, with the real model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest

from .conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.integration

KEY = "sk-integration-key-0123456789"
SECRET = "integration-jwt-secret-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
PUBLIC = {"/livez", "/readyz", "/health", "/healthz", "/"}
HI = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[RunningServer]:
    env = {
        "GEMMA_API_KEYS": KEY,
        "GEMMA_JWT_SECRET": SECRET,
        "GEMMA_JWT_AUDIENCE": "gemma-int",
        "GEMMA_MAX_BODY_BYTES": "65536",
        "GEMMA_MAX_HEADER_BYTES": "8192",
        "GEMMA_MAX_MESSAGES": "8",
        "GEMMA_MAX_MESSAGE_CHARS": "4000",
        "GEMMA_DEFAULT_MAX_TOKENS": "8",
        "GEMMA_MAX_TOKENS_CAP": "32",
        "GEMMA_MAX_N": "2",
        "GEMMA_CORS_ORIGINS": "https://app.example",
    }
    args = ["--model", str(model_path), "--ctx-size", "4096", "--threads", "2", "--parallel", "4"]
    server = start_server(tmp_path_factory.mktemp("secured"), *args, env=env)
    yield server
    stop_server(server)


@pytest.fixture
def http(secured: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secured.url, timeout=60) as client:
        yield client


def every_operation(http: httpx.Client) -> list[tuple[str, str]]:
    schema = http.get("/openapi.json", headers=AUTH).json()
    ops = [
        (method.upper(), path.replace("{", "").replace("}", ""))
        for path, item in schema["paths"].items()
        for method in item
    ]
    # Served but not in the schema: the schema itself and the API docs pages.
    return [*ops, ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")]


def test_every_route_needs_credentials(http: httpx.Client) -> None:
    operations = every_operation(http)
    assert len(operations) >= 10
    for route in [("POST", "/v1/responses"), ("POST", "/v1/messages"), ("POST", "/api/chat")]:
        assert route in operations, route
    for method, path in operations:
        r = http.request(method, path, json={})
        if path in PUBLIC:
            assert r.status_code != 401, path
            continue
        assert r.status_code == 401, (method, path, r.status_code)
        body = r.json()
        if path.startswith("/v1/messages"):  # Anthropic's error shape
            assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        elif path.startswith("/api/"):  # Ollama's
            assert isinstance(body["error"], str) and "API key" in body["error"]
        else:
            assert body["error"]["type"] == "authentication_error"
        assert http.request(method, path, json={}, headers=AUTH).status_code != 401
        # X-Api-Key, as the Anthropic SDK sends its key, is a credential on every route.
        assert http.request(method, path, json={}, headers={"X-Api-Key": KEY}).status_code != 401


def test_the_openai_sdk_with_a_key_a_wrong_key_and_a_jwt(secured: RunningServer) -> None:
    good = openai.OpenAI(base_url=secured.url + "/v1", api_key=KEY, max_retries=0)
    reply = good.chat.completions.create(model="gemma", messages=HI)  # type: ignore[arg-type]
    assert reply.usage is not None and reply.usage.completion_tokens <= 8  # clamped default
    bad = openai.OpenAI(base_url=secured.url + "/v1", api_key=KEY + "-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    claims = {"sub": "svc", "aud": "gemma-int", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    via_jwt = openai.OpenAI(base_url=secured.url + "/v1", api_key=token, max_retries=0)
    assert via_jwt.models.list().data
    expired = jwt.encode({**claims, "exp": int(time.time()) - 120}, SECRET, algorithm="HS256")
    with pytest.raises(openai.AuthenticationError, match="expired"):
        openai.OpenAI(base_url=secured.url + "/v1", api_key=expired, max_retries=0).models.list()


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    return err


def test_request_limits(http: httpx.Client) -> None:
    chat = "/v1/chat/completions"
    big = {"messages": [{"role": "user", "content": "x" * 70_000}]}
    assert error(http.post(chat, json=big, headers=AUTH), 413)["code"] == "payload_too_large"
    many = {"messages": HI * 9}
    assert error(http.post(chat, json=many, headers=AUTH), 400)["code"] == "too_many_messages"
    long = {"messages": [{"role": "user", "content": "y" * 4001}]}
    assert error(http.post(chat, json=long, headers=AUTH), 400)["code"] == "message_too_long"
    over = {"messages": HI, "max_tokens": 33}
    assert error(http.post(chat, json=over, headers=AUTH), 400)["param"] == "max_tokens"
    assert error(http.post(chat, json={"messages": HI, "n": 3}, headers=AUTH), 400)["param"] == "n"
    stops = {"messages": HI, "stop": ["a", "b", "c", "d", "e"]}
    assert error(http.post(chat, json=stops, headers=AUTH), 400)["param"] == "stop"
    clamped = http.post("/generate", json={"prompt": "Once upon a time"}, headers=AUTH).json()
    assert clamped["usage"]["completion_tokens"] <= 8


def test_huge_headers_are_refused_and_the_server_keeps_serving(http: httpx.Client) -> None:
    r = http.get("/v1/models", headers={**AUTH, "X-Padding": "p" * 20_000})
    assert r.status_code in (400, 431)
    assert http.get("/v1/models", headers=AUTH).status_code == 200


def test_cors_preflight_answers_only_listed_origins(http: httpx.Client) -> None:
    def preflight(origin: str) -> httpx.Response:
        return http.options(
            "/v1/chat/completions",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )

    assert preflight("https://app.example").headers["access-control-allow-origin"] == (
        "https://app.example"
    )
    assert "access-control-allow-origin" not in preflight("https://evil.example").headers


def test_images_are_refused_by_the_text_model(http: httpx.Client) -> None:
    parts = [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    r = http.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": parts}]},
        headers=AUTH,
    )
    assert "cannot take images" in error(r, 400)["message"]


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_after_a_stream(secured: RunningServer, http: httpx.Client) -> None:
    before = http.get("/metrics", headers=AUTH).text
    client = openai.OpenAI(base_url=secured.url + "/v1", api_key=KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="gemma",
        messages=HI,  # type: ignore[arg-type]
        max_tokens=6,
        stream=True,
    )
    assert sum(1 for _ in stream) > 0
    after = http.get("/metrics", headers=AUTH).text
    for name in (
        "gemma_time_to_first_token_seconds_count",
        "gemma_e2e_request_latency_seconds_count",
    ):
        assert metric(after, name) == metric(before, name) + 1
    assert metric(after, "gemma_generation_tokens_total") > metric(
        before, "gemma_generation_tokens_total"
    )
    assert metric(after, "gemma_ready") == 1
    assert 'gemma_gpu_residency{state="no_gpu"} 1.0' in after


def test_json_log_lines_with_request_ids_and_no_secrets(
    secured: RunningServer, http: httpx.Client
) -> None:
    r = http.get("/v1/models", headers={**AUTH, "X-Request-Id": "int-trace-7"})
    assert r.headers["x-request-id"] == "int-trace-7"
    deadline = time.monotonic() + 5
    while "int-trace-7" not in secured.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in secured.log().splitlines() if line.startswith("{")]
    [entry] = [e for e in lines if e.get("request_id") == "int-trace-7"]
    assert entry["status"] == 200 and entry["route"] == "/v1/models"
    assert KEY not in secured.log() and SECRET not in secured.log()
