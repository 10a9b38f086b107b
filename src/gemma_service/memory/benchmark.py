"""What `gemma-service memory bench` does: fill a scratch store with generated meeting
memories and time ingest and search at each size (docs/memory.md, "Latency")."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from gemma_service.memory.devset import TEST_SET, TUNE_SET, load_devset
from gemma_service.memory.embedder import Embedder
from gemma_service.memory.eval_run import StoreKind, scratch_store
from gemma_service.memory.models import MemoryItem, MemoryItemIn, MemoryRecord, new_memory_id
from gemma_service.memory.owners import LOCAL_OWNER, OwnerScope
from gemma_service.memory.service import MemoryService, local_retriever
from gemma_service.memory.settings import MemorySettings

LOCAL = OwnerScope.local()

SPEAKERS = [
    "Maya",
    "Daniel",
    "Priya",
    "Tom",
    "Lena",
    "Sam",
    "Aiko",
    "Marcus",
    "Rosa",
    "Hannah",
    "Omar",
    "Grace",
    "Felix",
    "Nadia",
    "Kwame",
    "Ines",
    "Victor",
    "June",
    "Sarah",
]
EMOTIONS = ("neutral", "worried", "frustrated", "happy", "excited", "relieved", None, None)
MEETINGS = ("Product sync", "Engineering standup", "Budget review", "Hiring committee")
_SUBJECTS = [
    "the launch",
    "the budget",
    "the vendor contract",
    "the hiring plan",
    "the offsite",
    "the roadmap",
    "the migration",
    "the pricing page",
    "the renewal",
    "the onboarding flow",
    "the database upgrade",
    "the design review",
    "the support backlog",
    "the travel policy",
    "the quarterly report",
    "the audit",
]
_VERBS = [
    "slips to",
    "needs sign-off by",
    "costs about",
    "moves to",
    "depends on",
    "is blocked by",
    "was approved for",
    "should wait until",
    "is ahead of",
    "was cut to",
    "goes live on",
    "needs two more people for",
]
_OBJECTS = [
    "next Friday",
    "the end of the month",
    "forty thousand dollars",
    "the security review",
    "the new runners",
    "the board meeting",
    "Globex",
    "Initech",
    "the second quarter",
    "a partner in Lisbon",
    "the QA pass",
    "a cheaper provider",
    "the June release",
    "the customer call",
    "a rehearsal on staging",
]
_TAILS = (
    "",
    "",
    "and I'm not happy about it",
    "so let's plan for that",
    "according to finance",
    "if nothing else breaks",
    "which is a relief",
    "as we agreed last week",
    "Agreed.",
)


def generated_items(count: int, seed: int = 16) -> list[MemoryItemIn]:
    """Meeting-like memories over a year: speakers, emotions, meetings, varied words."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    items = []
    for n in range(count):
        text = " ".join(
            part
            for part in (
                rng.choice(_SUBJECTS).capitalize(),
                rng.choice(_VERBS),
                rng.choice(_OBJECTS),
                rng.choice(_TAILS),
                f"(item {n})",
            )
            if part
        )
        items.append(
            MemoryItemIn(
                text=text,
                kind="transcript",
                speaker=rng.choice(SPEAKERS),
                timestamp=start + timedelta(minutes=5 * n),
                emotion=rng.choice(EMOTIONS),
                source=rng.choice(MEETINGS),
            )
        )
    return items


def bench_queries() -> list[str]:
    """The development sets' questions: names, roles, times, feelings, 'now'."""
    return [q.text for path in (TUNE_SET, TEST_SET) for q in load_devset(path).questions]


@dataclass(frozen=True)
class SizeResult:
    items: int
    p50_ms: float
    p95_ms: float
    first_search_ms: float


