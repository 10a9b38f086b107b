"""Sampling with the real model: the batched sampler against llama.cpp's chain on the engine's
own logits, and seeded requests that reproduce."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import llama_cpp as lc
import pytest

from gemma_service.config import ServiceSettings
from gemma_service.engine.async_engine import Engine, EngineConfig
from gemma_service.engine.llama_backend import LlamaBackend, LlamaConfig
from gemma_service.engine.protocol import GenerationRequest, SamplingParams
from gemma_service.engine.sampling.llama_chain import llama_sampler_chain
from gemma_service.model_files import prepare_default_model

pytestmark = pytest.mark.integration


class ChainCheckingBackend(LlamaBackend):
    """Also samples every step with llama.cpp's chain (same settings and seed), on the same
    logits, and keeps both tokens."""

    def __init__(self, config: LlamaConfig) -> None:
        self.chains: dict[str, Any] = {}
        self.pairs: list[tuple[str, int, int]] = []
        super().__init__(config)

    def add_sampler(self, request_id: str, params: SamplingParams) -> None:
        super().add_sampler(request_id, params)
        self.chains[request_id] = llama_sampler_chain(params, self.info.n_vocab)

    def remove_sampler(self, request_id: str) -> None:
        super().remove_sampler(request_id)
        chain = self.chains.pop(request_id, None)
        if chain is not None:
            lc.llama_sampler_free(chain)

    def _sample_step(self, sample_at: dict[str, int]) -> Any:
        theirs = {
            rid: lc.llama_sampler_sample(self.chains[rid], self._ctx, idx)
            for rid, idx in sample_at.items()
        }
        logits, rows, ours = super()._sample_step(sample_at)
        self.pairs += [(rid, ours[rid], theirs[rid]) for rid in ours]
        return logits, rows, ours


@pytest.fixture(scope="module")
def model_file() -> Path:
    return prepare_default_model(ServiceSettings().model_cache_dir, progress=False)


@pytest.fixture
async def checked(model_file: Path) -> AsyncIterator[tuple[Engine, ChainCheckingBackend]]:
    config = LlamaConfig(model_file, "gemma", 4096, 256, 8, 2, 0)
    backends: list[ChainCheckingBackend] = []

    def factory() -> ChainCheckingBackend:
        backends.append(ChainCheckingBackend(config))
        return backends[-1]

    engine = Engine(factory, EngineConfig(256, 6, 2, 64))
    await engine.start()
    yield engine, backends[0]
    await engine.shutdown()


async def generate(engine: Engine, rid: str, prompt: str, params: SamplingParams) -> list[int]:
    tokens: list[int] = []
    async for event in await engine.submit(GenerationRequest(rid, engine.tokenize(prompt), params)):
        tokens += event.token_ids
    return tokens


SETTINGS = {
    "temperature": SamplingParams(max_tokens=40, temperature=0.8, seed=11),
    "hot": SamplingParams(max_tokens=40, temperature=1.5, seed=12),
    "top-p": SamplingParams(max_tokens=40, temperature=1.0, top_p=0.9, seed=13),
    "llama-server defaults": SamplingParams(
        max_tokens=40, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, seed=14
    ),
    "penalties": SamplingParams(
        max_tokens=40, temperature=0.7, repetition_penalty=1.3, frequency_penalty=0.5, seed=15
    ),
    "greedy, biased": SamplingParams(max_tokens=40, temperature=0.0, logit_bias={1: -5.0}),
}


async def test_every_batched_draw_is_the_token_llama_cpps_chain_draws(
    checked: tuple[Engine, ChainCheckingBackend],
) -> None:
    """Six requests with different settings decode together; at every step llama.cpp's chain,
    seeded alike, picks from the same logits the token our batched sampler picked."""
    engine, backend = checked
    prompts = ["Write a poem about rain.", "Tell me about Paris.", "Count to ten:"]
    await asyncio.gather(
        *(
            generate(engine, name, prompts[i % len(prompts)], params)
            for i, (name, params) in enumerate(SETTINGS.items())
        )
    )
    assert len(backend.pairs) >= 6 * 10
    differing = [(rid, ours, theirs) for rid, ours, theirs in backend.pairs if ours != theirs]
    assert differing == []
    assert {rid for rid, _, _ in backend.pairs} == set(SETTINGS)


async def test_a_seeded_request_reproduces_and_another_seed_differs(
    checked: tuple[Engine, ChainCheckingBackend],
) -> None:
    engine, _ = checked
    prompt = "Write a short story about a lighthouse keeper."

    def params(seed: int) -> SamplingParams:
        # EOS and end of turn banned so every run generates its full length.
        return SamplingParams(
            max_tokens=32, temperature=1.0, seed=seed, logit_bias={1: -100.0, 106: -100.0}
        )

    await generate(engine, "warm", prompt, params(1))  # the runs below reuse its prompt alike
    first = await generate(engine, "a", prompt, params(7))
    again = await generate(engine, "b", prompt, params(7))
    other = await generate(engine, "c", prompt, params(8))
    assert len(first) == 32
    assert first == again
    assert other != first
