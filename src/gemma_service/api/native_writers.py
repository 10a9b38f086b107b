"""A run as the native API answers it: /chat's body, /chat/stream's events, /generate's body.

The stream is SSE ``data: {"token": "...", "done": false}`` events, then one ``done: true``
event with usage and what the answer drew on (memories, documents, the GPU wait); a failure
comes in that last event as ``error``. A thinking model's thought comes apart from the answer:
``reasoning`` in /chat's body, ``{"token": "", "reasoning": "...", "done": false}`` events.
"""

from __future__ import annotations

import time
from typing import Any

from gemma_service.chat.events import (
    ChoiceEnd,
    ReasoningDelta,
    RunEvent,
    RunInfo,
    RunResult,
    TextDelta,
)
from gemma_service.engine.protocol import Usage
from gemma_service.sse import MEDIA_TYPE, sse_json


def usage_dict(u: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


def context_fields(info: RunInfo) -> dict[str, Any]:
    """What a response says about memory, history and the GPU (seed-000 fields and ours)."""
    fields: dict[str, Any] = {"gpu_wait_time": round(info.gpu_wait_s, 4)}
    chat = info.context
    if chat is None:
        return fields
    fields.update(
        rag_context_used=chat.rag_context_used,
        sources=chat.sources,
        retrieval_time=round(chat.retrieval_time_s, 4),
    )
    if chat.warnings:
        fields["warning"] = "; ".join(chat.warnings)
    if chat.conversation_id:
        fields["conversation_id"] = chat.conversation_id
        fields["history"] = chat.history
    return fields


def chat_body(info: RunInfo, result: RunResult) -> dict[str, Any]:
    """The body of POST /chat."""
    [choice] = result.choices
    body = {
        "response": choice.content or "",
        "model": info.model,
        "usage": usage_dict(choice.usage),
        "finish_reason": choice.finish_reason,
        **context_fields(info),
        "inference_time": round(info.inference_s(), 4),
    }
    if choice.reasoning is not None:
        body["reasoning"] = choice.reasoning
    return body


def generate_body(info: RunInfo, result: RunResult) -> dict[str, Any]:
    """The body of POST /generate."""
    [choice] = result.choices
    return {
        "text": choice.content or "",
        "model": info.model,
        "usage": usage_dict(choice.usage),
        "finish_reason": choice.finish_reason,
        "inference_time": round(time.perf_counter() - info.started_at, 4),
    }


class NativeStreamWriter:
    """The events of POST /chat/stream."""

    media_type = MEDIA_TYPE

    def __init__(self, info: RunInfo) -> None:
        self.info = info

    def start(self) -> list[bytes]:
        return []

    def write(self, event: RunEvent) -> list[bytes]:
        if isinstance(event, TextDelta):
            return [sse_json({"token": event.text, "done": False})] if event.text else []
        if isinstance(event, ReasoningDelta):
            return [sse_json({"token": "", "reasoning": event.text, "done": False})]
        if not isinstance(event, ChoiceEnd):
            return []
        final: dict[str, Any] = {
            "token": "",
            "done": True,
            "usage": usage_dict(event.usage),
            "finish_reason": event.finish_reason,
            **context_fields(self.info),
            "inference_time": round(self.info.inference_s(), 4),
        }
        if event.error is not None:
            final["error"] = event.error.to_body()["error"]
        return [sse_json(final)]

    def finish(self) -> list[bytes]:
        return []
