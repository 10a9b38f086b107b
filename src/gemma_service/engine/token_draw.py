"""The draw of one token from logits, as llama.cpp's ``dist`` sampler makes it.

llama.cpp's dist: ``p_i = expf(l_i - max)`` in float, the p's summed into a double in candidate
order, a target ``sum * u`` for the uniform ``u``, and the first candidate whose running double
sum reaches the target. The same ``u`` therefore picks the same token here.

Over the whole vocabulary (262,144 tokens for Gemma) the exact ``expf`` is slow in numpy, so
``draw_full_vocabulary`` first draws with numpy's fast float32 ``exp`` (within a few ulps of
libm's) and block sums, and keeps that answer when the error bounds show the exact arithmetic
must pick the same token: the target is not within the bound of either edge of the picked
token's interval. Only when it is (rare: the target fell within about a millionth of an edge)
does it redo the draw exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gemma_service.engine.sampling_numerics import expf

F32 = npt.NDArray[np.float32]

# numpy's float32 exp is within 3 ulps of libm's expf on every float in [-103, 0] (checked on
# AVX2 and by tests/unit/engine/test_sampling_numerics.py wherever the suite runs); 2^-21 is the
# relative error allowed for each probability and so for every sum of them, with room to spare.
EXP_REL_ERROR = 2.0**-21
# Rounding in the double sums (blocked here, in order in llama.cpp) and float32 subnormals
# flushed to zero, relative to the total and absolute.
_SUM_REL_ERROR = 2.0**-32
_ABS_ERROR = 1e-30
BLOCK = 1024


class DrawBuffers:
    """Scratch space for full-vocabulary draws (one per thread), reused every step."""

    def __init__(self, n_vocab: int) -> None:
        self.shifted = np.empty(n_vocab, dtype=np.float32)
        self.probs = np.empty(n_vocab, dtype=np.float32)
        self.exact_draws = 0  # how often the fast draw was not provably the exact one


def draw_candidates(logits: F32, is_sorted: bool, u: float) -> int:
    """The index dist picks among ``logits`` (the candidates in their current order, after
    temperature); ``is_sorted`` says they are in descending order, so the first is the max."""
    if logits.size == 1:
        return 0
    top = logits[0] if is_sorted else logits.max()
    if not np.isfinite(top):
        return int(logits.size) - 1  # llama.cpp's fallback when the sums are not numbers
    probs = expf(logits - top)
    running = np.cumsum(probs, dtype=np.float64)  # in order, like llama.cpp's double sum
    target = running[-1] * u
    return min(int(np.searchsorted(running, target, side="left")), logits.size - 1)


def draw_full_vocabulary(scaled: F32, u: float, buffers: DrawBuffers) -> int:
    """The token dist picks from all of ``scaled`` (logits over temperature, in vocabulary
    order, so no truncation). ``scaled`` may be ``buffers.shifted`` itself."""
    n = scaled.size
    top = scaled.max()
    if not np.isfinite(top):
        return n - 1
    shifted = np.subtract(scaled, top, out=buffers.shifted)
    probs = np.exp(shifted, out=buffers.probs)
    n_full = n - n % BLOCK
    block_sums = probs[:n_full].reshape(-1, BLOCK).sum(axis=1, dtype=np.float64)
    if n_full < n:
        block_sums = np.append(block_sums, probs[n_full:].sum(dtype=np.float64))
    ends = np.cumsum(block_sums)
    total = float(ends[-1])
    target = total * u
    block = min(int(np.searchsorted(ends, target, side="left")), len(ends) - 1)
    before = float(ends[block - 1]) if block else 0.0
    start = block * BLOCK
    running = np.cumsum(probs[start : start + BLOCK], dtype=np.float64)
    running += before
    j = min(int(np.searchsorted(running, target, side="left")), running.size - 1)
    below = float(running[j - 1]) if j else before
    if _surely_picked(below, float(running[j]), total, u):
        return start + j
    buffers.exact_draws += 1
    return _exact_full_draw(shifted, u)


def _surely_picked(below: float, reach: float, total: float, u: float) -> bool:
    """Whether the exact sums put the target in (below, reach] too, given that each sum here
    is within EXP_REL_ERROR (plus rounding) of its exact value."""
    slack = total * _SUM_REL_ERROR + _ABS_ERROR
    low_target = (total * (1 - EXP_REL_ERROR) - slack) * u
    high_target = (total * (1 + EXP_REL_ERROR) + slack) * u
    return below * (1 + EXP_REL_ERROR) + slack < low_target and (
        reach * (1 - EXP_REL_ERROR) - slack >= high_target
    )


def _exact_full_draw(shifted: F32, u: float) -> int:
    running = np.cumsum(expf(shifted), dtype=np.float64)
    target = running[-1] * u
    return min(int(np.searchsorted(running, target, side="left")), shifted.size - 1)
