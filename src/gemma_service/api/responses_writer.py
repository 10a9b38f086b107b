"""A run's events as the Responses API streams them: typed SSE events with sequence numbers.

``response.created`` and ``response.in_progress`` go out at once; each output item (thinking,
text, a function call) is opened with ``response.output_item.added``, grows by deltas
(``response.output_text.delta``, ``response.reasoning_text.delta``,
``response.function_call_arguments.delta``) and closes with its ``.done`` events; the stream
ends with ``response.completed`` (or ``response.incomplete`` at max_output_tokens) carrying the
whole response. A failure is an ``error`` event then ``response.failed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gemma_service.api.responses_bodies import (
    ResponseFrame,
    function_call_item,
    message_item,
    new_item_id,
    reasoning_item,
    run_status,
)
from gemma_service.chat.events import (
    ChoiceEnd,
    ReasoningDelta,
    RunEvent,
    TextDelta,
    ToolCallDelta,
)
from gemma_service.errors import ServiceError
from gemma_service.sse import MEDIA_TYPE, sse_json


@dataclass(slots=True)
class _OpenItem:
    """The output item being streamed."""

    kind: str  # message | reasoning | function_call
    id: str
    index: int
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class ResponsesStreamWriter:
    """Writes one run (one choice) as Responses API stream events."""

    media_type = MEDIA_TYPE

    def __init__(self, frame: ResponseFrame) -> None:
        self.frame = frame
        self.output: list[dict[str, Any]] = []
        self._seq = 0
        self._open: _OpenItem | None = None
        self._end: ChoiceEnd | None = None
        self._failure: ServiceError | None = None

    def start(self) -> list[bytes]:
        shell = self.frame.body("in_progress", [])
        return [
            self._event("response.created", response=shell),
            self._event("response.in_progress", response=shell),
        ]

    def write(self, event: RunEvent) -> list[bytes]:
        if isinstance(event, TextDelta):
            return self._grow("message", event.text) if event.text else []
        if isinstance(event, ReasoningDelta):
            return self._grow("reasoning", event.text) if event.text else []
        if isinstance(event, ToolCallDelta):
            return self._call(event)
        if event.error is not None:
            return self._failed(event.error)
        self._end = event
        out = self._close()
        if not any(item["type"] in ("message", "function_call") for item in self.output):
            out += self._grow("message", "") + self._close()  # an empty answer is one too
        return out

    def fail(self, error: ServiceError) -> None:
        """End with ``error`` instead of completing (the answer could not be stored)."""
        self._failure = error

    def final_body(self) -> dict[str, Any]:
        """The whole response, as ``response.completed`` carries it."""
        assert self._end is not None
        return self.frame.body(run_status(self._end.finish_reason), self.output, self._end.usage)

    def finish(self) -> list[bytes]:
        if self._failure is not None:
            return self._failed(self._failure)
        body = self.final_body()
        kind = "response.incomplete" if body["status"] == "incomplete" else "response.completed"
        return [self._event(kind, response=body)]

    def _grow(self, kind: str, text: str) -> list[bytes]:
        out: list[bytes] = []
        item = self._open
        if item is None or item.kind != kind:
            out += self._close()
            item = self._open = _OpenItem(
                kind, new_item_id("msg" if kind == "message" else "rs"), len(self.output)
            )
            empty = message_item if kind == "message" else reasoning_item
            shell = empty(item.id, "", "in_progress")
            if kind == "message":
                shell["content"] = []
            out.append(self._event("response.output_item.added", **self._at(item), item=shell))
            out.append(self._part_event("response.content_part.added", item, ""))
        item.text.append(text)
        if text:
            delta = (
                "response.output_text.delta"
                if kind == "message"
                else "response.reasoning_text.delta"
            )
            extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
            out.append(self._event(delta, **self._at(item), content_index=0, delta=text, **extra))
        return out

    def _call(self, event: ToolCallDelta) -> list[bytes]:
        out: list[bytes] = []
        item = self._open
        if event.id is not None or item is None or item.kind != "function_call":
            out += self._close()
            item = self._open = _OpenItem(
                "function_call",
                new_item_id("fc"),
                len(self.output),
                call_id=event.id or "",
                name=event.name or "",
            )
            shell = function_call_item(item.id, item.call_id, item.name, "", "in_progress")
            out.append(self._event("response.output_item.added", **self._at(item), item=shell))
        if event.arguments:
            item.text.append(event.arguments)
            delta = event.arguments
            out.append(
                self._event("response.function_call_arguments.delta", **self._at(item), delta=delta)
            )
        return out

    def _close(self) -> list[bytes]:
        """The ``.done`` events of the open item; it joins the output."""
        item, self._open = self._open, None
        if item is None:
            return []
        text = "".join(item.text)
        out: list[bytes] = []
        if item.kind == "function_call":
            done = function_call_item(item.id, item.call_id, item.name, text)
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    **self._at(item),
                    name=item.name,
                    arguments=text,
                )
            )
        else:
            if item.kind == "message":
                cut = self._end is not None and self._end.finish_reason == "length"
                done = message_item(item.id, text, "incomplete" if cut else "completed")
                extra: dict[str, Any] = {"logprobs": []}
                kind = "response.output_text.done"
            else:
                done = reasoning_item(item.id, text)
                extra = {}
                kind = "response.reasoning_text.done"
            out.append(self._event(kind, **self._at(item), content_index=0, text=text, **extra))
            out.append(self._part_event("response.content_part.done", item, text))
        self.output.append(done)
        out.append(self._event("response.output_item.done", output_index=item.index, item=done))
        return out

    def _failed(self, error: ServiceError) -> list[bytes]:
        body = self.frame.body("failed", self.output, error=error)
        return [
            self._event("error", code=error.code, message=error.message, param=error.param),
            self._event("response.failed", response=body),
        ]

    def _part_event(self, kind: str, item: _OpenItem, text: str) -> bytes:
        if item.kind == "message":
            part: dict[str, Any] = {
                "type": "output_text",
                "text": text,
                "annotations": [],
                "logprobs": [],
            }
        else:
            part = {"type": "reasoning_text", "text": text}
        return self._event(kind, **self._at(item), content_index=0, part=part)

    @staticmethod
    def _at(item: _OpenItem) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.index}

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse_json(payload, event=kind)
