"""Reporting periods: fiscal years, fiscal quarters, calendar months and explicit ranges.

Pure (standard library only): every metric, quota and spend figure is addressed by one of

- ``"2026"``     — a fiscal year;
- ``"2026-Q3"``  — a fiscal quarter (``Q1`` … ``Q4``; a lower-case ``q`` is accepted and
  normalised to ``Q``);
- ``"2026-07"``  — a month, **always the calendar month** whatever the fiscal year;
- explicit ``from``/``to`` dates (``period_between``).

Naming convention for fiscal years (the organization's ``fiscal_year_start_month`` = m):
**a fiscal year is named after the calendar year in which it starts.** With m = 1 the
fiscal year is the calendar year. With an April start (m = 4):

- ``"2026"``    = 2026-04-01 … 2027-03-31 (``end`` 2027-04-01, exclusive);
- ``"2026-Q1"`` = April–June 2026, ``"2026-Q2"`` = July–September 2026,
  ``"2026-Q3"`` = October–December 2026, ``"2026-Q4"`` = January–March 2027;
- ``"2027-01"`` = January 2027 (a calendar month), which lies in fiscal ``"2026-Q4"``.

Every ``Period`` is half-open: ``start`` inclusive, ``end`` exclusive, so a day ``d`` is in
the period when ``start <= d < end`` and consecutive periods never overlap. Malformed
labels, impossible dates and bad ranges raise ``ValueError`` with a message naming the
accepted forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Interval = Literal["month", "quarter"]

_LABEL = re.compile(r"^(?P<year>\d{4})(?:-(?:[Qq](?P<quarter>[1-4])|(?P<month>0[1-9]|1[0-2])))?$")
_FORMS = "'YYYY' (fiscal year), 'YYYY-Qn' (fiscal quarter, n = 1..4) or 'YYYY-MM' (month)"


@dataclass(frozen=True, slots=True)
class Period:
    """A labelled half-open date range ``[start, end)``."""

    label: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"period {self.label!r}: end {self.end} is not after {self.start}")

    @property
    def last_day(self) -> date:
        """The last day in the period (``end`` is exclusive)."""
        return self.end - timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end


def _check_fiscal_start(fiscal_year_start_month: int) -> None:
    if not 1 <= fiscal_year_start_month <= 12:
        raise ValueError(f"fiscal_year_start_month must be 1..12, not {fiscal_year_start_month!r}")


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after (or before) ``day``'s month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ValueError(f"date out of range: {months:+d} months from {day}")
    return date(year, month0 + 1, 1)


def _fiscal_quarter(year: int, quarter: int, fiscal_start: int) -> Period:
    start = add_months(date(year, fiscal_start, 1), 3 * (quarter - 1))
    return Period(f"{year:04d}-Q{quarter}", start, add_months(start, 3))


def _fiscal_year(year: int, fiscal_start: int) -> Period:
    start = date(year, fiscal_start, 1)
    return Period(f"{year:04d}", start, add_months(start, 12))


def _month(year: int, month: int) -> Period:
    start = date(year, month, 1)
    return Period(f"{year:04d}-{month:02d}", start, add_months(start, 1))


def parse_period(label: str, fiscal_year_start_month: int = 1) -> Period:
    """``"2026"``, ``"2026-Q3"`` or ``"2026-07"`` → the period (see the module docstring
    for the fiscal naming convention)."""
    _check_fiscal_start(fiscal_year_start_month)
    match = _LABEL.match(label.strip()) if isinstance(label, str) else None
    if match is None:
        raise ValueError(f"invalid period {label!r}: expected {_FORMS}")
    year = int(match["year"])
    if year < 1:
        raise ValueError(f"invalid period {label!r}: year must be 0001 or later")
    try:
        if match["quarter"]:
            return _fiscal_quarter(year, int(match["quarter"]), fiscal_year_start_month)
        if match["month"]:
            return _month(year, int(match["month"]))
        return _fiscal_year(year, fiscal_year_start_month)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"invalid period {label!r}: {exc}") from exc


def period_between(from_date: date, to_date: date) -> Period:
    """The explicit range ``from_date`` … ``to_date``, **both inclusive** (as a user types
    them); the period's ``end`` is the day after ``to_date``. Labelled ``"from..to"``."""
    if to_date < from_date:
        raise ValueError(f"invalid range: to {to_date} is before from {from_date}")
    try:
        end = to_date + timedelta(days=1)
    except OverflowError as exc:
        raise ValueError(f"invalid range: to {to_date} is too late") from exc
    return Period(f"{from_date.isoformat()}..{to_date.isoformat()}", from_date, end)


