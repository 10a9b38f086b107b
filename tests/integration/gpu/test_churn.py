"""200+ randomized acquire/hold/release rounds across worker processes, with random SIGKILLs.

From the recorded history: no two holders ever used the GPU at overlapping times, and tokens
increase in the order the GPU changed hands.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from gemma_service.gpu.testing import CoordinatorProcess, JsonLinesProcess

Spawn = Callable[..., JsonLinesProcess]
ROUNDS = 200
WORKERS = 3


@dataclass
class Span:
    """When one worker used the GPU under one token (by its own clock checks)."""

    token: int
    start: float
    end: float
    worker: int


def spans_of(worker: int, child: JsonLinesProcess, died_at: float | None) -> list[Span]:
    spans: dict[int, Span] = {}
    for event in child.events:
        if event["event"] == "start":
            spans[event["token"]] = Span(event["token"], event["t"], float("inf"), worker)
        elif event["event"] == "end":
            spans[event["token"]].end = event["t"]
    for span in spans.values():
        if span.end == float("inf"):
            # Killed mid-use: it cannot have used the GPU after it was reaped.
            assert died_at is not None, child.describe(f"open span {span} in a live worker")
            span.end = died_at
    return list(spans.values())


def assert_one_holder_at_a_time(spans: list[Span]) -> None:
    ordered = sorted(spans, key=lambda s: s.start)
    for before, after in itertools.pairwise(ordered):
        assert after.start > before.end, f"overlapping use of the GPU: {before} and {after}"
        assert after.token > before.token, f"token went backwards: {before} then {after}"


def count_starts(children: list[JsonLinesProcess]) -> int:
    return sum(1 for child in children for e in child.events if e["event"] == "start")


@pytest.mark.timeout(280)
def test_randomized_churn_never_has_two_holders(
    coordinator: CoordinatorProcess, spawn: Spawn, churn_script: str
) -> None:
    rng = random.Random(20240611)
    seeds = iter(range(10_000))

    def start_worker() -> JsonLinesProcess:
        seed = next(seeds)
        return spawn(churn_script, "--url", coordinator.url, "--holder", f"w{seed}",
                     "--seed", str(seed), "--ttl", "1.0")  # fmt: skip

    live = [start_worker() for _ in range(WORKERS)]
    finished: list[tuple[JsonLinesProcess, float | None]] = []
    kills = 0
    deadline = time.monotonic() + 240
    while count_starts(live + [c for c, _ in finished]) < ROUNDS:
        assert time.monotonic() < deadline, "churn too slow"
        time.sleep(rng.uniform(0.05, 0.4))
        if rng.random() < 0.3:
            victim = live.pop(rng.randrange(len(live)))
            victim.kill()
            finished.append((victim, time.monotonic()))
            kills += 1
            live.append(start_worker())
    for child in live:
        child.kill()
        finished.append((child, time.monotonic()))
    spans = [
        span
        for index, (child, died_at) in enumerate(finished)
        for span in spans_of(index, child, died_at)
    ]
    assert len(spans) >= ROUNDS
    assert kills >= 5
    assert_one_holder_at_a_time(spans)
