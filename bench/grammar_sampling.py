"""Cost of grammar-constrained sampling in the llama.cpp backend, per generated token.

Compares three ways of sampling one sequence of the real model under a JSON-schema grammar:
no grammar (reference), grammar-last (what the backend does: check the chain's token, resample
over the whole vocabulary only when the grammar rejects it) and grammar-first (the grammar as
the first stage of the chain, filtering all 262k tokens every step).

    .venv/bin/python bench/grammar_sampling.py [--runs 3] [--threads 2]

Numbers are only meaningful on a quiet machine (see bench/README.md).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import llama_cpp as lc

from gemma_service.chat.structured import schema_to_gbnf
from gemma_service.config import ServiceSettings
from gemma_service.engine.llama_backend import LlamaBackend, LlamaConfig
from gemma_service.engine.protocol import SamplingParams
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
    """The previous way: the grammar is the chain's first stage."""

    def _sample(self, samplers: Any, idx: int) -> int:
        if samplers.grammar is not None:
            chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
            lc.llama_sampler_chain_add(chain, samplers.grammar)  # the chain now owns it
            lc.llama_sampler_chain_add(chain, samplers.chain)
            samplers.chain, samplers.grammar = chain, None
        return int(lc.llama_sampler_sample(samplers.chain, self._ctx, idx))


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
