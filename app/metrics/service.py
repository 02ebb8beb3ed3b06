"""Metrics inputs: exchange rates, quotas per rep and period, sales & marketing spend.

Every money aggregate is reported in the organization's corporate currency, converted with
``rate_on``: the latest rate of the pair on or before the relevant day (the inverse of the
reverse pair when only that is recorded). Quotas and spend are addressed by period labels
(``2026``, ``2026-Q3``, ``2026-07``) resolved with the organization's fiscal year start;
their dates are fixed when they are recorded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.concurrency import check_version
from app.core.errors import Conflict, ValidationFailed, invalid_reference
from app.core.ids import new_id
from app.core.pagination import paginate, parse_sort
from app.core.repository import get_or_404
from app.core.tenancy import tenant_id
from app.metrics.periods import Period, parse_period
from app.metrics.schemas import (
    ExchangeRateUpsert,
    QuotaCreate,
    QuotaUpdate,
    SpendCreate,
    SpendUpdate,
)
from app.models import ExchangeRate, Organization, Quota, Spend, User

RATE_SORT = {
    "date": ExchangeRate.date,
    "from_currency": ExchangeRate.from_currency,
    "to_currency": ExchangeRate.to_currency,
}
QUOTA_SORT = {"start": Quota.start, "period": Quota.period, "created_at": Quota.created_at}
SPEND_SORT = {"start": Spend.start, "period": Spend.period, "created_at": Spend.created_at}


# --- organization context -------------------------------------------------------------


async def org_money_context(session: AsyncSession) -> tuple[str, int]:
    """The organization's corporate currency and fiscal year start month."""
    row = (
        await session.execute(
            select(Organization.currency, Organization.fiscal_year_start_month).where(
                Organization.id == tenant_id(session)
            )
        )
    ).one()
    return str(row[0]), int(row[1])


async def resolve_period(session: AsyncSession, label: str, field: str = "body.period") -> Period:
    """A period label of this organization (its fiscal year start), or a 422 naming
    ``field`` (where the label came from)."""
    _, fiscal_start = await org_money_context(session)
    try:
        return parse_period(label, fiscal_start)
    except ValueError as exc:
        raise ValidationFailed(
            str(exc),
            errors=[{"field": field, "code": "invalid_period", "detail": str(exc)}],
        ) from exc


# --- exchange rates -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateFilters:
    from_currency: str | None = None
    to_currency: str | None = None
    date_from: date | None = None
    date_to: date | None = None


