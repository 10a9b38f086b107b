"""The server refuses to start open on a non-loopback address, or with unusable auth settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gemma_service.cli", "serve", "--port", "0", *args]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMMA_", "JWT_"))} | (
        env or {}
    )
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=60)


def test_an_open_server_refuses_a_public_bind(tmp_path: Path) -> None:
    done = serve("--host", "0.0.0.0", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "--allow-unauthenticated" in done.stderr


def test_jwt_only_without_a_jwt_key_refuses_to_start(tmp_path: Path) -> None:
    done = serve("--data-dir", str(tmp_path), env={"JWT_ONLY": "true", "GEMMA_API_KEYS": "k"})
    assert done.returncode == 2
    assert "JWT_ONLY needs" in done.stderr
