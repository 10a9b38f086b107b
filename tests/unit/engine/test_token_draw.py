"""The dist draw: the fast full-vocabulary path picks what exact arithmetic picks, and the
tokens it draws follow the softmax."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from gemma_service.engine.sampling.numerics import Mt19937Uniform, expf
from gemma_service.engine.sampling.token_draw import (
    DrawBuffers,
    draw_candidates,
    draw_full_vocabulary,
)

V = 32_768  # the logic is size-independent; a smaller vocabulary keeps the tests quick
ONE = np.float32(1.0)


def gemma_like_logits(seed: int, temperature: float = 1.0, n: int = V) -> npt.NDArray[np.float32]:
    """A vocabulary of logits shaped like a small LM's: a broad body and a few strong tokens."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(-2.0, 2.5, n).astype(np.float32)
    logits[rng.integers(0, n, 12)] += rng.uniform(8, 16, 12).astype(np.float32)
    return (logits / np.float32(temperature)).astype(np.float32)


def running_sums(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """llama.cpp's loop, transcribed: expf in float, running sum in double (numpy's cumsum
    adds in order)."""
    return np.cumsum(expf(logits - logits.max()), dtype=np.float64)


def exact_draw(running: npt.NDArray[np.float64], u: float) -> int:
    """The first token whose running sum reaches the target, as llama.cpp picks it."""
    return int(np.searchsorted(running, running[-1] * u, side="left"))


def test_fast_draw_equals_exact_draw_for_random_numbers() -> None:
    buffers = DrawBuffers(V)
    temperature = np.float32(0.8)
    for seed in range(4):
        logits = gemma_like_logits(seed)
        running = running_sums(logits / temperature)  # llama.cpp's temp stage: l / t in float
        uniform = Mt19937Uniform(seed)
        for _ in range(200):
            u = uniform.next()
            assert draw_full_vocabulary(logits, temperature, u, buffers) == exact_draw(running, u)


def test_changed_logits_are_drawn_as_if_the_row_held_them() -> None:
    logits = gemma_like_logits(3)
    ids = np.array([5, 77, int(np.argmax(logits))], dtype=np.int64)
    values = np.array([12.0, 9.5, -3.0], dtype=np.float32)
    changed = logits.copy()
    changed[ids] = values
    temperature = np.float32(1.3)
    running = running_sums(changed / temperature)
    buffers, uniform = DrawBuffers(V), Mt19937Uniform(4)
    for _ in range(200):
        u = uniform.next()
        token = draw_full_vocabulary(logits, temperature, u, buffers, (ids, values))
        assert token == exact_draw(running, u)


def test_draws_at_the_edge_of_a_token_fall_back_to_exact_arithmetic() -> None:
    """A target a hair from a boundary is where np.exp's last-ulp errors could pick the
    neighbour; those draws must be redone exactly, and still agree."""
    logits = gemma_like_logits(11)
    running = running_sums(logits)
    buffers = DrawBuffers(V)
    rng = np.random.default_rng(5)
    for i in rng.integers(1, V - 1, 100):
        for nudge in (-1e-12, 0.0, 1e-12):
            u = float(running[i] / running[-1]) + nudge
            assert draw_full_vocabulary(logits, ONE, u, buffers) == exact_draw(running, u)
    assert buffers.exact_draws > 0


def test_draw_among_candidates_walks_them_in_their_order() -> None:
    logits = np.array([3.0, 1.0, 2.0], dtype=np.float32)
    probs = expf(logits - np.float32(3.0)).astype(np.float64)
    edge = probs[0] / probs.sum()
    assert draw_candidates(logits, False, edge * 0.999) == 0
    assert draw_candidates(logits, False, edge * 1.001) == 1  # next in order, not by logit
    assert draw_candidates(np.array([5.0], dtype=np.float32), True, 0.99) == 0


def test_drawn_tokens_follow_the_softmax() -> None:
    """Chi-square of 10,000 draws against the exact softmax (float64), over the 12 strong
    tokens and the rest of the vocabulary as one bucket."""
    logits = gemma_like_logits(21, temperature=1.2, n=4096)
    probs = np.exp(logits.astype(np.float64) - float(logits.max()))
    probs /= probs.sum()
    strong = np.argsort(-probs)[:12]
    buckets = {int(t): i for i, t in enumerate(strong)}
    expected = np.append(probs[strong], 1.0 - probs[strong].sum())
    counts = np.zeros(len(expected))
    buffers = DrawBuffers(logits.size)
    n = 10_000
    uniform = Mt19937Uniform(2024)
    for _ in range(n):
        token = draw_full_vocabulary(logits, ONE, uniform.next(), buffers)
        counts[buckets.get(token, len(expected) - 1)] += 1
    chi2 = float(np.sum((counts - n * expected) ** 2 / (n * expected)))
    assert chi2 < chi2_critical(len(expected) - 1, 1e-4), (chi2, counts, n * expected)


def chi2_critical(df: int, alpha: float) -> float:
    """The chi-square value exceeded with probability ``alpha`` (Wilson-Hilferty)."""
    z = _normal_quantile(1 - alpha)
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _normal_quantile(p: float) -> float:
    low, high = -10.0, 10.0
    for _ in range(100):
        mid = (low + high) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            low = mid
        else:
            high = mid
    return low


def test_vocabularies_that_do_not_fill_the_last_block_or_chunk() -> None:
    for n in (1, 1000, 5000, 70_001):
        logits = gemma_like_logits(n, n=n)
        running = running_sums(logits)
        buffers, uniform = DrawBuffers(n), Mt19937Uniform(n)
        for _ in range(50):
            u = uniform.next()
            assert draw_full_vocabulary(logits, ONE, u, buffers) == exact_draw(running, u)
