"""Emotion words in a question ("Who was annoyed ...", "What worried X") and the emotion
labels of memories they match, through groups of synonyms."""

from __future__ import annotations

import re

# Each group: words for one family of feelings. A question word selects every group it is in;
# a memory matches when its emotion label (or its stem) is in a selected group.
EMOTION_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split())
    for group in (
        # anger, annoyance
        "frustrated frustrating frustration annoyed annoying annoyance irritated irritating "
        "irritation angry anger mad furious fuming livid exasperated fed-up fedup "
        "upset grumpy grumbling complaining resentful outraged",
        # worry, fear
        "worried worry worrying worries anxious anxiety nervous concerned concern uneasy "
        "afraid scared fear fearful stressed stress apprehensive jittery panicked "
        "panicking alarmed troubled",
        # sadness, disappointment
        "disappointed disappointing disappointment sad sadness unhappy upset gutted dismayed "
        "letdown let-down heartbroken glum regretful crushed deflated",
        # joy, excitement
        "happy glad pleased delighted excited exciting excitement thrilled enthusiastic eager "
        "joyful cheerful elated overjoyed proud pride grateful thankful ecstatic keen "
        "stoked psyched satisfied",
        # relief
        "relieved relief reassured calmer",
        # doubt
        "skeptical sceptical doubtful doubt doubts unconvinced reluctant hesitant wary "
        "suspicious dubious unsure uncertain cautious",
        # admiration, surprise
        "impressed amazed astonished surprised awed admiring blown-away wowed",
        # embarrassment
        "embarrassed ashamed sheepish apologetic mortified",
        # tiredness
        "tired exhausted weary drained burned-out burnt-out worn-out fatigued sleepy",
        # confidence
        "confident optimistic hopeful upbeat",
        # resignation
        "resigned defeated fatalistic",
    )
)
# Multi-word phrases, rewritten to the one-word form the groups use.
_PHRASES = {
    "fed up": "fed-up",
    "let down": "let-down",
    "blown away": "blown-away",
    "burned out": "burned-out",
    "burnt out": "burnt-out",
    "worn out": "worn-out",
    "not happy": "unhappy",
    "not convinced": "unconvinced",
    "not sure": "unsure",
}
_WORD = re.compile(r"[a-z][a-z-]*")


def _normalise(text: str) -> str:
    text = text.lower()
    for phrase, word in _PHRASES.items():
        text = text.replace(phrase, word)
    return text


def emotion_words_in(question: str) -> list[str]:
    """The question's words that name an emotion, in order."""
    return [w for w in _WORD.findall(_normalise(question)) if any(w in g for g in EMOTION_GROUPS)]


def wanted_emotions(question: str) -> frozenset[str]:
    """Every word of every emotion group the question names (empty: no emotion asked)."""
    wanted: set[str] = set()
    for word in emotion_words_in(question):
        for group in EMOTION_GROUPS:
            if word in group:
                wanted |= group
    return frozenset(wanted)


def label_matches(label: str | None, wanted: frozenset[str]) -> bool:
    """Whether a memory's emotion label belongs to the wanted groups ('Frustrated',
    'very annoyed' and 'fed up' all match a question about annoyance)."""
    if not label or not wanted:
        return False
    return any(word in wanted for word in _WORD.findall(_normalise(label)))
