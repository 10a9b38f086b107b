"""The record of one benchmark run, as written to and read back from JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemma_service.bench.load import PrefixResult
from gemma_service.bench.stats import LevelSummary


@dataclass(slots=True)
class ServerRun:
    """One server's results: a summary per concurrency level and the prefix-cache test."""

    name: str
    command: str
    levels: list[LevelSummary] = field(default_factory=list)
    prefix: PrefixResult | None = None
    error: str | None = None

    def level(self, concurrency: int, prompt_tokens: int = 0) -> LevelSummary | None:
        """The first round's summary at ``concurrency`` and prompt length, if that level ran."""
        rounds = self.rounds(concurrency, prompt_tokens)
        return rounds[0] if rounds else None

    def rounds(self, concurrency: int, prompt_tokens: int = 0) -> list[LevelSummary]:
        """Every round's summary at ``concurrency`` and prompt length."""
        return [
            lv
            for lv in self.levels
            if lv.concurrency == concurrency and lv.prompt_tokens == prompt_tokens
        ]


@dataclass(slots=True)
class BenchRun:
    """Everything one invocation measured, with the settings and machine it ran on."""

    started_at: str
    command: str
    settings: dict[str, Any]
    machine: dict[str, Any]
    servers: list[ServerRun] = field(default_factory=list)

    def server(self, name: str) -> ServerRun | None:
        """The results for the server called ``name``, if it ran."""
        return next((s for s in self.servers if s.name == name), None)


def write_json(run: BenchRun, path: Path) -> None:
    """Write the run as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(run), indent=2) + "\n")


def read_json(path: Path) -> BenchRun:
    """Read a run written by :func:`write_json`."""
    raw = json.loads(path.read_text())
    servers = [_server_from_dict(s) for s in raw.get("servers", [])]
    return BenchRun(
        started_at=raw["started_at"],
        command=raw["command"],
        settings=raw["settings"],
        machine=raw["machine"],
        servers=servers,
    )


def _server_from_dict(raw: dict[str, Any]) -> ServerRun:
    prefix = raw.get("prefix")
    return ServerRun(
        name=raw["name"],
        command=raw["command"],
        levels=[LevelSummary(**level) for level in raw.get("levels", [])],
        prefix=PrefixResult(**prefix) if prefix else None,
        error=raw.get("error"),
    )
