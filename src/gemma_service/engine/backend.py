"""What the engine loop needs from a model runtime: the llama.cpp backend and the fake one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gemma_service.engine.media import MediaLayout
from gemma_service.engine.protocol import GenerationRequest, ModelInfo, SamplingParams, TokenLogprob
from gemma_service.engine.scheduler import StepPlan


class KvCacheFullError(Exception):
    """llama_decode found no room in the KV cache for this step's batch."""


@dataclass(slots=True)
class SampledToken:
    token: int
    logprob: TokenLogprob | None = None


class ModelBackend(Protocol):
    """A loaded model plus context that executes scheduler plans. Used from one thread only."""

    info: ModelInfo
    device: str
    gpu_layers: int
    gpu_available: bool

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]: ...

    def token_bytes(self, token: int) -> bytes:
        """The bytes a token stands for in generated text (control tokens: empty)."""
        ...

    def is_end_of_generation(self, token: int) -> bool: ...

    def add_sampler(self, request_id: str, params: SamplingParams) -> None:
        """Set up ``request_id``'s sampler (raises InvalidRequestError on a bad grammar)."""
        ...

    def remove_sampler(self, request_id: str) -> None: ...

    def layout_media(self, request: GenerationRequest) -> list[MediaLayout]:
        """Lay out ``request.media`` in the prompt and keep it for decoding (until
        ``release_media``); raises InvalidRequestError / PayloadTooLargeError on bad media."""
        ...

    def release_media(self, request_id: str) -> None: ...

    def execute(self, plan: StepPlan, want_logprobs: dict[str, int]) -> dict[str, SampledToken]:
        """Apply the plan's memory ops, decode its media chunks then its batch, sample each
        chunk marked ``sample``.

        ``want_logprobs`` maps request ids to how many top logprobs they asked for (0: just the
        chosen token's). Raises KvCacheFullError when the batch does not fit.
        """
        ...

    def reload(self, gpu_layers: int) -> None:
        """Load the model again with ``gpu_layers`` on the GPU; the KV cache is lost."""
        ...

    def close(self) -> None: ...
