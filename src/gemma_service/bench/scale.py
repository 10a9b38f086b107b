"""`gemma-service bench-scale`: what the remote-engine front costs, and what two upstreams buy.

Starts two llama-servers (the bench's cached build of the pinned llama.cpp) and a gemma-service
front over them (GEMMA_ENGINE=remote), then runs the same streaming load three ways:

- direct: the clients split evenly over the two upstreams, each client on one;
- front: every client through the front, which picks the upstreams itself;
- one upstream: every client on the first upstream alone.

It prints tokens/s for each, the front's overhead (1 - front / direct; target ≤ 5 %), the
CPU time the front itself used while serving (on a host whose cores the upstreams fill, the
front's share comes out of theirs) and the scaling of two upstreams over one, as JSON. Every
request generates exactly ``max_tokens`` (end-of-generation tokens are banned through
``logit_bias``, which all three honour).
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
        processes = []
        for spec in [*upstreams, front]:
            print_progress(f"starting {spec.name} on {spec.base_url}")
            process = ServerProcess(spec, logs / f"{spec.name}-{spec.port}.log")
            processes.append(stack.enter_context(process))
        report = asyncio.run(_measure(args, processes[:-1], processes[-1]))
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


async def _measure(
    args: argparse.Namespace, upstream_processes: list[ServerProcess], front_process: ServerProcess
) -> dict[str, Any]:
    upstreams = [p.spec.base_url for p in upstream_processes]
    front = front_process.spec.base_url
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
    print_progress(f"direct: {clients} clients split over the {len(upstreams)} upstreams")
    direct = await _split_level(base, upstreams, clients, turns)
    print_progress(f"direct: {direct['tokens_per_s']} tokens/s; now through the front")
    cpu_before = front_process.cpu_seconds()
    through_front = await _level(replace(base, base_url=front), clients, turns)
    cpu_after = front_process.cpu_seconds()
    print_progress(f"front: {through_front['tokens_per_s']} tokens/s; now one upstream alone")
    one = await _level(replace(base, base_url=upstreams[0]), clients, turns)
    print_progress(f"one upstream: {one['tokens_per_s']} tokens/s")
    ways = {"direct": direct, "front": through_front, "one_upstream": one}
    report: dict[str, Any] = {
        "clients": clients,
        "max_tokens": args.max_tokens,
        "tokens_per_s": {name: way["tokens_per_s"] for name, way in ways.items()},
        # A failed request adds no tokens, so a way with failures reads slower than it is.
        "failed_requests": {name: way["failed"] for name, way in ways.items()},
    }
    report["front_overhead"] = round(1 - through_front["tokens_per_s"] / direct["tokens_per_s"], 4)
    report["two_over_one"] = round(direct["tokens_per_s"] / one["tokens_per_s"], 3)
    if cpu_before is not None and cpu_after is not None:
        # The front's own CPU use while it served: on a host whose cores the upstreams already
        # fill, this is what it takes from them.
        front_cpu = cpu_after - cpu_before
        report["front_cpu_s"] = round(front_cpu, 2)
        report["front_cpu_ms_per_token"] = round(
            1000 * front_cpu / max(1, through_front["summary"]["generated_tokens"]), 3
        )
        report["front_cpu_share"] = round(
            front_cpu / (through_front["summary"]["wall_s"] * (os.cpu_count() or 1)), 4
        )
    report["errors"] = [error for way in ways.values() for error in way["errors"][:3]]
    report["levels"] = {"front": through_front["summary"], "one_upstream": one["summary"]}
    return report


async def _level(config: LoadConfig, clients: int, turns: int) -> dict[str, Any]:
    summary: LevelSummary = await run_level(config, clients, turns)
    return {
        "tokens_per_s": round(summary.tokens_per_s, 2),
        "failed": summary.failed,
        "errors": list(summary.errors),
        "summary": asdict(summary),
    }


async def _split_level(
    base: LoadConfig, upstreams: list[str], clients: int, turns: int
) -> dict[str, Any]:
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
    return {
        "tokens_per_s": round(sum(level.generated_tokens for level in levels) / wall, 2),
        "failed": sum(level.failed for level in levels),
        "errors": [error for level in levels for error in level.errors],
    }
