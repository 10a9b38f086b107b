"""Mounts `gemma-service coordinator` on the main CLI (found by ``cli._extra_commands``)."""

from __future__ import annotations

import argparse
from typing import Any

from gemma_service.gpu.coordinator_app import CoordinatorSettings, run_coordinator


def cmd_coordinator(args: argparse.Namespace) -> int:
    """Run the GPU lease coordinator until SIGINT/SIGTERM."""
    from gemma_service.cli import settings_from_args  # the CLI imports us; import it lazily

    settings: CoordinatorSettings = settings_from_args(CoordinatorSettings, args)
    run_coordinator(settings)
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the `coordinator` subcommand to the CLI's subparsers."""
    from gemma_service.cli import add_settings_arguments

    coordinator = subparsers.add_parser(
        "coordinator",
        help="run the GPU lease coordinator that lets services share one GPU",
        description="Hand out one GPU lease at a time, by priority, with fencing tokens. "
        "Every flag also reads from its environment variable.",
    )
    add_settings_arguments(coordinator, CoordinatorSettings)
    coordinator.set_defaults(func=cmd_coordinator)
