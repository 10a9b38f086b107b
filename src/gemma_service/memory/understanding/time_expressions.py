"""Time expressions in a question ("in March", "last week", "early April", "on 14 March",
"the week of May 5", "three days ago") as time ranges relative to an anchor moment."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sept", "sep"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        1,
    )
    for name in names
}
WEEKDAYS = {name.lower(): n for n, name in enumerate(calendar.day_name)}
NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "couple of": 2,
    "few": 3,
}
ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4}
ORDINALS.update({"4th": 4, "last": -1, "final": -1})
DAY = timedelta(days=1)


@dataclass(frozen=True)
class TimeRange:
    """A half-open span of time: ``since <= t < until``."""

    since: datetime
    until: datetime

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.since <= moment < self.until

    def hull(self, other: TimeRange) -> TimeRange:
        return TimeRange(min(self.since, other.since), max(self.until, other.until))


@dataclass(frozen=True)
class TimeMention:
    """A time expression found in a question: its range and where it stands in the text."""

    range: TimeRange
    start: int
    end: int


def _day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def day_range(day: datetime) -> TimeRange:
    start = _day(day)
    return TimeRange(start, start + DAY)


def week_range(day: datetime) -> TimeRange:
    """The Monday-to-Sunday week holding ``day``."""
    start = _day(day) - timedelta(days=day.weekday())
    return TimeRange(start, start + 7 * DAY)


def month_range(year: int, month: int) -> TimeRange:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return TimeRange(start, end)


def _year_for(month: int, day: int, year: str | None, anchor: datetime) -> int:
    """A written year, else the latest year in which that date is not after the anchor."""
    if year:
        return int(year)
    candidate = anchor.year
    if (month, day) > (anchor.month, anchor.day):
        candidate -= 1
    return candidate


def _month_of(name: str) -> int:
    return MONTHS[name.lower().rstrip(".")]


_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?:,?\s+(?P<year>(?:19|20)\d\d))?"
_DAYNUM = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
# "March 14" and "14 March" (named groups cannot repeat, so two patterns).
_DATES = (rf"{_MONTH}\s+{_DAYNUM}{_YEAR}", rf"{_DAYNUM}\s+(?:of\s+)?{_MONTH}{_YEAR}")
_COUNT = r"(?P<count>\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|couple of|few)"
_UNIT = r"(?P<unit>day|week|month)s?"

Handler = Callable[[re.Match[str], datetime], TimeRange | None]


def _date_of(match: re.Match[str], anchor: datetime) -> datetime | None:
    month, day = _month_of(match["month"]), int(match["day"])
    year = _year_for(month, day, match["year"], anchor)
    try:
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return None


def _iso_date(match: re.Match[str], anchor: datetime) -> TimeRange | None:
    try:
        return day_range(datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=UTC))
    except ValueError:
        return None


def _week_of(match: re.Match[str], anchor: datetime) -> TimeRange | None:
    day = _date_of(match, anchor)
    return week_range(day) if day else None


def _nth_week_of_month(match: re.Match[str], anchor: datetime) -> TimeRange:
    month = month_range(_month_year(match, anchor), _month_of(match["month"]))
    nth = ORDINALS[match["nth"].lower()]
    if nth == -1:
        return TimeRange(month.until - 7 * DAY, month.until)
    start = month.since + (nth - 1) * 7 * DAY
    return TimeRange(start, min(start + 7 * DAY, month.until))


def _half_of_month(match: re.Match[str], anchor: datetime) -> TimeRange:
    month = month_range(_month_year(match, anchor), _month_of(match["month"]))
    middle = month.since + 15 * DAY
    first = match["nth"].lower() in ("first", "1st")
    return TimeRange(month.since, middle) if first else TimeRange(middle, month.until)


def _part_of_month(match: re.Match[str], anchor: datetime) -> TimeRange:
    """early / beginning / start: days 1-10; mid / middle: 11-20; late / end: 21 on."""
    month = month_range(_month_year(match, anchor), _month_of(match["month"]))
    part = (match["part"] or match["part2"]).lower()
    if part in ("early", "beginning", "start"):
        return TimeRange(month.since, month.since + 10 * DAY)
    if part in ("mid", "middle"):
        return TimeRange(month.since + 10 * DAY, month.since + 20 * DAY)
    return TimeRange(month.since + 20 * DAY, month.until)


def _month_year(match: re.Match[str], anchor: datetime) -> int:
    """A written year, else the latest year whose month has begun by the anchor."""
    return _year_for(_month_of(match["month"]), 1, match["year"], anchor)


def _on_date(match: re.Match[str], anchor: datetime) -> TimeRange | None:
    day = _date_of(match, anchor)
    return day_range(day) if day else None


def _whole_month(match: re.Match[str], anchor: datetime) -> TimeRange:
    return month_range(_month_year(match, anchor), _month_of(match["month"]))


def _bare_month(match: re.Match[str], anchor: datetime) -> TimeRange:
    return _whole_month(match, anchor)


def _quarter(match: re.Match[str], anchor: datetime) -> TimeRange:
    quarter = int(match["q"])
    year = int(match["year"]) if match["year"] else anchor.year
    if not match["year"] and (quarter - 1) * 3 + 1 > anchor.month:
        year -= 1
    first = month_range(year, (quarter - 1) * 3 + 1)
    return TimeRange(first.since, month_range(year, quarter * 3).until)


def _named_day(match: re.Match[str], anchor: datetime) -> TimeRange:
    offset = {"today": 0, "yesterday": 1}[match[0].lower()]
    return day_range(anchor - offset * DAY)


def _this_or_last(match: re.Match[str], anchor: datetime) -> TimeRange:
    which, unit = match["which"].lower(), match["unit"].lower()
    back = 0 if which == "this" else 1
    if unit == "week":
        return week_range(anchor - back * 7 * DAY)
    if unit == "month":
        year, month = anchor.year, anchor.month - back
        return month_range(year - (month < 1), (month - 1) % 12 + 1)
    return TimeRange(
        datetime(anchor.year - back, 1, 1, tzinfo=UTC),
        datetime(anchor.year - back + 1, 1, 1, tzinfo=UTC),
    )


def _count(match: re.Match[str]) -> int:
    text = match["count"].lower()
    return int(text) if text.isdigit() else NUMBER_WORDS[text]


def _span_back(unit: str, count: int) -> timedelta:
    return {"day": DAY, "week": 7 * DAY, "month": 30 * DAY}[unit.lower()] * count


def _past_span(match: re.Match[str], anchor: datetime) -> TimeRange:
    """'the past two weeks', 'in the last 10 days': up to the end of the anchor's day."""
    count = _count(match) if match["count"] else 1
    end = _day(anchor) + DAY
    return TimeRange(end - _span_back(match["unit"], count), end)


