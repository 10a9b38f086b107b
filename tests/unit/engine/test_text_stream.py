"""Streamed text: stop strings never leak, UTF-8 characters are never split."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from gemma_service.engine.text_stream import StopStringMatcher, TextStream


def feed_all(stream: TextStream, pieces: list[bytes]) -> tuple[list[str], str]:
    deltas = []
    for p in pieces:
        deltas.append(stream.feed(p))
        if stream.stopped:
            return deltas, ""
    return deltas, stream.finish()


def test_stop_string_split_across_tokens_is_never_emitted() -> None:
    stream = TextStream(["END"])
    deltas, tail = feed_all(stream, [b"Hello E", b"N", b"D and more"])
    assert "".join(deltas) + tail == "Hello "
    assert all("E" not in d for d in deltas)
    assert stream.stopped


def test_held_back_prefix_is_released_when_it_is_not_a_stop() -> None:
    stream = TextStream(["END"])
    assert stream.feed(b"value E") == "value "
    assert stream.feed(b"xactly") == "Exactly"
    assert not stream.stopped


def test_held_back_text_is_released_at_the_end() -> None:
    stream = TextStream(["###"])
    deltas, tail = feed_all(stream, [b"a #", b"#"])
    assert "".join(deltas) == "a "
    assert tail == "##"


def test_multibyte_character_split_across_tokens_is_emitted_whole() -> None:
    smile = "🙂".encode()  # four bytes
    stream = TextStream([])
    out = [stream.feed(smile[:1]), stream.feed(smile[1:3]), stream.feed(smile[3:])]
    assert out == ["", "", "🙂"]


def test_earliest_of_several_stops_wins() -> None:
    m = StopStringMatcher(["world", "lo w"])
    safe, hit = m.feed("hello world")
    assert hit and safe == "hel"


@given(
    text=st.text(alphabet="ab🙂é\n", max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=10),
    stop=st.sampled_from(["ab", "🙂é", "\n\n", "bb"]),
)
def test_any_chunking_gives_the_same_text_as_one_piece(
    text: str, cuts: list[int], stop: str
) -> None:
    data = text.encode()
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(points)]
    deltas, tail = feed_all(TextStream([stop]), pieces)
    expected = text.split(stop)[0]
    assert "".join(deltas) + tail == expected
    assert all("\ufffd" not in d for d in deltas)
