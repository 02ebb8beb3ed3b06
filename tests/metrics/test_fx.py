"""The SQL converter agrees with rate_on, and its rate CTEs stay inside the tenant."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import Date, Numeric, cast, func, literal, select, union_all

from app.core.tenancy import Actor, bind_tenant
from app.metrics.facts import FactContext, MetricFilters
from app.metrics.fx import Converter
from app.metrics.service import rate_on
from tests.factories import Tenant, create


async def _rate(client: AsyncClient, tenant: Tenant, day: str, pair: str, rate: str) -> None:
    source, target = pair.split("/")
    body = {"date": day, "from_currency": source, "to_currency": target, "rate": rate}
    await create(client, "/v1/exchange-rates", tenant.headers, body)


async def test_sql_conversion_matches_rate_on_and_is_tenant_scoped(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _rate(client, tenant, "2026-01-01", "EUR/TRY", "35")
    await _rate(client, tenant, "2026-03-01", "EUR/TRY", "36")
    await _rate(client, tenant, "2026-02-01", "TRY/USD", "0.025")  # USD only via reverse
    await _rate(client, tenant, "2026-03-01", "TRY/USD", "0.02")  # a second reverse rate
    await _rate(client, tenant, "2026-04-01", "USD/TRY", "41")  # then a direct rate
    # Another tenant's rates must never leak into this tenant's conversions.
    await _rate(client, other_tenant, "2025-01-01", "GBP/TRY", "40")
    await _rate(client, other_tenant, "2026-02-15", "EUR/TRY", "99")

    cases = [
        ("EUR", date(2025, 12, 31)),
        ("EUR", date(2026, 1, 1)),
        ("EUR", date(2026, 2, 20)),
        ("EUR", date(2026, 3, 1)),
        ("USD", date(2026, 1, 31)),
        ("USD", date(2026, 2, 1)),
        ("USD", date(2026, 4, 2)),
        ("GBP", date(2026, 6, 1)),
        ("TRY", date(2020, 1, 1)),
        # First, middle and last day of closed ranges (listed day by day), then the open one.
        ("EUR", date(2026, 1, 15)),
        ("EUR", date(2026, 2, 28)),
        ("EUR", date(2030, 1, 1)),
        ("USD", date(2026, 2, 28)),
        ("USD", date(2026, 3, 1)),
        ("USD", date(2026, 3, 31)),
    ]
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        facts = union_all(
            *(
                select(
                    literal(i).label("i"),
                    literal(cur).label("currency"),
                    cast(literal(day), Date).label("day"),
                )
                for i, (cur, day) in enumerate(cases)
            )
        ).subquery()
        stmt, rate = Converter("TRY").join_rate(select(facts.c.i), facts.c.currency, facts.c.day)
        rows = {i: r for i, r in (await session.execute(stmt.add_columns(rate))).all()}
        expected = [await rate_on(session, cur, "TRY", day) for cur, day in cases]
    got = [rows[i] for i in range(len(cases))]
    assert [None if g is None else Decimal(g) for g in got] == [
        None if e is None else Decimal(e) for e in expected
    ]
    assert got[2] == Decimal(35) and got[5] == Decimal(40) and got[7] is None
    assert got[10] == Decimal(35) and got[11] == Decimal(36)
    assert got[12] == Decimal(40) and got[13] == got[14] == Decimal(50)


async def test_converted_sums_convert_per_currency_and_day(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    """``converted`` sums per currency and day before converting (the rows in the
    corporate currency on all their days together): unconverted rows and plain sums
    included, the figures are those of converting each row."""
    await _rate(client, tenant, "2026-01-01", "EUR/TRY", "35.5")
    await _rate(client, tenant, "2026-02-01", "EUR/TRY", "36.25")
    await _rate(client, tenant, "2026-01-15", "TRY/USD", "0.025")
    rows = [  # group, currency, day, amount, won
        ("a", "EUR", date(2026, 1, 31), "100.10", True),
        ("a", "EUR", date(2026, 2, 1), "200.20", False),
        ("a", "USD", date(2026, 1, 20), "300.30", True),
        ("a", "USD", date(2026, 1, 2), "400.40", True),  # before any USD rate
        ("b", "TRY", date(2026, 1, 5), "500.50", True),
        ("b", "TRY", date(2026, 2, 20), "99.50", True),
        ("b", "GBP", date(2026, 2, 5), "600.60", False),  # no GBP rate at all
        ("b", "EUR", date(2026, 3, 1), None, True),
    ]
    facts = union_all(
        *(
            select(
                literal(group).label("k"),
                literal(currency).label("currency"),
                cast(literal(day), Date).label("day"),
                cast(literal(amount), Numeric(18, 2)).label("amount"),
                literal(won).label("won"),
            )
            for group, currency, day, amount, won in rows
        )
    ).subquery()
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        ctx = FactContext(session, "TRY", date(2026, 3, 1), MetricFilters())
        stmt = ctx.converted(
            select().select_from(facts),
            {"group_key": facts.c.k},
            currency=facts.c.currency,
            day=facts.c.day,
            money={"won": (facts.c.amount, facts.c.won), "all": (facts.c.amount, None)},
            sums={"deals": func.count(), "won_deals": func.count().filter(facts.c.won)},
        )
        got = await ctx.keyed(stmt)
    a_won = Decimal("100.10") * Decimal("35.5") + Decimal("300.30") * 40
    assert got["a"] == {
        "won": a_won,
        "won_unconverted": 1,
        "all": a_won + Decimal("200.20") * Decimal("36.25"),
        "all_unconverted": 1,
        "deals": 4,
        "won_deals": 3,
    }
    assert got["b"] == {
        "won": Decimal("600.00"),
        "won_unconverted": 0,
        "all": Decimal("600.00"),
        "all_unconverted": 1,
        "deals": 4,
        "won_deals": 3,
    }
