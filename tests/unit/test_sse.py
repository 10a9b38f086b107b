"""The one SSE writer and reader: what one writes, the other reads back, for every user of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gemma_service.sse import SseDecoder, SseEvent, aiter_sse, iter_sse, sse_comment, sse_json


def feed_all(decoder: SseDecoder, lines: list[str]) -> list[SseEvent]:
    events = [e for line in lines if (e := decoder.feed_line(line)) is not None]
    tail = decoder.flush()
    return [*events, tail] if tail is not None else events


def test_events_end_at_blank_lines_and_skip_comments() -> None:
    lines = [": keep-alive", 'data: {"a": 1}', "", "data:[DONE]", ""]
    events = feed_all(SseDecoder(), lines)
    assert [e.data for e in events] == ['{"a": 1}', "[DONE]"]
    assert events[1].is_done and not events[0].is_done


def test_multi_line_data_is_joined_and_crlf_is_tolerated() -> None:
    lines = ["event: message\r", "data: first\r", "data: second\r", "\r"]
    assert feed_all(SseDecoder(), lines) == [SseEvent("first\nsecond")]


def test_named_events_keep_their_name_until_the_event_ends() -> None:
    lines = ["event: preempt", 'data: {"lease_id": "1"}', "", "data: plain", ""]
    assert feed_all(SseDecoder(), lines) == [
        SseEvent('{"lease_id": "1"}', "preempt"),
        SseEvent("plain", "message"),
    ]


def test_last_event_without_closing_blank_line_is_flushed() -> None:
    assert feed_all(SseDecoder(), ["data: tail"]) == [SseEvent("tail")]


def test_what_the_writer_writes_the_reader_reads() -> None:
    written = (
        sse_json({"text": "line one\nline two, héllo"}, event="delta")
        + sse_comment("keep-alive")
        + sse_json([1, 2])
    )
    events = list(iter_sse(written.decode().split("\n")))
    assert events == [
        SseEvent('{"text": "line one\\nline two, héllo"}', "delta"),
        SseEvent("[1, 2]"),
    ]


async def test_async_reading_gives_the_same_events() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in (sse_json({"a": 1}, event="x") + sse_json({"b": 2})).decode().split("\n"):
            yield line

    assert [e async for e in aiter_sse(lines())] == [
        SseEvent('{"a": 1}', "x"),
        SseEvent('{"b": 2}'),
    ]
