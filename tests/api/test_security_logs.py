"""One structured log line per request, under a request id; user text escaped, no secrets."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from starlette.routing import Router

from gemma_service.api.metrics import ServiceMetrics
from gemma_service.api.request_log import RequestLogMiddleware
from gemma_service.logs import JsonFormatter

from .conftest import MakeClient

KEY = "sk-very-secret-key-42"


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "gemma_service.requests"]


def test_the_request_id_is_honoured_or_made(make_client: MakeClient) -> None:
    client = make_client()
    assert (
        client.get("/livez", headers={"X-Request-Id": "trace-42"}).headers["x-request-id"]
        == "trace-42"
    )
    made = client.get("/livez").headers["x-request-id"]
    assert len(made) == 32
    forged = client.get("/livez", headers={"X-Request-Id": "a\tb"}).headers["x-request-id"]
    assert forged != "a\tb" and len(forged) == 32


def test_one_json_line_per_request_without_secrets(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(api_keys=KEY)
    caplog.set_level(logging.INFO)
    body = {"messages": [{"role": "user", "content": "my password is hunter2"}], "max_tokens": 3}
    client.post(
        "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}", "X-Request-Id": "req-1"},
    )
    client.get("/v1/models", headers={"X-Api-Key": "sk-wrong-key"})
    lines = request_lines(caplog)
    assert len(lines) == 2
    formatted = [JsonFormatter().format(r) for r in caplog.records]
    everything = "\n".join(formatted)
    assert KEY not in everything and "sk-wrong-key" not in everything
    assert "hunter2" not in everything  # bodies are never logged
    first = json.loads(JsonFormatter().format(lines[0]))
    assert first["request_id"] == "req-1" and first["status"] == 200
    assert first["route"] == "/v1/chat/completions" and first["caller"].startswith("key:")
    assert json.loads(JsonFormatter().format(lines[1]))["status"] == 401


def test_client_text_is_escaped_in_log_lines(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    caplog.set_level(logging.INFO)
    client.get("/v1/models/x%0Afake-line%1b[31m", headers={"User-Agent": b"evil\x07\xe9agent"})
    [line] = request_lines(caplog)
    message = line.getMessage()
    assert "\n" not in message and "\x1b" not in message
    assert "\\nfake-line\\x1b[31m" in message
    fields = json.loads(JsonFormatter().format(line))
    agent = fields["user_agent"]
    assert agent.startswith("evil\\x07\\x") and agent.isascii() and agent.isprintable()
    assert "\n" not in JsonFormatter().format(line)


async def _nothing() -> dict[str, object]:
    return {"type": "http.disconnect"}


async def _ignore(message: object) -> None:
    return None


SCOPE = {"type": "http", "method": "POST", "path": "/chat", "headers": [], "query_string": b""}


async def test_a_client_that_left_counts_as_499_not_as_a_server_error() -> None:
    async def gives_up(scope: object, receive: object, send: object) -> None:
        raise asyncio.CancelledError  # what a route raises when its client disconnected

    metrics = ServiceMetrics()
    middleware = RequestLogMiddleware(gives_up, router=Router(), metrics=metrics)
    await middleware(dict(SCOPE), _nothing, _ignore)
    text = metrics.render().decode()
    assert 'status="499"' in text and 'status="500"' not in text


async def test_a_cancelled_request_task_still_ends() -> None:
    async def slow(scope: object, receive: object, send: object) -> None:
        await asyncio.sleep(30)

    middleware = RequestLogMiddleware(slow, router=Router(), metrics=ServiceMetrics())
    task = asyncio.create_task(middleware(dict(SCOPE), _nothing, _ignore))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
