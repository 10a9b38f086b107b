"""The load generator against an in-process fake streaming server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gemma_service.bench.load import (
    LoadConfig,
    discover_model_id,
    make_client,
    request_body,
    run_level,
    run_prefix_test,
    stream_request,
)
from gemma_service.bench.stats import RequestResult

Factory = Callable[..., Any]


def config_for(server: Any, **overrides: Any) -> LoadConfig:
    return LoadConfig(base_url="http://fake", transport=server.transport(), **overrides)


def test_chat_body_streams_with_usage_and_ignore_eos() -> None:
    body = request_body(LoadConfig(base_url="http://x", max_tokens=128), "hello")
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["temperature"], body["ignore_eos"]) == (128, 0.0, True)


def test_completions_body_sends_a_prompt_and_can_omit_ignore_eos() -> None:
    config = LoadConfig(base_url="http://x", api="completions", ignore_eos=False, seed=None)
    body = request_body(config, "hello")
    assert body["prompt"] == "hello"
    assert "messages" not in body and "ignore_eos" not in body and "seed" not in body


async def test_tokens_come_from_usage_when_the_server_reports_it(
    fake_server_factory: Factory,
) -> None:
    server = fake_server_factory(tokens=6, usage=True)
    config = config_for(server)
    async with make_client(config, 1) as client:
        result = await stream_request(client, config, "tell me a story")
    assert result.ok and result.tokens_from_usage
    assert result.completion_tokens == 6
    assert result.prompt_tokens == 4
    assert result.ttft_s is not None and 0 < result.ttft_s <= result.total_s
    assert len(result.chunk_gaps_s) == 5
    assert server.paths == ["/v1/chat/completions"]


async def test_tokens_are_counted_from_chunks_without_usage(fake_server_factory: Factory) -> None:
    server = fake_server_factory(tokens=7, usage=False)
    config = config_for(server, api="completions")
    async with make_client(config, 1) as client:
        result = await stream_request(client, config, "once upon a time")
    assert result.ok and not result.tokens_from_usage
    assert result.completion_tokens == 7
    assert server.paths == ["/v1/completions"]


async def test_http_error_is_a_failed_result_not_an_exception(
    fake_server_factory: Factory,
) -> None:
    config = config_for(fake_server_factory(status=400))
    async with make_client(config, 1) as client:
        result = await stream_request(client, config, "hi")
    assert not result.ok
    assert result.error is not None and result.error.startswith("HTTP 400")


class ClosesFirstConnections(httpx.AsyncBaseTransport):
    """Drops the first ``drops`` requests unanswered (a stale kept-alive connection)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, drops: int) -> None:
        self.inner, self.drops, self.sent = inner, drops, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        if self.sent <= self.drops:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return await self.inner.handle_async_request(request)


async def send_dropping(server: Any, drops: int) -> tuple[RequestResult, ClosesFirstConnections]:
    """One request through a transport that drops the first ``drops`` sends unanswered."""
    transport = ClosesFirstConnections(server.transport(), drops=drops)
    config = LoadConfig(base_url="http://fake", transport=transport)
    async with make_client(config, 1) as client:
        return await stream_request(client, config, "hi"), transport


async def test_a_request_the_server_dropped_unanswered_is_sent_once_more(
    fake_server_factory: Factory,
) -> None:
    result, transport = await send_dropping(fake_server_factory(tokens=3), drops=1)
    assert result.ok and result.completion_tokens == 3
    assert transport.sent == 2


async def test_a_server_that_keeps_dropping_requests_gives_a_failed_result(
    fake_server_factory: Factory,
) -> None:
    result, transport = await send_dropping(fake_server_factory(tokens=3), drops=5)
    assert not result.ok and result.error is not None
    assert "disconnected without sending a response" in result.error
    assert transport.sent == 2


async def test_level_runs_every_client_concurrently_with_distinct_prompts(
    fake_server_factory: Factory,
) -> None:
    server = fake_server_factory(tokens=4)
    seen: list[int] = []
    summary = await run_level(config_for(server), 4, 3, lambda r: seen.append(1))
    assert (summary.requests, summary.failed, summary.generated_tokens) == (12, 0, 48)
    assert len(seen) == 12
    assert server.max_in_flight == 4
    prompts = [body["messages"][0]["content"] for body in server.bodies]
    assert len(set(prompts)) == 12
    assert summary.tokens_per_s == pytest.approx(48 / summary.wall_s)


async def test_prefix_test_compares_cold_and_warm_first_tokens(
    fake_server_factory: Factory,
) -> None:
    server = fake_server_factory(tokens=2, cold_delay_s=0.2)
    result = await run_prefix_test(config_for(server), nonce="abc", warm_repeats=3)
    assert result.errors == []
    assert len(result.warm_ttfts_s) == 3
    assert result.cold_ttft_s is not None and result.cold_ttft_s >= 0.2
    assert result.warm_to_cold_ratio is not None and result.warm_to_cold_ratio < 0.5
    assert result.prefix_prompt_tokens is not None and result.prefix_prompt_tokens > 500
    assert all(body["max_tokens"] == 4 for body in server.bodies)


async def test_model_id_is_discovered_from_models_route(fake_server_factory: Factory) -> None:
    assert await discover_model_id(config_for(fake_server_factory())) == "fake-gemma"


async def test_sampled_mode_sends_the_same_truncation_in_every_request(
    fake_server_factory: Factory,
) -> None:
    server = fake_server_factory(tokens=3)
    config = config_for(server, temperature=0.8, top_k=0, top_p=1.0, min_p=0.0)
    await run_level(config, concurrency=3, requests_per_client=2)
    assert len(server.bodies) == 6
    for body in server.bodies:
        assert (body["temperature"], body["seed"]) == (0.8, 1234)
        assert (body["top_k"], body["top_p"], body["min_p"]) == (0, 1.0, 0.0)


def test_unset_truncation_is_left_to_each_servers_default() -> None:
    body = request_body(LoadConfig(base_url="http://x", temperature=0.8), "hello")
    assert not {"top_k", "top_p", "min_p"} & set(body)
