"""Real processes on loopback: a coordinator per test and helpers to spawn lease holders."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gemma_service.gpu.testing import CoordinatorProcess, JsonLinesProcess

SCRIPTS = Path(__file__).parent

Spawn = Callable[..., JsonLinesProcess]


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[CoordinatorProcess]:
    """A coordinator child on a free port with its own state dir; killed after the test."""
    with CoordinatorProcess(tmp_path / "coordinator-state") as process:
        yield process


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start ``python <args>`` children printing JSON lines; all are killed after the test."""
    children: list[JsonLinesProcess] = []

    def start(*args: str) -> JsonLinesProcess:
        child = JsonLinesProcess([sys.executable, *args])
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()


@pytest.fixture
def holder_script() -> str:
    return str(SCRIPTS / "holder_process.py")


@pytest.fixture
def churn_script() -> str:
    return str(SCRIPTS / "churn_worker.py")
