"""Model output → content text and tool calls, whole or as it streams, in a family's syntax.

One state machine serves both: ``parse_tool_calls`` feeds it the whole text, so a stream of
deltas assembles (the way the OpenAI SDK does) to exactly the non-streamed reply, whatever the
chunking. Text that might begin a call marker is held back until it is known not to. A call is
announced (id and name) as soon as its name is read, and its arguments go out as they are
written (see json_arguments.py). A call in a form we do not stream from (a code fence, the
arguments before the name) is read whole when it closes; one that is unusable then (broken,
an unknown function) stays content, as the model wrote it. A call cut off by the end of the
output is still a call, with the arguments it got (``truncated``); what was cut before its name
is dropped: call markup never reaches the content.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from gemma_service.chat.structured.call_syntax import JSON_CALLS, ToolCallSyntax
from gemma_service.chat.structured.json_arguments import ArgumentsReader
from gemma_service.chat.structured.markers import partial_marker_length
from gemma_service.chat.structured.tool_specs import ToolCall, new_tool_call_id


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
_State = Literal["content", "head", "arguments", "tail", "block", "ended"]


class ToolCallStreamParser:
    """Splits streamed model text into content deltas and tool-call deltas.

    ``function_names`` limits calls to known functions (a call naming another one stays
    content). Without ``parallel`` the reply ends at its first call. Leading and trailing
    whitespace of the content is dropped.
    """

    def __init__(
        self,
        function_names: Collection[str] | None = None,
        *,
        parallel: bool = True,
        new_call_id: Callable[[], str] = new_tool_call_id,
        syntax: ToolCallSyntax = JSON_CALLS,
    ) -> None:
        self._names = frozenset(function_names) if function_names is not None else None
        self._parallel = parallel
        self._new_call_id = new_call_id
        self._syntax = syntax
        self._state: _State = "content"
        self._pending = ""  # received text not yet classified
        self._arguments: ArgumentsReader | None = None
        self._content_started = False
        self._held_space = ""  # whitespace sent only once more content follows
        self.calls: list[ToolCall] = []
        self.truncated = False  # the output ended inside a call

    def feed(self, text: str) -> list[StreamDelta]:
        """Take the next piece of model output; returns what can be sent now."""
        self._pending += text
        return self._drain(at_end=False)

    def finish(self) -> list[StreamDelta]:
        """The model is done: flush what was held back, end a call that was cut off."""
        out = self._drain(at_end=True)
        if self._state == "head":
            name = self._syntax.read_head(self._pending, self._names).name
            whole = self._syntax.parse_block(self._pending, self._names)
            if whole is not None:
                out += self._whole_call(*whole)
            elif name is not None:  # cut off after its name: a call without arguments yet
                out += self._start_call(name)
                self.truncated = True
        elif self._state == "arguments":
            self.truncated = True
        elif self._state == "block":
            whole = self._syntax.parse_block(self._pending, self._names)
            out += self._whole_call(*whole) if whole is not None else []
        self._state, self._pending = "ended", ""
        return out

    def _drain(self, at_end: bool) -> list[StreamDelta]:
        out: list[StreamDelta] = []
        while self._pending or self._state == "arguments":
            step = getattr(self, f"_in_{self._state}")
            if not step(out, at_end):
                break
        return out

    # Each state's step: consume what it can from ``_pending``; False when it needs more text.
    def _in_content(self, out: list[StreamDelta], at_end: bool) -> bool:
        marker = self._syntax.open
        start = self._pending.find(marker)
        if start >= 0:
            out += self._content(self._pending[:start])
            self._pending = self._pending[start + len(marker) :]
            self._state = "head"
            return True
        keep = 0 if at_end else partial_marker_length(self._pending, marker)
        out += self._content(self._pending[: len(self._pending) - keep])
        self._pending = self._pending[len(self._pending) - keep :]
        return False

    def _in_head(self, out: list[StreamDelta], at_end: bool) -> bool:
        if self._pending.startswith(self._syntax.open):  # an empty call opened twice
            self._pending = self._pending[len(self._syntax.open) :]
            return True
        if self._syntax.open.startswith(self._pending) and not at_end:
            return False
        head = self._syntax.read_head(self._pending, self._names)
        if head.status == "yes" and head.name is not None:
            out += self._start_call(head.name)
            self._arguments = self._syntax.new_arguments_reader()
            self._pending = self._pending[head.end :]
            self._state = "arguments"
            return True
        if head.status == "no" or self._syntax.close in self._pending:
            self._state = "block"
            return True
        return False

    def _in_arguments(self, out: list[StreamDelta], at_end: bool) -> bool:
        assert self._arguments is not None
        reader, text = self._arguments, self._pending
        self._pending = ""
        fragment = reader.feed(text)
        if fragment:
            out.append(ToolCallDelta(len(self.calls) - 1, fragment))
        if reader.status == "open":
            return False
        self._pending = reader.rest
        self._arguments = None
        if reader.status == "cut":  # the end marker came before the arguments ended
            self._after_call()
        else:
            self._state = "tail"
        return True

    def _in_tail(self, out: list[StreamDelta], at_end: bool) -> bool:
        """After the arguments: the rest of the call's own text, then its end marker."""
        text = self._pending.lstrip()
        if self._syntax is JSON_CALLS and text.startswith("}"):
            text = text[1:].lstrip()  # the brace that closes {"name": ..., "arguments": ...}
        close = self._syntax.close
        if not text or (close.startswith(text) and not at_end):
            self._pending = text
            return False
        if close.startswith(text):  # the output ended inside the end marker
            text = close
        self._pending = text[len(close) :] if text.startswith(close) else text
        self._after_call()
        return True

    def _in_block(self, out: list[StreamDelta], at_end: bool) -> bool:
        end = self._pending.find(self._syntax.close)
        if end < 0:
            return False
        block = self._pending[:end]
        self._pending = self._pending[end + len(self._syntax.close) :]
        whole = self._syntax.parse_block(block, self._names)
        if whole is None:  # not a usable call: the model's text stays content
            self._state = "content"
            out += self._content(f"{self._syntax.open}{block}{self._syntax.close}")
        else:
            out += self._whole_call(*whole)
        return True

    def _in_ended(self, out: list[StreamDelta], at_end: bool) -> bool:
        self._pending = ""  # parallel calls are off: the reply ended at its first call
        return False

    def _start_call(self, name: str) -> list[StreamDelta]:
        call = ToolCall(self._new_call_id(), name, "")
        self.calls.append(call)
        self.truncated = False
        return [ToolCallDelta(len(self.calls) - 1, "", id=call.id, name=name)]

    def _whole_call(self, name: str, arguments: str) -> list[StreamDelta]:
        out = self._start_call(name)
        out.append(ToolCallDelta(len(self.calls) - 1, arguments))
        self._after_call()
        return out

    def _after_call(self) -> None:
        self._state = "content" if self._parallel else "ended"

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
    syntax: ToolCallSyntax = JSON_CALLS,
) -> tuple[str, list[ToolCall]]:
    """Split a finished reply into its content ("" when none) and its tool calls."""
    parser = ToolCallStreamParser(
        function_names, parallel=parallel, new_call_id=new_call_id, syntax=syntax
    )
    deltas = parser.feed(text) + parser.finish()
    content = "".join(d.text for d in deltas if isinstance(d, ContentDelta))
    arguments: dict[int, list[str]] = {}
    for delta in deltas:
        if isinstance(delta, ToolCallDelta):
            arguments.setdefault(delta.index, []).append(delta.arguments)
    calls = [
        ToolCall(call.id, call.name, "".join(arguments.get(i, [])))
        for i, call in enumerate(parser.calls)
    ]
    return content, calls
