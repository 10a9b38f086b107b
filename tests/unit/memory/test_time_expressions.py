"""Time expressions in questions become time ranges relative to an anchor moment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gemma_service.memory.understanding.time_expressions import (
    find_time_mentions,
    time_range_in,
    without_mentions,
)

# A Wednesday.
ANCHOR = datetime(2025, 4, 30, 9, 30, tzinfo=UTC)


def span(question: str, anchor: datetime = ANCHOR) -> tuple[str, str] | None:
    """The range as (first day, day after the last), ISO dates."""
    found = time_range_in(question, anchor)
    if found is None:
        return None
    return found.since.date().isoformat(), found.until.date().isoformat()


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What did we agree in March?", ("2025-03-01", "2025-04-01")),
        ("What came up during February 2024?", ("2024-02-01", "2024-03-01")),
        ("Anything from October?", ("2024-10-01", "2024-11-01")),  # the latest October
        ("What did we say in May 2025?", ("2025-05-01", "2025-06-01")),
    ],
)
def test_a_month_is_the_latest_such_month_unless_a_year_is_given(
    question: str, expected: tuple[str, str]
) -> None:
    assert span(question) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("the budget review in early March", ("2025-03-01", "2025-03-11")),
        ("in mid-February", ("2025-02-11", "2025-02-21")),
        ("late March", ("2025-03-21", "2025-04-01")),
        ("at the end of March", ("2025-03-21", "2025-04-01")),
        ("the beginning of April", ("2025-04-01", "2025-04-11")),
        ("in the second half of March", ("2025-03-16", "2025-04-01")),
        ("the first half of April", ("2025-04-01", "2025-04-16")),
        ("in the first week of April", ("2025-04-01", "2025-04-08")),
        ("the last week of March", ("2025-03-25", "2025-04-01")),
    ],
)
def test_parts_of_a_month(question: str, expected: tuple[str, str]) -> None:
    assert span(question) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("at the standup on February 19?", ("2025-02-19", "2025-02-20")),
        ("on 21 March", ("2025-03-21", "2025-03-22")),
        ("the 14th of March", ("2025-03-14", "2025-03-15")),
        ("on March 3rd, 2024", ("2024-03-03", "2024-03-04")),
        ("on 2025-01-09", ("2025-01-09", "2025-01-10")),
        ("in the week of March 10", ("2025-03-10", "2025-03-17")),  # Monday to Sunday
    ],
)
def test_days_and_the_week_of_a_day(question: str, expected: tuple[str, str]) -> None:
    assert span(question) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What did Rosa report last week?", ("2025-04-21", "2025-04-28")),
        ("at this week's standup", ("2025-04-28", "2025-05-05")),
        ("in the past week", ("2025-04-24", "2025-05-01")),
        ("over the past two weeks", ("2025-04-17", "2025-05-01")),
        ("in the last 10 days", ("2025-04-21", "2025-05-01")),
        ("last month", ("2025-03-01", "2025-04-01")),
        ("this month", ("2025-04-01", "2025-05-01")),
        ("yesterday", ("2025-04-29", "2025-04-30")),
        ("today", ("2025-04-30", "2025-05-01")),
        ("three days ago", ("2025-04-27", "2025-04-28")),
        ("two weeks ago", ("2025-04-14", "2025-04-21")),
        ("on Monday", ("2025-04-28", "2025-04-29")),
        ("last Wednesday", ("2025-04-23", "2025-04-24")),
        ("in Q1", ("2025-01-01", "2025-04-01")),
        ("last year", ("2024-01-01", "2025-01-01")),
    ],
)
def test_relative_expressions_count_back_from_the_anchor(
    question: str, expected: tuple[str, str]
) -> None:
    assert span(question) == expected


def test_the_anchor_decides_which_march() -> None:
    assert span("in March", datetime(2025, 2, 10, tzinfo=UTC)) == ("2024-03-01", "2024-04-01")


def test_two_expressions_give_the_span_covering_both() -> None:
    assert span("between March 3 and March 10") == ("2025-03-03", "2025-03-11")


@pytest.mark.parametrize(
    "question",
    [
        "What is the ship date now?",
        "May I ask what the plan is?",
        "Did they march on?",
        "Who said the budget was too small?",
    ],
)
def test_no_time_is_read_into_a_question_without_one(question: str) -> None:
    assert span(question) is None


def test_a_month_that_is_also_a_name_needs_a_preposition() -> None:
    names = frozenset({"june"})
    assert find_time_mentions("What did June say about the roaster?", ANCHOR, names) == []
    [mention] = find_time_mentions("What was said in June?", ANCHOR, names)
    assert mention.range.since == datetime(2024, 6, 1, tzinfo=UTC)


def test_the_expression_is_cut_out_of_the_words_to_search() -> None:
    question = "What came up at the budget review in early March?"
    mentions = find_time_mentions(question, ANCHOR)
    assert without_mentions(question, mentions) == "What came up at the budget review in ?"
