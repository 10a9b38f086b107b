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

from gemma_service.engine.sampling.numerics import expf

F32 = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]

# numpy's float32 exp is within 3 ulps of libm's expf on every float in [-103, 0] (checked on
# AVX2 and by tests/unit/engine/test_sampling_numerics.py wherever the suite runs); 2^-21 is the
# relative error allowed for each probability and so for every sum of them, with room to spare.
EXP_REL_ERROR = 2.0**-21
# Rounding in the double sums (blocked here, in order in llama.cpp) and float32 subnormals
# flushed to zero, relative to the total and absolute.
_SUM_REL_ERROR = 2.0**-32
_ABS_ERROR = 1e-30
BLOCK = 1024
_CHUNK = 32 * BLOCK  # a chunk's float32 passes stay in the core's cache


class DrawBuffers:
    """Scratch space for full-vocabulary draws (one per thread), reused every step."""

    def __init__(self, n_vocab: int) -> None:
        self.scaled = np.empty(n_vocab, dtype=np.float32)
        self.chunk = np.empty(_CHUNK, dtype=np.float32)
        self.block_sums = np.empty(-(-n_vocab // BLOCK), dtype=np.float64)
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


def draw_full_vocabulary(
    logits: F32,
    temperature: np.float32,
    u: float,
    buffers: DrawBuffers,
    changes: tuple[Ids, F32] | None = None,
) -> int:
    """The token dist picks from all of ``logits / temperature`` in vocabulary order (no
    truncation); ``changes`` are (ids, new logits) from bias or penalties. ``logits`` is read
    in place, never written."""
    row = _Scaled(logits, temperature, buffers, changes)
    if not np.isfinite(row.top):
        return logits.size - 1  # llama.cpp's fallback when the sums are not numbers
    ends = np.cumsum(row.block_sums())
    total = float(ends[-1])
    target = total * u
    block = min(int(np.searchsorted(ends, target, side="left")), ends.size - 1)
    before = float(ends[block - 1]) if block else 0.0
    start = block * BLOCK
    running = np.cumsum(np.exp(row.shifted(start, start + BLOCK)), dtype=np.float64)
    running += before
    j = min(int(np.searchsorted(running, target, side="left")), running.size - 1)
    below = float(running[j - 1]) if j else before
    if _surely_picked(below, float(running[j]), total, u):
        return start + j
    buffers.exact_draws += 1
    exact = np.cumsum(expf(row.shifted(0, logits.size)), dtype=np.float64)
    return min(int(np.searchsorted(exact, exact[-1] * u, side="left")), logits.size - 1)


class _Scaled:
    """A row's ``fl(fl(l / t) - max)``, made a chunk at a time: numpy's passes over a chunk
    stay in cache, and no vocabulary-sized array is written unless bias or penalties change
    some logits first."""

    def __init__(
        self,
        logits: F32,
        temperature: np.float32,
        buffers: DrawBuffers,
        changes: tuple[Ids, F32] | None,
    ) -> None:
        self.buffers = buffers
        self.divisor: np.float32 | None = None if temperature == 1.0 else temperature
        if changes is None:
            self.source = logits
            # Rounding is monotonic, so the largest l / t is the largest l over t.
            top = logits.max()
            self.top = np.float32(top / temperature) if self.divisor is not None else top
        else:
            ids, values = changes
            self.source = np.divide(logits, temperature, out=buffers.scaled)
            self.source[ids] = values / temperature
            self.divisor = None
            self.top = self.source.max()

    def shifted(self, start: int, stop: int, out: F32 | None = None) -> F32:
        """``fl(fl(l / t) - max)`` for tokens [start, stop), in ``out`` or a new array."""
        part = self.source[start:stop]
        out = np.empty_like(part) if out is None else out[: part.size]
        if self.divisor is not None:
            part = np.divide(part, self.divisor, out=out)
        return np.subtract(part, self.top, out=out)

    def block_sums(self) -> npt.NDArray[np.float64]:
        """The probabilities (numpy's exp) summed per block of BLOCK tokens, in double."""
        sums, chunk, n = self.buffers.block_sums, self.buffers.chunk, self.source.size
        for start in range(0, n, _CHUNK):
            shifted = self.shifted(start, start + _CHUNK, chunk)
            probs = np.exp(shifted, out=shifted)
            full = probs.size - probs.size % BLOCK
            first = start // BLOCK
            sums[first : first + full // BLOCK] = (
                probs[:full].reshape(-1, BLOCK).sum(axis=1, dtype=np.float64)
            )
            if full < probs.size:
                sums[first + full // BLOCK] = probs[full:].sum(dtype=np.float64)
        return sums


def _surely_picked(below: float, reach: float, total: float, u: float) -> bool:
    """Whether the exact sums put the target in (below, reach] too, given that each sum here
    is within EXP_REL_ERROR (plus rounding) of its exact value."""
    slack = total * _SUM_REL_ERROR + _ABS_ERROR
    low_target = (total * (1 - EXP_REL_ERROR) - slack) * u
    high_target = (total * (1 + EXP_REL_ERROR) + slack) * u
    return below * (1 + EXP_REL_ERROR) + slack < low_target and (
        reach * (1 - EXP_REL_ERROR) - slack >= high_target
    )
