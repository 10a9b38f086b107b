"""Log-probabilities from raw logits (numpy only; used when a request asks for logprobs)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from gemma_service.engine.protocol import TokenLogprob, TopLogprob


def token_logprobs(
    logits: npt.NDArray[np.float32],
    chosen: int,
    top_n: int,
    piece: Callable[[int], bytes],
) -> TokenLogprob:
    """The chosen token's log-probability and the ``top_n`` most likely alternatives."""
    shifted = logits.astype(np.float64) - float(np.max(logits))
    log_z = float(np.log(np.sum(np.exp(shifted))))
    tops: list[TopLogprob] = []
    if top_n > 0:
        idx = np.argpartition(-shifted, top_n - 1)[:top_n]
        idx = idx[np.argsort(-shifted[idx])]
        for t in idx.tolist():
            b = piece(int(t))
            tops.append(TopLogprob(_text(b), float(shifted[t]) - log_z, list(b)))
    b = piece(chosen)
    return TokenLogprob(_text(b), float(shifted[chosen]) - log_z, list(b), tops)


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")
