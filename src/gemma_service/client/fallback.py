"""The optional fallback: what a client calls, instead of failing, when the service stays down."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from gemma_service.client.errors import GemmaUnavailableError
from gemma_service.client.results import ChatResult, GenerateResult, StreamEvent

Operation = Literal["generate", "chat", "chat_stream"]
FALLBACK_MODEL = "fallback"


@dataclass(frozen=True)
class FallbackRequest:
    """What was asked of the service that could not answer: the chat (a generate prompt is one
    user message), the prompt for ``generate``, and the error that ended the retries."""

    operation: Operation
    messages: list[dict[str, str]]
    error: GemmaUnavailableError
    prompt: str | None = None


Fallback = Callable[[FallbackRequest], str]
AsyncFallback = Callable[[FallbackRequest], str | Awaitable[str]]


def generate_result(text: str) -> GenerateResult:
    return GenerateResult(text=text, model=FALLBACK_MODEL, from_fallback=True)


def chat_result(text: str) -> ChatResult:
    return ChatResult(response=text, model=FALLBACK_MODEL, from_fallback=True)


def stream_events(text: str) -> list[StreamEvent]:
    """The fallback's answer as a stream: one token event, then ``done``."""
    events = [StreamEvent(token=text, done=False, from_fallback=True)] if text else []
    return [*events, StreamEvent(token="", done=True, from_fallback=True)]
