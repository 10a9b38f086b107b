"""The engine interface the layers above depend on, and the plain data that crosses it.

The chat layer sees only ``EngineClient``; the llama.cpp engine (over the real backend or the
fake one used by fast tests) implements it, and a remote engine over upstream servers can.

A request crosses in two steps: ``submit`` admits it or raises at once (capacity, loading, a
grammar the engine cannot parse), then its ``GenerationStream`` is read. Failures after that
arrive as the stream's last event, typed (``TokenEvent.error``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gemma_service.errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ServiceError,
)

FinishReason = Literal["stop", "length", "abort", "timeout", "error"]
Modality = Literal["text", "image", "audio"]
# Stands in a prompt for one media item (GenerationRequest.media, in order); the engine lays
# each out when it accepts the request (engine/media.py).
MEDIA_TOKEN = -1


@dataclass(slots=True)
class SamplingParams:
    """How one sequence is sampled. Defaults are neutral (no penalty, no truncation)."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    logit_bias: dict[int, float] = field(default_factory=dict)
    logprobs: bool = False
    top_logprobs: int = 0
    # GBNF grammar that constrains sampling (structured output / tool calls); root rule "root".
    grammar: str | None = None


@dataclass(frozen=True, slots=True)
class MediaInput:
    """One image or audio clip of a prompt, checked and decoded as far as the chat layer can.

    An image is ``width`` x ``height`` RGB pixels (3 bytes each); audio is the encoded file (wav,
    mp3, flac), decoded by the projector at its own sample rate. ``content_hash`` identifies
    the content (the prefix cache keys on it); ``param`` names the request field it came from.
    """

    kind: Literal["image", "audio"]
    data: bytes
    content_hash: str
    param: str
    width: int = 0
    height: int = 0
    # Audio longer than this is refused (413) once decoded; None: no limit.
    max_seconds: float | None = None


@dataclass(slots=True)
class GenerationRequest:
    """One sequence to generate. ``prompt_tokens`` is already tokenized (BOS included), with
    one ``MEDIA_TOKEN`` where each item of ``media`` goes."""

    request_id: str
    prompt_tokens: list[int]
    sampling: SamplingParams
    priority: int = 0
    # Seconds from submission after which the request ends with finish_reason "timeout".
    timeout_s: float | None = None
    media: list[MediaInput] = field(default_factory=list)
    # Requests with one key should land where the last one's prefix is cached (a remote engine
    # keeps them on one upstream); the chat layer sets the conversation or the owner.
    affinity_key: str | None = None


@dataclass(slots=True)
class TopLogprob:
    token: str
    logprob: float
    bytes: list[int]


@dataclass(slots=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob]


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class TokenEvent:
    """A step's output for one request.

    ``text`` is safe to show: complete UTF-8 characters, with any text that might begin a stop
    string held back until it is known not to. The last event has ``finish_reason`` and ``usage``.
    """

    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob] | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    # Set when finish_reason is "error" or "timeout": what went wrong, as the client is told.
    error: ServiceError | None = None
    # Set when a stop string (``SamplingParams.stop``) ended the text: which one.
    stop_string: str | None = None


@dataclass(slots=True)
class ModelInfo:
    """What the layers above need to know about the loaded model."""

    model_id: str
    path: str
    # The context one sequence may use (prompt + output).
    n_ctx: int
    n_ctx_train: int
    n_vocab: int
    chat_template: str | None
    bos_token: str
    eos_token: str
    add_bos: bool
    size_bytes: int
    n_params: int
    created: int
    # KV cells of all sequences together (0: not known).
    kv_cells: int = 0
    # What the model reads: text, plus image and audio when a projector (mmproj) is loaded.
    modalities: tuple[Modality, ...] = ("text",)
    mmproj_path: str | None = None
    # The GGUF's ``general.architecture`` ("gemma3", "gemma3n", "gemma4"; "" when not known).
    architecture: str = ""


@dataclass(frozen=True, slots=True)
class EngineStats:
    """What an engine has done and holds, for /healthz and /metrics (0: not known)."""

    steps_total: int = 0
    prefix_cache_hits_total: int = 0
    cached_tokens_total: int = 0
    kv_cache_used_tokens: int = 0
    kv_cache_capacity_tokens: int = 0


@dataclass(frozen=True, slots=True)
class UpstreamStats:
    """One upstream server of a remote engine, for /metrics and /healthz."""

    url: str
    healthy: bool
    in_flight: int
    requests_total: int
    errors_total: int
    ejections_total: int
    cached_tokens_total: int
    completed_total: int = 0
    # Seconds per request, counted into ``latency_bounds`` cumulatively (Prometheus buckets).
    latency_bounds: tuple[float, ...] = ()
    latency_buckets: tuple[int, ...] = ()
    latency_sum_s: float = 0.0


@dataclass(slots=True)
class EngineHealth:
    """Liveness of the engine for readiness probes and /healthz."""

    state: Literal["loading", "ready", "dead", "stopped"]
    device: str
    gpu_layers: int
    gpu_available: bool
    running: int
    waiting: int
    detail: str | None = None
    last_step_age_s: float | None = None
    stats: EngineStats = field(default_factory=EngineStats)
    # A remote engine's upstream servers (empty for a local engine).
    upstreams: tuple[UpstreamStats, ...] = ()


def check_prompt_fits(n_prompt: int, n_ctx: int, *, param: str | None = None) -> None:
    """The one context rule: a prompt is not empty and leaves room for a generated token."""
    if n_prompt == 0:
        raise InvalidRequestError("the prompt is empty", param=param)
    if n_prompt >= n_ctx:
        raise ContextLengthExceededError(
            f"This model's maximum context length is {n_ctx} tokens. However, your "
            f"{param or 'prompt'} resulted in {n_prompt} tokens. Please reduce the length of "
            f"the {param or 'prompt'}.",
            param=param,
        )


class GenerationStream(Protocol):
    """One admitted request's events, read once; the last has ``finish_reason`` set.

    The engine may hold the request until the stream is first read, so a caller can place the
    model (GPU lease) in between. ``aclose`` before the last event aborts the request; it is
    safe to call at any time, more than once.
    """

    @property
    def request_id(self) -> str: ...

    def __aiter__(self) -> AsyncIterator[TokenEvent]: ...

    async def __anext__(self) -> TokenEvent: ...

    async def aclose(self) -> None: ...


class EngineClient(Protocol):
    """What the layers above may ask of an engine."""

    @property
    def model_info(self) -> ModelInfo: ...

    async def submit(self, request: GenerationRequest) -> GenerationStream:
        """Admit ``request`` or raise why not (429 capacity, 503 loading or dead, 400 a bad
        grammar); its output is read from the returned stream."""
        ...

    async def abort(self, request_id: str) -> None:
        """Stop a request and free its sequence within one step."""
        ...

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def health(self) -> EngineHealth: ...

    async def start(self) -> None:
        """Load the model and start serving. Raises ModelFileError on a bad model file."""
        ...

    async def shutdown(self) -> None: ...

    async def relocate(self, gpu_layers: int) -> None:
        """Reload the model with ``gpu_layers`` on the GPU; running requests carry on after."""
        ...