def _ago(match: re.Match[str], anchor: datetime) -> TimeRange:
    moment = anchor - _span_back(match["unit"], _count(match))
    unit = match["unit"].lower()
    if unit == "day":
        return day_range(moment)
    if unit == "week":
        return week_range(moment)
    return month_range(moment.year, moment.month)


def _weekday(match: re.Match[str], anchor: datetime) -> TimeRange:
    """'on Tuesday', 'last Tuesday': the latest such day before the anchor's day (or that day
    itself for 'on')."""
    target = WEEKDAYS[match["weekday"].lower()]
    back = (anchor.weekday() - target) % 7
    if back == 0 and (match["which"] or "").lower() == "last":
        back = 7
    return day_range(anchor - back * DAY)


def _relative(match: re.Match[str], anchor: datetime) -> TimeRange:
    """'this week', 'last month', 'past week' ('past week' is the last seven days)."""
    if match["which"].lower() == "past":
        end = _day(anchor) + DAY
        return TimeRange(end - _span_back(match["unit"], 1), end)
    return _this_or_last(match, anchor)


# Most specific first: a later rule never claims text an earlier one matched.
RULES: tuple[tuple[re.Pattern[str], Handler], ...] = tuple(
    (re.compile(pattern, flags), handler)
    for pattern, flags, handler in (
        (r"\b(\d{4})-(\d{2})-(\d{2})\b", 0, _iso_date),
        *(
            (rf"\bweek\s+(?:of|starting|beginning)\s+(?:the\s+)?{date}", re.I, _week_of)
            for date in _DATES
        ),
        (
            rf"\b(?P<nth>first|1st|second|2nd|third|3rd|fourth|4th|last|final)\s+week\s+"
            rf"(?:of|in)\s+{_MONTH}{_YEAR}",
            re.I,
            _nth_week_of_month,
        ),
        (
            rf"\b(?P<nth>first|1st|second|2nd)\s+half\s+of\s+{_MONTH}{_YEAR}",
            re.I,
            _half_of_month,
        ),
        (
            rf"\b(?:(?:the\s+)?(?P<part>beginning|start|middle|end)\s+of|"
            rf"(?P<part2>early|mid|late))[\s-]+{_MONTH}{_YEAR}",
            re.I,
            _part_of_month,
        ),
        *((rf"\b{date}\b", re.I, _on_date) for date in _DATES),
        (r"\b[Qq](?P<q>[1-4])(?:\s+(?P<year>(?:19|20)\d\d))?\b", 0, _quarter),
        (r"\b(?:today|yesterday)\b", re.I, _named_day),
        (r"\b(?P<which>this|last|previous|past)\s+(?P<unit>week|month|year)\b", re.I, _relative),
        (rf"\b(?:the\s+)?(?:past|last|previous)\s+(?:{_COUNT}\s+)?{_UNIT}\b", re.I, _past_span),
        (rf"\b{_COUNT}\s+{_UNIT}\s+ago\b", re.I, _ago),
        (
            r"\b(?:(?P<which>last|on|this)\s+)?(?P<weekday>" + "|".join(WEEKDAYS) + r")\b",
            re.I,
            _weekday,
        ),
        # A month alone: after a preposition in any case, or capitalised ("May" and "March"
        # are verbs too, so those two need a preposition or a year).
        (
            rf"\b(?:in|during|of|since|from|through|throughout|for|until|before|after)\s+"
            rf"{_MONTH}{_YEAR}\b",
            re.I,
            _whole_month,
        ),
        (
            r"\b(?P<month>January|February|April|June|July|August|September|October|November|"
            r"December)" + _YEAR + r"\b",
            0,
            _bare_month,
        ),
        (rf"\b{_MONTH}\s+(?P<year>(?:19|20)\d\d)\b", re.I, _whole_month),
    )
)


