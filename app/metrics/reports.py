"""KPI reports: one KPI (optionally grouped), all of them at once, or a chart series."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import BadRequest
from app.core.ids import utcnow
from app.metrics.facts import FactContext, GroupBy, MetricFilters, prepare_for_aggregates
from app.metrics.kpis import KPIS, Kpi, Outcome, evaluate
from app.metrics.periods import (
    Interval,
    Period,
    parse_period,
    period_between,
    period_containing,
    previous,
    year_before,
)
from app.metrics.periods import periods_in as period_buckets
from app.metrics.service import org_money_context
from app.models import Team, User

ReportGroupBy = Literal["owner", "team", "segment", "month"]


@dataclass(frozen=True, slots=True)
class PeriodQuery:
    period: str | None = None
    from_date: date | None = None
    to_date: date | None = None


def _bad_query(field: str, detail: str, code: str = "invalid_period") -> BadRequest:
    return BadRequest(detail, code=code, errors=[{"field": f"query.{field}", "code": code}])


# A report by month, like a series, has at most this many rows.
MAX_POINTS = 120


def resolve(query: PeriodQuery, fiscal_start: int, today: date) -> Period:
    """``period`` or ``from``/``to`` (both inclusive); neither: the current fiscal quarter."""
    if query.period is not None and (query.from_date or query.to_date):
        raise _bad_query("period", "Give either period or from/to, not both")
    if query.period is not None:
        try:
            return _with_previous(parse_period(query.period, fiscal_start), "period")
        except ValueError as exc:
            raise _bad_query("period", str(exc)) from exc
    if query.from_date is None and query.to_date is None:
        return period_containing(today, "quarter", fiscal_start)
    if query.from_date is None or query.to_date is None:
        missing = "from" if query.from_date is None else "to"
        raise _bad_query(missing, "from and to are given together")
    try:
        period = period_between(query.from_date, query.to_date)
    except ValueError as exc:
        raise _bad_query("to", str(exc)) from exc
    return _with_previous(period, "from")


def _with_previous(period: Period, field: str) -> Period:
    """Growth KPIs compare a period with the one before it, CLTV looks back a year from its
    end: a period for which either would start before the year 1 is refused here, not
    halfway through the aggregates."""
    try:
        previous(period)
        year_before(period.end)
    except ValueError as exc:
        raise _bad_query(field, str(exc)) from exc
    return period


def _period_out(period: Period) -> dict[str, Any]:
    return {"label": period.label, "start": period.start, "end": period.end}


def _outcome_out(kpi: Kpi, outcome: Outcome) -> dict[str, Any]:
    return {
        "value": outcome.value,
        "unit": kpi.unit,
        "reason": outcome.reason,
        "inputs": outcome.inputs,
    }


async def _context(
    session: AsyncSession, filters: MetricFilters, group_by: GroupBy | None = None
) -> tuple[FactContext, int]:
    await prepare_for_aggregates(session)
    corporate, fiscal_start = await org_money_context(session)
    today = utcnow().date()
    return FactContext(session, corporate, today, filters, group_by), fiscal_start


def _envelope(kpi: Kpi | None, ctx: FactContext, filters: MetricFilters) -> dict[str, Any]:
    given = filters.given()
    body: dict[str, Any] = {"currency": ctx.corporate, "filters": given}
    if kpi is not None:
        body |= {"name": kpi.name, "title": kpi.title, "definition": kpi.definition}
        body["ignored_filters"] = kpi.ignored_filters(given)
    return body


async def kpi_report(
    session: AsyncSession,
    kpi: Kpi,
    query: PeriodQuery,
    filters: MetricFilters,
    group_by: ReportGroupBy | None,
) -> dict[str, Any]:
    if group_by is not None and group_by not in kpi.groupable_by():
        raise BadRequest(
            f"{kpi.name} cannot be grouped by {group_by}; it can be grouped by "
            + ", ".join(sorted(kpi.groupable_by())),
            code="unsupported_group_by",
            errors=[{"field": "query.group_by", "code": "unsupported_group_by"}],
        )
    fact_group = None if group_by in (None, "month") else group_by
    ctx, fiscal_start = await _context(session, filters, fact_group)  # type: ignore[arg-type]
    period = resolve(query, fiscal_start, ctx.today)
    body = _envelope(kpi, ctx, filters) | {"period": _period_out(period)}
    if group_by is None:
        outcome = (await evaluate(kpi, ctx, period))[None]
        return body | _outcome_out(kpi, outcome)
    body["group_by"] = group_by
    if group_by == "month":
        months = [
            Period(m.label, max(m.start, period.start), min(m.end, period.end))
            for m in period_buckets(period.start, period.last_day, "month", fiscal_start)
        ]
        if len(months) > MAX_POINTS:
            detail = f"Grouping by month covers at most {MAX_POINTS} months"
            raise _bad_query("group_by", detail, code="too_many_groups")
        await ctx.prefetch(pair for m in months for pair in kpi.fact_periods(m))
        body["groups"] = [
            {"group": m.label, "label": m.label}
            | _outcome_out(kpi, (await evaluate(kpi, ctx, m))[None])
            for m in months
        ]
        return body
    outcomes = await evaluate(kpi, ctx, period)
    labels = await _group_labels(session, group_by, outcomes)
    body["groups"] = [
        {"group": key, "label": labels.get(key)} | _outcome_out(kpi, outcomes[key])
        for key in sorted(outcomes, key=lambda k: (k is None, labels.get(k) or "", k or ""))
    ]
    return body


async def _group_labels(
    session: AsyncSession, group_by: ReportGroupBy, outcomes: dict[Any, Outcome]
) -> dict[Any, str]:
    """Display names of the groups, fetched in one statement."""
    keys = [k for k in outcomes if k is not None]
    labels: dict[Any, str] = {None: "(none)"}
    if group_by == "segment":
        return labels | {k: k for k in keys}
    model = User if group_by == "owner" else Team
    ids = [uuid.UUID(k) for k in keys]
    if ids:
        rows = await session.execute(select(model.id, model.name).where(model.id.in_(ids)))
        labels |= {str(row[0]): row[1] for row in rows}
    return labels


async def summary_report(
    session: AsyncSession, query: PeriodQuery, filters: MetricFilters
) -> dict[str, Any]:
    """Every KPI for the period; each fact is aggregated once and shared."""
    ctx, fiscal_start = await _context(session, filters)
    period = resolve(query, fiscal_start, ctx.today)
    given = filters.given()
    await ctx.prefetch(pair for kpi in KPIS for pair in kpi.fact_periods(period))
    metrics = {}
    for kpi in KPIS:
        outcome = (await evaluate(kpi, ctx, period))[None]
        metrics[kpi.name] = _outcome_out(kpi, outcome) | {
            "ignored_filters": kpi.ignored_filters(given)
        }
    return _envelope(None, ctx, filters) | {"period": _period_out(period), "metrics": metrics}


async def series_report(
    session: AsyncSession,
    kpi: Kpi,
    from_date: date,
    to_date: date,
    interval: Interval,
    filters: MetricFilters,
) -> dict[str, Any]:
    """The KPI for each whole month or fiscal quarter overlapping from … to."""
    ctx, fiscal_start = await _context(session, filters)
    try:
        buckets = period_buckets(from_date, to_date, interval, fiscal_start)
    except ValueError as exc:
        raise _bad_query("to", str(exc)) from exc
    if len(buckets) > MAX_POINTS:
        raise _bad_query(
            "from", f"A series has at most {MAX_POINTS} points", code="series_too_long"
        )
    _with_previous(buckets[0], "from")
    await ctx.prefetch(pair for bucket in buckets for pair in kpi.fact_periods(bucket))
    points = [
        {"period": _period_out(bucket)}
        | _outcome_out(kpi, (await evaluate(kpi, ctx, bucket))[None])
        for bucket in buckets
    ]
    return _envelope(kpi, ctx, filters) | {"interval": interval, "points": points}
