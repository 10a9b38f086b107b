"""Model output → content text and tool calls, whole or as it streams.

One state machine serves both: ``parse_tool_calls`` feeds it the whole text, so a stream of
deltas assembles (the way the OpenAI SDK does) to exactly the non-streamed reply, whatever the
chunking. Text that might begin ``<tool_call>`` is held back until it is known not to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from gemma_service.chat.structured.tool_specs import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    ToolCall,
    new_tool_call_id,
)

_FENCED = re.compile(r"```[A-Za-z]*\s*(.*?)\s*```", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """Plain reply text (``delta.content``)."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """Part of one call: the first of a call has its id and name, the rest only argument
    fragments, joined by ``index`` (as OpenAI's ``delta.tool_calls`` are)."""

    index: int
    arguments: str
    id: str | None = None
    name: str | None = None


StreamDelta = ContentDelta | ToolCallDelta


class ToolCallStreamParser:
    """Splits streamed model text into content deltas and tool-call deltas.

    ``function_names`` limits calls to known functions (a block naming another one stays
    content). Without ``parallel`` the reply ends at its first call. Leading and trailing
    whitespace of the content is dropped.
    """

    def __init__(
        self,
        function_names: Collection[str] | None = None,
        *,
        parallel: bool = True,
        new_call_id: Callable[[], str] = new_tool_call_id,
    ) -> None:
        self._names = frozenset(function_names) if function_names is not None else None
        self._parallel = parallel
        self._new_call_id = new_call_id
        self._pending = ""  # received text not yet classified
        self._in_call = False
        self._ended = False  # a call was made and parallel calls are off: ignore the rest
        self._content_started = False
        self._held_space = ""  # whitespace sent only once more content follows
        self.calls: list[ToolCall] = []

    def feed(self, text: str) -> list[StreamDelta]:
        """Take the next piece of model output; returns what can be sent now."""
        self._pending += text
        return self._drain(at_end=False)

    def finish(self) -> list[StreamDelta]:
        """The model is done: flush what was held back (an unclosed call is still parsed)."""
        return self._drain(at_end=True)

    def _drain(self, at_end: bool) -> list[StreamDelta]:
        out: list[StreamDelta] = []
        while not self._ended:
            if self._in_call:
                end = self._pending.find(TOOL_CALL_CLOSE)
                if end < 0 and not at_end:
                    break
                block = self._pending if end < 0 else self._pending[:end]
                self._pending = "" if end < 0 else self._pending[end + len(TOOL_CALL_CLOSE) :]
                self._in_call = False
                out += self._close_call(block, closed=end >= 0)
                continue
            start = self._pending.find(TOOL_CALL_OPEN)
            if start >= 0:
                out += self._content(self._pending[:start])
                self._pending = self._pending[start + len(TOOL_CALL_OPEN) :]
                self._in_call = True
                continue
            keep = 0 if at_end else _partial_marker_length(self._pending)
            out += self._content(self._pending[: len(self._pending) - keep])
            self._pending = self._pending[len(self._pending) - keep :]
            break
        if self._ended:
            self._pending = ""
        return out

    def _close_call(self, block: str, *, closed: bool) -> list[StreamDelta]:
        parsed = _parse_call_block(block, self._names)
        if parsed is None:  # not a usable call: the model's text stays content
            closing = TOOL_CALL_CLOSE if closed else ""
            return self._content(f"{TOOL_CALL_OPEN}{block}{closing}")
        name, arguments = parsed
        call = ToolCall(self._new_call_id(), name, arguments)
        index = len(self.calls)
        self.calls.append(call)
        self._ended = not self._parallel
        return [ToolCallDelta(index, "", id=call.id, name=name), ToolCallDelta(index, arguments)]

    def _content(self, text: str) -> list[StreamDelta]:
        if not self._content_started:
            text = text.lstrip()
        text = self._held_space + text
        body = text.rstrip()
        self._held_space = text[len(body) :]
        if not body:
            return []
        self._content_started = True
        return [ContentDelta(body)]


def parse_tool_calls(
    text: str,
    function_names: Collection[str] | None = None,
    *,
    parallel: bool = True,
    new_call_id: Callable[[], str] = new_tool_call_id,
) -> tuple[str, list[ToolCall]]:
    """Split a finished reply into its content ("" when none) and its tool calls."""
    parser = ToolCallStreamParser(function_names, parallel=parallel, new_call_id=new_call_id)
    deltas = parser.feed(text) + parser.finish()
    content = "".join(d.text for d in deltas if isinstance(d, ContentDelta))
    return content, parser.calls


def _partial_marker_length(text: str) -> int:
    """Length of the longest end of ``text`` that could begin the call marker."""
    for size in range(min(len(text), len(TOOL_CALL_OPEN) - 1), 0, -1):
        if text.endswith(TOOL_CALL_OPEN[:size]):
            return size
    return 0


def _parse_call_block(block: str, names: frozenset[str] | None) -> tuple[str, str] | None:
    """(name, compact JSON arguments) of a call block, or None if it is not a usable call."""
    text = block.strip()
    fenced = _FENCED.fullmatch(text)  # small models like to wrap JSON in a code fence
    if fenced:
        text = fenced.group(1)
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    name = payload.get("name")
    if not isinstance(name, str) or not name or (names is not None and name not in names):
        return None
    arguments = payload.get("arguments", payload.get("parameters", {}))
    if isinstance(arguments, str):  # arguments sent as a JSON string, OpenAI style
        try:
            arguments = json.loads(arguments, parse_constant=_reject_constant)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return name, json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")
