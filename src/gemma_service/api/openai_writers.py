"""A run's events as OpenAI stream chunks: ``chat.completion.chunk`` and ``text_completion``.

Each writer frames its chunks with one id, creation time and model; a choice that fails ends
the stream with an error event in OpenAI's error shape (no ``[DONE]`` after it).
"""

from __future__ import annotations

from typing import Any, Literal

from gemma_service.api.error_handlers import sse_error
from gemma_service.api.openai_bodies import (
    chat_logprobs,
    completion_logprobs,
    new_id,
    openai_finish_reason,
    usage_body,
)
from gemma_service.chat.events import (
    ChoiceEnd,
    ReasoningDelta,
    RunEvent,
    RunInfo,
    TextDelta,
    ToolCallDelta,
)
from gemma_service.engine.protocol import Usage
from gemma_service.sse import MEDIA_TYPE, SSE_DONE, sse_json

ChunkObject = Literal["chat.completion.chunk", "text_completion"]


class _ChunkFrame:
    """What every chunk of one streamed response shares, and the final usage chunk."""

    media_type = MEDIA_TYPE

    def __init__(self, kind: ChunkObject, info: RunInfo, include_usage: bool) -> None:
        self.kind = kind
        self.id = new_id("chatcmpl" if kind == "chat.completion.chunk" else "cmpl")
        self.info = info
        self.include_usage = include_usage
        self.usages: dict[int, Usage] = {}

    def chunk(self, choice: dict[str, Any]) -> bytes:
        """One chunk carrying one choice; ``usage: null`` when the client asked for usage."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": self.kind,
            "created": self.info.created,
            "model": self.info.model,
            "choices": [choice],
        }
        if self.include_usage:
            body["usage"] = None
        return sse_json(body)

    def ended(self, end: ChoiceEnd) -> list[bytes] | None:
        """The failure event of a choice that ended in error; None when it ended well."""
        if end.error is not None:
            return [sse_error(end.error)]
        self.usages[end.choice] = end.usage
        return None

    def finish(self) -> list[bytes]:
        """The usage of all choices (when asked for), then ``[DONE]``."""
        out: list[bytes] = []
        if self.include_usage:
            body = {
                "id": self.id,
                "object": self.kind,
                "created": self.info.created,
                "model": self.info.model,
                "choices": [],
                "usage": usage_body([self.usages[k] for k in sorted(self.usages)]),
            }
            out.append(sse_json(body))
        out.append(SSE_DONE)
        return out


class ChatChunkWriter(_ChunkFrame):
    """``chat.completion.chunk`` events: a role chunk, deltas (content, reasoning, tool calls),
    a finish chunk per choice."""

    def __init__(self, info: RunInfo, *, include_usage: bool, logprobs: bool) -> None:
        super().__init__("chat.completion.chunk", info, include_usage)
        self.logprobs = logprobs

    def start(self) -> list[bytes]:
        # A reply that must be tool calls has no content, as OpenAI streams it.
        content = None if self.info.forces_tool_call else ""
        role = {"role": "assistant", "content": content}
        return [self._delta(i, role) for i in range(self.info.n)]

    def write(self, event: RunEvent) -> list[bytes]:
        i = event.choice
        if isinstance(event, TextDelta):
            lps = chat_logprobs(event.logprobs) if self.logprobs and event.logprobs else None
            if not event.text and lps is None:
                return []
            return [self._delta(i, {"content": event.text} if event.text else {}, logprobs=lps)]
        if isinstance(event, ReasoningDelta):
            return [self._delta(i, {"reasoning_content": event.text})]
        if isinstance(event, ToolCallDelta):
            return [self._delta(i, {"tool_calls": [tool_call_delta_body(event)]})]
        failure = self.ended(event)
        if failure is not None:
            return failure
        return [self._delta(i, {}, finish_reason=openai_finish_reason(event.finish_reason))]

    def _delta(
        self,
        index: int,
        delta: dict[str, Any],
        *,
        finish_reason: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        return self.chunk(
            {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        )


class TextChunkWriter(_ChunkFrame):
    """``text_completion`` events: the prompt first when echoed, text, a finish per choice."""

    def __init__(self, info: RunInfo, *, include_usage: bool, logprobs: bool, echo: bool) -> None:
        super().__init__("text_completion", info, include_usage)
        self.logprobs = logprobs
        self.echo = echo

    def start(self) -> list[bytes]:
        if not self.echo:
            return []
        return [self._text(i, self.info.prompt_text) for i in range(self.info.n)]

    def write(self, event: RunEvent) -> list[bytes]:
        if isinstance(event, TextDelta):
            lps = completion_logprobs(event.logprobs) if self.logprobs and event.logprobs else None
            return [self._text(event.choice, event.text, logprobs=lps)] if event.text or lps else []
        if not isinstance(event, ChoiceEnd):
            return []  # a raw completion has no tool calls or thinking channel
        failure = self.ended(event)
        if failure is not None:
            return failure
        return [self._text(event.choice, "", openai_finish_reason(event.finish_reason))]

    def _text(
        self, index: int, text: str, finish_reason: str | None = None, logprobs: object = None
    ) -> bytes:
        return self.chunk(
            {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}
        )


def tool_call_delta_body(delta: ToolCallDelta) -> dict[str, Any]:
    """One ``delta.tool_calls[]`` entry; the SDK joins argument fragments by ``index``."""
    entry: dict[str, Any] = {"index": delta.index}
    function: dict[str, Any] = {"arguments": delta.arguments}
    if delta.id is not None:
        entry.update(id=delta.id, type="function")
    if delta.name is not None:
        function["name"] = delta.name
    entry["function"] = function
    return entry
