"""Async load generator: N concurrent clients streaming OpenAI-style completions over httpx."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from gemma_service.bench.corpus import DEFAULT_CHARS_PER_TOKEN, document_prompt
from gemma_service.bench.prompts import load_prompt, prefix_question, shared_prefix
from gemma_service.bench.sse import ApiKind, StreamError, parse_chunk, sse_payloads
from gemma_service.bench.stats import LevelSummary, RequestResult, percentile, summarize_level

ResultCallback = Callable[[RequestResult], None]

# Sends of one request when the server closes the connection before answering.
UNANSWERED_ATTEMPTS = 2


class UnansweredError(Exception):
    """The server closed the connection before any response: the request was not served."""


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """How every benchmark request is shaped and where it goes."""

    base_url: str
    api: ApiKind = "chat"
    model: str = "gemma"
    max_tokens: int = 128
    temperature: float = 0.0
    seed: int | None = 1234
    # Truncation sent with every request; None leaves the field out (the server's default).
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    # llama.cpp's extension to keep generating past EOS; servers without it ignore the field,
    # and tokens are counted as generated either way.
    ignore_eos: bool = True
    # Sent as is when set (e.g. end-of-generation tokens banned: equal lengths on any server).
    logit_bias: dict[str, float] | None = None
    api_key: str | None = None
    request_timeout_s: float = 1800.0
    # Prompts of about this many tokens of real text (bench/corpus.py); 0: short prompts.
    prompt_tokens: int = 0
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN
    # Where requests go instead of the network; tests put an in-process fake server here.
    transport: httpx.AsyncBaseTransport | None = None


@dataclass(frozen=True, slots=True)
class PrefixResult:
    """Time to first token for a long shared prefix sent cold, then again with new suffixes."""

    prefix_prompt_tokens: int | None
    cold_ttft_s: float | None
    warm_ttfts_s: list[float]
    warm_ttft_median_s: float | None
    warm_to_cold_ratio: float | None
    errors: list[str]


def request_body(config: LoadConfig, prompt: str, max_tokens: int | None = None) -> dict[str, Any]:
    """The JSON body of one streaming request in the configured API shape."""
    body: dict[str, Any] = {
        "model": config.model,
        "max_tokens": max_tokens or config.max_tokens,
        "temperature": config.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if config.seed is not None:
        body["seed"] = config.seed
    for field in ("top_k", "top_p", "min_p"):
        value = getattr(config, field)
        if value is not None:
            body[field] = value
    if config.ignore_eos:
        body["ignore_eos"] = True
    if config.logit_bias:
        body["logit_bias"] = config.logit_bias
    if config.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return body


def endpoint_path(api: ApiKind) -> str:
    """The OpenAI route for the API shape."""
    return "/v1/chat/completions" if api == "chat" else "/v1/completions"


def make_client(config: LoadConfig, concurrency: int) -> httpx.AsyncClient:
    """An HTTP client with one connection per concurrent stream and no read deadline games."""
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(config.request_timeout_s, connect=10.0)
    return httpx.AsyncClient(
        base_url=config.base_url,
        headers=headers,
        limits=limits,
        timeout=timeout,
        transport=config.transport,
    )


async def stream_request(
    client: httpx.AsyncClient, config: LoadConfig, prompt: str, max_tokens: int | None = None
) -> RequestResult:
    """Send one streaming request and time its first token, chunk gaps and total."""
    started = time.perf_counter()
    error = ""
    for _ in range(UNANSWERED_ATTEMPTS):
        try:
            return await _read_stream(client, config, prompt, max_tokens, started)
        except UnansweredError as exc:
            # A kept-alive connection the server had already closed: nothing was answered,
            # so the request is sent again on a fresh connection (as browsers and SDKs do).
            error = _describe(exc)
        except (httpx.HTTPError, StreamError) as exc:
            error = _describe(exc)
            break
    return RequestResult(ok=False, total_s=time.perf_counter() - started, error=error)


async def _read_stream(
    client: httpx.AsyncClient,
    config: LoadConfig,
    prompt: str,
    max_tokens: int | None,
    started: float,
) -> RequestResult:
    body = request_body(config, prompt, max_tokens)
    arrivals: list[float] = []
    usage_tokens: int | None = None
    prompt_tokens: int | None = None
    request = client.build_request("POST", endpoint_path(config.api), json=body)
    try:
        response = await client.send(request, stream=True)
    except httpx.RemoteProtocolError as exc:
        raise UnansweredError(f"RemoteProtocolError: {exc}") from exc
    try:
        if response.status_code != 200:
            detail = (await response.aread()).decode(errors="replace")[:200]
            raise StreamError(f"HTTP {response.status_code}: {detail}")
        async for data in sse_payloads(response.aiter_lines()):
            chunk = parse_chunk(data, config.api)
            if chunk.text:
                arrivals.append(time.perf_counter())
            usage_tokens = chunk.completion_tokens or usage_tokens
            prompt_tokens = chunk.prompt_tokens or prompt_tokens
    finally:
        await response.aclose()
    finished = time.perf_counter()
    return RequestResult(
        ok=True,
        total_s=finished - started,
        completion_tokens=usage_tokens if usage_tokens is not None else len(arrivals),
        ttft_s=arrivals[0] - started if arrivals else None,
        chunk_gaps_s=tuple(b - a for a, b in itertools.pairwise(arrivals)),
        prompt_tokens=prompt_tokens,
        tokens_from_usage=usage_tokens is not None,
        sent_at=started,
        arrivals=tuple(arrivals),
    )


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    own = isinstance(exc, (StreamError, UnansweredError))
    return text if own else f"{type(exc).__name__}: {text}"


def level_prompt(config: LoadConfig, index: int) -> str:
    """The prompt of request ``index``: distinct per index, of the configured length."""
    if config.prompt_tokens:
        return document_prompt(index, config.prompt_tokens, config.chars_per_token)
    return load_prompt(index)


async def run_level(
    config: LoadConfig,
    concurrency: int,
    requests_per_client: int,
    on_result: ResultCallback | None = None,
    prompt_offset: int = 0,
    round_index: int = 0,
) -> LevelSummary:
    """Run ``concurrency`` clients, each sending ``requests_per_client`` requests in turn."""
    results: list[RequestResult] = []

    async def client_loop(client: httpx.AsyncClient, client_index: int) -> None:
        for turn in range(requests_per_client):
            prompt_index = prompt_offset + turn * concurrency + client_index
            result = await stream_request(client, config, level_prompt(config, prompt_index))
            results.append(result)
            if on_result is not None:
                on_result(result)

    async with make_client(config, concurrency) as client:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for client_index in range(concurrency):
                group.create_task(client_loop(client, client_index))
        wall_s = time.perf_counter() - started
    return summarize_level(
        concurrency, results, wall_s, prompt_tokens=config.prompt_tokens, round_index=round_index
    )


async def warm_up(config: LoadConfig, max_tokens: int = 8) -> RequestResult:
    """One short request so the first measured one does not pay one-time start-up costs."""
    async with make_client(config, 1) as client:
        return await stream_request(client, config, load_prompt(10_000), max_tokens)


async def run_prefix_test(config: LoadConfig, nonce: str, warm_repeats: int = 3) -> PrefixResult:
    """Send a ~1,500-token prefix cold, then ``warm_repeats`` times with different suffixes."""
    prefix = shared_prefix(nonce)
    errors: list[str] = []
    async with make_client(config, 1) as client:
        cold = await stream_request(client, config, prefix + prefix_question(0), max_tokens=4)
        warm: list[RequestResult] = []
        for index in range(1, warm_repeats + 1):
            prompt = prefix + prefix_question(index)
            warm.append(await stream_request(client, config, prompt, max_tokens=4))
    errors.extend(r.error for r in [cold, *warm] if r.error)
    warm_ttfts = [r.ttft_s for r in warm if r.ttft_s is not None]
    warm_median = percentile(warm_ttfts, 50)
    ratio = warm_median / cold.ttft_s if warm_median is not None and cold.ttft_s else None
    return PrefixResult(
        prefix_prompt_tokens=cold.prompt_tokens,
        cold_ttft_s=cold.ttft_s,
        warm_ttfts_s=warm_ttfts,
        warm_ttft_median_s=warm_median,
        warm_to_cold_ratio=ratio,
        errors=errors,
    )


async def discover_model_id(config: LoadConfig) -> str | None:
    """The first model id ``GET /v1/models`` lists, or None when the server does not say."""
    async with make_client(config, 1) as client:
        try:
            response = await client.get("/v1/models")
            data = response.json().get("data") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        model_id = data[0].get("id")
        return model_id if isinstance(model_id, str) else None
    return None
