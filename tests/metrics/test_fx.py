"""The SQL converter agrees with rate_on, and its rate CTEs stay inside the tenant."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import Date, cast, literal, select, union_all

from app.core.tenancy import Actor, bind_tenant
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
