"""One request's HTTP call to an upstream: opened (status checked), then read as events.

``open_call`` tries upstreams in the pool's order until one answers 200: an upstream that
cannot be reached or answers 5xx counts a failure toward its ejection and the next is tried;
one that is overloaded (429, 503) is skipped. When none takes the request, the refusal is ours:
429 or 503 with the upstream's ``Retry-After``. A 400 is the caller's (its message passed on);
a 401 / 403 is the front's misconfigured upstream key (503, saying so).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from gemma_service.engine.remote.upstream_pool import Upstream, UpstreamPool
from gemma_service.errors import (
    InvalidRequestError,
    RateLimitError,
    ServiceError,
    ServiceUnavailableError,
)

DEFAULT_RETRY_AFTER_S = 5.0


class UpstreamBrokeError(Exception):
    """The upstream's stream ended or failed before its last event."""


@dataclass(slots=True)
class UpstreamCall:
    """An upstream's 200 response to one request, streaming server-sent events."""

    upstream: Upstream
    response: httpx.Response
    started: float = field(default_factory=time.perf_counter)

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        """The JSON chunks of the stream up to ``[DONE]``; raises UpstreamBrokeError if the
        stream breaks before it."""
        try:
            async for line in self.response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if isinstance(chunk, dict):
                    if "error" in chunk and not chunk.get("choices"):
                        raise UpstreamBrokeError(_error_message(chunk))
                    yield chunk
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise UpstreamBrokeError(f"{type(exc).__name__}: {exc}") from exc
        raise UpstreamBrokeError("the stream ended before [DONE]")

    async def close(self) -> None:
        await self.response.aclose()


async def open_call(
    client: httpx.AsyncClient,
    pool: UpstreamPool,
    body: dict[str, Any],
    key: str | None,
    tried: list[Upstream],
) -> UpstreamCall:
    """Start ``body`` on the best upstream not in ``tried`` (appended to as it goes)."""
    overloaded: ServiceError | None = None
    while (upstream := pool.choose(key, exclude=tried)) is not None:
        tried.append(upstream)
        pool.started(upstream)
        started = time.perf_counter()
        request = client.build_request("POST", upstream.url + "/v1/completions", json=body)
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            _failed(pool, upstream, started, f"{type(exc).__name__}: {exc}")
            continue
        if response.status_code == 200:
            pool.success(upstream)
            return UpstreamCall(upstream, response, started)
        await response.aread()
        await response.aclose()
        status, message = response.status_code, _error_message(_json(response))
        pool.finished(upstream, seconds=time.perf_counter() - started, failed=True)
        if status in (429, 503):
            overloaded = _overloaded(status, message, response.headers.get("retry-after"))
        elif status in (400, 404, 413, 422):
            raise InvalidRequestError(f"the upstream refused the request: {message}")
        elif status in (401, 403):  # our key is wrong everywhere: no point trying the others
            raise ServiceUnavailableError(
                f"the upstream server refused the front's API key (GEMMA_UPSTREAM_API_KEY): "
                f"{message}"
            )
        else:  # 5xx: this upstream is in trouble; another may not be
            pool.failure(upstream, f"{status}: {message}")
    if overloaded is not None:
        raise overloaded
    raise ServiceUnavailableError("no upstream server is available", retry_after_s=5.0)


def _failed(pool: UpstreamPool, upstream: Upstream, started: float, reason: str) -> None:
    pool.finished(upstream, seconds=time.perf_counter() - started, failed=True)
    pool.failure(upstream, reason)


def _overloaded(status: int, message: str, retry_after: str | None) -> ServiceError:
    try:
        seconds = float(retry_after) if retry_after is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER_S
    text = f"the upstream servers are busy: {message}"
    if status == 429:
        return RateLimitError(text, retry_after_s=seconds)
    return ServiceUnavailableError(text, retry_after_s=seconds)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"error": {"message": response.text[:500]}}


def _error_message(body: Any) -> str:
    """The message of an OpenAI-style error body (or of llama-server's / vLLM's variants)."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    return str(body)
