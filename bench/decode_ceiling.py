"""The throughput ceiling of llama.cpp's kernels on this machine, with no server in the way.

Drives the backend directly, as the engine would with N sequences and nothing else running:
the N short bench prompts prefilled in one batch, then 128 batched decode steps with greedy
sampling. No HTTP, no scheduler, no streaming. The tokens/s it prints are what any server
built on these kernels (ours, llama-server) can at best reach at N concurrent clients: compare
them with `gemma-service bench` (see docs/benchmarks.md). Each level runs ``--rounds`` times,
the levels taking turns, and the best round is reported beside the median.

It also times the same steps with no logits requested, which skips the output projection
(262,144 x 640 for Gemma 3 270M), to show how much of a step that one matrix product takes.

    .venv/bin/python bench/decode_ceiling.py [--concurrency 1,4,8,16] [--rounds 3] [--threads 2]
        [--prompt-tokens 64,512,2048] [--kv-layout per-sequence|unified|both]

Numbers are only meaningful on a quiet machine (see bench/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

from gemma_service.bench.corpus import calibrate, document_prompt
from gemma_service.bench.prompts import load_prompt
from gemma_service.chat.prompt import Message, build_gemma_prompt
from gemma_service.config import ServiceSettings
from gemma_service.engine.backend import SampledToken
from gemma_service.engine.llama_backend import LlamaBackend, LlamaConfig
from gemma_service.engine.protocol import SamplingParams
from gemma_service.engine.scheduler import Chunk, StepPlan
from gemma_service.model_files import prepare_default_model


class NoLogitsBackend(LlamaBackend):
    """Decodes without asking for any logits: llama.cpp then skips the output projection."""

    def _fill_batch(self, plan: StepPlan) -> dict[str, int]:
        super()._fill_batch(plan)
        for i in range(self._batch.n_tokens):
            self._batch.logits[i] = 0
        return {}


def prompts_for(backend: LlamaBackend, n: int, prompt_tokens: int) -> list[list[int]]:
    """``n`` distinct prompts: the short bench prompts (0), else real text of that length."""
    if prompt_tokens:
        ratio = calibrate(
            lambda t: len(backend.tokenize(t, add_special=False, parse_special=False))
        )
        texts = [document_prompt(i, prompt_tokens, ratio) for i in range(n)]
    else:
        texts = [load_prompt(i) for i in range(n)]
    return [
        backend.tokenize(
            build_gemma_prompt([Message("user", text)]).render(),
            add_special=True,
            parse_special=True,
        )
        for text in texts
    ]


def prefill(
    backend: LlamaBackend, ids: list[str], prompts: list[list[int]], batch: int
) -> dict[str, SampledToken]:
    """Prefill every prompt in chunks of at most ``batch`` tokens a step (the last one samples)."""
    sampled: dict[str, SampledToken] = {}
    offsets = [0] * len(prompts)
    first = True
    while any(o < len(p) for o, p in zip(offsets, prompts, strict=True)):
        budget = batch
        chunks = []
        for i, (rid, p) in enumerate(zip(ids, prompts, strict=True)):
            take = min(budget, len(p) - offsets[i])
            if take <= 0:
                continue
            end = offsets[i] + take
            chunks.append(Chunk(rid, i, p[offsets[i] : end], offsets[i], end == len(p)))
            offsets[i] = end
            budget -= take
        plan = StepPlan(clear_slots=list(range(len(prompts))) if first else [], chunks=chunks)
        first = False
        sampled.update(backend.execute(plan, {}))
    return sampled


def one_round(
    backend: LlamaBackend, n: int, steps: int, prompt_tokens: int = 0
) -> tuple[float, float, int]:
    """(seconds for the prefill steps, seconds for ``steps`` decode steps, prompt tokens) with
    ``n`` sequences."""
    ids = [f"r{i}" for i in range(n)]
    prompts = prompts_for(backend, n, prompt_tokens)
    for rid in ids:
        backend.add_sampler(rid, SamplingParams(temperature=0.0))
    try:
        started = time.perf_counter()
        sampled = prefill(backend, ids, prompts, backend.config.batch_size)
        prefill_s = time.perf_counter() - started
        tokens = {rid: sampled[rid].token if rid in sampled else 1 for rid in ids}
        started = time.perf_counter()
        for step in range(steps):
            plan = StepPlan(
                chunks=[
                    Chunk(rid, i, [tokens[rid]], len(prompts[i]) + step, True)
                    for i, rid in enumerate(ids)
                ]
            )
            sampled = backend.execute(plan, {})
            tokens = {rid: sampled[rid].token if rid in sampled else 1 for rid in ids}
        return prefill_s, time.perf_counter() - started, sum(len(p) for p in prompts)
    finally:
        for rid in ids:
            backend.remove_sampler(rid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument(
        "--prompt-tokens", default="0", help="prompt lengths, e.g. 64,512,2048 (0: short prompts)"
    )
    parser.add_argument(
        "--kv-layout", default="per-sequence", help="per-sequence, unified, or both (compared)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=128, help="decode steps (tokens/request)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--output-projection", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    lengths = [int(n) for n in args.prompt_tokens.split(",")]
    layouts = ["per-sequence", "unified"] if args.kv_layout == "both" else [args.kv_layout]
    model = prepare_default_model(ServiceSettings().model_cache_dir, progress=False)
    # Each sequence gets a window for the longest prompt plus the decode steps.
    window = max(4096, max(lengths) + args.steps + 256)
    backends: dict[str, LlamaBackend] = {}
    for layout in layouts:
        unified = layout == "unified"
        config = LlamaConfig(
            model, "gemma", window * args.parallel, 512, args.parallel, args.threads, 0,
            kv_unified=unified,
        )  # fmt: skip
        backends[f"{layout}, decode + sampling"] = LlamaBackend(config)
        if args.output_projection:
            backends[f"{layout}, no output projection"] = NoLogitsBackend(config)
    results: dict[tuple[str, int, int], list[tuple[float, float, int]]] = {}
    try:
        for r in range(args.rounds):
            for length in lengths:
                for n in levels:
                    for name, backend in backends.items():
                        timing = one_round(backend, n, args.steps, length)
                        results.setdefault((name, length, n), []).append(timing)
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    finally:
        for backend in backends.values():
            backend.close()
    print(f"\n{args.threads} threads, {args.steps} decode steps per round, best of {args.rounds}")
    print(
        "| backend | prompt tokens | sequences | decode step (best / median) "
        "| ceiling tok/s (decode only) | prefill tok/s | ceiling tok/s (with prefill) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (name, length, n), timings in results.items():
        step_best = min(d for _, d, _ in timings) / args.steps
        step_median = statistics.median(d for _, d, _ in timings) / args.steps
        best_round = min(timings, key=lambda pdt: pdt[0] + pdt[1])
        prompt = length or "short"
        prefill_tokens = timings[0][2]
        print(
            f"| {name} | {prompt} | {n} | {step_best * 1000:.1f} / {step_median * 1000:.1f} ms "
            f"| {n / step_best:.1f} | {prefill_tokens / min(p for p, _, _ in timings):.0f} "
            f"| {n * args.steps / (best_round[0] + best_round[1]):.1f} |"
        )


if __name__ == "__main__":
    main()
