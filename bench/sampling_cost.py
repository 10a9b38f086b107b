"""Cost of sampling a decode step's tokens: llama.cpp's sampler chain vs the batched sampler.

Drives the backend directly with N sequences of the real model (the bench prompts). At every
decode step both samplers draw from the same logits: llama.cpp's chain for each sequence in turn
(``llama_sampler_sample``, what the engine did before) and the engine's batched numpy sampler
over all rows at once. It prints the milliseconds each spends per sequence per step, and how
often the two picked the same token (they run with the same seeds, so they should agree
throughout). Settings: temperature 0.8 over the whole vocabulary (OpenAI semantics), the same
with llama-server's default truncation (top-k 40, top-p 0.95, min-p 0.05), and greedy.

    .venv/bin/python bench/sampling_cost.py [--sequences 1,4,8,16] [--steps 32] [--threads 2]

Numbers are only meaningful on a quiet machine (see bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import llama_cpp as lc

from gemma_service.bench.prompts import load_prompt
from gemma_service.chat.prompt import Message, build_gemma_prompt
from gemma_service.config import ServiceSettings
from gemma_service.engine.llama_backend import LlamaBackend, LlamaConfig
from gemma_service.engine.protocol import SamplingParams
from gemma_service.engine.sampling.llama_chain import llama_sampler_chain
from gemma_service.engine.scheduler import Chunk, StepPlan
from gemma_service.model_files import prepare_default_model

SETTINGS = {
    "temperature 0.8, no truncation": SamplingParams(temperature=0.8),
    "temperature 0.8, top-k 40, top-p 0.95, min-p 0.05": SamplingParams(
        temperature=0.8, top_k=40, top_p=0.95, min_p=0.05
    ),
    "greedy": SamplingParams(temperature=0.0),
}


class ComparingBackend(LlamaBackend):
    """Samples every step twice, with llama.cpp's chains and with the batched sampler, in
    alternating order, timing both (wall clock, and CPU time over all the threads each uses);
    the batched sampler's tokens drive the sequences on."""

    chains: dict[str, Any]
    timings: dict[str, list[float]]
    same: int
    total: int

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self._group_cpu = 0.0
        draw_group = self._sampling._draw_group

        def timed_group(*args: Any) -> Any:  # CPU time of each thread's share of a step
            started = time.thread_time()
            try:
                return draw_group(*args)
            finally:
                self._group_cpu += time.thread_time() - started

        self._sampling._draw_group = timed_group  # type: ignore[method-assign]

    def start_timing(self, chains: dict[str, Any]) -> None:
        self.chains, self.same, self.total = chains, 0, 0
        self.timings = {"chain": [], "chain cpu": [], "batched": [], "batched cpu": []}

    def _sample_step(self, sample_at: dict[str, int]) -> Any:
        if len(self.timings["chain"]) % 2:
            result = self._batched(sample_at)
            theirs = self._chain(sample_at)
        else:
            theirs = self._chain(sample_at)
            result = self._batched(sample_at)
        ours = result[2]
        self.same += sum(ours[rid] == theirs[rid] for rid in ours)
        self.total += len(ours)
        return result

    def _chain(self, sample_at: dict[str, int]) -> dict[str, int]:
        wall, cpu = time.perf_counter(), time.thread_time()
        tokens = {
            rid: lc.llama_sampler_sample(self.chains[rid], self._ctx, idx)
            for rid, idx in sample_at.items()
        }
        self.timings["chain cpu"].append(time.thread_time() - cpu)
        self.timings["chain"].append(time.perf_counter() - wall)
        return tokens

    def _batched(self, sample_at: dict[str, int]) -> Any:
        self._group_cpu = 0.0
        wall = time.perf_counter()
        result = super()._sample_step(sample_at)
        self.timings["batched"].append(time.perf_counter() - wall)
        self.timings["batched cpu"].append(self._group_cpu)
        return result


def measure(
    backend: ComparingBackend, n: int, params: SamplingParams, steps: int
) -> tuple[dict[str, float], float, int]:
    """(median ms per sequence per decode step of each timing, share of equal tokens, exact
    redraws)."""
    ids = [f"r{i}" for i in range(n)]
    prompts = [
        backend.tokenize(
            build_gemma_prompt([Message("user", load_prompt(i))]).render(),
            add_special=True,
            parse_special=True,
        )
        for i in range(n)
    ]
    chains = {}
    for i, rid in enumerate(ids):
        p = SamplingParams(
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            seed=1000 + i,
        )
        backend.add_sampler(rid, p)
        chains[rid] = llama_sampler_chain(p, backend.info.n_vocab)
    exact_before = backend._sampling.exact_draws
    try:
        backend.start_timing(chains)
        plan = StepPlan(
            clear_slots=list(range(n)),
            chunks=[
                Chunk(rid, i, p, 0, True)
                for i, (rid, p) in enumerate(zip(ids, prompts, strict=True))
            ],
        )
        tokens = {rid: s.token for rid, s in backend.execute(plan, {}).items()}
        backend.start_timing(chains)  # decode steps only: a prefill step is not typical
        for step in range(steps):
            plan = StepPlan(
                chunks=[
                    Chunk(rid, i, [tokens[rid]], len(prompts[i]) + step, True)
                    for i, rid in enumerate(ids)
                ]
            )
            tokens = {rid: s.token for rid, s in backend.execute(plan, {}).items()}
    finally:
        for rid in ids:
            backend.remove_sampler(rid)
            lc.llama_sampler_free(chains[rid])
    per_seq = 1000 / n
    medians = {k: statistics.median(v) * per_seq for k, v in backend.timings.items()}
    return (
        medians,
        backend.same / max(1, backend.total),
        backend._sampling.exact_draws - exact_before,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", default="1,4,8,16")
    parser.add_argument("--steps", type=int, default=32, help="decode steps per measurement")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    levels = [int(c) for c in args.sequences.split(",")]
    model = prepare_default_model(ServiceSettings().model_cache_dir, progress=False)
    config = LlamaConfig(model, "gemma", 4096 * max(levels), 512, max(levels), args.threads, 0)
    backend = ComparingBackend(config)
    load_at_start = os.getloadavg()
    rows = []
    try:
        for name, params in SETTINGS.items():
            for n in levels:
                ms, same, exact = measure(backend, n, params, args.steps)
                rows.append((name, n, ms, same, exact))
                print(f"{name}, {n} sequences: done", flush=True)
    finally:
        backend.close()
    print(
        f"\n{args.threads} threads, median of {args.steps} decode steps, "
        f"{backend.info.n_vocab} tokens; load average {_load(load_at_start)} at start, "
        f"{_load(os.getloadavg())} at end"
    )
    print(
        "| settings | sequences | llama.cpp chain, ms/seq/step (wall / CPU) "
        "| batched, ms/seq/step (wall / CPU) | speed-up (wall) | same token | exact redraws |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, n, ms, same, exact in rows:
        print(
            f"| {name} | {n} | {ms['chain']:.2f} / {ms['chain cpu']:.2f} "
            f"| {ms['batched']:.2f} / {ms['batched cpu']:.2f} "
            f"| {ms['chain'] / ms['batched']:.1f}x | {same:.1%} | {exact} of {n * args.steps} |"
        )


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    main()
