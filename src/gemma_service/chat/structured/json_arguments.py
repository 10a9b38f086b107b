"""Streaming reads of a call's arguments as they are generated, into compact JSON text.

An ``ArgumentsReader`` takes the model's text from the arguments' opening ``{`` on, piece by
piece, and gives back the JSON to send now, so a client sees ``delta.tool_calls[].function.
arguments`` grow as the model writes them. It tells where the arguments end (the closing brace,
with the text after it kept in ``rest``), or that the call's end marker came first (``cut``).
The JSON one here drops insignificant whitespace; Gemma 4's (gemma4_arguments.py) translates.
What it gives back never depends on how the text was split into pieces.
"""

from __future__ import annotations

from typing import Literal, Protocol

ArgumentsStatus = Literal["open", "complete", "cut"]


class ArgumentsReader(Protocol):
    """Reads one call's arguments from its opening brace on."""

    status: ArgumentsStatus
    rest: str  # text after the arguments ("complete") or after the end marker ("cut")

    def feed(self, text: str) -> str:
        """Take more model text; returns the JSON text that may be sent now."""
        ...


class JsonArgumentsReader:
    """Arguments the model writes as JSON: passed on compact (no whitespace between tokens).

    ``end_marker`` outside a string ends the call even if the JSON is unfinished: JSON has no
    ``<`` outside strings, so holding one back to look for the marker costs nothing.
    """

    def __init__(self, end_marker: str) -> None:
        self._end = end_marker
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._held = ""  # a "<" (and what follows) that may begin the end marker
        self.status: ArgumentsStatus = "open"
        self.rest = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        self._held = ""
        out: list[str] = []
        i = 0
        while i < len(text) and self.status == "open":
            char = text[i]
            if self._in_string:
                out.append(char)
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == "<":
                tail = text[i:]
                if tail.startswith(self._end):
                    self.status, self.rest = "cut", tail[len(self._end) :]
                    break
                if self._end.startswith(tail):
                    self._held = tail
                    break
                out.append(char)  # not JSON, but what the model wrote
            elif not char.isspace():
                out.append(char)
                if char == '"':
                    self._in_string = True
                elif char in "{[":
                    self._depth += 1
                elif char in "}]":
                    self._depth -= 1
                    if self._depth <= 0:
                        self.status, self.rest = "complete", text[i + 1 :]
            i += 1
        return "".join(out)
