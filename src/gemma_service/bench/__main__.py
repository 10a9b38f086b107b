"""`python -m gemma_service.bench`: the benchmark without the gemma-service CLI."""

from __future__ import annotations

import argparse

from gemma_service.bench.command import add_bench_arguments, run_bench


def main() -> int:
    """Parse the benchmark's options and run it."""
    parser = argparse.ArgumentParser(
        prog="python -m gemma_service.bench",
        description="Benchmark gemma-service against llama-server and llama-cpp-python.",
    )
    add_bench_arguments(parser)
    return run_bench(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
