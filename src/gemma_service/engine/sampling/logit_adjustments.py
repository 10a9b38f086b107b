"""logit_bias and the repetition/presence/frequency penalties, as llama.cpp applies them.

Both touch only a few tokens, so they are computed as (ids, new logits) from the untouched
logits, never by copying the whole row: the bias first, then the penalties over the tokens of the
last ``PENALTY_WINDOW`` sampled (llama.cpp's ``penalty_last_n`` as the engine has always set it).
"""

from __future__ import annotations

from collections import Counter, deque

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]

PENALTY_WINDOW = 64


class PenaltyWindow:
    """The last ``PENALTY_WINDOW`` sampled tokens and how often each occurs among them."""

    __slots__ = ("_counts", "_recent")

    def __init__(self) -> None:
        self._recent: deque[int] = deque()
        self._counts: Counter[int] = Counter()

    def accept(self, token: int) -> None:
        self._counts[token] += 1
        self._recent.append(token)
        if len(self._recent) > PENALTY_WINDOW:
            old = self._recent.popleft()
            self._counts[old] -= 1
            if not self._counts[old]:
                del self._counts[old]

    def counts(self) -> dict[int, int]:
        return dict(self._counts)


class LogitAdjustment:
    """One request's bias and penalties: which logits change, and to what."""

    def __init__(
        self,
        n_vocab: int,
        bias: dict[int, float],
        repetition: float,
        frequency: float,
        presence: float,
    ) -> None:
        self._bias = {t: np.float32(b) for t, b in bias.items() if 0 <= t < n_vocab}
        self._repetition = np.float32(repetition)
        self._frequency = np.float32(frequency)
        self._presence = np.float32(presence)
        penalised = repetition != 1.0 or frequency != 0.0 or presence != 0.0
        self.window = PenaltyWindow() if penalised else None

    @property
    def active(self) -> bool:
        """Whether any logit can change (no bias and no penalty: the row is used as it is)."""
        return bool(self._bias) or self.window is not None

    def accept(self, token: int) -> None:
        if self.window is not None:
            self.window.accept(token)

    def changes(self, logits: F32) -> tuple[Ids, F32]:
        """The token ids whose logits change and their new values, in float32 as llama.cpp
        computes them: ``l + bias``, then ``l * r`` (l <= 0) or ``l / r``, minus
        ``count * frequency + presence``."""
        counts = self.window.counts() if self.window is not None else {}
        ids = np.array(sorted(set(self._bias) | set(counts)), dtype=np.int64)
        values = logits[ids].astype(np.float32)
        if self._bias:
            values += np.array([self._bias.get(int(t), 0.0) for t in ids], dtype=np.float32)
        if counts:
            n = np.array([counts.get(int(t), 0) for t in ids], dtype=np.float32)
            hit = n > 0
            scaled = np.where(
                values <= 0, values * self._repetition, values / self._repetition
            ).astype(np.float32)
            offset = n * self._frequency + hit.astype(np.float32) * self._presence
            values = np.where(hit, scaled - offset, values).astype(np.float32)
        return ids, values