# A date after these words is what was said ("slipped to the end of March", "due by Friday"),
# not when it was said.
_CONTENT_DATE = re.compile(r"\b(?:to|until|till|by|due|deadline|through)\s+(?:the\s+)?$", re.I)


def find_time_mentions(
    text: str, anchor: datetime, ignore_words: frozenset[str] = frozenset()
) -> list[TimeMention]:
    """Every time expression in ``text``, resolved against ``anchor``, in text order. A bare
    month in ``ignore_words`` (lower case; e.g. the speakers' names) is not taken as time."""
    claimed: list[tuple[int, int]] = []
    found: list[TimeMention] = []
    for pattern, handler in RULES:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e in claimed):
                continue
            if handler is _bare_month and match["month"].lower() in ignore_words:
                continue  # "June" is also a name: a bare month that names a person is not time
            if _CONTENT_DATE.search(text[max(0, start - 20) : start]):
                claimed.append((start, end))
                continue
            resolved = handler(match, anchor)
            if resolved is None:
                continue
            claimed.append((start, end))
            found.append(TimeMention(resolved, start, end))
    return sorted(found, key=lambda m: m.start)


def time_range_in(
    text: str, anchor: datetime, ignore_words: frozenset[str] = frozenset()
) -> TimeRange | None:
    """The span covering every time expression in ``text``, or None when it names no time."""
    mentions = find_time_mentions(text, anchor, ignore_words)
    if not mentions:
        return None
    covered = mentions[0].range
    for mention in mentions[1:]:
        covered = covered.hull(mention.range)
    return covered


def without_mentions(text: str, mentions: list[TimeMention]) -> str:
    """``text`` with the time expressions cut out (for the words that describe content)."""
    kept, position = [], 0
    for mention in mentions:
        kept.append(text[position : mention.start])
        position = mention.end
    kept.append(text[position:])
    return " ".join("".join(kept).split())
