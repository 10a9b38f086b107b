"""Labelled development sets for retrieval: memories with keys, and questions naming the keys
that answer them (see docs/memory.md, "Development sets")."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gemma_service.errors import InvalidRequestError
from gemma_service.memory.models import MemoryItemIn, SearchFilters, as_aware_utc

DEVSET_DIR = Path(__file__).parent / "devsets"
# The set retrieval is tuned on, and the one kept aside to check that the tuning generalises.
TUNE_SET = DEVSET_DIR / "brightline.json"
TEST_SET = DEVSET_DIR / "fernhill.json"
QUESTION_TYPES = ("paraphrase", "who", "latest", "time", "emotion", "multi", "distractor")
TYPE_TITLES = {
    "paraphrase": "paraphrase (no word shared)",
    "who": "who said it",
    "latest": "latest value of a changed fact",
    "time": "said in a given week or month",
    "emotion": "emotion",
    "multi": "needs two or three items",
    "distractor": "word match is a distractor",
}


@dataclass(frozen=True)
class LabelledMemory:
    key: str
    item: MemoryItemIn


@dataclass(frozen=True)
class Question:
    """A question, the keys of the memories that answer it, and the filters a caller who knew
    the answer's speaker or time could pass."""

    id: str
    type: str
    text: str
    relevant: frozenset[str]
    filters: SearchFilters = field(default_factory=SearchFilters)


@dataclass(frozen=True)
class DevSet:
    name: str
    description: str
    memories: list[LabelledMemory]
    questions: list[Question]
    now: datetime | None = None


def load_devset(path: Path) -> DevSet:
    """Read and check a set: unique keys, and every relevant key names a memory."""
    try:
        return _parse(json.loads(path.read_text(encoding="utf-8")), path)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{path}: not a development set ({exc!r})") from exc


def _parse(data: dict[str, Any], path: Path) -> DevSet:
    memories = [
        LabelledMemory(m["key"], MemoryItemIn.parse({k: v for k, v in m.items() if k != "key"}))
        for m in data["memories"]
    ]
    keys = [m.key for m in memories]
    if len(set(keys)) != len(keys):
        raise InvalidRequestError(f"{path}: memory keys are not unique")
    questions = [_question(q) for q in data["questions"]]
    for question in questions:
        unknown = question.relevant - set(keys)
        if unknown:
            raise InvalidRequestError(f"{path}: {question.id} names unknown keys {sorted(unknown)}")
    now = as_aware_utc(datetime.fromisoformat(data["now"])) if data.get("now") else None
    return DevSet(data["name"], data.get("description", ""), memories, questions, now)


def _question(data: dict[str, Any]) -> Question:
    filters = dict(data.get("filters") or {})
    # A bare date as `until` means the whole of that day.
    if len(filters.get("until", "")) == 10:
        until = datetime.fromisoformat(filters["until"]) + timedelta(days=1, microseconds=-1)
        filters["until"] = until.isoformat()
    return Question(
        id=data["id"],
        type=data["type"],
        text=data["question"],
        relevant=frozenset(data["relevant"]),
        filters=SearchFilters.parse(filters),
    )
