"""`gemma-service coordinator` is mounted on the main CLI with flags from CoordinatorSettings."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemma_service.cli import build_parser
from gemma_service.gpu.cli_commands import cmd_coordinator
from gemma_service.gpu.coordinator_app import CoordinatorSettings
from gemma_service.settings_args import settings_from_args


def test_coordinator_subcommand_reads_flags_over_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GPU_COORDINATOR_DEFAULT_TTL_S", "4")
    args = build_parser().parse_args(
        ["coordinator", "--port", "9001", "--state-dir", str(tmp_path)]
    )
    settings: CoordinatorSettings = settings_from_args(CoordinatorSettings, args)
    assert args.func is cmd_coordinator
    assert (settings.port, settings.state_dir, settings.default_ttl_s) == (9001, tmp_path, 4.0)
