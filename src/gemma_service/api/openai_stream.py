"""Framing shared by the OpenAI streaming routes.

``ChunkWriter`` frames the chunks of one streamed response (chat or text completion) with the
response's id, creation time and model, plus the final usage chunk; ``failure_event`` turns an
engine event that ends a request in error into the SSE error event that closes the stream.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from gemma_service.api.error_handlers import sse_error
from gemma_service.api.openai_responses import error_for_finish, new_id, usage_body
from gemma_service.api.streaming import sse
from gemma_service.chat.service import Completion
from gemma_service.engine.protocol import TokenEvent, Usage

ChunkObject = Literal["chat.completion.chunk", "text_completion"]
_ID_PREFIX: dict[ChunkObject, str] = {
    "chat.completion.chunk": "chatcmpl",
    "text_completion": "cmpl",
}


class ChunkWriter:
    """Frames the SSE chunks of one streamed response."""

    def __init__(self, kind: ChunkObject, model: str, include_usage: bool) -> None:
        self.kind = kind
        self.id, self.created = new_id(_ID_PREFIX[kind]), int(time.time())
        self.model = model
        self.include_usage = include_usage

    def _frame(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def choice(self, choice: dict[str, Any]) -> bytes:
        """One chunk carrying one choice; ``usage: null`` when the client asked for usage."""
        body = self._frame([choice])
        if self.include_usage:
            body["usage"] = None
        return sse(body)

    def chat(
        self,
        index: int,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        """A ``chat.completion.chunk`` with ``delta`` for choice ``index``."""
        return self.choice(
            {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        )

    def text(
        self, index: int, text: str, finish_reason: str | None = None, logprobs: object = None
    ) -> bytes:
        """A ``text_completion`` chunk with ``text`` for choice ``index``."""
        return self.choice(
            {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}
        )

    def usage(self, usages: dict[int, Usage]) -> bytes:
        """The last chunk before ``[DONE]``: no choices, the usage of all of them."""
        body = self._frame([])
        body["usage"] = usage_body([usages[k] for k in sorted(usages)])
        return sse(body)


def failure_event(event: TokenEvent) -> bytes | None:
    """The SSE error event for an event that ends its request in error or timeout, else None."""
    if event.finish_reason not in ("timeout", "error"):
        return None
    assert event.usage is not None
    err = error_for_finish(Completion("", event.finish_reason, event.usage, error=event.error))
    assert err is not None
    return sse_error(err)
