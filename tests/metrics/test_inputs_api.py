"""Metrics inputs over HTTP: exchange rates, quotas, spend; and rate_on."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update

from app.core.tenancy import Actor, bind_tenant
from app.metrics.service import rate_on
from app.models import Organization
from tests.factories import Tenant, assert_problem, create, create_user, key_for


async def _set_fiscal_start(app: FastAPI, tenant: Tenant, month: int) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(Organization)
            .where(Organization.id == tenant.organization_id)
            .values(fiscal_year_start_month=month)
        )


# --- exchange rates -------------------------------------------------------------------


async def test_exchange_rates_upsert_list_delete(client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    body = {"date": "2026-07-01", "from_currency": "EUR", "to_currency": "TRY", "rate": "38.5"}
    created = await client.post("/v1/exchange-rates", json=body, headers=h)
    assert created.status_code == 201, created.text
    rate = created.json()
    assert rate["rate"] == "38.5000000000" and rate["version"] == 1
    # Same pair and day: replaced (200), not duplicated.
    replaced = await client.post(
        "/v1/exchange-rates", json={**body, "rate": "39.1234567891"}, headers=h
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["id"] == rate["id"]
    assert replaced.json()["rate"] == "39.1234567891"
    await create(
        client,
        "/v1/exchange-rates",
        h,
        {"date": "2026-08-01", "from_currency": "EUR", "to_currency": "TRY", "rate": "40"},
    )
    await create(
        client,
        "/v1/exchange-rates",
        h,
        {"date": "2026-07-15", "from_currency": "USD", "to_currency": "TRY", "rate": "34"},
    )

    listed = (await client.get("/v1/exchange-rates", headers=h)).json()
    assert [r["date"] for r in listed["data"]] == ["2026-08-01", "2026-07-15", "2026-07-01"]
    eur = (await client.get("/v1/exchange-rates?from_currency=EUR", headers=h)).json()
    assert len(eur["data"]) == 2
    july = (
        await client.get("/v1/exchange-rates?date_from=2026-07-02&date_to=2026-07-31", headers=h)
    ).json()
    assert [r["from_currency"] for r in july["data"]] == ["USD"]
    to_usd = (await client.get("/v1/exchange-rates?to_currency=USD", headers=h)).json()
    assert to_usd["data"] == []
    page = (await client.get("/v1/exchange-rates?limit=2&sort=date", headers=h)).json()
    assert len(page["data"]) == 2 and page["next_cursor"]

    deleted = await client.delete(f"/v1/exchange-rates/{rate['id']}", headers=h)
    assert deleted.status_code == 204
    assert_problem(await client.delete(f"/v1/exchange-rates/{rate['id']}", headers=h), 404)
    assert len((await client.get("/v1/exchange-rates", headers=h)).json()["data"]) == 2


async def test_exchange_rate_validation(client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    good = {"date": "2026-07-01", "from_currency": "EUR", "to_currency": "TRY", "rate": "38.5"}
    for bad in (
        {"from_currency": "eur"},
        {"to_currency": "EURO"},
        {"to_currency": "EUR"},  # same currency
        {"rate": "0"},
        {"rate": "-1"},
        {"rate": "1.12345678901"},  # more than 10 decimals
        {"date": "2026-13-01"},
    ):
        response = await client.post("/v1/exchange-rates", json={**good, **bad}, headers=h)
        assert_problem(response, 422)
    assert_problem(await client.get("/v1/exchange-rates?from_currency=eur", headers=h), 400)


async def test_rate_on(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    for day, rate in (("2026-07-01", "38"), ("2026-08-01", "40")):
        await create(
            client,
            "/v1/exchange-rates",
            h,
            {"date": day, "from_currency": "EUR", "to_currency": "TRY", "rate": rate},
        )
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        # Same currency: 1, even without any rate.
        assert await rate_on(session, "TRY", "TRY", date(2020, 1, 1)) == Decimal(1)
        # Direct: the latest rate on or before the day.
        assert await rate_on(session, "EUR", "TRY", date(2026, 7, 1)) == Decimal("38")
        assert await rate_on(session, "EUR", "TRY", date(2026, 7, 31)) == Decimal("38")
        assert await rate_on(session, "EUR", "TRY", date(2026, 8, 1)) == Decimal("40")
        assert await rate_on(session, "EUR", "TRY", date(2027, 1, 1)) == Decimal("40")
        # Inverse, when only the reverse pair is recorded.
        inverse = await rate_on(session, "TRY", "EUR", date(2026, 8, 15))
        assert inverse == Decimal(1) / Decimal(40) == Decimal("0.025")
        # No rate: before the first one, or an unknown pair.
        assert await rate_on(session, "EUR", "TRY", date(2026, 6, 30)) is None
        assert await rate_on(session, "TRY", "EUR", date(2026, 6, 30)) is None
        assert await rate_on(session, "USD", "TRY", date(2026, 8, 1)) is None


async def test_rate_on_prefers_the_direct_pair(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    for body in (
        {"date": "2026-07-01", "from_currency": "USD", "to_currency": "TRY", "rate": "30"},
        {"date": "2026-07-10", "from_currency": "TRY", "to_currency": "USD", "rate": "0.04"},
    ):
        await create(client, "/v1/exchange-rates", h, body)
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        assert await rate_on(session, "USD", "TRY", date(2026, 7, 20)) == Decimal("30")
        assert await rate_on(session, "TRY", "USD", date(2026, 7, 5)) == Decimal(1) / 30
        assert await rate_on(session, "TRY", "USD", date(2026, 7, 10)) == Decimal("0.04")


# --- quotas ---------------------------------------------------------------------------


async def test_quota_crud(client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    rep = await create_user(client, h, role="rep")
    quota = await create(
        client,
        "/v1/quotas",
        h,
        {"user_id": rep["id"], "period": "2026-q3", "amount": "250000"},
    )
    assert quota["period"] == "2026-Q3"
    assert (quota["start"], quota["end"]) == ("2026-07-01", "2026-10-01")
    assert quota["amount"] == "250000.00"
    assert quota["currency"] == "TRY"  # the corporate currency by default
    monthly = await create(
        client,
        "/v1/quotas",
        h,
        {"user_id": rep["id"], "period": "2026-07", "amount": "80000", "currency": "EUR"},
    )
    assert monthly["currency"] == "EUR"

    dup = await client.post(
        "/v1/quotas",
        json={"user_id": rep["id"], "period": "2026-Q3", "amount": "1"},
        headers=h,
    )
    assert_problem(dup, 409, "duplicate_quota")

    got = await client.get(f"/v1/quotas/{quota['id']}", headers=h)
    assert got.status_code == 200 and got.json() == quota
    listed = (await client.get(f"/v1/quotas?user_id={rep['id']}", headers=h)).json()
    assert [q["period"] for q in listed["data"]] == ["2026-Q3", "2026-07"]
    by_period = (await client.get("/v1/quotas?period=2026-07", headers=h)).json()
    assert [q["id"] for q in by_period["data"]] == [monthly["id"]]

    patched = await client.patch(
        f"/v1/quotas/{quota['id']}", json={"amount": "300000.5"}, headers=h
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["amount"] == "300000.50" and patched.json()["version"] == 2
    stale = await client.patch(
        f"/v1/quotas/{quota['id']}", json={"amount": "1"}, headers={**h, "If-Match": '"1"'}
    )
    assert_problem(stale, 412)
    assert_problem(
        await client.patch(f"/v1/quotas/{quota['id']}", json={"amount": None}, headers=h), 422
    )
    assert_problem(
        await client.patch(f"/v1/quotas/{quota['id']}", json={"period": "2027"}, headers=h), 422
    )

    assert (await client.delete(f"/v1/quotas/{quota['id']}", headers=h)).status_code == 204
    assert_problem(await client.get(f"/v1/quotas/{quota['id']}", headers=h), 404)


async def test_quota_period_follows_the_fiscal_year(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    await _set_fiscal_start(app, tenant, 4)
    h = tenant.headers
    rep = await create_user(client, h, role="rep")
    q1 = await create(
        client, "/v1/quotas", h, {"user_id": rep["id"], "period": "2026-Q1", "amount": "1"}
    )
    assert (q1["start"], q1["end"]) == ("2026-04-01", "2026-07-01")
    year = await create(
        client, "/v1/quotas", h, {"user_id": rep["id"], "period": "2026", "amount": "4"}
    )
    assert (year["start"], year["end"]) == ("2026-04-01", "2027-04-01")
    month = await create(
        client, "/v1/quotas", h, {"user_id": rep["id"], "period": "2027-01", "amount": "1"}
    )
    assert (month["start"], month["end"]) == ("2027-01-01", "2027-02-01")


async def test_quota_validation(client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    rep = await create_user(client, h, role="rep")
    good = {"user_id": rep["id"], "period": "2026-Q3", "amount": "100"}
    for bad in (
        {"period": "2026-Q5"},
        {"period": "2026-13"},
        {"period": "FY2026"},
        {"amount": "-1"},
        {"amount": "1.234"},
        {"currency": "try"},
        {"user_id": "00000000-0000-0000-0000-000000000000"},
    ):
        response = await client.post("/v1/quotas", json={**good, **bad}, headers=h)
        assert_problem(response, 422)
    bad_period = await client.post("/v1/quotas", json={**good, "period": "2026-Q5"}, headers=h)
    assert "2026-Q5" in bad_period.json()["detail"]


async def test_writes_need_a_manager(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    rep = await key_for(app, tenant, scopes=["metrics:write"], role="rep")
    manager = await key_for(app, tenant, scopes=["metrics:write"], role="manager")
    reader = await key_for(app, tenant, scopes=["metrics:read"])
    other = await key_for(app, tenant, scopes=["accounts:read"])
    body = {"period": "2026", "category": "sales", "amount": "10"}
    assert_problem(await client.post("/v1/spend", json=body, headers=rep), 403)
    assert_problem(await client.post("/v1/spend", json=body, headers=reader), 403)
    assert (await client.post("/v1/spend", json=body, headers=manager)).status_code == 201
    assert (await client.get("/v1/spend", headers=rep)).status_code == 200
    assert (await client.get("/v1/quotas", headers=reader)).status_code == 200
    assert_problem(await client.get("/v1/exchange-rates", headers=other), 403)


# --- spend ----------------------------------------------------------------------------


async def test_spend_crud_and_validation(client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    sales = await create(
        client, "/v1/spend", h, {"period": "2026-Q1", "category": "sales", "amount": "50000"}
    )
    assert (sales["start"], sales["end"], sales["currency"]) == (
        "2026-01-01",
        "2026-04-01",
        "TRY",
    )
    marketing = await create(
        client,
        "/v1/spend",
        h,
        {"period": "2026-Q1", "category": "marketing", "amount": "20000.10", "currency": "EUR"},
    )
    assert marketing["amount"] == "20000.10"
    dup = await client.post(
        "/v1/spend", json={"period": "2026-q1", "category": "sales", "amount": "1"}, headers=h
    )
    assert_problem(dup, 409, "duplicate_spend")
    for bad in (
        {"category": "support"},
        {"amount": "-5"},
        {"period": "2026-Q0"},
        {"period": "2026-7"},
        {"currency": "EURO"},
    ):
        body = {"period": "2026-Q2", "category": "sales", "amount": "1", **bad}
        assert_problem(await client.post("/v1/spend", json=body, headers=h), 422)

    listed = (await client.get("/v1/spend?period=2026-Q1", headers=h)).json()
    assert {s["category"] for s in listed["data"]} == {"sales", "marketing"}
    only = (await client.get("/v1/spend?category=marketing", headers=h)).json()
    assert [s["id"] for s in only["data"]] == [marketing["id"]]
    assert_problem(await client.get("/v1/spend?category=support", headers=h), 400)

    patched = await client.patch(f"/v1/spend/{sales['id']}", json={"amount": "55000"}, headers=h)
    assert patched.status_code == 200 and patched.json()["amount"] == "55000.00"
    assert_problem(
        await client.patch(f"/v1/spend/{sales['id']}", json={"amount": "-1"}, headers=h), 422
    )
    got = await client.get(f"/v1/spend/{sales['id']}", headers=h)
    assert got.json()["amount"] == "55000.00"
    assert (await client.delete(f"/v1/spend/{sales['id']}", headers=h)).status_code == 204
    assert_problem(await client.delete(f"/v1/spend/{sales['id']}", headers=h), 404)


# --- tenant isolation -----------------------------------------------------------------


async def test_tenant_isolation(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    h, o = tenant.headers, other_tenant.headers
    rep = await create_user(client, h, role="rep")
    quota = await create(
        client, "/v1/quotas", h, {"user_id": rep["id"], "period": "2026", "amount": "1"}
    )
    spend = await create(
        client, "/v1/spend", h, {"period": "2026", "category": "sales", "amount": "1"}
    )
    rate = await create(
        client,
        "/v1/exchange-rates",
        h,
        {"date": "2026-01-01", "from_currency": "EUR", "to_currency": "TRY", "rate": "35"},
    )
    for path in ("/v1/quotas", "/v1/spend", "/v1/exchange-rates"):
        assert (await client.get(path, headers=o)).json()["data"] == []
    assert_problem(await client.get(f"/v1/quotas/{quota['id']}", headers=o), 404)
    assert_problem(
        await client.patch(f"/v1/quotas/{quota['id']}", json={"amount": "2"}, headers=o), 404
    )
    assert_problem(await client.delete(f"/v1/quotas/{quota['id']}", headers=o), 404)
    assert_problem(await client.get(f"/v1/spend/{spend['id']}", headers=o), 404)
    assert_problem(
        await client.patch(f"/v1/spend/{spend['id']}", json={"amount": "2"}, headers=o), 404
    )
    assert_problem(await client.delete(f"/v1/spend/{spend['id']}", headers=o), 404)
    assert_problem(await client.delete(f"/v1/exchange-rates/{rate['id']}", headers=o), 404)
    # Another tenant's user cannot be given a quota here.
    foreign = await client.post(
        "/v1/quotas", json={"user_id": rep["id"], "period": "2026", "amount": "1"}, headers=o
    )
    assert_problem(foreign, 422)
    # Each tenant keeps its own rates, periods and categories.
    await create(client, "/v1/spend", o, {"period": "2026", "category": "sales", "amount": "9"})
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, other_tenant.organization_id, Actor())
        assert await rate_on(session, "EUR", "TRY", date(2026, 6, 1)) is None
    assert (await client.get(f"/v1/quotas/{quota['id']}", headers=h)).status_code == 200
