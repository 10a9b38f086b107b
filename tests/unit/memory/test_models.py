"""Client input is validated into memories; bad fields are 400s that name the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gemma_service.errors import InvalidRequestError
from gemma_service.memory.models import MemoryItemIn, SearchFilters, parse_memory_batch


def test_a_full_item_parses_with_an_aware_utc_timestamp() -> None:
    item = MemoryItemIn.parse(
        {
            "text": "  hello  ",
            "kind": "transcript",
            "speaker": "Sarah",
            "timestamp": "2024-05-01T14:03:00+02:00",
            "emotion": "happy",
            "source": "a.wav",
            "conversation_id": "c1",
            "metadata": {"segment": 4},
        }
    )
    assert item.text == "hello"
    assert item.timestamp == datetime(2024, 5, 1, 12, 3, tzinfo=UTC)
    assert item.metadata == {"segment": 4}


def test_a_timestamp_without_zone_is_taken_as_utc() -> None:
    item = MemoryItemIn.parse({"text": "x", "timestamp": "2024-05-01T14:03:00"})
    assert item.timestamp == datetime(2024, 5, 1, 14, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"text": ""}, "text"),
        ({"kind": "note"}, "text"),
        ({"text": "x", "kind": "diary"}, "kind"),
        ({"text": "x", "timestamp": "last tuesday"}, "timestamp"),
        ({"text": "x", "metadata": [1, 2]}, "metadata"),
        ({"text": "x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_fields_raise_invalid_request_naming_the_field(
    data: dict[str, object], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as error:
        MemoryItemIn.parse(data)
    assert error.value.param == param
    assert error.value.status_code == 400
    assert param in error.value.message


def test_filters_parse_and_reject_an_inverted_time_range() -> None:
    filters = SearchFilters.parse({"speaker": "Tom", "since": "2024-01-01", "kind": "note"})
    assert filters.since == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidRequestError) as error:
        SearchFilters.parse({"since": "2024-02-01", "until": "2024-01-01"})
    assert error.value.param == "since"


def test_filters_compare_times_across_zones() -> None:
    plus_two = timezone(timedelta(hours=2))
    filters = SearchFilters(since=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two))
    assert filters.since == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_a_batch_error_names_the_item_and_field() -> None:
    assert len(parse_memory_batch([{"text": "a"}, {"text": "b"}])) == 2
    assert [m.text for m in parse_memory_batch({"text": "one"})] == ["one"]
    with pytest.raises(InvalidRequestError) as error:
        parse_memory_batch([{"text": "a"}, {"text": "b", "timestamp": "soon"}])
    assert error.value.param == "[1].timestamp"
    with pytest.raises(InvalidRequestError):
        parse_memory_batch([])
