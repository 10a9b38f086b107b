"""Runs the benchmark plan: warm-up, each concurrency level (servers taking turns), prefix test."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from gemma_service.bench.load import (
    LoadConfig,
    discover_model_id,
    run_level,
    run_prefix_test,
    warm_up,
)
from gemma_service.bench.peers import ServerProcess, ServerSpec, ServerStartError
from gemma_service.bench.results import BenchRun, ServerRun, write_json
from gemma_service.bench.stats import LevelSummary, RequestResult

Progress = Callable[[str], None]
_LOG_EVERY_S = 15.0


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """What to measure on every server: the levels, their length, and the request shape."""

    concurrency: tuple[int, ...]
    requests_per_client: int
    prefix_test: bool
    load: LoadConfig
    # Prompt lengths to run every level with (0: the short prompts), and how many rounds of the
    # whole grid (the report takes the median across rounds).
    prompt_tokens: tuple[int, ...] = (0,)
    rounds: int = 1

    def workloads(self) -> list[tuple[int, int, int]]:
        """(round, prompt tokens, concurrency) in the order they run."""
        return [
            (r, pt, c)
            for r in range(self.rounds)
            for pt in self.prompt_tokens
            for c in self.concurrency
        ]


def print_progress(message: str) -> None:
    """Progress goes to stderr, so stdout keeps only the final report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class _Target:
    """A ready endpoint under measurement, with where its results go."""

    name: str
    load: LoadConfig
    run: ServerRun


def bench_servers(
    specs: list[ServerSpec], run: BenchRun, run_dir: Path, plan: BenchPlan, progress: Progress
) -> None:
    """Start every server, measure them in turns, and stop them, adding each server's results
    to ``run`` (failures are recorded, not raised) and saving it after every level, so a run
    cut short keeps what it measured.

    All servers stay up for the whole run and take turns level by level (the order rotates from
    one level to the next), so a slow spell on the machine does not land on one server alone.
    An idle server uses no CPU, so the one being measured has the machine to itself.
    """
    runs = [ServerRun(name=spec.name, command=spec.command_line) for spec in specs]
    run.servers.extend(runs)
    targets: list[_Target] = []
    with contextlib.ExitStack() as stack:
        for spec, server in zip(specs, runs, strict=True):
            log_path = run_dir / f"{spec.name}.log"
            progress(f"{spec.name}: starting on port {spec.port} (log: {log_path})")
            started = time.monotonic()
            try:
                stack.enter_context(ServerProcess(spec, log_path))
            except ServerStartError as exc:
                server.error = str(exc)
                progress(f"{spec.name}: FAILED: {exc}")
                continue
            progress(f"{spec.name}: ready after {time.monotonic() - started:.1f}s")
            load = replace(plan.load, base_url=spec.base_url)
            targets.append(_Target(spec.name, load, server))
        if targets:
            save = functools.partial(write_json, run, run_dir / "bench.json")
            asyncio.run(_measure(targets, plan, progress, after_level=save))


def measure_endpoint(name: str, plan: BenchPlan, run: ServerRun, progress: Progress) -> None:
    """Measure a ready endpoint, appending each level's summary to ``run`` as it completes."""
    asyncio.run(_measure([_Target(name, plan.load, run)], plan, progress))


async def _measure(
    targets: list[_Target],
    plan: BenchPlan,
    progress: Progress,
    after_level: Callable[[], None] = lambda: None,
) -> None:
    for t in targets:
        model_id = await discover_model_id(t.load)
        if model_id:
            t.load = replace(t.load, model=model_id)
        warm = await warm_up(t.load)
        if not warm.ok:
            progress(f"{t.name}: warm-up request failed: {warm.error}")
    # Every request of the run gets its own prompt, so no level is served from another's cache.
    offset = 0
    for i, (round_index, prompt_tokens, concurrency) in enumerate(plan.workloads()):
        for t in targets[i % len(targets) :] + targets[: i % len(targets)]:
            load = replace(t.load, prompt_tokens=prompt_tokens)
            summary = await _measure_level(
                t.name, load, concurrency, plan.requests_per_client, offset, round_index, progress
            )
            t.run.levels.append(summary)
            progress(f"{t.name}: {_describe_level(summary)}")
            after_level()
        offset += concurrency * plan.requests_per_client
    if plan.prefix_test:
        for t in targets:
            progress(f"{t.name}: prefix-cache test (~1,500-token prefix, cold then warm)")
            t.run.prefix = p = await run_prefix_test(t.load, nonce=uuid.uuid4().hex[:12])
            progress(
                f"{t.name}: prefix {p.prefix_prompt_tokens} tokens, cold TTFT "
                f"{_secs(p.cold_ttft_s)}, warm {_secs(p.warm_ttft_median_s)}, "
                f"ratio {p.warm_to_cold_ratio or float('nan'):.3f}"
            )


async def _measure_level(
    name: str,
    load: LoadConfig,
    concurrency: int,
    requests_per_client: int,
    offset: int,
    round_index: int,
    progress: Progress,
) -> LevelSummary:
    total = concurrency * requests_per_client
    done = tokens = 0
    last_line = time.monotonic()
    interactive = sys.stderr.isatty()
    with tqdm(
        total=total, desc=f"{name} x{concurrency}", unit="req", file=sys.stderr,
        leave=False, disable=not interactive,
    ) as bar:  # fmt: skip

        def on_result(result: RequestResult) -> None:
            nonlocal done, tokens, last_line
            done += 1
            tokens += result.completion_tokens
            bar.set_postfix_str(f"{tokens} tokens", refresh=False)
            bar.update(1)
            # Logs get a plain line now and then instead of a redrawn bar.
            if not interactive and time.monotonic() - last_line >= _LOG_EVERY_S:
                last_line = time.monotonic()
                progress(f"{name} x{concurrency}: {done}/{total} requests, {tokens} tokens")

        return await run_level(
            load, concurrency, requests_per_client, on_result, offset, round_index
        )


def _describe_level(s: LevelSummary) -> str:
    failed = f", {s.failed} FAILED ({'; '.join(s.errors)})" if s.failed else ""
    workload = f"{s.prompt_tokens}-token prompts, " if s.prompt_tokens else ""
    decode = f"decode {s.decode_tokens_per_s:.1f} tok/s, " if s.decode_tokens_per_s else ""
    return (
        f"{workload}{s.concurrency:>2} clients: {s.tokens_per_s:6.1f} tok/s, {decode}"
        f"{s.generated_tokens} tokens in {s.wall_s:.1f}s, "
        f"TTFT p50 {_secs(s.ttft_p50_s)} p95 {_secs(s.ttft_p95_s)}, "
        f"ITL p50 {_secs(s.itl_p50_s)} p95 {_secs(s.itl_p95_s)}{failed}"
    )


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f}ms"
