"""Period labels, fiscal quarters, explicit ranges, previous periods and chart buckets."""

from __future__ import annotations

from datetime import date
from itertools import pairwise

import pytest

from app.metrics.periods import (
    Period,
    fiscal_year_of,
    parse_period,
    period_between,
    period_containing,
    periods_in,
    previous,
)


@pytest.mark.parametrize(
    ("label", "start", "end"),
    [
        ("2026", date(2026, 1, 1), date(2027, 1, 1)),
        ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1)),
        ("2026-Q2", date(2026, 4, 1), date(2026, 7, 1)),
        ("2026-Q3", date(2026, 7, 1), date(2026, 10, 1)),
        ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1)),
        ("2026-01", date(2026, 1, 1), date(2026, 2, 1)),
        ("2026-07", date(2026, 7, 1), date(2026, 8, 1)),
        ("2026-12", date(2026, 12, 1), date(2027, 1, 1)),
    ],
)
def test_calendar_fiscal_year(label: str, start: date, end: date) -> None:
    assert parse_period(label) == Period(label, start, end)
    assert parse_period(label, 1) == Period(label, start, end)


@pytest.mark.parametrize(
    ("label", "start", "end"),
    [
        ("2026", date(2026, 4, 1), date(2027, 4, 1)),
        ("2026-Q1", date(2026, 4, 1), date(2026, 7, 1)),
        ("2026-Q2", date(2026, 7, 1), date(2026, 10, 1)),
        ("2026-Q3", date(2026, 10, 1), date(2027, 1, 1)),
        ("2026-Q4", date(2027, 1, 1), date(2027, 4, 1)),
        # A month label is always the calendar month.
        ("2026-01", date(2026, 1, 1), date(2026, 2, 1)),
        ("2027-03", date(2027, 3, 1), date(2027, 4, 1)),
    ],
)
def test_april_fiscal_year_is_named_after_its_starting_year(
    label: str, start: date, end: date
) -> None:
    assert parse_period(label, 4) == Period(label, start, end)


def test_other_fiscal_starts() -> None:
    assert parse_period("2026", 7) == Period("2026", date(2026, 7, 1), date(2027, 7, 1))
    assert parse_period("2026-Q4", 12) == Period("2026-Q4", date(2027, 9, 1), date(2027, 12, 1))
    assert parse_period("2026-Q2", 11).start == date(2027, 2, 1)


def test_leap_years() -> None:
    feb = parse_period("2024-02")
    assert feb.end == date(2024, 3, 1) and feb.days == 29 and feb.last_day == date(2024, 2, 29)
    assert parse_period("2023-02").days == 28
    assert parse_period("2024").days == 366
    assert parse_period("2023").days == 365
    # The April-started FY 2023 contains 29 February 2024.
    assert parse_period("2023", 4).days == 366
    assert date(2024, 2, 29) in parse_period("2023-Q4", 4)
    assert parse_period("2024-Q1").days == 91 and parse_period("2023-Q1").days == 90


def test_membership_is_half_open() -> None:
    q = parse_period("2026-Q3")
    assert date(2026, 7, 1) in q and date(2026, 9, 30) in q
    assert date(2026, 10, 1) not in q and date(2026, 6, 30) not in q
    assert "2026-07-01" not in q


def test_lower_case_quarter_is_normalised() -> None:
    assert parse_period("2026-q3").label == "2026-Q3"
    assert parse_period(" 2026-07 ").label == "2026-07"


@pytest.mark.parametrize(
    "label",
    [
        "",
        "26",
        "20261",
        "2026-Q0",
        "2026-Q5",
        "2026-13",
        "2026-00",
        "2026-7",
        "2026-H1",
        "Q3-2026",
        "2026/07",
        "2026-07-01",
        "0000",
        "abcd",
        "2026-Q",
        "2026-",
    ],
)
def test_bad_labels(label: str) -> None:
    with pytest.raises(ValueError, match="invalid period"):
        parse_period(label)


def test_bad_fiscal_start_and_overflow() -> None:
    with pytest.raises(ValueError, match="fiscal_year_start_month"):
        parse_period("2026", 13)
    with pytest.raises(ValueError, match="fiscal_year_start_month"):
        parse_period("2026", 0)
    with pytest.raises(ValueError, match="invalid period"):
        parse_period("9999", 4)  # would end in year 10000


