"""A question read for search: the words to match, and soft preferences for time, speakers
and emotion, plus what kind of answer it wants."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gemma_service.memory.store import STOP_WORDS
from gemma_service.memory.understanding.emotions import wanted_emotions
from gemma_service.memory.understanding.intents import (
    asks_who,
    wants_history,
    wants_latest,
    wants_many,
)
from gemma_service.memory.understanding.people import (
    find_role_phrases,
    find_speakers,
    name_parts,
)
from gemma_service.memory.understanding.time_expressions import (
    TimeRange,
    find_time_mentions,
    without_mentions,
)

# Relative times ("last week") count back from now while the memories are current; for an
# archive whose newest memory is older than this, they count back from that memory instead.
ARCHIVE_AFTER = timedelta(days=30)

# Words that frame a question about a meeting but say nothing about its subject.
_FRAME_WORDS = re.compile(
    r"\b(say|said|says|saying|tell|told|mention(?:ed)?|talk(?:ed)?|discuss(?:ed)?|"
    r"think|thought|make of|came up|come up|bring|brought|report(?:ed)?|hear|heard|"
    r"cover(?:ed)?|happen(?:ed)?|feel|felt|was|were)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class QueryPlan:
    question: str
    content: str  # the question without its time expressions: matched by words and meaning
    lexical: str  # content without framing words ("say", "talk about"): matched by words
    time_range: TimeRange | None
    speakers: tuple[str, ...]  # named in the question, or holding a role it names
    emotions: frozenset[str]
    latest: bool
    history: bool
    many: bool
    who: bool
    words: frozenset[str] = frozenset()  # content words, stemmed: matched to meeting names


def content_words(text: str) -> set[str]:
    """Lower-case, lightly stemmed words of ``text`` without stop words."""
    return {_stem(w) for w in re.findall(r"[^\W_]+", text.lower()) if w not in STOP_WORDS}


def _stem(word: str) -> str:
    for suffix in ("ings", "ing", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def reference_time(now: datetime, newest: datetime | None) -> datetime:
    """The moment relative times count back from: now, or the newest memory of an archive."""
    if newest is not None and now - newest > ARCHIVE_AFTER:
        return newest
    return now


def plan_query(
    question: str,
    *,
    speakers: Sequence[str],
    anchor: datetime,
    role_holders: Callable[[str], list[str]] | None = None,
) -> QueryPlan:
    """Read ``question``; ``role_holders`` maps a role phrase ('cto') to speakers."""
    names = frozenset(part for s in speakers for part in name_parts(s))
    mentions = find_time_mentions(question, anchor, ignore_words=names)
    time_range = None
    for mention in mentions:
        time_range = mention.range if time_range is None else time_range.hull(mention.range)
    content = without_mentions(question, mentions)
    who = asks_who(question)
    # In "Who told Priya ...?" the person named is not the speaker asked about.
    named = [] if who else find_speakers(question, speakers)
    if not named and not who and role_holders is not None:
        for role in find_role_phrases(question):
            named.extend(s for s in role_holders(role) if s not in named)
    return QueryPlan(
        question=question,
        content=content or question,
        lexical=" ".join(_FRAME_WORDS.sub(" ", content).split()) or content or question,
        time_range=time_range,
        speakers=tuple(named),
        emotions=wanted_emotions(question),
        latest=wants_latest(question),
        history=wants_history(question),
        many=wants_many(question),
        who=who,
        words=frozenset(content_words(content)),
    )
