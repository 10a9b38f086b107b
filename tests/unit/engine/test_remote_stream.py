"""The remote engine's calls and streams against scripted upstreams (httpx MockTransport):
refusals before the first byte, retries before the first token, a clear error after it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from gemma_service.engine.protocol import GenerationRequest, SamplingParams, TokenEvent
from gemma_service.engine.remote.remote_stream import RemoteStream
from gemma_service.engine.remote.upstream_call import UpstreamCall, open_call
from gemma_service.engine.remote.upstream_pool import Upstream, UpstreamPool
from gemma_service.errors import InvalidRequestError, RateLimitError, ServiceUnavailableError

A, B = "http://a:1", "http://b:1"
Handler = Callable[[httpx.Request], httpx.Response]


def _sse(*chunks: dict[str, object], done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def _token(text: str, finish: str | None = None) -> dict[str, object]:
    return {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}


USAGE = {
    "choices": [],
    "usage": {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 2},
    },
}


class _Broken(httpx.AsyncByteStream):
    """A stream that sends ``head`` and then fails like a killed server."""

    def __init__(self, head: bytes) -> None:
        self._head = head

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._head
        raise httpx.RemoteProtocolError("peer closed connection")


def _client(routes: dict[str, Handler]) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        return routes[base](request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


async def _stream(pool: UpstreamPool, client: httpx.AsyncClient, key: str) -> RemoteStream:
    request = GenerationRequest("r1", [2, 3, 4], SamplingParams(max_tokens=4))
    tried: list[Upstream] = []

    async def reopen(tried: list[Upstream]) -> UpstreamCall:
        return await open_call(client, pool, {"prompt": [2, 3, 4]}, key, tried)

    call = await reopen(tried)
    return RemoteStream(
        request,
        call,
        tried,
        pool=pool,
        reopen=reopen,
        tokenize=lambda text: [len(text)],
        on_close=lambda rid: None,
    )


async def _read(stream: RemoteStream) -> list[TokenEvent]:
    return [event async for event in stream]


def _key_preferring(pool: UpstreamPool, url: str) -> str:
    return next(f"k{i}" for i in range(100) if pool.choose(f"k{i}").url == url)  # type: ignore[union-attr]


async def test_tokens_stream_through_with_the_upstreams_usage() -> None:
    pool = UpstreamPool([A])
    ok = _sse(_token("Hel"), _token("lo", "stop"), USAGE)
    async with _client({A: lambda r: httpx.Response(200, content=ok)}) as client:
        events = await _read(await _stream(pool, client, "k"))
    assert "".join(e.text for e in events) == "Hello"
    last = events[-1]
    assert last.finish_reason == "stop" and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.cached_tokens) == (3, 2)
    assert pool.upstreams[0].in_flight == 0 and pool.upstreams[0].cached_tokens_total == 2


async def test_an_unreachable_upstream_is_skipped_before_the_first_byte() -> None:
    pool = UpstreamPool([A, B], eject_after=1)
    key = _key_preferring(pool, A)
    ok = _sse(_token("ok", "stop"))
    async with _client({A: _refused, B: lambda r: httpx.Response(200, content=ok)}) as client:
        events = await _read(await _stream(pool, client, key))
    assert "".join(e.text for e in events) == "ok"
    a, b = pool.upstreams
    assert not a.healthy and a.errors_total == 1 and b.requests_total == 1


async def test_a_stream_that_breaks_before_its_first_token_is_retried_elsewhere() -> None:
    pool = UpstreamPool([A, B])
    key = _key_preferring(pool, A)
    routes: dict[str, Handler] = {
        A: lambda r: httpx.Response(200, stream=_Broken(b": keep-alive\n\n")),
        B: lambda r: httpx.Response(200, content=_sse(_token("fine", "stop"))),
    }
    async with _client(routes) as client:
        events = await _read(await _stream(pool, client, key))
    assert "".join(e.text for e in events) == "fine" and events[-1].finish_reason == "stop"


async def test_a_stream_that_breaks_after_tokens_ends_with_a_clear_error() -> None:
    pool = UpstreamPool([A, B])
    key = _key_preferring(pool, A)
    routes: dict[str, Handler] = {
        A: lambda r: httpx.Response(200, stream=_Broken(_sse(_token("half"), done=False))),
        B: lambda r: httpx.Response(200, content=_sse(_token("never", "stop"))),
    }
    async with _client(routes) as client:
        events = await _read(await _stream(pool, client, key))
    assert events[0].text == "half"
    last = events[-1]
    assert last.finish_reason == "error" and last.error is not None and last.usage is not None
    assert last.error.status_code == 502 and A in last.error.message
    assert pool.upstreams[1].requests_total == 0  # not restarted elsewhere: text was sent


@pytest.mark.parametrize(
    ("status", "error"), [(429, RateLimitError), (503, ServiceUnavailableError)]
)
async def test_a_busy_fleet_is_our_429_or_503_with_its_retry_after(
    status: int, error: type[Exception]
) -> None:
    pool = UpstreamPool([A, B])
    busy = httpx.Response(status, headers={"Retry-After": "7"}, json={"error": {"message": "full"}})
    async with _client({A: lambda r: busy, B: lambda r: busy}) as client:
        with pytest.raises(error) as caught:
            await _stream(pool, client, "k")
    assert caught.value.headers["Retry-After"] == "7"  # type: ignore[attr-defined]
    assert all(u.healthy for u in pool.upstreams)  # busy is not broken: nobody ejected


async def test_an_upstream_400_is_the_callers_error_and_is_not_retried() -> None:
    pool = UpstreamPool([A, B])
    key = _key_preferring(pool, A)
    bad = httpx.Response(400, json={"error": {"message": "prompt too long"}})
    ok = httpx.Response(200, content=_sse(_token("x", "stop")))
    async with _client({A: lambda r: bad, B: lambda r: ok}) as client:
        with pytest.raises(InvalidRequestError, match="prompt too long"):
            await _stream(pool, client, key)
    assert pool.upstreams[1].requests_total == 0


async def test_closing_the_stream_early_closes_the_upstream_response() -> None:
    pool = UpstreamPool([A])
    closed: list[bool] = []

    class _Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:
                yield _sse(_token("t"), done=False)

        async def aclose(self) -> None:
            closed.append(True)

    async with _client({A: lambda r: httpx.Response(200, stream=_Endless())}) as client:
        stream = await _stream(pool, client, "k")
        assert (await anext(stream)).text == "t"
        await stream.aclose()
    assert closed and pool.upstreams[0].in_flight == 0


async def test_a_refused_upstream_key_is_a_503_naming_the_setting() -> None:
    pool = UpstreamPool([A, B])
    denied = httpx.Response(401, json={"error": {"message": "invalid api key"}})
    async with _client({A: lambda r: denied, B: lambda r: denied}) as client:
        with pytest.raises(ServiceUnavailableError, match="GEMMA_UPSTREAM_API_KEY"):
            await _stream(pool, client, "k")
    assert all(u.healthy for u in pool.upstreams)