def test_period_between_is_inclusive() -> None:
    p = period_between(date(2026, 1, 15), date(2026, 2, 14))
    assert p == Period("2026-01-15..2026-02-14", date(2026, 1, 15), date(2026, 2, 15))
    assert p.days == 31
    one_day = period_between(date(2026, 12, 31), date(2026, 12, 31))
    assert one_day.end == date(2027, 1, 1) and one_day.days == 1
    with pytest.raises(ValueError, match="before"):
        period_between(date(2026, 2, 1), date(2026, 1, 31))
    with pytest.raises(ValueError, match="end"):
        Period("x", date(2026, 1, 1), date(2026, 1, 1))


@pytest.mark.parametrize(
    ("label", "fiscal_start", "expected", "start", "end"),
    [
        ("2026-Q1", 1, "2025-Q4", date(2025, 10, 1), date(2026, 1, 1)),
        ("2026-Q3", 1, "2026-Q2", date(2026, 4, 1), date(2026, 7, 1)),
        ("2026-Q1", 4, "2025-Q4", date(2026, 1, 1), date(2026, 4, 1)),
        ("2026-Q4", 4, "2026-Q3", date(2026, 10, 1), date(2027, 1, 1)),
        ("2026-01", 1, "2025-12", date(2025, 12, 1), date(2026, 1, 1)),
        ("2024-03", 1, "2024-02", date(2024, 2, 1), date(2024, 3, 1)),
        ("2026", 1, "2025", date(2025, 1, 1), date(2026, 1, 1)),
        ("2026", 4, "2025", date(2025, 4, 1), date(2026, 4, 1)),
    ],
)
def test_previous_of_labelled_periods(
    label: str, fiscal_start: int, expected: str, start: date, end: date
) -> None:
    assert previous(parse_period(label, fiscal_start)) == Period(expected, start, end)


def test_previous_is_parseable_and_chains() -> None:
    q = parse_period("2026-Q2", 4)
    before = previous(previous(q))
    assert before == parse_period("2025-Q4", 4)


def test_previous_of_explicit_ranges() -> None:
    # Whole months step back by months: the two months before March–April are Jan–Feb.
    months = period_between(date(2026, 3, 1), date(2026, 4, 30))
    assert previous(months) == Period("2026-01-01..2026-02-28", date(2026, 1, 1), date(2026, 3, 1))
    # Any other range steps back by days, across a year boundary.
    days = period_between(date(2026, 1, 5), date(2026, 1, 14))
    assert previous(days) == Period("2025-12-26..2026-01-04", date(2025, 12, 26), date(2026, 1, 5))
    assert previous(days).days == days.days


def test_fiscal_year_of_and_containing() -> None:
    assert fiscal_year_of(date(2027, 3, 31), 4) == 2026
    assert fiscal_year_of(date(2027, 4, 1), 4) == 2027
    assert fiscal_year_of(date(2026, 12, 31), 1) == 2026
    assert period_containing(date(2027, 2, 10), "quarter", 4).label == "2026-Q4"
    assert period_containing(date(2026, 5, 31), "quarter", 1).label == "2026-Q2"
    assert period_containing(date(2024, 2, 29), "month").label == "2024-02"
    with pytest.raises(ValueError, match="interval"):
        period_containing(date(2026, 1, 1), "week", 1)  # type: ignore[arg-type]


def test_periods_in_months_across_a_year_boundary() -> None:
    buckets = periods_in(date(2025, 11, 15), date(2026, 2, 1), "month", 4)
    assert [b.label for b in buckets] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert buckets[0].start == date(2025, 11, 1) and buckets[-1].end == date(2026, 3, 1)


def test_periods_in_fiscal_quarters() -> None:
    buckets = periods_in(date(2026, 3, 1), date(2027, 3, 31), "quarter", 4)
    assert [b.label for b in buckets] == ["2025-Q4", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    for a, b in pairwise(buckets):
        assert a.end == b.start
    calendar = periods_in(date(2026, 1, 1), date(2026, 12, 31), "quarter", 1)
    assert [b.label for b in calendar] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]


def test_periods_in_single_day_and_bad_range() -> None:
    assert [p.label for p in periods_in(date(2026, 7, 1), date(2026, 7, 1), "month")] == ["2026-07"]
    with pytest.raises(ValueError, match="before"):
        periods_in(date(2026, 7, 2), date(2026, 7, 1), "month")
