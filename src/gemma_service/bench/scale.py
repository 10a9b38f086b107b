"""`gemma-service bench-scale`: what the remote-engine front costs, and what two upstreams buy.

Starts two llama-servers (the bench's cached build of the pinned llama.cpp) and a gemma-service
front over them (GEMMA_ENGINE=remote), then runs the same streaming load three ways:

- direct: the clients split evenly over the two upstreams, each client on one;
- front: every client through the front, which picks the upstreams itself;
- one upstream: every client on the first upstream alone.

It prints tokens/s for each, the front's overhead (1 - front / direct; target ≤ 5 %) and the
scaling of two upstreams over one, as JSON. Every request generates exactly ``max_tokens``
(end-of-generation tokens are banned through ``logit_bias``, which all three honour).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from gemma_service.bench.load import LoadConfig, run_level, warm_up
from gemma_service.bench.peer_builds import default_bench_dir, ensure_llama_server
from gemma_service.bench.peers import (
    ServerProcess,
    ServerSettings,
    ServerSpec,
    default_gemma_service_exe,
    free_port,
    llama_server_spec,
)
from gemma_service.bench.runner import print_progress
from gemma_service.bench.stats import LevelSummary
from gemma_service.model_files import prepare_default_model
from gemma_service.settings_fields import default_cache_dir

NO_END = {"1": -100.0, "106": -100.0}  # Gemma's <eos> and <end_of_turn>


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="GGUF (default: the packaged)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent streaming clients")
    parser.add_argument("--requests-per-client", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2),
        help="threads per upstream (default: half the cores each)",
    )  # fmt: skip
    parser.add_argument("--parallel", type=int, default=8, help="slots per upstream")
    parser.add_argument("--llama-server-bin", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench-results") / "scale.json")


def run_scale(args: argparse.Namespace) -> int:
    """Start the two upstreams and the front, measure, print and save the figures."""
    model = args.model or prepare_default_model(default_cache_dir() / "models", progress=False)
    binary = args.llama_server_bin or ensure_llama_server(default_bench_dir(), print_progress)
    settings = ServerSettings(model=model, threads=args.threads, parallel=args.parallel)
    logs = args.out.parent / "scale-logs"
    upstreams = [llama_server_spec(binary, settings, free_port()) for _ in range(2)]
    front = _front_spec(model, [u.base_url for u in upstreams], free_port())
    with contextlib.ExitStack() as stack:
        for spec in [*upstreams, front]:
            print_progress(f"starting {spec.name} on {spec.base_url}")
            stack.enter_context(ServerProcess(spec, logs / f"{spec.name}-{spec.port}.log"))
        report = asyncio.run(_measure(args, [u.base_url for u in upstreams], front.base_url))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "levels"}, indent=2))
    print_progress(f"full results in {args.out}")
    return 0


def _front_spec(model: Path, upstreams: list[str], port: int) -> ServerSpec:
    argv = [
        str(default_gemma_service_exe()), "serve",
        "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--engine", "remote", "--upstream-urls", ",".join(upstreams),
        "--upstream-kind", "llama-server",
    ]  # fmt: skip
    return ServerSpec("front", argv, port, "/readyz")


async def _measure(args: argparse.Namespace, upstreams: list[str], front: str) -> dict[str, Any]:
    base = LoadConfig(
        base_url=front,
        api="completions",
        max_tokens=args.max_tokens,
        ignore_eos=False,
        logit_bias=NO_END,
    )
    for url in [*upstreams, front]:
        await warm_up(replace(base, base_url=url))
    clients, turns = args.clients, args.requests_per_client
    direct = await _split_level(base, upstreams, clients, turns)
    through_front = await _level(replace(base, base_url=front), clients, turns)
    one = await _level(replace(base, base_url=upstreams[0]), clients, turns)
    report: dict[str, Any] = {
        "clients": clients,
        "max_tokens": args.max_tokens,
        "tokens_per_s": {"direct": direct, "front": round(through_front["tokens_per_s"], 2),
                         "one_upstream": round(one["tokens_per_s"], 2)},
    }  # fmt: skip
    report["front_overhead"] = round(1 - through_front["tokens_per_s"] / direct, 4)
    report["two_over_one"] = round(direct / one["tokens_per_s"], 3)
    report["levels"] = {"front": through_front, "one_upstream": one}
    return report


async def _level(config: LoadConfig, clients: int, turns: int) -> dict[str, Any]:
    summary: LevelSummary = await run_level(config, clients, turns)
    if summary.failed:
        raise RuntimeError(f"{summary.failed} requests failed: {summary.errors[:3]}")
    return asdict(summary)


async def _split_level(base: LoadConfig, upstreams: list[str], clients: int, turns: int) -> float:
    """Tokens/s with the clients split evenly over ``upstreams`` (each client on one)."""
    share = clients // len(upstreams)
    started = time.perf_counter()
    levels = await asyncio.gather(
        *(
            run_level(replace(base, base_url=url), share, turns, prompt_offset=i * 1000)
            for i, url in enumerate(upstreams)
        )
    )
    wall = time.perf_counter() - started
    if any(level.failed for level in levels):
        raise RuntimeError(f"requests failed: {[level.errors[:3] for level in levels]}")
    return round(sum(level.generated_tokens for level in levels) / wall, 2)
