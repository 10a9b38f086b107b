"""Gemma 4's thinking channel, read out of its output as it streams.

Gemma 4 thinks in a channel: ``<|channel>thought\\n ... <channel|>`` and then answers. The
reader splits the output into thought (``reasoning_content``) and answer, holding back text that
might begin a channel marker, so no marker and no thought ever reaches the answer. A thought cut
off by ``max_tokens`` stays thought; a stray ``<channel|>`` in the answer is dropped (the model
sometimes closes an empty channel again). What it gives back never depends on the chunking.
"""

from __future__ import annotations

import re
from typing import Literal

from gemma_service.chat.structured.markers import partial_marker_length

CHANNEL_OPEN = "<|channel>"
CHANNEL_CLOSE = "<channel|>"
_NAME = re.compile(r"[A-Za-z_]*")

Part = tuple[Literal["thought", "answer"], str]


class ThoughtChannelReader:
    """Splits a choice's text into thought and answer parts."""

    def __init__(self) -> None:
        self._pending = ""
        self._state: Literal["answer", "name", "thought"] = "answer"
        self._thought_started = False
        self._held_space = ""  # a thought's trailing whitespace, sent only if more follows
        self._after_thought = False  # the answer's leading whitespace is dropped after one

    def feed(self, text: str) -> list[Part]:
        """Take more output; returns the parts that can be told apart now."""
        self._pending += text
        return self._drain(at_end=False)

    def finish(self) -> list[Part]:
        """The output ended: flush what was held back (a cut-off thought stays thought)."""
        return self._drain(at_end=True)

    def _drain(self, at_end: bool) -> list[Part]:
        out: list[Part] = []
        while self._pending:
            if self._state == "answer":
                done = self._answer(out, at_end)
            elif self._state == "name":
                done = self._name(at_end)
            else:
                done = self._thought(out, at_end)
            if not done:
                break
        if at_end:
            self._pending = ""
        return out

    def _answer(self, out: list[Part], at_end: bool) -> bool:
        text = self._pending
        found = [(i, m) for m in (CHANNEL_OPEN, CHANNEL_CLOSE) if (i := text.find(m)) >= 0]
        if found:
            start, mark = min(found)
            self._emit_answer(out, text[:start])
            self._pending = text[start + len(mark) :]
            if mark == CHANNEL_OPEN:
                self._state, self._thought_started = "name", False
            return True
        marks = (CHANNEL_OPEN, CHANNEL_CLOSE)
        keep = 0 if at_end else max(partial_marker_length(text, m) for m in marks)
        self._emit_answer(out, text[: len(text) - keep])
        self._pending = text[len(text) - keep :]
        return False

    def _name(self, at_end: bool) -> bool:
        """The channel's name ("thought") and the line break after it are not thought."""
        if self._pending.startswith(CHANNEL_OPEN):  # an empty channel opened twice
            self._pending = self._pending[len(CHANNEL_OPEN) :]
            return True
        if CHANNEL_OPEN.startswith(self._pending) and not at_end:
            return False
        match = _NAME.match(self._pending)
        assert match is not None  # the pattern matches the empty string
        if match.end() == len(self._pending) and not at_end:
            return False
        self._pending = self._pending[match.end() :]
        self._state = "thought"
        return True

    def _thought(self, out: list[Part], at_end: bool) -> bool:
        text = self._pending
        end = text.find(CHANNEL_CLOSE)
        if end >= 0:
            self._emit_thought(out, text[:end])
            self._pending = text[end + len(CHANNEL_CLOSE) :]
            self._state, self._held_space, self._after_thought = "answer", "", True
            return True
        keep = 0 if at_end else partial_marker_length(text, CHANNEL_CLOSE)
        self._emit_thought(out, text[: len(text) - keep])
        self._pending = text[len(text) - keep :]
        return False

    def _emit_thought(self, out: list[Part], text: str) -> None:
        if not self._thought_started:
            text = text.lstrip()
        text = self._held_space + text
        body = text.rstrip()
        self._held_space = text[len(body) :]
        if body:
            self._thought_started = True
            out.append(("thought", body))

    def _emit_answer(self, out: list[Part], text: str) -> None:
        if self._after_thought:
            text = text.lstrip()
            if not text:
                return
            self._after_thought = False
        if text:
            out.append(("answer", text))


def without_thoughts(text: str) -> str:
    """``text`` with its thinking channel taken out (the answer as a conversation keeps it)."""
    reader = ThoughtChannelReader()
    parts = reader.feed(text) + reader.finish()
    return "".join(part for kind, part in parts if kind == "answer")
