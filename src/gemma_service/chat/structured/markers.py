"""Markers in streamed text: how much of a text's end may be the start of a marker."""

from __future__ import annotations


def partial_marker_length(text: str, marker: str) -> int:
    """Length of the longest end of ``text`` that could begin ``marker`` (text to hold back
    until the next piece tells whether the marker follows)."""
    for size in range(min(len(text), len(marker) - 1), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0
