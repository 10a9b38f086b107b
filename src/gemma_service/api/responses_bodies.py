"""The response object of the Responses API and its output items, built from a run.

``ResponseFrame`` holds what every version of one response shares (its id, the request fields
it echoes, gemma-service's extension fields); the streamed events and the whole body are made
from the same items, so a streamed and a non-streamed answer cannot differ.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from gemma_service.api.responses_protocol import ResponsesRequest
from gemma_service.api.sampling import DEFAULT_TEMPERATURE
from gemma_service.chat.events import ChatFinish, ChoiceResult, RunInfo
from gemma_service.engine.protocol import Usage
from gemma_service.errors import ServiceError

Status = Literal["in_progress", "completed", "incomplete", "failed"]


def new_item_id(prefix: str) -> str:
    """An id in OpenAI's shape: ``resp_…``, ``msg_…``, ``fc_…``, ``rs_…``."""
    return f"{prefix}_{uuid.uuid4().hex}"


def responses_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def run_status(finish: ChatFinish) -> Status:
    """A reply cut off by max_output_tokens is incomplete; anything else that ended is done."""
    return "incomplete" if finish == "length" else "completed"


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [part],
    }


def reasoning_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": status}


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(choice: ChoiceResult) -> list[dict[str, Any]]:
    """A whole reply's items: its thinking, its text, then its function calls."""
    items: list[dict[str, Any]] = []
    if choice.reasoning:
        items.append(reasoning_item(new_item_id("rs"), choice.reasoning))
    if choice.content is not None:
        status = "incomplete" if choice.finish_reason == "length" else "completed"
        items.append(message_item(new_item_id("msg"), choice.content, status))
    for call in choice.tool_calls:
        items.append(function_call_item(new_item_id("fc"), call.id, call.name, call.arguments))
    return items


@dataclass(slots=True)
class ResponseFrame:
    """One response's id and what its object echoes of the request."""

    info: RunInfo
    request: ResponsesRequest
    extensions: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: new_item_id("resp"))

    def body(
        self,
        status: Status,
        output: list[dict[str, Any]],
        usage: Usage | None = None,
        error: ServiceError | None = None,
    ) -> dict[str, Any]:
        """The response object in ``status``."""
        req = self.request
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.info.created,
            "status": status,
            "error": None if error is None else _error_echo(error),
            "incomplete_details": incomplete,
            "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens,
            "model": self.info.model,
            "output": output,
            "parallel_tool_calls": req.parallel_tool_calls,
            "previous_response_id": req.previous_response_id,
            "reasoning": {"effort": None, "summary": None},
            "store": req.store,
            "temperature": DEFAULT_TEMPERATURE if req.temperature is None else req.temperature,
            "text": {"format": _format_echo(req)},
            "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
            "tools": list(req.tools or []),
            "top_p": 1.0 if req.top_p is None else req.top_p,
            "truncation": req.truncation or "disabled",
            "usage": None if usage is None else responses_usage(usage),
            "user": req.user,
            "metadata": dict(req.metadata or {}),
            **self.extensions,
        }


def _format_echo(req: ResponsesRequest) -> dict[str, Any]:
    fmt = req.text.format if req.text is not None else None
    if fmt is None:
        return {"type": "text"}
    return fmt.model_dump(by_alias=True, exclude_none=True)


def _error_echo(error: ServiceError) -> dict[str, Any]:
    return {"code": error.code or error.error_type, "message": error.message}
