"""Mounts `gemma-service memory import|search|eval` (found by ``cli._extra_commands``)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gemma_service.errors import InvalidRequestError
from gemma_service.memory.models import MEMORY_KINDS, SearchFilters, as_aware_utc
from gemma_service.memory.settings import MemorySettings
from gemma_service.memory.store import MemoryConfigError

if TYPE_CHECKING:
    from gemma_service.memory.service import MemoryService

FILTER_FIELDS = ("speaker", "kind", "conversation_id", "since", "until")


def open_service(args: argparse.Namespace, *, remote: bool) -> MemoryService:
    """The service the server would open, from the same flags and env vars."""
    from gemma_service.cli import settings_from_args  # the CLI imports us; import it lazily
    from gemma_service.config import ServiceSettings
    from gemma_service.memory.service import MemoryService

    settings: ServiceSettings = settings_from_args(ServiceSettings, args)
    return MemoryService.from_settings(
        settings,
        data_dir=settings.data_dir,
        rag_service_url=settings.rag_service_url if remote else None,
    )


def cmd_import(args: argparse.Namespace) -> int:
    """Store every memory of a JSONL file (validated first; nothing stored if a line is bad)."""
    from gemma_service.memory.commands import import_jsonl

    try:
        service = open_service(args, remote=False)
        try:
            ids = import_jsonl(service, Path(args.file), show_progress=not args.quiet)
        finally:
            service.close()
    except (InvalidRequestError, MemoryConfigError, OSError) as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1
    print(f"stored {len(ids)} memory item(s) from {args.file}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Print the memories a chat with use_rag would retrieve for the query."""
    from gemma_service.memory.commands import search_cli

    try:
        filters = SearchFilters.parse(
            {f: getattr(args, f) for f in FILTER_FIELDS if getattr(args, f) is not None}
        )
        service = open_service(args, remote=True)
        try:
            print(search_cli(service, args.query, top_k=args.top_k, filters=filters))
        finally:
            service.close()
    except (InvalidRequestError, MemoryConfigError) as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score retrieval on development sets (default: the tuning set and the test set)."""
    from gemma_service.cli import settings_from_args
    from gemma_service.memory.devset import TEST_SET, TUNE_SET, load_devset
    from gemma_service.memory.embedder import load_default_embedder
    from gemma_service.memory.eval_run import evaluate_set, format_result
    from gemma_service.memory.scratch_postgres import NoPostgresError

    try:
        settings: MemorySettings = settings_from_args(MemorySettings, args)
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
    from gemma_service.cli import settings_from_args
    from gemma_service.memory.benchmark import format_bench, run_bench
    from gemma_service.memory.embedder import load_default_embedder
    from gemma_service.memory.scratch_postgres import NoPostgresError

    try:
        settings: MemorySettings = settings_from_args(MemorySettings, args)
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


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """The memory settings' flags, plus --data-dir and --rag-service-url from ServiceSettings."""
    from gemma_service.cli import add_settings_arguments
    from gemma_service.config import ServiceSettings

    add_settings_arguments(parser, MemorySettings)
    for name, flag in (("data_dir", "--data-dir"), ("rag_service_url", "--rag-service-url")):
        info = ServiceSettings.model_fields[name]
        parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, help=info.description)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `memory import FILE.jsonl`, `memory search QUERY` and `memory eval` to the CLI."""
    from gemma_service.cli import add_settings_arguments

    memory = subparsers.add_parser("memory", help="import and search the RAG memory store")
    actions = memory.add_subparsers(dest="memory_command", required=True)

    importer = actions.add_parser("import", help="store memories from a JSONL file")
    importer.add_argument("file", help="one JSON object per line: text, kind, speaker, ...")
    importer.add_argument("--quiet", action="store_true", help="no progress bar")
    add_store_arguments(importer)
    importer.set_defaults(func=cmd_import)

    search = actions.add_parser("search", help="search memories as use_rag would")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=5, help="results to show")
    search.add_argument("--speaker")
    search.add_argument("--kind", choices=MEMORY_KINDS)
    search.add_argument("--conversation-id", dest="conversation_id")
    search.add_argument("--since", help="ISO 8601 time")
    search.add_argument("--until", help="ISO 8601 time")
    add_store_arguments(search)
    search.set_defaults(func=cmd_search)

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
    add_settings_arguments(evaluate, MemorySettings)
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
    add_settings_arguments(bench, MemorySettings)
    bench.set_defaults(func=cmd_bench)
