"""Speaker names and roles in questions map to the store's speakers."""

from __future__ import annotations

import pytest

from gemma_service.memory.understanding.people import (
    RoleEvidence,
    find_role_phrases,
    find_speakers,
    speakers_for_role,
)

SPEAKERS = ["Sarah Chen", "Tom", "Daniel Reyes", "June Park", "Me"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What did Sarah say about the deadline?", ["Sarah Chen"]),
        ("what did sarah think?", ["Sarah Chen"]),  # lower case is fine for a rare name
        ("Was Reyes happy with it?", ["Daniel Reyes"]),  # a surname
        ("Tom's view on the vendor?", ["Tom"]),  # possessive
        ("Did Tom and Sarah agree?", ["Sarah Chen", "Tom"]),
        ("What did June say about the roaster?", ["June Park"]),
        ("Anything planned for june?", []),  # a name that is a word needs a capital
        ("Can you tell me about the budget?", []),  # the speaker "Me" is not "me"
        ("Who mentioned the vendor?", []),
    ],
)
def test_speakers_named_in_a_question(question: str, expected: list[str]) -> None:
    assert find_speakers(question, SPEAKERS) == expected


def test_a_full_name_beats_a_shared_first_name() -> None:
    speakers = ["Sarah Chen", "Sarah Blum"]
    assert find_speakers("What did Sarah Blum decide?", speakers) == ["Sarah Blum"]
    assert find_speakers("What did Sarah decide?", speakers) == ["Sarah Blum", "Sarah Chen"]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What did our CTO make of the second interview?", ["cto"]),
        ("What worried the acting CFO about the offsite?", ["cfo"]),
        ("What did the head of sales say about pricing?", ["head of sales"]),
        ("What did our QA lead report last week?", ["qa lead"]),
        ("Who is our new designer?", ["designer"]),
        ("What did the recruiter say about the designer search?", ["recruiter"]),
        ("What is the ship date now?", []),
    ],
)
def test_role_phrases(question: str, expected: list[str]) -> None:
    assert find_role_phrases(question) == expected


def test_a_role_maps_to_the_name_the_memories_tie_to_it() -> None:
    evidence = [
        RoleEvidence("Please welcome Daniel Reyes, who joins today as our CTO.", "Maya"),
        RoleEvidence("The CTO budget is separate from marketing.", "Lena"),
    ]
    assert speakers_for_role("cto", evidence, ["Maya", "Daniel Reyes", "Lena"]) == ["Daniel Reyes"]


def test_every_word_of_a_multi_word_role_must_be_present() -> None:
    evidence = [
        RoleEvidence("Org note: Rosa Jimenez leads QA and customer support.", None),
        RoleEvidence("Tom will lead the migration.", "Maya"),
    ]
    assert speakers_for_role("qa lead", evidence, ["Rosa Jimenez", "Tom", "Maya"]) == [
        "Rosa Jimenez"
    ]


def test_someone_speaking_of_their_own_role_holds_it() -> None:
    evidence = [RoleEvidence("As head of sales I already promised Globex a date.", "Sam")]
    assert speakers_for_role("head of sales", evidence, ["Sam", "Priya"]) == ["Sam"]


def test_no_evidence_no_speaker() -> None:
    evidence = [RoleEvidence("The new coffee machine works.", "Tom")]
    assert speakers_for_role("cto", evidence, ["Tom"]) == []
