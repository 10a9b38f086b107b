"""Per-request bookkeeping in the engine loop: text stream, counters, deadline, event delivery."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from gemma_service.engine.media import ExpandedPrompt, MediaSpan
from gemma_service.engine.protocol import (
    FinishReason,
    GenerationRequest,
    TokenEvent,
    TokenLogprob,
    Usage,
)
from gemma_service.engine.text_stream import TextStream
from gemma_service.errors import ServiceError


@dataclass(eq=False)
class RequestState:
    """What the engine loop tracks for one request between steps.

    ``max_tokens`` is what the request may generate: what it asked for, within the room its
    prompt leaves in the context (the request's own parameters are never changed). ``prompt``
    is the prompt as the engine runs it: with media laid out (``set_prompt``), it is longer
    than the request's.
    """

    request: GenerationRequest
    queue: asyncio.Queue[TokenEvent]
    n_ctx: int
    submitted_at: float = field(default_factory=time.monotonic)
    accepted_at_step: int = 0  # the engine's step count when it accepted the request
    n_generated: int = 0
    cached_tokens: int = 0
    finished: bool = False
    stream: TextStream = field(init=False)
    max_tokens: int = field(init=False)
    prompt: list[int] = field(init=False)
    media_spans: list[MediaSpan] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stream = TextStream(self.request.sampling.stop)
        self.set_prompt(ExpandedPrompt(self.request.prompt_tokens, []))

    def set_prompt(self, prompt: ExpandedPrompt) -> None:
        """The prompt to run (media laid out); what may be generated follows from its length."""
        self.prompt, self.media_spans = prompt.tokens, prompt.spans
        room = self.n_ctx - len(prompt.tokens)
        self.max_tokens = max(1, min(self.request.sampling.max_tokens, room))

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def deadline(self) -> float | None:
        t = self.request.timeout_s
        return None if t is None else self.submitted_at + t

    def usage(self) -> Usage:
        return Usage(len(self.prompt), self.n_generated, self.cached_tokens)

    def on_token(
        self, token: int, piece: bytes, is_eog: bool, logprob: TokenLogprob | None
    ) -> TokenEvent | None:
        """Account for one sampled token; return the event to deliver (None: nothing to say)."""
        if is_eog:
            return self.finish("stop")
        self.n_generated += 1
        text = self.stream.feed(piece)
        lps = [logprob] if logprob is not None else None
        if self.stream.stopped:
            return self._final(text, [token], lps, "stop")
        if self.n_generated >= self.max_tokens:
            return self._final(text + self.stream.finish(), [token], lps, "length")
        if not text and lps is None:
            return None
        return TokenEvent(text, [token], lps)

    def finish(self, reason: FinishReason, error: ServiceError | None = None) -> TokenEvent:
        """End the request now; held-back text is released unless a stop string ended it."""
        tail = self.stream.finish() if reason in ("stop", "length") else ""
        return self._final(tail, [], None, reason, error)

    def _final(
        self,
        text: str,
        tokens: list[int],
        lps: list[TokenLogprob] | None,
        reason: FinishReason,
        error: ServiceError | None = None,
    ) -> TokenEvent:
        self.finished = True
        return TokenEvent(
            text, tokens, lps, reason, self.usage(), error, stop_string=self.stream.stop_string
        )
