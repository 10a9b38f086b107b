"""top-k, top-p and min-p as llama.cpp's samplers apply them, in that order.

Each stage narrows a set of candidates and may leave it sorted (descending logit), and the
order matters: the dist draw walks the candidates in order. llama.cpp's top-k and top-p sort;
its min-p keeps an unsorted set in vocabulary order. Ties between equal logits are ordered by
token id here; llama.cpp's sorts leave their order unspecified, so only a draw landing on such a
tie can differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gemma_service.engine.sampling.numerics import expf, logf, ordered_sum_f32

F32 = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]

# top-p over the whole vocabulary normalises by a float32 sum of all the expf's, which depends
# on every rounding of those; with numpy's fast exp the sum agrees with the exact one to a few
# ulps. A cutoff decided with less than this relative margin is redone with the exact sum.
_TOP_P_MARGIN = 2.0**-14


@dataclass(slots=True)
class Candidates:
    """Token ids and their (biased, penalised) logits; ``ordered`` when sorted descending."""

    ids: Ids
    logits: F32
    ordered: bool


def truncate(logits: F32, top_k: int, top_p: np.float32, min_p: np.float32) -> Candidates:
    """The candidates left from the vocabulary ``logits`` after top-k (0: off), top-p (1: off)
    and min-p (0: off)."""
    c: Candidates | None = _top_k(logits, top_k) if top_k > 0 else None
    if top_p < 1.0:
        c = _top_p_sorted(c, top_p) if c is not None else _top_p_vocabulary(logits, top_p)
    if min_p > 0.0:
        c = _min_p_sorted(c, min_p) if c is not None else _min_p_vocabulary(logits, min_p)
    if c is None:
        ids = np.arange(logits.size, dtype=np.int64)
        return Candidates(ids, logits.copy(), False)
    return c


def descending(logits: F32, ids: Ids) -> Ids:
    """``ids`` sorted by their logit, highest first; ties by id."""
    return ids[np.lexsort((ids, -logits[ids]))]


def top_ids(logits: F32, k: int) -> Ids:
    """The ``k`` highest-logit token ids, sorted: a threshold from a strided sample narrows the
    vocabulary first, so the full partition runs only when the sample misleads."""
    n = logits.size
    if k >= n:
        return descending(logits, np.arange(n, dtype=np.int64))
    stride = 64
    sample = logits[::stride]
    rank = min(sample.size, k // stride + 8)
    threshold = np.partition(sample, sample.size - rank)[sample.size - rank]
    ids = np.flatnonzero(logits >= threshold)
    if ids.size < k:
        ids = np.argpartition(logits, n - k)[n - k :]
    elif ids.size > k:
        keep = np.argpartition(-logits[ids], k - 1)[:k]
        kth = logits[ids[keep]].min()
        ids = ids[logits[ids] >= kth]  # every token tied with the k-th, then ties by id
    return descending(logits, ids.astype(np.int64))[:k]


def _top_k(logits: F32, k: int) -> Candidates:
    ids = top_ids(logits, k)
    return Candidates(ids, logits[ids], True)


def _top_p_sorted(c: Candidates, p: np.float32) -> Candidates:
    probs = expf(c.logits - c.logits[0])
    probs /= ordered_sum_f32(probs)
    reached = np.flatnonzero(np.cumsum(probs, dtype=np.float32) >= p)
    keep = int(reached[0]) + 1 if reached.size else c.ids.size
    return Candidates(c.ids[:keep], c.logits[:keep], True)


def _top_p_vocabulary(logits: F32, p: np.float32) -> Candidates:
    shifted = logits - logits.max()
    nucleus = _nucleus(logits, ordered_sum_f32(np.exp(shifted)), p, _TOP_P_MARGIN)
    if nucleus is None:  # too close to call with the fast sum: normalise by the exact one
        nucleus = _nucleus(logits, ordered_sum_f32(expf(shifted)), p, 0.0)
        assert nucleus is not None
    ids = nucleus
    return Candidates(ids, logits[ids], True)


def _nucleus(logits: F32, total: np.float32, p: np.float32, margin: float) -> Ids | None:
    """The sorted ids top-p keeps, given the float32 sum ``total`` of every ``expf``; None when
    the cutoff lies within ``margin`` (relative) of ``p``, where ``total``'s error could move
    it. Only the highest logits are sorted: 64, then 8 times more until their share reaches p."""
    top = logits.max()
    k = 64
    while True:
        ids = top_ids(logits, min(k, logits.size))
        cumulative = np.cumsum(expf(logits[ids] - top) / total, dtype=np.float32)
        reached = np.flatnonzero(cumulative >= p)
        if reached.size or ids.size == logits.size:
            break
        k *= 8
    if not reached.size:
        return ids  # rounding kept the sum below p: llama.cpp keeps every candidate
    keep = int(reached[0]) + 1
    before = float(cumulative[keep - 2]) if keep > 1 else 0.0
    if margin and (cumulative[keep - 1] < p * (1 + margin) or before > p * (1 - margin)):
        return None
    return ids[:keep]


def _min_p_sorted(c: Candidates, p: np.float32) -> Candidates:
    threshold = c.logits[0] + logf(float(p))
    below = np.flatnonzero(c.logits[1:] < threshold)
    keep = int(below[0]) + 1 if below.size else c.ids.size
    return Candidates(c.ids[:keep], c.logits[:keep], True)


def _min_p_vocabulary(logits: F32, p: np.float32) -> Candidates:
    threshold = logits.max() + logf(float(p))
    ids = np.flatnonzero(logits >= threshold)
    if ids.size == 0:  # min_p > 1: llama.cpp falls back to sorting and keeps the top token
        ids = np.array([int(np.argmax(logits))])
    return Candidates(ids.astype(np.int64), logits[ids], False)
