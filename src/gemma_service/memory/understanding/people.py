"""People in a question: speaker names ("What did Sarah say ...") and roles ("our CTO",
"the QA lead"), which map to speakers through what the memories themselves say."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gemma_service.memory.store import STOP_WORDS

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
# Names that are also everyday words match only when capitalised in the question.
_COMMON_WORDS = STOP_WORDS | {
    "will", "may", "june", "april", "august", "mark", "grace", "hope", "joy", "faith", "bill",
    "frank", "rose", "sunny", "ray", "drew", "dawn", "summer", "art", "max", "sam", "pat",
    "team", "radio", "unknown", "speaker", "everyone",
}  # fmt: skip

# Job titles and the nouns that end one ("head of sales", "finance lead", "QA lead").
_ROLE_TITLES_TEXT = """
ceo cto cfo coo cmo cpo cio ciso cro vp svp evp president chair chairman chairwoman
chairperson founder cofounder co-founder owner director head lead manager recruiter designer
engineer developer accountant lawyer counsel buyer roaster barista analyst intern assistant
architect pm secretary treasurer editor producer supervisor coordinator officer
administrator admin representative rep advisor adviser consultant investor partner principal
boss chef
"""
ROLE_TITLES = frozenset(_ROLE_TITLES_TEXT.split())
_OWNER = r"(?:our|the|my|your|their|his|her|its|new|acting|interim)"
_TITLES = "|".join(sorted(ROLE_TITLES, key=len, reverse=True))
_ROLE_PHRASE = re.compile(
    rf"\b{_OWNER}\s+((?:[\w-]+\s+){{0,3}}?(?:{_TITLES})"
    r"(?:\s+of\s+[\w-]+(?:\s+[\w-]+)?)?)\b",
    re.IGNORECASE,
)
_ROLE_FILLER = frozenset({"new", "acting", "interim", "current", "former", "only", "senior"})
# Verbs that follow a person in a question ("what did the CTO say"); after a role phrase they
# are not part of it, and any other word after it ("the designer search") means the title
# only describes a thing.
_PERSON_VERBS_TEXT = """
say said says think thought tell told make made feel felt want wanted do did does was is
were are has had have propose proposed suggest suggested ask asked report reported worry
worried like liked need needed decide decided mean meant bring brought raise raised find
found hear heard complain complained plan planned announce announced
"""
_PERSON_VERBS = frozenset(_PERSON_VERBS_TEXT.split())
_AFTER_PERSON = _PERSON_VERBS | STOP_WORDS
_SELF_CUES = frozenset({"as", "i'm", "im", "am"})
NAME_WINDOW = 10


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def _stem(word: str) -> str:
    word = word.lower().removesuffix("'s")
    for suffix in ("ing", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def name_parts(speaker: str) -> list[str]:
    """The words of a name, lower case ('Hannah Weiss' -> ['hannah', 'weiss'])."""
    return [w.lower() for w in words(speaker)]


def find_speakers(question: str, speakers: Iterable[str]) -> list[str]:
    """Known speakers the question names by full name, first name or surname (also as
    "Sarah's"). A name that is also a common word counts only when capitalised; a part that
    several speakers share counts only when nothing more specific matched."""
    tokens = [w.removesuffix("'s") for w in words(question)]
    lowered = [t.lower() for t in tokens]
    capitalised = {t.lower() for t in tokens if t[:1].isupper()}
    present = set(lowered)
    matches: dict[str, int] = {}
    for speaker in speakers:
        parts = name_parts(speaker)
        hits = [p for p in parts if p in present and (p not in _COMMON_WORDS or p in capitalised)]
        if hits:
            matches[speaker] = len(hits)
    if not matches:
        return []
    best = max(matches.values())
    return sorted(s for s, n in matches.items() if n == best)


def find_role_phrases(question: str) -> list[str]:
    """Role phrases such as 'cto', 'qa lead', 'head of sales' ('our'/'the' dropped)."""
    phrases = []
    for match in _ROLE_PHRASE.finditer(question):
        kept = [w.lower() for w in words(match[1]) if w.lower() not in _ROLE_FILLER]
        while kept and kept[-1] in _PERSON_VERBS:
            kept.pop()
        following = words(question[match.end() :])[:1]
        if kept and (not following or following[0].lower() in _AFTER_PERSON):
            phrases.append(" ".join(kept))
    return phrases


@dataclass(frozen=True)
class RoleEvidence:
    """A memory that may say who holds a role: its text and who said it."""

    text: str
    speaker: str | None


def speakers_for_role(
    role: str, evidence: Sequence[RoleEvidence], speakers: Iterable[str]
) -> list[str]:
    """Speakers the memories tie to ``role``: a name within a few words of the role's words
    ('Daniel, our CTO', 'Rosa leads QA'), else the memory's own speaker when they speak of
    themselves ('As head of sales I ...'). Most often tied first; ties are all returned."""
    role_stems = {_stem(w) for w in role.split() if w not in STOP_WORDS}
    by_part: dict[str, set[str]] = {}
    for speaker in speakers:
        for part in name_parts(speaker):
            if part not in STOP_WORDS:
                by_part.setdefault(part, set()).add(speaker)
    votes: Counter[str] = Counter()
    for memory in evidence:
        for clause in re.split(r"[.;:!?]", memory.text):
            votes.update(_tied_in_clause(clause, role_stems, by_part, memory.speaker))
    if not votes:
        return []
    top = max(votes.values())
    return sorted(s for s, n in votes.items() if n == top)


def _tied_in_clause(
    clause: str, role_stems: set[str], by_part: dict[str, set[str]], speaker: str | None
) -> set[str]:
    tokens = words(clause)
    stems = [_stem(t) for t in tokens]
    positions = [i for i, s in enumerate(stems) if s in role_stems]
    # Every word of a multi-word role must be present ('qa lead': 'qa' and 'lead').
    if not positions or not role_stems <= set(stems):
        return set()
    named: dict[str, int] = {}
    for i, token in enumerate(tokens):
        for person in by_part.get(token.lower(), ()):
            if token[:1].isupper():
                distance = min(abs(i - p) for p in positions)
                named[person] = min(distance, named.get(person, distance))
    close = {p for p, d in named.items() if d <= NAME_WINDOW}
    if close:
        nearest = min(named[p] for p in close)
        return {p for p in close if named[p] == nearest}
    first = positions[0]
    before = {t.lower() for t in tokens[max(0, first - 4) : first]}
    return {speaker} if speaker and before & _SELF_CUES else set()
