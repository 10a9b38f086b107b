"""Keeping a caller's text from becoming special tokens.

The tokenizer turns control tokens (``<end_of_turn>``, ``<|turn>``) into tokens only when asked
to parse specials, so caller text is tokenized without that. But some format markers are
"user-defined" tokens, which llama.cpp matches in any text: Gemma 4's ``<|tool_call>``,
``<|"|>`` or ``<|channel>`` (its converter makes them so, that a server can read them back).
Where a caller's text holds one, it is tokenized in two pieces, as plain text. ``markers``
finds the special-token texts in a string, so a chat template's output can be split into the
template's own text and the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Token texts that are format markers even where the vocabulary has them as user-defined
# (always matched) tokens; other user-defined tokens (HTML tags, runs of newlines) are text.
FORMAT_MARKERS = frozenset(
    {
        "<|channel>",
        "<channel|>",
        "<|tool_call>",
        "<tool_call|>",
        "<|tool_response>",
        "<tool_response|>",
        '<|"|>',
        "<|tool>",
        "<tool|>",
        "<|think|>",
        "<|turn>",
        "<turn|>",
        "<|image|>",
        "<|audio|>",
        "<|video|>",
        "<|image>",
        "<image|>",
        "<|audio>",
        "<audio|>",
        "<start_of_image>",
        "<end_of_image>",
        "<start_of_audio>",
        "<end_of_audio>",
    }
)
# What a special token's text can look like in Gemma's vocabularies.
_CANDIDATE = re.compile(r"<[^<>\s]{1,48}>|\[[a-z_]{1,32}\]")
_CACHE_LIMIT = 4096

Tokenize = Callable[[str, bool], list[int]]  # (text, parse_special) -> token ids


class SpecialTextGuard:
    """Finds special-token texts in caller text and tokenizes caller text safely."""

    def __init__(self, tokenize: Tokenize) -> None:
        self._tokenize = tokenize
        self._kinds: dict[str, str] = {}  # candidate -> "text" | "control" | "marker"

    def markers(self, text: str) -> list[tuple[int, int]]:
        """Spans of ``text`` that a tokenizer parsing specials would make special tokens."""
        return [m.span() for m in _CANDIDATE.finditer(text) if self._kind(m.group()) != "text"]

    def tokenize_text(self, text: str) -> list[int]:
        """``text`` as plain text: no special tokens, not even user-defined markers."""
        tokens: list[int] = []
        start = 0
        for match in _CANDIDATE.finditer(text):
            if self._kind(match.group()) != "marker":
                continue  # control tokens are not parsed in plain text anyway
            tokens += self._plain(text[start : match.start()])
            marker = match.group()
            tokens += self._plain(marker[:1]) + self._plain(marker[1:])
            start = match.end()
        return tokens + self._plain(text[start:])

    def _plain(self, text: str) -> list[int]:
        return self._tokenize(text, False) if text else []

    def _kind(self, candidate: str) -> str:
        kind = self._kinds.get(candidate)
        if kind is None:
            special = self._tokenize(candidate, True)
            if len(special) != 1:
                kind = "text"
            elif self._tokenize(candidate, False) != special:
                kind = "control"
            else:
                kind = "marker" if candidate in FORMAT_MARKERS else "text"
            if len(self._kinds) >= _CACHE_LIMIT:
                self._kinds.clear()
            self._kinds[candidate] = kind
        return kind
