"""Mounts `gemma-service bench` on the main CLI (listed in ``cli.EXTRA_COMMANDS``)."""

from __future__ import annotations

import argparse
from typing import Any

from gemma_service.bench.command import add_bench_arguments, run_bench


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
