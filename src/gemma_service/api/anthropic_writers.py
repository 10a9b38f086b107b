"""A run as the Anthropic Messages API answers it: the message body, or its event stream.

The stream is ``message_start``, then per content block ``content_block_start``, deltas
(``text_delta``, ``thinking_delta``, ``input_json_delta``) and ``content_block_stop``, then
``message_delta`` (stop reason, usage) and ``message_stop``. A failure is an ``error`` event
in Anthropic's error shape. Blocks come in the order the model wrote them: thinking, text,
tool uses; the whole body lists the same blocks, so both answers are equal.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from gemma_service.api.protocols import anthropic_error_body
from gemma_service.chat.events import (
    ChatFinish,
    ChoiceEnd,
    ChoiceResult,
    ReasoningDelta,
    RunEvent,
    RunInfo,
    TextDelta,
    ToolCallDelta,
)
from gemma_service.engine.protocol import Usage
from gemma_service.sse import MEDIA_TYPE, sse_json


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def anthropic_usage(usage: Usage) -> dict[str, int]:
    """Anthropic counts prompt tokens read from the cache apart from the others."""
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def stop_reason(
    finish: ChatFinish, stop_string: str | None, stop_sequences: list[str]
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence): only the client's own stop sequences are reported."""
    if finish == "length":
        return "max_tokens", None
    if finish == "tool_calls":
        return "tool_use", None
    if stop_string is not None and stop_string in stop_sequences:
        return "stop_sequence", stop_string
    return "end_turn", None


def tool_input(arguments: str) -> Any:
    """A call's arguments (JSON text of an object) as ``tool_use.input``."""
    try:
        return json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}  # a call cut off by max_tokens: its arguments are incomplete


def message_body(
    info: RunInfo,
    choice: ChoiceResult,
    stop_sequences: list[str],
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of a non-streamed ``POST /v1/messages``."""
    content: list[dict[str, Any]] = []
    if choice.reasoning:
        content.append({"type": "thinking", "thinking": choice.reasoning, "signature": ""})
    if choice.content:
        content.append({"type": "text", "text": choice.content})
    for call in choice.tool_calls:
        use = {"type": "tool_use", "id": call.id, "name": call.name}
        content.append({**use, "input": tool_input(call.arguments)})
    reason, sequence = stop_reason(choice.finish_reason, choice.stop_string, stop_sequences)
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": info.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": anthropic_usage(choice.usage),
        **(extensions or {}),
    }


class AnthropicStreamWriter:
    """The events of a streamed ``POST /v1/messages`` (one choice)."""

    media_type = MEDIA_TYPE

    def __init__(
        self,
        info: RunInfo,
        stop_sequences: list[str],
        extensions: dict[str, Any] | None = None,
    ) -> None:
        self.info = info
        self.stop_sequences = stop_sequences
        self.extensions = extensions or {}
        self._blocks = 0
        self._open: str | None = None  # the kind of the open block

    def start(self) -> list[bytes]:
        message = {
            "id": new_message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.info.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.info.prompt_tokens, "output_tokens": 0},
            **self.extensions,
        }
        return [
            self._event("message_start", message=message),
            self._event("ping"),
        ]

    def write(self, event: RunEvent) -> list[bytes]:
        if isinstance(event, TextDelta):
            if not event.text:
                return []
            out = self._begin("text", {"type": "text", "text": ""})
            return [*out, self._delta({"type": "text_delta", "text": event.text})]
        if isinstance(event, ReasoningDelta):
            if not event.text:
                return []
            start = {"type": "thinking", "thinking": "", "signature": ""}
            out = self._begin("thinking", start)
            return [*out, self._delta({"type": "thinking_delta", "thinking": event.text})]
        if isinstance(event, ToolCallDelta):
            out = []
            if event.id is not None or self._open != "tool_use":
                use = {"type": "tool_use", "id": event.id or "", "name": event.name or ""}
                out = self._begin("tool_use", {**use, "input": {}}, new=True)
            if event.arguments:
                out.append(
                    self._delta({"type": "input_json_delta", "partial_json": event.arguments})
                )
            return out
        return self._end(event)

    def finish(self) -> list[bytes]:
        return [self._event("message_stop")]

    def _end(self, end: ChoiceEnd) -> list[bytes]:
        if end.error is not None:
            return [sse_json(anthropic_error_body(end.error), event="error")]
        reason, sequence = stop_reason(end.finish_reason, end.stop_string, self.stop_sequences)
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        return [
            *self._close(),
            self._event("message_delta", delta=delta, usage=anthropic_usage(end.usage)),
        ]

    def _begin(self, kind: str, block: dict[str, Any], *, new: bool = False) -> list[bytes]:
        """Open a block of ``kind`` unless one is open (``new``: always a new block)."""
        if self._open == kind and not new:
            return []
        out = self._close()
        self._open = kind
        out.append(self._event("content_block_start", index=self._blocks, content_block=block))
        return out

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        self._blocks += 1
        return [self._event("content_block_stop", index=self._blocks - 1)]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._event("content_block_delta", index=self._blocks, delta=delta)

    @staticmethod
    def _event(kind: str, **fields: Any) -> bytes:
        return sse_json({"type": kind, **fields}, event=kind)
