"""Mounts `gemma-service memory eval` and `memory bench` (through ``cli_commands.register``).

Settings come from the environment (GEMMA_MEMORY_URL, GEMMA_EMBEDDING_MODEL, the retrieval
tuning variables), as the server reads them."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from gemma_service.errors import InvalidRequestError
from gemma_service.memory.models import as_aware_utc
from gemma_service.memory.settings import MemorySettings
from gemma_service.memory.store import MemoryConfigError


def memory_settings(args: argparse.Namespace) -> MemorySettings:
    """Environment settings, with --memory-url over GEMMA_MEMORY_URL."""
    settings = MemorySettings()
    if args.memory_url:
        settings = settings.model_copy(update={"memory_url": args.memory_url})
    return settings


def cmd_eval(args: argparse.Namespace) -> int:
    """Score retrieval on development sets (default: the tuning set and the test set)."""
    from gemma_service.memory.devset import TEST_SET, TUNE_SET, load_devset
    from gemma_service.memory.embedder import load_default_embedder
    from gemma_service.memory.eval_run import evaluate_set, format_result
    from gemma_service.memory.scratch_postgres import NoPostgresError

    try:
        settings = memory_settings(args)
        now = parse_time(args.now, "--now") if args.now else None
        sets = [load_devset(Path(p)) for p in (args.set or [TUNE_SET, TEST_SET])]
        embedder = load_default_embedder(
            sentence_model=settings.embedding_model, gguf_path=settings.embedding_model_path
        )
        for number, devset in enumerate(sets):
            result = evaluate_set(
                devset,
                embedder=embedder,
                settings=settings,
                store_kind=args.store,
                server_url=settings.memory_url if args.store == "postgres" else None,
                now=now,
            )
            print(("\n" if number else "") + format_result(result, show_misses=args.misses))
    except (InvalidRequestError, MemoryConfigError, NoPostgresError, OSError) as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Time search and ingest at growing store sizes (generated memories)."""
    from gemma_service.memory.benchmark import format_bench, run_bench
    from gemma_service.memory.embedder import load_default_embedder
    from gemma_service.memory.scratch_postgres import NoPostgresError

    try:
        settings = memory_settings(args)
        embedder = load_default_embedder(
            sentence_model=settings.embedding_model, gguf_path=settings.embedding_model_path
        )
        if embedder is None:
            raise MemoryConfigError("the benchmark needs an embedding model")
        results = [
            run_bench(
                embedder,
                store_kind=kind,
                sizes=args.items,
                queries=args.queries,
                server_url=settings.memory_url if kind == "postgres" else None,
            )
            for kind in args.store
        ]
    except (MemoryConfigError, NoPostgresError, OSError) as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1
    print(format_bench(results))
    return 0


def parse_time(text: str, name: str) -> datetime:
    """An ISO 8601 time (UTC when it names no zone); InvalidRequestError otherwise."""
    try:
        return as_aware_utc(datetime.fromisoformat(text))
    except ValueError as exc:
        raise InvalidRequestError(f"{name}: not an ISO 8601 time: {text!r}") from exc


def register_eval_commands(actions: argparse._SubParsersAction[Any]) -> None:
    """Add `eval` and `bench` to the `memory` subcommands."""
    evaluate = actions.add_parser(
        "eval", help="score retrieval on labelled development sets (recall@5, hit@5, MRR)"
    )
    evaluate.add_argument(
        "--set",
        action="append",
        metavar="PATH",
        help="a development set JSON file (repeatable; default: the packaged tuning and test sets)",
    )
    evaluate.add_argument(
        "--store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="backend of the scratch store; postgres uses a new database on --memory-url's "
        "server, or a scratch cluster from the pgserver package when --memory-url is unset",
    )
    evaluate.add_argument("--now", help="ISO 8601 time the questions are asked at")
    evaluate.add_argument(
        "--misses", action="store_true", help="list the questions whose answers were missed"
    )
    evaluate.add_argument("--memory-url", help="PostgreSQL server for --store postgres")
    evaluate.set_defaults(func=cmd_eval)

    bench = actions.add_parser(
        "bench", help="time memory search and ingest at 10k and 100k generated items"
    )
    bench.add_argument(
        "--items", type=int, nargs="+", default=[10_000, 100_000], help="store sizes to time at"
    )
    bench.add_argument(
        "--store", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"]
    )
    bench.add_argument("--queries", type=int, default=200, help="searches timed at each size")
    bench.add_argument("--memory-url", help="PostgreSQL server for the postgres store")
    bench.set_defaults(func=cmd_bench)
