"""The batched sampler without a model: threads, seeds, penalties, bias and grammar-last."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from gemma_service.engine.protocol import SamplingParams
from gemma_service.engine.sampling.batch_sampler import BatchSampler
from gemma_service.engine.sampling.logit_adjustments import (
    PENALTY_WINDOW,
    LogitAdjustment,
    PenaltyWindow,
)
from gemma_service.engine.sampling.numerics import Mt19937Uniform
from gemma_service.engine.sampling.token_draw import DrawBuffers, draw_full_vocabulary

V = 4096
EOS = 1
ONE = np.float32(1.0)


def logits_rows(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, 2.0, (n, V)).astype(np.float32)
    rows[:, rng.integers(0, V, 6)] += 6.0
    return rows


def never_ends(token: int) -> bool:
    return False


class EvenTokensOnly:
    """A stand-in grammar: only even token ids, and it remembers what it accepted."""

    def __init__(self, allow_nothing: bool = False) -> None:
        self.accepted: list[int] = []
        self.masks = 0
        self.allow_nothing = allow_nothing
        self.freed = False

    def allows(self, token: int) -> bool:
        return not self.allow_nothing and token % 2 == 0

    def mask(self, logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.masks += 1
        out = logits.copy()
        out[1::2] = -np.inf
        if self.allow_nothing:
            out[:] = -np.inf
        return out

    def accept(self, token: int) -> None:
        self.accepted.append(token)

    def free(self) -> None:
        self.freed = True


def run(sampler: BatchSampler, rows: npt.NDArray[np.float32], ids: list[str]) -> list[int]:
    tokens = sampler.sample(rows, {rid: i for i, rid in enumerate(ids)}, never_ends)
    return [tokens[rid] for rid in ids]


@pytest.mark.parametrize("threads", [1, 3])
def test_each_request_draws_with_its_own_seeded_generator(threads: int) -> None:
    """Sixteen requests sampled together get what each would draw alone from its seed."""
    rows = logits_rows(16)
    sampler = BatchSampler(V, EOS, threads=threads)
    ids = [f"r{i}" for i in range(16)]
    for i, rid in enumerate(ids):
        sampler.add(rid, SamplingParams(temperature=0.7, seed=100 + i))
    together = run(sampler, rows, ids)
    buffers = DrawBuffers(V)
    alone = [
        draw_full_vocabulary(rows[i], np.float32(0.7), Mt19937Uniform(100 + i).next(), buffers)
        for i in range(16)
    ]
    assert together == alone
    sampler.close()


def test_a_seed_reproduces_and_different_seeds_differ() -> None:
    rows = logits_rows(1)
    draws = {}
    for seed in (1, 1, 2):
        sampler = BatchSampler(V, EOS)
        sampler.add("r", SamplingParams(temperature=1.5, seed=seed))
        draws.setdefault(seed, []).append([run(sampler, rows, ["r"])[0] for _ in range(20)])
    assert draws[1][0] == draws[1][1]
    assert draws[1][0] != draws[2][0]


def test_greedy_takes_the_first_maximum_after_bias() -> None:
    rows = logits_rows(1)
    best = int(np.argmax(rows[0]))
    sampler = BatchSampler(V, EOS)
    sampler.add("plain", SamplingParams(temperature=0.0))
    sampler.add("banned", SamplingParams(temperature=0.0, logit_bias={best: -100.0}))
    tokens = sampler.sample(np.vstack([rows, rows]), {"plain": 0, "banned": 1}, never_ends)
    assert tokens["plain"] == best
    second = np.argsort(-rows[0], kind="stable")[1]
    assert tokens["banned"] == second


def test_penalty_window_counts_only_the_last_64_tokens() -> None:
    window = PenaltyWindow()
    for t in [5] * 10 + list(range(100, 100 + PENALTY_WINDOW - 1)):
        window.accept(t)
    assert window.counts()[5] == 1  # nine of the ten fell out of the window
    window.accept(7)
    assert 5 not in window.counts() and window.counts()[7] == 1
    assert sum(window.counts().values()) == PENALTY_WINDOW


def test_penalties_follow_llama_cpps_formula_in_float32() -> None:
    logits = np.array([2.0, -2.0, 0.5, 3.0], dtype=np.float32)
    adjust = LogitAdjustment(4, {3: -1.5}, repetition=1.3, frequency=0.2, presence=0.7)
    for t in (0, 0, 1, 3):
        adjust.accept(t)
    ids, values = adjust.changes(logits)
    r, f, p = np.float32(1.3), np.float32(0.2), np.float32(0.7)
    expected = {
        0: logits[0] / r - (np.float32(2) * f + p),  # positive: divided
        1: logits[1] * r - (np.float32(1) * f + p),  # negative: multiplied
        3: (logits[3] + np.float32(-1.5)) / r - (np.float32(1) * f + p),  # bias first
    }
    assert dict(zip(ids.tolist(), values.tolist(), strict=True)) == {
        k: float(np.float32(v)) for k, v in expected.items()
    }


def test_penalised_tokens_are_avoided_and_the_window_advances_per_draw() -> None:
    rows = np.zeros((1, V), dtype=np.float32)
    rows[0, 10] = 5.0
    rows[0, 11] = 4.0
    sampler = BatchSampler(V, EOS)
    sampler.add("r", SamplingParams(temperature=0.0, frequency_penalty=2.0))
    assert [run(sampler, rows, ["r"])[0] for _ in range(3)] == [10, 11, 10]


def test_grammar_keeps_an_allowed_draw_and_redraws_a_rejected_one() -> None:
    rows = logits_rows(1, seed=4)
    grammar = EvenTokensOnly()
    sampler = BatchSampler(V, EOS)
    sampler.add("r", SamplingParams(temperature=1.0, seed=9), grammar)
    tokens = [run(sampler, rows, ["r"])[0] for _ in range(30)]
    assert all(t % 2 == 0 for t in tokens)
    assert grammar.accepted == tokens
    # The same draws replayed: each step takes one number, plus one more when rejected.
    uniform, buffers, replay = Mt19937Uniform(9), DrawBuffers(V), []
    masked = rows[0].copy()
    masked[1::2] = -np.inf
    for _ in range(30):
        token = draw_full_vocabulary(rows[0], ONE, uniform.next(), buffers)
        if token % 2:
            token = draw_full_vocabulary(masked, ONE, uniform.next(), buffers)
        replay.append(token)
    assert replay == tokens
    assert 0 < grammar.masks < 30  # some draws were allowed as drawn
    sampler.remove("r")
    assert grammar.freed


def test_a_grammar_that_allows_nothing_ends_the_sequence() -> None:
    sampler = BatchSampler(V, EOS)
    grammar = EvenTokensOnly(allow_nothing=True)
    sampler.add("r", SamplingParams(temperature=0.8, seed=1), grammar)
    assert run(sampler, logits_rows(1), ["r"]) == [EOS]


def test_rows_of_unknown_requests_are_skipped() -> None:
    sampler = BatchSampler(V, EOS)
    sampler.add("known", SamplingParams(temperature=0.0))
    tokens = sampler.sample(logits_rows(2), {"known": 1, "gone": 0}, never_ends)
    assert list(tokens) == ["known"]
