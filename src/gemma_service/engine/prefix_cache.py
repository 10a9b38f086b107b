"""Which KV slot holds the longest already-computed prefix of a new prompt.

Pure bookkeeping: the backend does the copying. Slots of finished sequences stay cached until a
new sequence needs the room; eviction is least-recently-used.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass, field


def common_prefix_len(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    # Compare in blocks first: long shared system prompts are the common case.
    i = 0
    step = 64
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(slots=True)
class CachedEntry:
    slot: int
    tokens: list[int]
    last_used: int


@dataclass
class PrefixCache:
    """Finished sequences whose KV is kept for reuse, keyed by slot."""

    capacity_slots: int
    _entries: dict[int, CachedEntry] = field(default_factory=dict)
    _clock: itertools.count[int] = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, slot: int, tokens: list[int]) -> None:
        self._entries[slot] = CachedEntry(slot, tokens, next(self._clock))

    def cached_len(self, slot: int) -> int:
        """How many tokens ``slot`` holds (0: not cached)."""
        entry = self._entries.get(slot)
        return len(entry.tokens) if entry is not None else 0

    def take(self, slot: int) -> CachedEntry | None:
        return self._entries.pop(slot, None)

    def total_tokens(self) -> int:
        return sum(len(e.tokens) for e in self._entries.values())

    def slots(self) -> list[int]:
        return list(self._entries)

    def best_match(self, tokens: list[int]) -> tuple[int | None, int]:
        """The cached slot sharing the longest prefix with ``tokens`` and that length."""
        best_slot: int | None = None
        best_len = 0
        for entry in self._entries.values():
            n = common_prefix_len(entry.tokens, tokens)
            if n > best_len:
                best_slot, best_len = entry.slot, n
        if best_slot is not None:
            self._entries[best_slot].last_used = next(self._clock)
        return best_slot, best_len

    def lru_slot(self, exclude: Collection[int] = ()) -> int | None:
        """The slot of the least recently used entry outside ``exclude`` (None: there is none)."""
        candidates = [e for e in self._entries.values() if e.slot not in exclude]
        if not candidates:
            return None
        return min(candidates, key=lambda e: e.last_used).slot

    def evict_lru(self, exclude: Collection[int] = ()) -> int | None:
        """Drop the least recently used entry whose slot is not in ``exclude``; return its slot
        (now free) or None."""
        victim = self.lru_slot(exclude)
        if victim is not None:
            del self._entries[victim]
        return victim

    def clear(self) -> list[int]:
        slots = list(self._entries)
        self._entries.clear()
        return slots
