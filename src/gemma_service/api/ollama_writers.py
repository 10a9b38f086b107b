"""A run as Ollama answers it: NDJSON lines while streaming, or one object.

Each streamed line is ``{"model", "created_at", "message": {...}, "done": false}`` (``/api/chat``)
or ``{..., "response": "...", "done": false}`` (``/api/generate``); thinking goes in
``thinking``; tool calls come whole, in one line, when the reply ends (Ollama's arguments are
an object, not text); the last line has ``done: true``, ``done_reason`` and Ollama's timing
fields, measured on this run (nanoseconds). A failure is a line ``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gemma_service.chat.events import (
    ChoiceEnd,
    ChoiceResult,
    ReasoningDelta,
    ResultCollector,
    RunEvent,
    RunInfo,
    RunResult,
    TextDelta,
    ToolCallDelta,
)
from gemma_service.chat.run import ChatRun
from gemma_service.chat.structured import ToolCall
from gemma_service.engine.protocol import Usage

NDJSON = "application/x-ndjson"
Endpoint = Literal["chat", "generate"]


def created_at(epoch_s: float | None = None) -> str:
    """RFC 3339 time, as Ollama writes it."""
    moment = datetime.now(UTC) if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat().replace("+00:00", "Z")


def ndjson(payload: dict[str, Any]) -> bytes:
    return (json.dumps(payload, ensure_ascii=False) + "\n").encode()


@dataclass(slots=True)
class RunClock:
    """When a run's first output and its end came: Ollama's durations, measured."""

    info: RunInfo
    first_at: float | None = None
    ended_at: float | None = None

    def see(self, event: RunEvent) -> None:
        now = time.perf_counter()
        if isinstance(event, ChoiceEnd):
            self.ended_at = now
        elif self.first_at is None:
            self.first_at = now

    def fields(self, usage: Usage) -> dict[str, int]:
        """total, load (the wait for the model's placement), prompt eval (until the first
        output) and eval (the rest) durations, with the token counts."""
        start = self.info.started_at
        end = self.ended_at or time.perf_counter()
        first = self.first_at or end
        load = self.info.gpu_wait_s
        return {
            "total_duration": _ns(end - start),
            "load_duration": _ns(load),
            "prompt_eval_count": usage.prompt_tokens,
            "prompt_eval_duration": _ns(first - start - load),
            "eval_count": usage.completion_tokens,
            "eval_duration": _ns(end - first),
        }


def _ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


async def collect_timed(run: ChatRun) -> tuple[RunResult, RunClock]:
    """The run's result, with its clock (what ``ChatRun.collect`` does, timed)."""
    results = ResultCollector(run.info.n, forces_tool_call=run.info.forces_tool_call)
    clock = RunClock(run.info)
    async with contextlib.aclosing(run):
        async for event in run:
            clock.see(event)
            results.add(event)
    return results.result(), clock


def tool_calls_body(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Ollama's ``message.tool_calls``: arguments as an object."""
    out = []
    for index, call in enumerate(calls):
        try:
            arguments = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError:
            arguments = {}  # a call cut off by num_predict
        function = {"index": index, "name": call.name, "arguments": arguments}
        out.append({"id": call.id, "function": function})
    return out


def ollama_done_reason(choice_finish: str) -> str:
    return "length" if choice_finish == "length" else "stop"


def whole_body(
    endpoint: Endpoint,
    model: str,
    choice: ChoiceResult,
    clock: RunClock,
    extensions: dict[str, Any],
) -> dict[str, Any]:
    """The one object of a non-streamed /api/chat or /api/generate."""
    body: dict[str, Any] = {"model": model, "created_at": created_at()}
    text = choice.content or ""
    if endpoint == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if choice.reasoning:
            message["thinking"] = choice.reasoning
        if choice.tool_calls:
            message["tool_calls"] = tool_calls_body(choice.tool_calls)
        body["message"] = message
    else:
        body["response"] = text
        if choice.reasoning:
            body["thinking"] = choice.reasoning
    body.update(done=True, done_reason=ollama_done_reason(choice.finish_reason))
    return {**body, **clock.fields(choice.usage), **extensions}


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


class OllamaStreamWriter:
    """NDJSON lines of a streamed /api/chat or /api/generate (one choice)."""

    media_type = NDJSON

    def __init__(
        self, endpoint: Endpoint, model: str, info: RunInfo, extensions: dict[str, Any]
    ) -> None:
        self.endpoint = endpoint
        self.model = model
        self.clock = RunClock(info)
        self.extensions = extensions
        self._calls: dict[int, _Call] = {}

    def start(self) -> list[bytes]:
        return []

    def write(self, event: RunEvent) -> list[bytes]:
        self.clock.see(event)
        if isinstance(event, TextDelta):
            return [ndjson(self._body(content=event.text))] if event.text else []
        if isinstance(event, ReasoningDelta):
            return [ndjson(self._body(content="", thinking=event.text))] if event.text else []
        if isinstance(event, ToolCallDelta):
            call = self._calls.setdefault(event.index, _Call(event.id or "", event.name or ""))
            call.arguments.append(event.arguments)
            return []
        if event.error is not None:
            return [ndjson({"error": event.error.message})]
        out = []
        if self._calls:
            calls = [
                ToolCall(c.id, c.name, "".join(c.arguments)) for _, c in sorted(self._calls.items())
            ]
            out.append(ndjson(self._body(content="", tool_calls=tool_calls_body(calls))))
        final = self._body(
            content="", done=True, done_reason=ollama_done_reason(event.finish_reason)
        )
        out.append(ndjson({**final, **self.clock.fields(event.usage), **self.extensions}))
        return out

    def finish(self) -> list[bytes]:
        return []

    def _body(
        self,
        *,
        content: str,
        thinking: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        done: bool = False,
        done_reason: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "created_at": created_at()}
        if self.endpoint == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking is not None:
                message["thinking"] = thinking
            if tool_calls is not None:
                message["tool_calls"] = tool_calls
            body["message"] = message
        else:
            body["response"] = content
            if thinking is not None:
                body["thinking"] = thinking
        body["done"] = done
        if done_reason is not None:
            body["done_reason"] = done_reason
        return body
