"""GBNF for decimal numbers within bounds (JSON Schema minimum/maximum), digit by digit."""

from __future__ import annotations

from gemma_service.chat.structured.gbnf import gbnf_literal, repeat

# Unbounded sides stop at 16 digits, as the plain JSON number rules do.
MAX_DIGITS = 16
LARGEST = 10**MAX_DIGITS - 1

_FRACTION = '"." [0-9]{1,16}'
_ZERO_FRACTION = '"." "0"{1,16}'


def integer_range_gbnf(low: int | None, high: int | None) -> str:
    """GBNF matching the decimal integers in [low, high]; None leaves a side open."""
    low = -LARGEST if low is None else low
    high = LARGEST if high is None else high
    if low > high:
        raise ValueError(f"empty integer range [{low}, {high}]")
    alternatives = []
    if low < 0:  # negative numbers n in [low, min(high, -1)] as "-" and a magnitude
        alternatives.append('"-" ' + _group(_natural_range(max(1, -high), -low)))
    if high >= 0:
        alternatives.append(_natural_range(max(0, low), high))
    return " | ".join(_group(a) for a in alternatives) if len(alternatives) > 1 else alternatives[0]


def number_range_gbnf(low: int | None, high: int | None) -> str:
    """GBNF matching decimal numbers (no exponent) in [low, high] for integer bounds."""
    if low is not None and high is not None and low > high:
        raise ValueError(f"empty number range [{low}, {high}]")
    alternatives = []
    if high is None or high >= 0:
        alternatives.append(_magnitude(0 if low is None else max(low, 0), high))
    if low is None or low < 0:
        smallest = -high if high is not None and high < 0 else 0
        largest = None if low is None else -low
        alternatives.append('"-" ' + _group(_magnitude(smallest, largest)))
    return " | ".join(_group(a) for a in alternatives) if len(alternatives) > 1 else alternatives[0]


def _magnitude(low: int, high: int | None) -> str:
    """Non-negative decimals in [low, high]: any fraction below ``high``, none at it."""
    if high is None:
        return f"{_group(_natural_range(low, LARGEST))} ({_FRACTION})?"
    parts = []
    if low <= high - 1:
        parts.append(f"{_group(_natural_range(low, high - 1))} ({_FRACTION})?")
    parts.append(f"{gbnf_literal(str(high))} ({_ZERO_FRACTION})?")
    return " | ".join(_group(p) for p in parts) if len(parts) > 1 else parts[0]


def _natural_range(low: int, high: int) -> str:
    """Integers in [low, high] for 0 <= low <= high, written without leading zeros."""
    low_digits, high_digits = str(low), str(high)
    if len(low_digits) == len(high_digits):
        return _same_length_range(low_digits, high_digits)
    parts = [_same_length_range(low_digits, "9" * len(low_digits))]
    if len(high_digits) - len(low_digits) >= 2:  # every number of the lengths in between
        parts.append(f"[1-9] {repeat('[0-9]', len(low_digits), len(high_digits) - 2)}")
    parts.append(_same_length_range("1" + "0" * (len(high_digits) - 1), high_digits))
    return " | ".join(_group(p) for p in parts)


def _same_length_range(low: str, high: str) -> str:
    """Digit strings of one length between ``low`` and ``high`` (inclusive)."""
    if low == high:
        return gbnf_literal(low)
    rest = len(low) - 1
    if low[0] == high[0]:
        return f"{gbnf_literal(low[0])} {_group(_same_length_range(low[1:], high[1:]))}"
    any_rest = repeat("[0-9]", rest, rest)
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return f"[{low[0]}-{high[0]}] {any_rest}".strip()
    parts = [f"{gbnf_literal(low[0])} {_group(_same_length_range(low[1:], '9' * rest))}"]
    if int(low[0]) + 1 <= int(high[0]) - 1:
        parts.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}] {any_rest}")
    parts.append(f"{gbnf_literal(high[0])} {_group(_same_length_range('0' * rest, high[1:]))}")
    return " | ".join(_group(p) for p in parts)


def _group(expr: str) -> str:
    return f"({expr})" if (" " in expr or "|" in expr) else expr
