"""llama.cpp's own sampler chain for a request's settings (part of the llama.cpp backend).

The engine samples with the batched numpy sampler (``batch_sampler``); this chain is what it
replaced and what it must agree with, so the tests and benchmarks build it to compare: the same
stages in the same order as the engine used (bias, penalties over the last 64 tokens, then
greedy, or top-k, top-p, min-p, temperature and the seeded dist draw).
"""

from __future__ import annotations

from typing import Any

import llama_cpp as lc

from gemma_service.engine.protocol import SamplingParams
from gemma_service.engine.sampling.logit_adjustments import PENALTY_WINDOW


def llama_sampler_chain(params: SamplingParams, n_vocab: int) -> Any:
    """A new llama.cpp sampler chain (free it with ``llama_sampler_free``); no grammar."""
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    for stage in _stages(params, n_vocab):
        lc.llama_sampler_chain_add(chain, stage)
    return chain


def _stages(p: SamplingParams, n_vocab: int) -> list[Any]:
    stages: list[Any] = []
    if p.logit_bias:
        arr = (lc.llama_logit_bias * len(p.logit_bias))(
            *[lc.llama_logit_bias(t, b) for t, b in p.logit_bias.items()]
        )
        stages.append(lc.llama_sampler_init_logit_bias(n_vocab, len(p.logit_bias), arr))
    if p.repetition_penalty != 1.0 or p.presence_penalty or p.frequency_penalty:
        stages.append(
            lc.llama_sampler_init_penalties(
                n_vocab,
                PENALTY_WINDOW,
                p.repetition_penalty,
                p.frequency_penalty,
                p.presence_penalty,
            )
        )
    if p.temperature <= 0.0:
        stages.append(lc.llama_sampler_init_greedy())
        return stages
    if p.top_k > 0:
        stages.append(lc.llama_sampler_init_top_k(p.top_k))
    if p.top_p < 1.0:
        stages.append(lc.llama_sampler_init_top_p(p.top_p, 1))
    if p.min_p > 0.0:
        stages.append(lc.llama_sampler_init_min_p(p.min_p, 1))
    stages.append(lc.llama_sampler_init_temp(p.temperature))
    seed = lc.LLAMA_DEFAULT_SEED if p.seed is None else p.seed & 0xFFFFFFFF
    stages.append(lc.llama_sampler_init_dist(seed))
    return stages
