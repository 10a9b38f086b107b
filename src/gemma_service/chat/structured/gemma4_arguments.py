"""Gemma 4's call arguments, translated to JSON as they stream.

Gemma 4 writes ``{city:<|"|>Paris<|"|>,days:3,tags:[<|"|>a<|"|>],opts:{metric:true}}``: keys
bare (or between marks), strings between ``<|"|>`` marks, numbers, ``true``/``false``/``null``
bare. ``Gemma4ArgumentsReader`` turns that into ``{"city":"Paris","days":3,...}`` character by
character, so string values go out while the model is still writing them; a bare value or key
is held until it ends (a number may still grow). It is lenient as vLLM's parser is (a bare word
becomes a string, ``None`` becomes null, a missing value null), and exact on what the
template writes. The call's end marker, outside a string, ends the arguments wherever they are.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from gemma_service.chat.structured.gbnf import GEMMA4_STRING_MARK as MARK
from gemma_service.chat.structured.json_arguments import ArgumentsStatus
from gemma_service.chat.structured.markers import partial_marker_length

Mode = Literal["value", "string", "bare", "key", "keytext", "qkey", "after"]
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_BARE_WORDS = {"true": "true", "false": "false", "null": "null", "none": "null", "nil": "null"}


class Gemma4ArgumentsReader:
    """Reads Gemma 4 call arguments from their opening brace on; gives back JSON text."""

    def __init__(self, end_marker: str) -> None:
        self._end = end_marker
        self._stack: list[str] = []  # "}" or "]": the closer each open container needs
        self._mode: Mode = "value"
        self._fresh = False  # just after "[": "]" closes an empty array
        self._buf = ""
        self._token = ""  # a bare value or key being read
        self.status: ArgumentsStatus = "open"
        self.rest = ""

    def feed(self, text: str) -> str:
        self._buf += text
        out: list[str] = []
        while self.status == "open" and self._buf and self._step(out):
            pass
        return "".join(out)

    def _step(self, out: list[str]) -> bool:
        """Consume what can be read at the front of the buffer; False: more text is needed."""
        if self._mode in ("string", "qkey"):
            return self._quoted(out)
        buf = self._buf
        if buf[0] == "<":
            if buf.startswith(self._end):
                self._flush_token(out, cut=True)
                self.status, self.rest = "cut", buf[len(self._end) :]
                return True
            if not buf.startswith(MARK) and (self._end.startswith(buf) or MARK.startswith(buf)):
                return False  # a marker may be arriving
        return self._read(buf, out)

    def _read(self, buf: str, out: list[str]) -> bool:
        char, mode = buf[0], self._mode
        if mode == "bare" or mode == "keytext":
            return self._token_char(char, out)
        if mode == "key":
            if char.isspace() or char == ",":
                self._consume(1)
            elif char == "}":
                self._close(out)
            elif buf.startswith(MARK):
                self._mode, self._token = "qkey", ""
                self._consume(len(MARK))
            else:
                self._mode, self._token = "keytext", ""
            return True
        if mode == "after":
            if char == ",":
                out.append(",")
                self._mode = "key" if self._stack[-1] == "}" else "value"
            elif char in "}]":
                self._close(out)
                return True
            self._consume(1)  # whitespace and stray characters are skipped
            return True
        return self._value(char, buf, out)

    def _value(self, char: str, buf: str, out: list[str]) -> bool:
        fresh, self._fresh = self._fresh, False
        if char.isspace():
            self._fresh = fresh
            self._consume(1)
        elif buf.startswith(MARK):
            out.append('"')
            self._mode = "string"
            self._consume(len(MARK))
        elif char in "{[":
            out.append(char)
            self._stack.append("}" if char == "{" else "]")
            self._mode, self._fresh = ("key", False) if char == "{" else ("value", True)
            self._consume(1)
        elif char == "]" and fresh:
            self._close(out)
        elif char in ",}]":
            out.append("null")  # a value left out
            self._mode = "after"
        else:
            self._mode, self._token = "bare", ""
        return True

    def _token_char(self, char: str, out: list[str]) -> bool:
        """One character of a bare value or a bare key."""
        if self._mode == "keytext" and char == ":":
            out.append(json.dumps(self._token.strip(), ensure_ascii=False) + ":")
            self._mode = "value"
            self._consume(1)
        elif char in ",}]" or (self._mode == "bare" and char.isspace()):
            self._flush_token(out)
        elif char == "<" and self._buf.startswith(MARK):
            self._flush_token(out)
            self._consume(len(MARK))  # a mark where none belongs: skipped
        else:
            self._token += char
            self._consume(1)
        return True

    def _flush_token(self, out: list[str], *, cut: bool = False) -> None:
        """End a bare value, or a key that got no value (null; dropped where the call is cut)."""
        if self._mode == "bare":
            out.append(_bare_json(self._token))
        elif self._mode == "keytext" and not cut:
            out.append(json.dumps(self._token.strip(), ensure_ascii=False) + ":null")
        if self._mode in ("bare", "keytext"):
            self._mode = "after" if self._stack else "value"
            self._token = ""

    def _quoted(self, out: list[str]) -> bool:
        """Inside a string value or a quoted key: everything up to the closing mark."""
        end = self._buf.find(MARK)
        if end < 0:
            keep = partial_marker_length(self._buf, MARK)
            text, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
            if self._mode == "string":
                out.append(_escape(text))
            else:
                self._token += text
            return False
        text = self._buf[:end]
        self._consume(end + len(MARK))
        if self._mode == "string":
            out.append(_escape(text) + '"')
            self._mode = "after"
        else:
            self._token += text
            self._mode = "keytext"
        return True

    def _close(self, out: list[str]) -> None:
        out.append(self._stack.pop())
        self._consume(1)
        if self._stack:
            self._mode = "after"
        else:
            self.status, self.rest = "complete", self._buf

    def _consume(self, count: int) -> None:
        self._buf = self._buf[count:]


def _escape(text: str) -> str:
    """String characters as they appear inside a JSON string."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _bare_json(token: str) -> str:
    """A bare value as JSON: numbers and literals as they are, any other word as a string."""
    word = token.strip()
    if word.lower() in _BARE_WORDS:
        return _BARE_WORDS[word.lower()]
    if _JSON_NUMBER.fullmatch(word):
        return word
    try:
        number = float(word)
    except ValueError:
        return json.dumps(word, ensure_ascii=False)
    if number != number or number in (float("inf"), float("-inf")):
        return json.dumps(word, ensure_ascii=False)
    return json.dumps(int(number) if number.is_integer() and "." not in word else number)
