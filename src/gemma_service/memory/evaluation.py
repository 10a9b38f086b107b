"""Scores retrieval on a development set: recall@k, hit@k and MRR per question type, searched
as a caller would (the question alone) and with the optional speaker / time filters."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gemma_service.memory.devset import QUESTION_TYPES, TYPE_TITLES, DevSet, Question
from gemma_service.memory.models import NO_FILTERS, SearchFilters

K = 5
# (question, filters, k) -> ids of the memories found, best first.
SearchFunction = Callable[[str, SearchFilters, int], list[str]]


@dataclass(frozen=True)
class QuestionScore:
    question: Question
    found: list[str]  # keys of the top k, best first
    recall: float
    hit: float
    reciprocal_rank: float
    elapsed_s: float


@dataclass(frozen=True)
class Scores:
    """Mean recall@k, hit@k and MRR of a group of questions."""

    n: int
    recall: float
    hit: float
    mrr: float


def score_question(question: Question, found: Sequence[str], elapsed_s: float) -> QuestionScore:
    top = list(found[:K])
    relevant = question.relevant
    first = next((rank for rank, key in enumerate(top, 1) if key in relevant), None)
    return QuestionScore(
        question=question,
        found=top,
        recall=len(relevant & set(top)) / len(relevant),
        hit=1.0 if first else 0.0,
        reciprocal_rank=1.0 / first if first else 0.0,
        elapsed_s=elapsed_s,
    )


def run_questions(
    devset: DevSet, search: SearchFunction, key_of: dict[str, str], *, with_filters: bool
) -> list[QuestionScore]:
    """Ask every question of the set; ``key_of`` maps stored ids to the set's memory keys."""
    scores = []
    for question in devset.questions:
        filters = question.filters if with_filters else NO_FILTERS
        started = time.perf_counter()
        ids = search(question.text, filters, K)
        elapsed = time.perf_counter() - started
        scores.append(score_question(question, [key_of.get(i, i) for i in ids], elapsed))
    return scores


def mean_scores(scores: Sequence[QuestionScore]) -> Scores:
    if not scores:
        return Scores(0, 0.0, 0.0, 0.0)
    return Scores(
        n=len(scores),
        recall=statistics.fmean(s.recall for s in scores),
        hit=statistics.fmean(s.hit for s in scores),
        mrr=statistics.fmean(s.reciprocal_rank for s in scores),
    )


def by_type(scores: Sequence[QuestionScore]) -> dict[str, Scores]:
    """Scores per question type (in the table's order), then 'overall'."""
    types = [t for t in QUESTION_TYPES if any(s.question.type == t for s in scores)]
    types += sorted({s.question.type for s in scores} - set(types))
    table = {t: mean_scores([s for s in scores if s.question.type == t]) for t in types}
    table["overall"] = mean_scores(scores)
    return table


def format_table(plain: Sequence[QuestionScore], filtered: Sequence[QuestionScore]) -> str:
    """The per-type table: recall@k, hit@k and MRR without filters, then with them."""
    left, right = by_type(plain), by_type(filtered)
    head = f"recall@{K} hit@{K}   MRR"
    lines = [
        f"{'':34s} {'':>3s}  {'without filters':^20s}  {'with speaker/time filters':^20s}",
        f"{'question type':34s} {'n':>3s}  {head}  {head}",
    ]
    for name, score in left.items():
        other = right[name]
        title = TYPE_TITLES.get(name, name)
        lines.append(
            f"{title:34s} {score.n:3d}  {score.recall:8.2f} {score.hit:5.2f} {score.mrr:5.2f}"
            f"  {other.recall:8.2f} {other.hit:5.2f} {other.mrr:5.2f}"
        )
    return "\n".join(lines)


def format_latency(scores: Sequence[QuestionScore]) -> str:
    times = sorted(s.elapsed_s * 1000 for s in scores)
    if not times:
        return "no searches"
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    p50 = statistics.median(times)
    return f"search time over {len(times)} questions: p50 {p50:.1f} ms, p95 {p95:.1f} ms"


def format_misses(scores: Sequence[QuestionScore]) -> str:
    """Each question whose answers were not all in the top k, with what was found instead."""
    lines = []
    for s in scores:
        if s.recall < 1.0:
            lines.append(f"{s.question.id} [{s.question.type}] {s.question.text}")
            lines.append(f"    wanted {sorted(s.question.relevant)}")
            marks = [("*" if key in s.question.relevant else "") + key for key in s.found]
            lines.append(f"    found  {marks}")
    return "\n".join(lines) or "no misses"
