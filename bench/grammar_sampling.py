"""Cost of grammar-constrained sampling in the llama.cpp backend, per generated token.

Compares three ways of sampling one sequence of the real model under a JSON-schema grammar:
no grammar (reference), grammar-last (what the backend does: check the batched sampler's token,
resample over the whole vocabulary only when the grammar rejects it) and grammar-first
(llama.cpp's chain with the grammar as its first stage, filtering all 262k tokens every step).

    .venv/bin/python bench/grammar_sampling.py [--runs 3] [--threads 2]

Numbers are only meaningful on a quiet machine (see bench/README.md).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import llama_cpp as lc

from gemma_service.chat.structured import schema_to_gbnf
from gemma_service.config import ServiceSettings
from gemma_service.engine.llama_backend import LlamaBackend, LlamaConfig
from gemma_service.engine.protocol import SamplingParams
from gemma_service.engine.sampling.llama_chain import llama_sampler_chain
from gemma_service.engine.scheduler import Chunk, StepPlan
from gemma_service.model_files import prepare_default_model

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "mood": {"enum": ["happy", "sad"]},
    },
    "required": ["name", "age", "mood"],
}
PROMPT = "<start_of_turn>user\nDescribe a person as JSON.<end_of_turn>\n<start_of_turn>model\n"


class GrammarFirstBackend(LlamaBackend):
    """The previous way: llama.cpp's sampler chain with the grammar as its first stage."""

    def __init__(self, config: LlamaConfig) -> None:
        self._chains: dict[str, Any] = {}
        super().__init__(config)

    def add_sampler(self, request_id: str, params: SamplingParams) -> None:
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if params.grammar:
            grammar = lc.llama_sampler_init_grammar(self._vocab, params.grammar.encode(), b"root")
            lc.llama_sampler_chain_add(chain, grammar)  # the chain now owns it
        rest = llama_sampler_chain(replace(params, grammar=None), self.info.n_vocab)
        lc.llama_sampler_chain_add(chain, rest)
        self._chains[request_id] = chain

    def remove_sampler(self, request_id: str) -> None:
        lc.llama_sampler_free(self._chains.pop(request_id))

    def _sample_step(self, sample_at: dict[str, int]) -> Any:
        logits, rows = self._output_logits(sample_at)
        chains = self._chains
        tokens = {
            rid: lc.llama_sampler_sample(chains[rid], self._ctx, i) for rid, i in sample_at.items()
        }
        return logits, rows, tokens


def generate(backend: LlamaBackend, grammar: str | None, seed: int) -> tuple[float, int]:
    """(seconds spent in the decode steps after the prompt's, tokens those steps generated)."""
    prompt = backend.tokenize(PROMPT, add_special=True, parse_special=True)
    backend.add_sampler("r", SamplingParams(temperature=0.8, seed=seed, grammar=grammar))
    plan = StepPlan(clear_slots=[0], chunks=[Chunk("r", 0, prompt, 0, True)])
    pos, spent, n = len(prompt), 0.0, 0
    try:
        token = backend.execute(plan, {})["r"].token
        while not backend.is_end_of_generation(token) and n < 60:
            plan = StepPlan(chunks=[Chunk("r", 0, [token], pos, True)])
            started = time.perf_counter()
            token = backend.execute(plan, {})["r"].token
            spent += time.perf_counter() - started
            pos, n = pos + 1, n + 1
    finally:
        backend.remove_sampler("r")
    return spent, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = prepare_default_model(ServiceSettings().model_cache_dir, progress=False)
    config = LlamaConfig(model, "gemma", 2048, 512, 1, args.threads, 0)
    grammar = schema_to_gbnf(SCHEMA)
    cases = [
        ("no grammar", LlamaBackend, None),
        ("grammar-last", LlamaBackend, grammar),
        ("grammar-first", GrammarFirstBackend, grammar),
    ]
    for name, backend_class, case_grammar in cases:
        backend = backend_class(config)
        try:
            results = [generate(backend, case_grammar, seed) for seed in range(args.runs)]
        finally:
            backend.close()
        spent = sum(r[0] for r in results)
        n = sum(r[1] for r in results)
        print(f"{name:14s} {1000 * spent / n:7.1f} ms/token (decode + sampling), {n} tokens")


if __name__ == "__main__":
    main()
