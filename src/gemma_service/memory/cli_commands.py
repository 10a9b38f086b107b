"""Mounts `gemma-service memory import|search` on the CLI (listed in ``cli.EXTRA_COMMANDS``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gemma_service.errors import InvalidRequestError
from gemma_service.memory.eval_commands import register_eval_commands
from gemma_service.memory.models import MEMORY_KINDS, SearchFilters
from gemma_service.memory.owners import LOCAL_OWNER, OwnerScope
from gemma_service.memory.service import MemoryService
from gemma_service.memory.settings import MemorySettings
from gemma_service.memory.store import MemoryConfigError
from gemma_service.settings_args import add_settings_arguments, settings_from_args

FILTER_FIELDS = ("speaker", "kind", "conversation_id", "since", "until")


def open_service(args: argparse.Namespace, *, remote: bool) -> MemoryService:
    """The service the server would open, from the same flags and env vars."""
    settings = settings_from_args(MemorySettings, args)
    return MemoryService.from_settings(
        settings,
        data_dir=settings.data_dir,
        rag_service_url=settings.rag_service_url if remote else None,
    )


def cmd_import(args: argparse.Namespace) -> int:
    """Store every memory of a JSONL file (validated first; nothing stored if a line is bad)."""
    from gemma_service.memory.commands import import_jsonl

    try:
        scope = OwnerScope(args.owner)
        service = open_service(args, remote=False)
        try:
            ids = import_jsonl(service, Path(args.file), scope=scope, show_progress=not args.quiet)
        finally:
            service.close()
    except (InvalidRequestError, MemoryConfigError, OSError, ValueError) as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1
    print(f"stored {len(ids)} memory item(s) from {args.file} for owner {args.owner!r}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Print the memories a chat with use_rag would retrieve for the query."""
    from gemma_service.memory.commands import search_cli

    try:
        filters = SearchFilters.parse(
            {f: getattr(args, f) for f in FILTER_FIELDS if getattr(args, f) is not None}
        )
        scope = OwnerScope(args.owner, every_owner=args.all_owners)
        service = open_service(args, remote=True)
        try:
            print(search_cli(service, args.query, scope=scope, top_k=args.top_k, filters=filters))
        finally:
            service.close()
    except (InvalidRequestError, MemoryConfigError, ValueError) as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1
    return 0


def add_owner_argument(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--owner",
        default=LOCAL_OWNER,
        help=f"whose memories to {verb}: a key name, key:<fingerprint>, jwt:<sub> or "
        f"tenant:<value> (default: {LOCAL_OWNER!r}, the owner when auth is off)",
    )


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """The memory settings' flags (--data-dir, --memory-url, --rag-service-url, ...)."""
    add_settings_arguments(parser, MemorySettings)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add `memory import FILE.jsonl` and `memory search QUERY` to the CLI's subparsers."""
    memory = subparsers.add_parser("memory", help="import and search the RAG memory store")
    actions = memory.add_subparsers(dest="memory_command", required=True)

    importer = actions.add_parser("import", help="store memories from a JSONL file")
    importer.add_argument("file", help="one JSON object per line: text, kind, speaker, ...")
    importer.add_argument("--quiet", action="store_true", help="no progress bar")
    add_owner_argument(importer, "store them as")
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
    add_owner_argument(search, "search")
    search.add_argument("--all-owners", action="store_true", help="search every owner's memories")
    add_store_arguments(search)
    search.set_defaults(func=cmd_search)
    register_eval_commands(actions)
