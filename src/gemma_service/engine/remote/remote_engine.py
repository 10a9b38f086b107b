"""``RemoteEngine``: the ``EngineClient`` over a fleet of OpenAI-compatible upstream servers.

Prompts are rendered and tokenized here, with a local vocabulary (a GGUF of the served model's
family, weights not loaded), and sent as token ids to ``/v1/completions``, so every upstream
sees exactly the prompt the chat layer built and its prefix cache can match it. ``submit``
opens the upstream call, so an overloaded fleet is refused (429/503 with ``Retry-After``)
before any byte goes to the client. A background task probes each upstream's health route to
eject and readmit it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from gemma_service.engine.protocol import (
    EngineHealth,
    GenerationRequest,
    ModelInfo,
    check_prompt_fits,
)
from gemma_service.engine.remote.dialect import HEALTH_PATHS, UpstreamKind, completion_body
from gemma_service.engine.remote.remote_stream import RemoteStream
from gemma_service.engine.remote.tokenizer_check import check_tokenizer
from gemma_service.engine.remote.upstream_call import UpstreamCall, open_call
from gemma_service.engine.remote.upstream_pool import Upstream, UpstreamPool
from gemma_service.errors import (
    EngineDeadError,
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
)
from gemma_service.llama.vocabulary import Vocabulary

log = logging.getLogger(__name__)

# Prompt tokens hashed into the affinity key: enough to tell conversations apart, few enough
# that a conversation's growing prompt keeps the same key.
AFFINITY_PREFIX_TOKENS = 64
# The context assumed when no upstream reports one (and none is configured).
FALLBACK_CONTEXT = 4096


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """How the remote engine reaches its upstreams."""

    urls: list[str]
    vocabulary_path: Path
    model_id: str
    kind: UpstreamKind = "llama-server"
    api_key: str | None = None
    upstream_model: str | None = None  # the name sent as "model" (default: the upstream's)
    context_size: int = 0  # 0: the upstream's (asked at start), else the vocabulary's
    max_in_flight: int = 64  # per upstream; beyond it, 429
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 300.0  # longest gap between two chunks of a stream
    health_interval_s: float = 5.0
    eject_after: int = 2
    spill_margin: int = 4


class RemoteEngine:
    """Implements ``EngineClient`` by streaming from upstream servers."""

    def __init__(self, config: RemoteConfig) -> None:
        self._config = config
        self.pool = UpstreamPool(
            config.urls, eject_after=config.eject_after, spill_margin=config.spill_margin
        )
        self._vocab: Vocabulary | None = None
        self._info: ModelInfo | None = None
        self._client: httpx.AsyncClient | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._streams: dict[str, RemoteStream] = {}
        self._state: Literal["loading", "ready", "stopped"] = "loading"

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the vocabulary, ask the upstreams for their context, start health checks."""
        cfg = self._config
        self._vocab = vocab = await asyncio.to_thread(Vocabulary, cfg.vocabulary_path)
        headers = {"Authorization": f"Bearer {cfg.api_key}"} if cfg.api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(cfg.read_timeout_s, connect=cfg.connect_timeout_s),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        await self._probe_all()
        await self._check_tokenizers()
        n_ctx = cfg.context_size or await self._upstream_context() or 0
        if not n_ctx:
            n_ctx = FALLBACK_CONTEXT
            log.warning(
                "no upstream said its context size; assuming %d tokens "
                "(set GEMMA_UPSTREAM_CONTEXT_SIZE)",
                n_ctx,
            )
        self._info = ModelInfo(
            model_id=cfg.model_id,
            path=str(cfg.vocabulary_path),
            n_ctx=n_ctx,
            n_ctx_train=max(vocab.n_ctx_train, n_ctx),
            n_vocab=vocab.n_vocab,
            chat_template=vocab.chat_template,
            bos_token=vocab.bos_token,
            eos_token=vocab.eos_token,
            add_bos=vocab.add_bos,
            size_bytes=0,
            n_params=0,
            created=int(time.time()),
            # Media are not sent upstream: the front reads them as a text-only model would.
            modalities=("text",),
            architecture=vocab.architecture,
        )
        self._state = "ready"
        self._health_task = asyncio.create_task(self._health_loop(), name="upstream-health")
        log.info(
            "remote engine over %d upstream(s) (%s), n_ctx=%d: %s",
            len(self.pool.upstreams),
            cfg.kind,
            n_ctx,
            ", ".join(f"{u.url}{'' if u.healthy else ' (down)'}" for u in self.pool.upstreams),
        )

    async def shutdown(self) -> None:
        """Close every open stream and the HTTP client."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        for stream in list(self._streams.values()):
            await stream.aclose()
        if self._client is not None:
            await self._client.aclose()
        if self._vocab is not None:
            self._vocab.close()
        self._state = "stopped"

    async def relocate(self, gpu_layers: int) -> None:
        """Nothing to move: the upstreams hold the model."""

    # --- requests -------------------------------------------------------------------------
    @property
    def model_info(self) -> ModelInfo:
        if self._info is None:
            raise ServiceUnavailableError("the remote engine is starting")
        return self._info

    async def submit(self, request: GenerationRequest) -> RemoteStream:
        """Open ``request`` on an upstream (or raise 429/503 as the fleet answers)."""
        if self._client is None or self._info is None:
            raise ServiceUnavailableError("the remote engine is starting")
        check_prompt_fits(len(request.prompt_tokens), self._info.n_ctx)
        if request.media:  # the chat layer refuses media first (modalities): a safety net
            raise InvalidRequestError("images and audio are not sent to upstream servers")
        healthy = self.pool.healthy
        if not healthy:
            raise EngineDeadError("no upstream server is healthy", retry_after_s=5.0)
        if all(u.in_flight >= self._config.max_in_flight for u in healthy):
            raise RateLimitError("every upstream server is at capacity", retry_after_s=1.0)
        body = completion_body(request, self._config.kind, self._config.upstream_model)
        key = self._affinity(request)
        client = self._client
        tried: list[Upstream] = []

        async def reopen(tried: list[Upstream]) -> UpstreamCall:
            return await open_call(client, self.pool, body, key, tried)

        call = await reopen(tried)
        stream = RemoteStream(
            request,
            call,
            tried,
            pool=self.pool,
            reopen=reopen,
            tokenize=self._count_tokens,
            on_close=self._forget,
        )
        self._streams[request.request_id] = stream
        return stream

    def _forget(self, request_id: str) -> None:
        self._streams.pop(request_id, None)

    async def abort(self, request_id: str) -> None:
        stream = self._streams.get(request_id)
        if stream is not None:
            await stream.aclose()

    def _affinity(self, request: GenerationRequest) -> str | None:
        """The upstream choice key: the conversation, else the caller and the prompt's opening
        tokens. A prompt shorter than the opening gets none (the fewest in flight): its next
        turn's opening differs anyway, and balancing the load is worth more than re-reading
        a few dozen tokens."""
        key = request.affinity_key or ""
        if key.startswith("conversation:"):
            return key
        if len(request.prompt_tokens) < AFFINITY_PREFIX_TOKENS:
            return None
        head = request.prompt_tokens[:AFFINITY_PREFIX_TOKENS]
        digest = hashlib.blake2b(repr(head).encode(), digest_size=8).hexdigest()
        return f"{key}|{digest}"

    def _count_tokens(self, text: str) -> list[int]:
        return self.tokenize(text, add_special=False, parse_special=False)

    # --- vocabulary -----------------------------------------------------------------------
    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        if self._vocab is None:
            raise ServiceUnavailableError("the remote engine is starting")
        return self._vocab.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: list[int]) -> str:
        if self._vocab is None:
            raise ServiceUnavailableError("the remote engine is starting")
        return self._vocab.detokenize(tokens)

    # --- health ---------------------------------------------------------------------------
    def health(self) -> EngineHealth:
        state: Literal["loading", "ready", "dead", "stopped"] = self._state
        detail = None
        if state == "ready" and not self.pool.healthy:
            state, detail = "dead", "no upstream server is healthy"
        in_flight = sum(u.in_flight for u in self.pool.upstreams)
        return EngineHealth(
            state=state,
            device="remote",
            gpu_layers=0,
            gpu_available=False,
            running=in_flight,
            waiting=0,
            detail=detail,
            upstreams=tuple(self.pool.stats()),
        )

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.health_interval_s)
            await self._probe_all()

    async def _probe_all(self) -> None:
        await asyncio.gather(*(self._probe(u) for u in self.pool.upstreams))

    async def _probe(self, upstream: Upstream) -> None:
        assert self._client is not None
        path = HEALTH_PATHS[self._config.kind]
        try:
            response = await self._client.get(upstream.url + path, timeout=2.0)
        except httpx.HTTPError as exc:
            self._probe_failed(upstream, f"{type(exc).__name__}: {exc}")
            return
        if response.status_code == 200:
            if not upstream.healthy:
                log.info("upstream %s is back: readmitted", upstream.url)
            self.pool.success(upstream)
        else:
            self._probe_failed(upstream, f"health check answered {response.status_code}")

    def _probe_failed(self, upstream: Upstream, reason: str) -> None:
        was_healthy = upstream.healthy
        self.pool.failure(upstream, reason)
        if was_healthy and not upstream.healthy:
            log.warning("upstream %s ejected: %s", upstream.url, reason)

    async def _check_tokenizers(self) -> None:
        """Refuse to start when a reachable upstream tokenizes differently from us."""
        assert self._client is not None
        checked = [
            await check_tokenizer(
                self._client,
                upstream.url,
                self._config.kind,
                lambda text: self.tokenize(text, add_special=False, parse_special=True),
                str(self._config.vocabulary_path),
            )
            for upstream in self.pool.healthy
        ]
        if not any(checked):
            log.warning(
                "could not compare tokenizers with the upstreams: make sure GEMMA_MODEL_PATH "
                "is a GGUF of the model they serve"
            )

    async def _upstream_context(self) -> int | None:
        """The context one sequence gets on the upstreams (the smallest any reports)."""
        sizes = [n for u in self.pool.healthy if (n := await self._context_of(u))]
        return min(sizes) if sizes else None

    async def _context_of(self, upstream: Upstream) -> int | None:
        assert self._client is not None
        with contextlib.suppress(httpx.HTTPError, ValueError):
            models = (await self._client.get(upstream.url + "/v1/models", timeout=5.0)).json()
            for model in models.get("data") or []:
                if isinstance(model.get("max_model_len"), int):  # vLLM, SGLang
                    return int(model["max_model_len"])
                meta = model.get("meta") or {}
                if isinstance(meta.get("n_ctx"), int):  # gemma-service: per sequence
                    return int(meta["n_ctx"])
            props: Any = (await self._client.get(upstream.url + "/props", timeout=5.0)).json()
            settings = props.get("default_generation_settings") or {}
            if isinstance(settings.get("n_ctx"), int):  # llama-server: per slot
                return int(settings["n_ctx"])
        return None