async def list_rates(
    session: AsyncSession, filters: RateFilters, *, sort: str | None, limit: int, cursor: str | None
) -> tuple[list[ExchangeRate], str | None]:
    stmt = select(ExchangeRate)
    if filters.from_currency is not None:
        stmt = stmt.where(ExchangeRate.from_currency == filters.from_currency)
    if filters.to_currency is not None:
        stmt = stmt.where(ExchangeRate.to_currency == filters.to_currency)
    if filters.date_from is not None:
        stmt = stmt.where(ExchangeRate.date >= filters.date_from)
    if filters.date_to is not None:
        stmt = stmt.where(ExchangeRate.date <= filters.date_to)
    keys = parse_sort(sort, RATE_SORT, default="-date", id_column=ExchangeRate.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def upsert_rate(session: AsyncSession, data: ExchangeRateUpsert) -> tuple[ExchangeRate, bool]:
    """Record the rate of a pair on a day, replacing one recorded for that same day.
    Returns the row and whether it was created."""
    if data.from_currency == data.to_currency:
        raise ValidationFailed(
            "from_currency and to_currency must differ (a currency's rate to itself is 1)",
            errors=[{"field": "body.to_currency", "code": "same_currency"}],
        )
    existing = await session.scalar(
        select(ExchangeRate)
        .where(
            ExchangeRate.date == data.date,
            ExchangeRate.from_currency == data.from_currency,
            ExchangeRate.to_currency == data.to_currency,
        )
        .with_for_update()
    )
    if existing is not None:
        if existing.rate != data.rate:
            existing.rate = data.rate
            await session.flush()
        return existing, False
    rate = ExchangeRate(id=new_id(), **data.model_dump())
    session.add(rate)
    await session.flush()
    return rate, True


async def delete_rate(
    session: AsyncSession, rate_id: uuid.UUID, expected_version: int | None
) -> None:
    rate = await get_or_404(session, ExchangeRate, rate_id, "exchange rate", for_update=True)
    check_version("exchange rate", rate.version, expected_version)
    await session.delete(rate)
    await session.flush()


async def rate_on(
    session: AsyncSession, from_currency: str, to_currency: str, day: date
) -> Decimal | None:
    """How many ``to_currency`` one ``from_currency`` buys on ``day``: 1 for the same
    currency; else the latest rate of the pair on or before the day; else the inverse of
    the latest reverse rate on or before the day; else None (no rate known)."""
    if from_currency == to_currency:
        return Decimal(1)

    async def latest(source: str, target: str) -> Decimal | None:
        return await session.scalar(
            select(ExchangeRate.rate)
            .where(
                ExchangeRate.from_currency == source,
                ExchangeRate.to_currency == target,
                ExchangeRate.date <= day,
            )
            .order_by(ExchangeRate.date.desc())
            .limit(1)
        )

    direct = await latest(from_currency, to_currency)
    if direct is not None:
        return direct
    reverse = await latest(to_currency, from_currency)
    return None if reverse is None else Decimal(1) / reverse


# --- quotas ---------------------------------------------------------------------------


async def list_quotas(
    session: AsyncSession,
    *,
    user_id: uuid.UUID | None,
    period: str | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Quota], str | None]:
    stmt = select(Quota)
    if user_id is not None:
        stmt = stmt.where(Quota.user_id == user_id)
    if period is not None:
        stmt = stmt.where(Quota.period == period.upper())
    keys = parse_sort(sort, QUOTA_SORT, default="start", id_column=Quota.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_quota(
    session: AsyncSession, quota_id: uuid.UUID, *, for_update: bool = False
) -> Quota:
    return await get_or_404(session, Quota, quota_id, "quota", for_update=for_update)


async def create_quota(session: AsyncSession, data: QuotaCreate) -> Quota:
    period = await resolve_period(session, data.period)
    if await session.scalar(select(User.id).where(User.id == data.user_id)) is None:
        raise invalid_reference("user_id", data.user_id, "a user")
    if await session.scalar(
        select(Quota.id).where(Quota.user_id == data.user_id, Quota.period == period.label)
    ):
        raise Conflict(
            f"The user already has a quota for {period.label}; change its amount instead",
            code="duplicate_quota",
        )
    currency = data.currency or (await org_money_context(session))[0]
    quota = Quota(
        id=new_id(),
        user_id=data.user_id,
        period=period.label,
        start=period.start,
        end=period.end,
        amount=data.amount,
        currency=currency,
    )
    session.add(quota)
    await session.flush()
    return quota


async def update_quota(
    session: AsyncSession, quota_id: uuid.UUID, data: QuotaUpdate, expected_version: int | None
) -> Quota:
    quota = await get_quota(session, quota_id, for_update=True)
    check_version("quota", quota.version, expected_version)
    if data.amount is not None:
        quota.amount = data.amount
    await session.flush()
    return quota


async def delete_quota(
    session: AsyncSession, quota_id: uuid.UUID, expected_version: int | None
) -> None:
    quota = await get_quota(session, quota_id, for_update=True)
    check_version("quota", quota.version, expected_version)
    await session.delete(quota)
    await session.flush()


# --- spend ----------------------------------------------------------------------------


async def list_spend(
    session: AsyncSession,
    *,
    period: str | None,
    category: str | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Spend], str | None]:
    stmt = select(Spend)
    if period is not None:
        stmt = stmt.where(Spend.period == period.upper())
    if category is not None:
        stmt = stmt.where(Spend.category == category)
    keys = parse_sort(sort, SPEND_SORT, default="start", id_column=Spend.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_spend(
    session: AsyncSession, spend_id: uuid.UUID, *, for_update: bool = False
) -> Spend:
    return await get_or_404(session, Spend, spend_id, "spend", for_update=for_update)


async def create_spend(session: AsyncSession, data: SpendCreate) -> Spend:
    period = await resolve_period(session, data.period)
    if await session.scalar(
        select(Spend.id).where(Spend.period == period.label, Spend.category == data.category)
    ):
        raise Conflict(
            f"{data.category} spend for {period.label} is recorded; change its amount instead",
            code="duplicate_spend",
        )
    currency = data.currency or (await org_money_context(session))[0]
    spend = Spend(
        id=new_id(),
        period=period.label,
        start=period.start,
        end=period.end,
        category=data.category,
        amount=data.amount,
        currency=currency,
    )
    session.add(spend)
    await session.flush()
    return spend


async def update_spend(
    session: AsyncSession, spend_id: uuid.UUID, data: SpendUpdate, expected_version: int | None
) -> Spend:
    spend = await get_spend(session, spend_id, for_update=True)
    check_version("spend", spend.version, expected_version)
    if data.amount is not None:
        spend.amount = data.amount
    await session.flush()
    return spend


async def delete_spend(
    session: AsyncSession, spend_id: uuid.UUID, expected_version: int | None
) -> None:
    spend = await get_spend(session, spend_id, for_update=True)
    check_version("spend", spend.version, expected_version)
    await session.delete(spend)
    await session.flush()
