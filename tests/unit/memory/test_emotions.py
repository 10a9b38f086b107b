"""Emotion words in a question match memories' emotion labels through synonyms."""

from __future__ import annotations

import pytest

from gemma_service.memory.understanding.emotions import (
    emotion_words_in,
    label_matches,
    wanted_emotions,
)


@pytest.mark.parametrize(
    ("question", "label"),
    [
        ("Who was annoyed about the vendor?", "frustrated"),
        ("Who was fed up with the van?", "Frustrated"),
        ("What worried Priya?", "anxious"),
        ("Who felt nervous about launch weekend?", "worried"),
        ("Who was let down about the candidate?", "disappointed"),
        ("What was Sam thrilled about?", "excited"),
        ("Who had doubts about the plan?", "skeptical"),
        ("Who was relieved about the renewal?", "relief"),
    ],
)
def test_a_synonym_in_the_question_matches_the_label(question: str, label: str) -> None:
    assert label_matches(label, wanted_emotions(question))


def test_other_families_do_not_match() -> None:
    wanted = wanted_emotions("Who was annoyed about the vendor?")
    assert not label_matches("happy", wanted)
    assert not label_matches("worried", wanted)
    assert not label_matches(None, wanted)


def test_upset_belongs_to_anger_and_to_sadness() -> None:
    wanted = wanted_emotions("What upset Aiko?")
    assert label_matches("frustrated", wanted) and label_matches("disappointed", wanted)


@pytest.mark.parametrize(
    "question",
    [
        "Why did the website go down in February?",
        "What is the ship date now?",
        "Which customers did we lose?",
    ],
)
def test_questions_without_feelings_want_no_emotion(question: str) -> None:
    assert emotion_words_in(question) == []
    assert wanted_emotions(question) == frozenset()
