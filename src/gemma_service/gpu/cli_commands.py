"""Mounts `gemma-service coordinator` on the main CLI (listed in ``cli.EXTRA_COMMANDS``)."""

from __future__ import annotations

import argparse
from typing import Any

from gemma_service.gpu.coordinator_app import CoordinatorSettings, run_coordinator
from gemma_service.settings_args import add_settings_arguments, settings_from_args


def cmd_coordinator(args: argparse.Namespace) -> int:
    """Run the GPU lease coordinator until SIGINT/SIGTERM."""
    settings = settings_from_args(CoordinatorSettings, args)
    run_coordinator(settings)
    return 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the `coordinator` subcommand to the CLI's subparsers."""
    coordinator = subparsers.add_parser(
        "coordinator",
        help="run the GPU lease coordinator that lets services share one GPU",
        description="Hand out one GPU lease at a time, by priority, with fencing tokens. "
        "Every flag also reads from its environment variable.",
    )
    add_settings_arguments(coordinator, CoordinatorSettings)
    coordinator.set_defaults(func=cmd_coordinator)
