"""What kind of answer a question wants, and which lines carry no content."""

from __future__ import annotations

import pytest

from gemma_service.memory.understanding.intents import (
    asks_who,
    is_content_free,
    wants_history,
    wants_latest,
    wants_many,
)


@pytest.mark.parametrize(
    "question",
    [
        "What is the ship date now?",
        "What's the current travel policy?",
        "What's the latest on the renewal?",
        "Which provider did we end up with?",
        "Are we still hiring for the role?",
        "Where do we stand on the rewrite?",
        "What is the status of the permit?",
        "How much will the plan cost?",
        "Where is our new office?",
    ],
)
def test_questions_about_the_current_value(question: str) -> None:
    assert wants_latest(question)


@pytest.mark.parametrize(
    "question",
    [
        "Who suggested a public status page?",
        "What did Sam say about SSO?",
        "Why was the launch delayed?",
    ],
)
def test_questions_not_about_the_current_value(question: str) -> None:
    assert not wants_latest(question)


@pytest.mark.parametrize(
    "question",
    [
        "How did the travel policy change over time?",
        "How has the price changed?",
        "What was the plan originally?",
    ],
)
def test_questions_about_history_want_older_values_too(question: str) -> None:
    assert wants_history(question) and not wants_latest(question)
    assert wants_many(question)


def test_wording_changes_are_not_a_history_question() -> None:
    assert not wants_history("Who complained about wording changes after sign-off?")


@pytest.mark.parametrize(
    ("question", "many"),
    [
        ("Which candidates received offers?", True),
        ("What are all the reasons the launch slipped?", True),
        ("What problems did Globex have?", True),
        ("What is the ship date?", False),
        ("Who proposed Porto?", False),
    ],
)
def test_questions_that_need_several_items(question: str, many: bool) -> None:
    assert wants_many(question) is many


def test_who_questions() -> None:
    assert asks_who("Who was annoyed about the vendor?")
    assert asks_who("which person raised it?")
    assert not asks_who("What did Sarah say?")


@pytest.mark.parametrize(
    "line",
    [
        "Agreed.",
        "Sounds good to me.",
        "Okay, next item.",
        "Sorry, I was on mute.",
        "Can everyone see my screen?",
        "Thanks, Maya.",
        "Yep, let's take that offline.",
        "I'll follow up.",
    ],
)
def test_content_free_lines(line: str) -> None:
    assert is_content_free(line, names=frozenset({"maya"}))


@pytest.mark.parametrize(
    "line",
    [
        "Agreed, the launch moves to April 11.",
        "Thirty days of free usage costs real money.",
        "Yes to the Porto offsite.",
    ],
)
def test_lines_with_content_are_kept(line: str) -> None:
    assert not is_content_free(line)