def _month_span(period: Period) -> int | None:
    """Whole months covered when the period runs first-of-month to first-of-month."""
    if period.start.day != 1 or period.end.day != 1:
        return None
    return (period.end.year - period.start.year) * 12 + period.end.month - period.start.month


def previous(period: Period) -> Period:
    """The period of the same length directly before ``period`` (for growth).

    Labelled periods step by their unit: the previous of ``"2026-Q1"`` is ``"2025-Q4"``,
    of ``"2026-01"`` is ``"2025-12"``, of ``"2026"`` is ``"2025"``. A first-of-month to
    first-of-month range steps back by the same number of months (so the month before
    March is all of February); any other range steps back by the same number of days."""
    try:
        match = _LABEL.match(period.label)
        months = _month_span(period)
        if match is not None and months is not None:
            year = int(match["year"])
            if match["quarter"]:
                quarter = int(match["quarter"])
                label = f"{year:04d}-Q{quarter - 1}" if quarter > 1 else f"{year - 1:04d}-Q4"
            elif match["month"]:
                start = add_months(period.start, -1)
                label = f"{start.year:04d}-{start.month:02d}"
            else:
                label = f"{year - 1:04d}"
            return Period(label, add_months(period.start, -months), period.start)
        if months is not None:
            start = add_months(period.start, -months)
        else:
            start = period.start - timedelta(days=period.days)
        last = period.start - timedelta(days=1)
        return Period(f"{start.isoformat()}..{last.isoformat()}", start, period.start)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"no period before {period.label!r}: {exc}") from exc


def year_before(day: date) -> date:
    """The same day a year earlier (the 28th for a 29 February); ``ValueError`` before the
    year 1."""
    if day.year <= 1:
        raise ValueError(f"no year before {day}")
    if day.month == 2 and day.day == 29:
        return date(day.year - 1, 2, 28)
    return day.replace(year=day.year - 1)


def fiscal_year_of(day: date, fiscal_year_start_month: int = 1) -> int:
    """The name (a year) of the fiscal year containing ``day``."""
    _check_fiscal_start(fiscal_year_start_month)
    return day.year if day.month >= fiscal_year_start_month else day.year - 1


def period_containing(day: date, interval: Interval, fiscal_year_start_month: int = 1) -> Period:
    """The calendar month or fiscal quarter that contains ``day``."""
    _check_fiscal_start(fiscal_year_start_month)
    if interval == "month":
        return _month(day.year, day.month)
    if interval == "quarter":
        year = fiscal_year_of(day, fiscal_year_start_month)
        offset = (day.month - fiscal_year_start_month) % 12
        return _fiscal_quarter(year, offset // 3 + 1, fiscal_year_start_month)
    raise ValueError(f"invalid interval {interval!r}: expected 'month' or 'quarter'")


def periods_in(
    from_date: date, to_date: date, interval: Interval, fiscal_year_start_month: int = 1
) -> list[Period]:
    """The whole calendar months or fiscal quarters that overlap ``from_date`` …
    ``to_date`` (both inclusive), in order: the buckets of a chart series. The first and
    last bucket are not clipped to the range."""
    if to_date < from_date:
        raise ValueError(f"invalid range: to {to_date} is before from {from_date}")
    current = period_containing(from_date, interval, fiscal_year_start_month)
    result = [current]
    while current.end <= to_date:
        current = period_containing(current.end, interval, fiscal_year_start_month)
        result.append(current)
    return result
