"""Mounts `gemma-service bench` on the main CLI (listed in ``cli.EXTRA_COMMANDS``)."""

from __future__ import annotations

import argparse
from typing import Any

from gemma_service.bench.command import add_bench_arguments, run_bench
from gemma_service.bench.scale import add_scale_arguments, run_scale


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the `bench` subcommand to the CLI's subparsers."""
    bench = subparsers.add_parser(
        "bench",
        help="benchmark throughput and latency against llama-server and llama-cpp-python",
        description="Drive OpenAI-compatible servers with concurrent streaming clients; "
        "report tokens/s, TTFT and inter-token latency as JSON, tables and a PNG plot.",
    )
    add_bench_arguments(bench)
    bench.set_defaults(func=run_bench)
    scale = subparsers.add_parser(
        "bench-scale",
        help="the remote-engine front's overhead over two llama-servers, and their scaling",
        description="16 streaming clients through a gemma-service front over two llama-servers, "
        "against the same upstreams hit directly and against one upstream.",
    )
    add_scale_arguments(scale)
    scale.set_defaults(func=run_scale)
