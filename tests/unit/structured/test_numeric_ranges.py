"""minimum/maximum as digit grammars: exactly the numbers in range, checked over random bounds."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gemma_service.chat.structured.numeric_ranges import integer_range_gbnf, number_range_gbnf

bounds = st.none() | st.integers(-100_000, 100_000)


def as_regex(gbnf: str) -> re.Pattern[str]:
    """The range grammars use only digit literals, classes, groups and repeats: regex syntax
    once the literals are unquoted."""
    pattern = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), gbnf).replace(" ", "")
    return re.compile(pattern)


def in_range(value: Decimal | int, low: int | None, high: int | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


@given(low=bounds, high=bounds, value=st.integers(-1_000_000, 1_000_000))
def test_integer_grammar_matches_exactly_the_integers_in_range(
    low: int | None, high: int | None, value: int
) -> None:
    assume(low is None or high is None or low <= high)
    pattern = as_regex(integer_range_gbnf(low, high))
    near_bounds = [b + d for b in (low, high) if b is not None for d in (-1, 0, 1)]
    for candidate in [value, 0, *near_bounds]:
        matched = pattern.fullmatch(str(candidate)) is not None
        assert matched == in_range(candidate, low, high), (low, high, candidate)


@given(
    low=bounds,
    high=bounds,
    negative=st.booleans(),
    whole=st.integers(0, 200_000),
    fraction=st.none() | st.text("0123456789", min_size=1, max_size=4),
)
def test_number_grammar_matches_exactly_the_decimals_in_range(
    low: int | None, high: int | None, negative: bool, whole: int, fraction: str | None
) -> None:
    assume(low is None or high is None or low <= high)
    text = ("-" if negative else "") + str(whole) + (f".{fraction}" if fraction else "")
    value = Decimal(text)
    assume(not (negative and value == 0))  # "-0" is left out on purpose when 0 is the minimum
    matched = as_regex(number_range_gbnf(low, high)).fullmatch(text) is not None
    assert matched == in_range(value, low, high), (low, high, text)


def test_leading_zeros_are_never_generated() -> None:
    pattern = as_regex(integer_range_gbnf(0, 500))
    assert pattern.fullmatch("7")
    assert not pattern.fullmatch("007")


@pytest.mark.parametrize(("low", "high"), [(0, 0), (-7, -3), (5, None), (None, -5), (-99, 1234)])
def test_range_grammars_parse_in_llama_cpp(grammar_oracle: Any, low: Any, high: Any) -> None:
    for body in (integer_range_gbnf(low, high), number_range_gbnf(low, high)):
        assert grammar_oracle.parses(f"root ::= {body}\n"), body


def test_empty_ranges_are_refused() -> None:
    with pytest.raises(ValueError):
        integer_range_gbnf(3, 2)
    with pytest.raises(ValueError):
        number_range_gbnf(3, 2)
