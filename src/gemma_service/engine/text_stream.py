"""Turns a sequence's token pieces into text that is safe to stream.

Two guarantees: a multi-byte UTF-8 character split across tokens is never emitted broken, and
text that might be the start of a stop string is held back until it is known not to be one, so
a stop string never leaks into the stream, not even partially.
"""

from __future__ import annotations

import codecs


class StopStringMatcher:
    """Finds stop strings in a growing text, holding back a possible partial match."""

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._max_hold = max((len(s) for s in self._stops), default=0)
        self._pending = ""
        self.matched: str | None = None  # the stop string that was hit

    def feed(self, text: str) -> tuple[str, bool]:
        """Add ``text``; return (text safe to emit, whether a stop string was hit)."""
        if not self._stops:
            return text, False
        self._pending += text
        hit = self._first_stop(self._pending)
        if hit is not None:
            safe = self._pending[:hit]
            self.matched = next(s for s in self._stops if self._pending.startswith(s, hit))
            self._pending = ""
            return safe, True
        hold = self._partial_suffix_len(self._pending)
        cut = len(self._pending) - hold
        safe, self._pending = self._pending[:cut], self._pending[cut:]
        return safe, False

    def flush(self) -> str:
        """Release held-back text (the sequence ended for another reason)."""
        out, self._pending = self._pending, ""
        return out

    def _first_stop(self, text: str) -> int | None:
        positions = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        return min(positions) if positions else None

    def _partial_suffix_len(self, text: str) -> int:
        # Longest suffix of ``text`` that is a proper prefix of some stop string.
        longest = 0
        for n in range(1, min(self._max_hold, len(text) + 1)):
            suffix = text[-n:]
            if any(s.startswith(suffix) for s in self._stops):
                longest = n
        return longest


class TextStream:
    """Bytes of token pieces in, safe text deltas out (UTF-8 complete, stop strings removed)."""

    def __init__(self, stops: list[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._matcher = StopStringMatcher(stops)
        self.stopped = False

    @property
    def stop_string(self) -> str | None:
        """The stop string that ended the text (None: it ended otherwise, or not yet)."""
        return self._matcher.matched

    def feed(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that may be shown now."""
        if self.stopped:
            return ""
        text = self._decoder.decode(piece, final=False)
        safe, hit = self._matcher.feed(text)
        if hit:
            self.stopped = True
        return safe

    def finish(self) -> str:
        """The sequence ended without a stop string: release everything still held."""
        if self.stopped:
            return ""
        tail = self._decoder.decode(b"", final=True)
        safe, hit = self._matcher.feed(tail)
        if hit:
            self.stopped = True
            return safe
        return safe + self._matcher.flush()