@dataclass(frozen=True)
class BenchResult:
    store: StoreKind
    embedded_ingest_per_s: float  # MemoryService.ingest, embedding included
    store_ingest_per_s: float  # vectors precomputed: what the store itself takes
    sizes: list[SizeResult]


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_bench(
    embedder: Embedder,
    *,
    store_kind: StoreKind,
    sizes: Sequence[int],
    queries: int,
    server_url: str | None = None,
    embedded_sample: int = 512,
    report: Callable[[str], None] = print,
) -> BenchResult:
    """Grow one scratch store through ``sizes``; at each, time ``queries`` searches. The
    first ``embedded_sample`` items go through the embedder; the rest get vectors made from
    those (plus noise), which is what lets 100k items be written on a small machine."""
    settings = MemorySettings()
    items = generated_items(max(sizes))
    questions = bench_queries()
    with scratch_store(store_kind, embedder.dim, server_url) as store:
        service = MemoryService(
            store, local_retriever(store, embedder, settings), embedder=embedder
        )
        started = time.perf_counter()
        for begin in range(0, embedded_sample, 128):
            service.ingest(items[begin : min(begin + 128, embedded_sample)], scope=LOCAL)
        embedded_rate = embedded_sample / (time.perf_counter() - started)
        report(f"{store_kind}: ingest with embedding {embedded_rate:.0f} items/s")
        pool = np.asarray(embedder.embed([i.text for i in items[:embedded_sample]]))
        stored, store_seconds, results = embedded_sample, 0.0, []
        rng = np.random.default_rng(16)
        for size in sorted(sizes):
            while stored < size:
                batch = items[stored : min(stored + 1000, size)]
                records = _records(batch, pool, rng)
                started = time.perf_counter()
                store.add(records)
                store_seconds += time.perf_counter() - started
                stored += len(batch)
            results.append(_time_searches(service, questions, queries, stored))
            report(
                f"{store_kind}: {stored} items: search p50 {results[-1].p50_ms:.1f} ms, "
                f"p95 {results[-1].p95_ms:.1f} ms (first {results[-1].first_search_ms:.0f} ms)"
            )
        written = stored - embedded_sample
        store_rate = written / store_seconds if store_seconds else 0.0
    return BenchResult(store_kind, embedded_rate, store_rate, results)


def _records(
    batch: Sequence[MemoryItemIn],
    pool: np.ndarray[tuple[int, int], np.dtype[np.float64]],
    rng: np.random.Generator,
) -> list[MemoryRecord]:
    now = datetime.now(UTC)
    vectors = pool[rng.integers(0, len(pool), len(batch))]
    vectors = vectors + rng.normal(0, 0.05, vectors.shape)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        MemoryRecord(
            MemoryItem(
                id=new_memory_id(),
                text=item.text,
                kind=item.kind,
                timestamp=item.timestamp,
                created_at=now,
                speaker=item.speaker,
                emotion=item.emotion,
                source=item.source,
                owner=LOCAL_OWNER,
            ),
            vector.tolist(),
        )
        for item, vector in zip(batch, vectors, strict=True)
    ]


def _time_searches(
    service: MemoryService, questions: Sequence[str], count: int, stored: int
) -> SizeResult:
    started = time.perf_counter()
    service.search(questions[0], top_k=5, scope=LOCAL)
    first_ms = (time.perf_counter() - started) * 1000
    for question in questions[1:6]:  # warm the embedder and the caches
        service.search(question, top_k=5, scope=LOCAL)
    times = []
    for n in range(count):
        started = time.perf_counter()
        service.search(questions[n % len(questions)], top_k=5, scope=LOCAL)
        times.append((time.perf_counter() - started) * 1000)
    return SizeResult(stored, statistics.median(times), _percentile(times, 0.95), first_ms)


def format_bench(results: Sequence[BenchResult]) -> str:
    lines = [
        "| store | items | search p50 | search p95 | first search | ingest (embedding) | "
        "ingest (store only) |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for size in result.sizes:
            lines.append(
                f"| {result.store} | {size.items:,} | {size.p50_ms:.1f} ms | "
                f"{size.p95_ms:.1f} ms | {size.first_search_ms:.0f} ms | "
                f"{result.embedded_ingest_per_s:.0f} items/s | "
                f"{result.store_ingest_per_s:.0f} items/s |"
            )
    return "\n".join(lines)
