"""A question read for search: content words, soft preferences, intent, reference time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gemma_service.memory.understanding.query_plan import plan_query, reference_time

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SPEAKERS = ["Sarah", "Daniel", "Rosa"]


def test_relative_times_count_back_from_now_while_memories_are_current() -> None:
    newest = NOW - timedelta(days=2)
    assert reference_time(NOW, newest) == NOW
    assert reference_time(NOW, None) == NOW


def test_an_archive_is_read_as_of_its_newest_memory() -> None:
    newest = datetime(2025, 4, 30, 9, 30, tzinfo=UTC)
    assert reference_time(NOW, newest) == newest


def test_a_question_with_a_name_a_time_and_a_feeling() -> None:
    plan = plan_query(
        "What worried Sarah about the vendor in March?", speakers=SPEAKERS, anchor=NOW
    )
    assert plan.speakers == ("Sarah",)
    assert plan.time_range is not None
    assert plan.time_range.since == datetime(2026, 3, 1, tzinfo=UTC)
    assert "anxious" in plan.emotions
    assert plan.content == "What worried Sarah about the vendor ?"
    assert not plan.latest and not plan.who


def test_framing_words_are_dropped_from_the_lexical_query_only() -> None:
    plan = plan_query("What did Daniel say about the rewrite?", speakers=SPEAKERS, anchor=NOW)
    assert "say" not in plan.lexical.split() and "rewrite" in plan.lexical
    assert plan.content == "What did Daniel say about the rewrite?"


def test_a_role_is_resolved_only_when_no_name_is_given() -> None:
    asked: list[str] = []

    def holders(role: str) -> list[str]:
        asked.append(role)
        return ["Daniel"]

    plan = plan_query(
        "What did our CTO think?", speakers=SPEAKERS, anchor=NOW, role_holders=holders
    )
    assert plan.speakers == ("Daniel",) and asked == ["cto"]
    plan = plan_query("What did Rosa think?", speakers=SPEAKERS, anchor=NOW, role_holders=holders)
    assert plan.speakers == ("Rosa",) and asked == ["cto"]


def test_intents() -> None:
    latest = plan_query("What is the ship date now?", speakers=SPEAKERS, anchor=NOW)
    history = plan_query("How did the ship date change?", speakers=SPEAKERS, anchor=NOW)
    who = plan_query("Who was annoyed about the vendor?", speakers=SPEAKERS, anchor=NOW)
    assert latest.latest and not latest.history
    assert history.history and history.many and not history.latest
    assert who.who and who.emotions


def test_a_name_in_a_who_question_is_not_the_speaker_asked_about() -> None:
    plan = plan_query("Who told Rosa the budget was cut?", speakers=SPEAKERS, anchor=NOW)
    assert plan.who and plan.speakers == ()
