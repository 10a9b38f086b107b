"""Sampling every sequence of a decode step at once, in numpy, over the logits where they lie.

Each request gets a ``SequenceSampler`` holding what llama.cpp's sampler chain for it held: the
settings, a ``std::mt19937``-equal generator seeded with its seed, and its penalty window; it
draws with the same arithmetic (see ``token_draw``), so the same seed gives the same tokens as
that chain. ``BatchSampler`` splits a step's rows over a few threads: the numpy work releases
the GIL and llama.cpp's threads are idle while we sample.

A grammar (``TokenConstraint``) is checked last, as llama.cpp's common sampler does: the token
drawn without it is kept if the grammar allows it; otherwise the draw is made again from the
grammar's candidates (which uses the generator's next number, as the chain did).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gemma_service.engine.protocol import SamplingParams
from gemma_service.engine.sampling.logit_adjustments import LogitAdjustment
from gemma_service.engine.sampling.numerics import Mt19937Uniform
from gemma_service.engine.sampling.token_draw import (
    DrawBuffers,
    draw_candidates,
    draw_full_vocabulary,
)
from gemma_service.engine.sampling.truncation import truncate

F32 = npt.NDArray[np.float32]
log = logging.getLogger(__name__)


class TokenConstraint(Protocol):
    """A grammar that some tokens break (the llama.cpp grammar sampler, or a test's fake)."""

    def allows(self, token: int) -> bool: ...

    def mask(self, logits: F32) -> F32:
        """A copy of ``logits`` with every token the grammar rejects at -inf."""
        ...

    def accept(self, token: int) -> None: ...

    def free(self) -> None: ...


class SequenceSampler:
    """One request's sampler state and its draw."""

    def __init__(
        self, params: SamplingParams, n_vocab: int, constraint: TokenConstraint | None = None
    ) -> None:
        self.constraint = constraint
        # llama.cpp takes every setting as a C float: compare and compute in float32 too.
        self.temperature = np.float32(params.temperature)
        self.greedy = params.temperature <= 0.0
        self.top_k = params.top_k
        self.top_p = np.float32(params.top_p)
        self.min_p = np.float32(params.min_p)
        self.truncates = params.top_k > 0 or params.top_p < 1.0 or params.min_p > 0.0
        self.adjust = LogitAdjustment(
            n_vocab,
            params.logit_bias,
            params.repetition_penalty,
            params.frequency_penalty,
            params.presence_penalty,
        )
        self.uniform = Mt19937Uniform(_seed(params.seed))

    def draw(self, logits: F32, buffers: DrawBuffers) -> int:
        """The token for one row of logits (read, never written)."""
        if self.greedy:
            return self._argmax(logits, buffers)
        if self.truncates:  # (truncation reads the row, never writes it)
            row = self._adjusted(logits, buffers.scaled) if self.adjust.active else logits
            c = truncate(row, self.top_k, self.top_p, self.min_p)
            scaled = (c.logits / self.temperature).astype(np.float32)
            return int(c.ids[draw_candidates(scaled, c.ordered, self.uniform.next())])
        changes = self.adjust.changes(logits) if self.adjust.active else None
        return draw_full_vocabulary(logits, self.temperature, self.uniform.next(), buffers, changes)

    def accept(self, token: int, end_of_generation: bool) -> None:
        """Record the sampled token (the penalty window; the grammar's state unless it ends)."""
        self.adjust.accept(token)
        if self.constraint is not None and not end_of_generation:
            self.constraint.accept(token)

    def _argmax(self, logits: F32, buffers: DrawBuffers) -> int:
        if not self.adjust.active:
            return int(np.argmax(logits))  # the first maximum, as llama.cpp's greedy picks
        return int(np.argmax(self._adjusted(logits, buffers.scaled)))

    def _adjusted(self, logits: F32, out: F32) -> F32:
        """The logits after bias and penalties, written to ``out``."""
        np.copyto(out, logits)
        ids, values = self.adjust.changes(logits)
        out[ids] = values
        return out

    def free(self) -> None:
        if self.constraint is not None:
            self.constraint.free()
            self.constraint = None


def _seed(seed: int | None) -> int:
    """The generator's seed; none (or -1, llama.cpp's LLAMA_DEFAULT_SEED) means a random one."""
    if seed is None or seed & 0xFFFFFFFF == 0xFFFFFFFF:
        return secrets.randbits(32)
    return seed & 0xFFFFFFFF


class BatchSampler:
    """Every request's ``SequenceSampler``, and the batched draw of a step's tokens."""

    def __init__(self, n_vocab: int, end_token: int, threads: int = 1) -> None:
        self.n_vocab = n_vocab
        self._end_token = end_token
        self._threads = max(1, threads)
        self._buffers = [DrawBuffers(n_vocab) for _ in range(self._threads)]
        self._pool = (
            ThreadPoolExecutor(self._threads - 1, thread_name_prefix="sampler")
            if self._threads > 1
            else None
        )
        self._sequences: dict[str, SequenceSampler] = {}

    def add(
        self, request_id: str, params: SamplingParams, constraint: TokenConstraint | None = None
    ) -> None:
        self._sequences[request_id] = SequenceSampler(params, self.n_vocab, constraint)

    def remove(self, request_id: str) -> None:
        sampler = self._sequences.pop(request_id, None)
        if sampler is not None:
            sampler.free()

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._sequences

    def sample(
        self,
        logits: F32,
        rows: Mapping[str, int],
        is_end_of_generation: Callable[[int], bool],
    ) -> dict[str, int]:
        """Draw the token of every request in ``rows`` (request id -> row of ``logits``, an
        (outputs, vocabulary) array) and record it in the request's state."""
        work = [(rid, row) for rid, row in rows.items() if rid in self._sequences]
        tokens = self._draw_all(logits, work)
        for rid, row in work:
            sampler = self._sequences[rid]
            token = tokens[rid]
            if sampler.constraint is not None and not sampler.constraint.allows(token):
                token = sampler.draw(sampler.constraint.mask(logits[row]), self._buffers[0])
                if not sampler.constraint.allows(token):
                    log.warning("the grammar allows no token; ending the sequence")
                    token = self._end_token
            sampler.accept(token, is_end_of_generation(token))
            tokens[rid] = token
        return tokens

    def _draw_all(self, logits: F32, work: list[tuple[str, int]]) -> dict[str, int]:
        groups = [work[i :: self._threads] for i in range(self._threads)]
        if self._pool is None or len(work) < 2:
            return self._draw_group(logits, work, self._buffers[0])
        futures = [
            self._pool.submit(self._draw_group, logits, group, self._buffers[i + 1])
            for i, group in enumerate(groups[1:])
            if group
        ]
        tokens = self._draw_group(logits, groups[0], self._buffers[0])
        for future in futures:
            tokens.update(future.result())
        return tokens

    def _draw_group(
        self, logits: F32, group: list[tuple[str, int]], buffers: DrawBuffers
    ) -> dict[str, int]:
        return {rid: self._sequences[rid].draw(logits[row], buffers) for rid, row in group}

    @property
    def exact_draws(self) -> int:
        """Full-vocabulary draws that needed the exact (slow) arithmetic, for the benchmark."""
        return sum(b.exact_draws for b in self._buffers)

    def close(self) -> None:
        for rid in list(self._sequences):
            self.remove(rid)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
