"""SPEC §11's worked examples, each reproduced exactly through /v1/metrics."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from app.core.ids import new_id
from app.models import ForecastSubmission
from tests.factories import Tenant, create
from tests.metrics.builders import Facts, at

Q1 = date(2026, 1, 1)
Q2 = date(2026, 4, 1)


async def metric(
    client: AsyncClient, tenant: Tenant, name: str, period: str = "2026-Q2", **params: Any
) -> dict[str, Any]:
    response = await client.get(
        f"/v1/metrics/{name}", params={"period": period, **params}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_revenue_and_average_deal_size(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    facts = Facts(app, tenant)
    await facts.deals(100, amount=10_000, close_date=Q2 + timedelta(days=10))
    await facts.deals(50, amount=10_000, close_date=Q1 + timedelta(days=3))
    # Not revenue of Q2: lost, open, won in another quarter, another tenant.
    await facts.deals(5, stage="closed_lost", amount=99_999, close_date=Q2)
    await facts.deals(5, stage="negotiation", amount=99_999, close_date=Q2)
    await facts.deals(1, amount=99_999, close_date=date(2026, 7, 1))
    await Facts(app, other_tenant).deals(3, amount=99_999, close_date=Q2)

    revenue = await metric(client, tenant, "revenue")
    assert revenue["value"] == "1000000.00"
    assert revenue["unit"] == "currency" and revenue["currency"] == "TRY"
    assert revenue["inputs"]["won_count"] == 100
    assert revenue["period"] == {"label": "2026-Q2", "start": "2026-04-01", "end": "2026-07-01"}

    q1_revenue = await metric(client, tenant, "revenue", "2026-Q1")
    assert q1_revenue["value"] == "500000.00"
    average = await metric(client, tenant, "average-deal-size", "2026-Q1")
    assert average["value"] == "10000.00"
    assert average["inputs"] == {"numerator": "500000.00", "denominator": 50}


async def test_revenue_growth(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    facts = Facts(app, tenant)
    await facts.deals(8, amount=100_000, close_date=Q1 + timedelta(days=40))
    await facts.deals(4, amount=250_000, close_date=Q2 + timedelta(days=40))
    growth = await metric(client, tenant, "revenue-growth")
    assert growth["value"] == "25.00" and growth["unit"] == "percent"
    assert growth["inputs"]["revenue"] == "1000000.00"
    assert growth["inputs"]["previous_revenue"] == "800000.00"
    assert growth["inputs"]["previous_period"]["label"] == "2026-Q1"


async def test_lead_conversion_and_qualified_leads(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    facts = Facts(app, tenant)
    created = at(Q2 + timedelta(days=5))
    await facts.leads(200, created_at=created, status="converted", converted_at=created)
    await facts.leads(150, created_at=created, status="sql", sql_at=created)
    await facts.leads(650, created_at=created)
    await facts.leads(7, created_at=at(Q1), status="converted", converted_at=created)

    conversion = await metric(client, tenant, "lead-conversion-rate")
    assert conversion["value"] == "20.00"
    assert conversion["inputs"] == {"numerator": 200, "denominator": 1000}

    qualified = await metric(client, tenant, "qualified-leads")
    assert qualified["value"] == 150 and qualified["unit"] == "count"
    assert qualified["inputs"]["reached_sql"] == 150


async def test_opportunity_conversion(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    facts = Facts(app, tenant)
    created = at(Q2 + timedelta(days=1))
    await facts.deals(25, created_at=created, close_date=Q2 + timedelta(days=30))
    await facts.deals(25, stage="closed_lost", created_at=created, close_date=Q2)
    await facts.deals(50, stage="proposal", created_at=created, close_date=None)
    await facts.deals(9, created_at=at(Q1), close_date=Q2)  # created before the period

    conversion = await metric(client, tenant, "opportunity-conversion-rate")
    assert conversion["value"] == "25.00"
    assert conversion["inputs"] == {"numerator": 25, "denominator": 100}


async def test_sales_cycle_from_first_contact(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    facts = Facts(app, tenant)
    close = Q2 + timedelta(days=60)
    # Five deals from leads first contacted 30 days before closing (the deal itself was
    # created later), five created directly 10 days before: 5×30 + 5×10 = 200 days.
    leads = await facts.leads(5, created_at=at(close - timedelta(days=30)))
    for lead_id in leads:
        await facts.deals(
            1, close_date=close, created_at=at(close - timedelta(days=3)), lead_id=lead_id
        )
    await facts.deals(5, close_date=close, created_at=at(close - timedelta(days=10)))
    cycle = await metric(client, tenant, "sales-cycle-length")
    assert cycle["value"] == "20.00" and cycle["unit"] == "days"
    assert cycle["inputs"] == {"numerator": 200, "denominator": 10}


async def test_rep_productivity_time_selling_and_cltv(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    facts = Facts(app, tenant)
    for i in range(20):
        rep = await facts.user(f"Rep {i}")
        await create(
            client,
            "/v1/quotas",
            tenant.headers,
            {"user_id": str(rep), "period": "2026-Q2", "amount": "60000"},
        )
        await facts.deals(1, amount=50_000, close_date=Q2 + timedelta(days=i), owner_id=rep)
    productivity = await metric(client, tenant, "rep-productivity")
    assert productivity["value"] == "50000.00"
    assert productivity["inputs"] == {"numerator": "1000000.00", "denominator": 20}

    day = at(Q2 + timedelta(days=3))
    await facts.activity(30 * 60, selling=True, occurred_at=day)
    await facts.activity(10 * 60, selling=False, occurred_at=day)
    await facts.activity(99 * 60, selling=True, occurred_at=at(Q1))
    selling = await metric(client, tenant, "time-spent-selling")
    assert selling["value"] == "75.00"
    assert selling["inputs"]["numerator"] == "30.00"
    assert selling["inputs"]["denominator"] == "40.00"


async def test_cltv(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    facts = Facts(app, tenant)
    # Four customers paid 5,000 each in the twelve months up to the end of 2026-Q2 …
    for account in await facts.customers(4, became=at(date(2025, 1, 1))):
        await facts.deals(1, amount=5_000, close_date=date(2025, 9, 1), account_id=account)
    await facts.deals(1, amount=77_777, close_date=date(2025, 6, 30))  # before the window
    # … and customers stay three years on average (2 and 4 years).
    await facts.customers(1, became=at(date(2021, 5, 1)), churned=at(date(2023, 5, 1)))
    await facts.customers(1, became=at(date(2021, 5, 1)), churned=at(date(2025, 5, 1)))
    cltv = await metric(client, tenant, "cltv")
    assert cltv["value"] == "15000.00"
    assert cltv["inputs"]["average_annual_revenue_per_customer"] == "5000.00"
    assert cltv["inputs"]["average_lifetime_years"] == "3.00"


async def test_cltv_counts_each_paying_customer_once(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    facts = Facts(app, tenant)
    await facts.customers(1, became=at(date(2021, 5, 1)), churned=at(date(2024, 5, 1)))
    ana, bora = await facts.user("Ana"), await facts.user("Bora")
    repeat, single = await facts.customers(2, became=at(date(2025, 1, 1)))
    window = date(2025, 9, 1)
    # Within the window: `repeat` pays three times (twice through Ana, once through
    # Bora), `single` once through Ana; a lost deal and a deleted won deal pay nothing.
    await facts.deals(2, amount=3_000, close_date=window, account_id=repeat, owner_id=ana)
    await facts.deals(1, amount=6_000, close_date=window, account_id=repeat, owner_id=bora)
    await facts.deals(1, amount=6_000, close_date=window, account_id=single, owner_id=ana)
    await facts.deals(1, stage="closed_lost", close_date=window, owner_id=bora)
    await facts.deals(1, close_date=window, owner_id=bora, deleted_at=at(window))

    cltv = await metric(client, tenant, "cltv")
    # 18,000 from two customers: 9,000 a year each, for three years.
    assert cltv["inputs"]["average_annual_revenue_per_customer"] == "9000.00"
    assert cltv["value"] == "27000.00"
    by_owner = await metric(client, tenant, "cltv", group_by="owner")
    per_customer = {
        g["label"]: g["inputs"]["average_annual_revenue_per_customer"] for g in by_owner["groups"]
    }
    # Ana: 12,000 from `repeat` and `single`; Bora: 6,000 from `repeat` alone.
    assert (per_customer["Ana"], per_customer["Bora"]) == ("6000.00", "6000.00")


async def test_pipeline_velocity(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    facts = Facts(app, tenant)
    created = Q2 + timedelta(days=2)
    await facts.deals(10, created_at=at(created), close_date=created + timedelta(days=25))
    await facts.deals(30, stage="closed_lost", created_at=at(created), close_date=created)
    await facts.deals(160, stage="proposal", created_at=at(created), close_date=None)
    velocity = await metric(client, tenant, "pipeline-velocity")
    assert velocity["inputs"] == {
        "qualified_opportunities": 200,
        "win_rate": "25.00",
        "average_deal_size": "10000.00",
        "sales_cycle_days": "25.00",
    }
    assert velocity["value"] == "20000.00" and velocity["unit"] == "currency_per_day"


async def test_forecast_accuracy(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    facts = Facts(app, tenant)
    vp = await facts.user("VP", role="manager")
    rep = await facts.user("Rep", manager_id=vp)
    await facts.deals(4, amount=250_000, close_date=Q2 + timedelta(days=20), owner_id=rep)
    async with facts.session() as session:
        for commit, when in ((Decimal(500_000), Q2), (Decimal(900_000), Q2 + timedelta(days=30))):
            session.add(
                ForecastSubmission(
                    id=new_id(),
                    user_id=vp,
                    period="2026-Q2",
                    period_start=Q2,
                    period_end=date(2026, 7, 1),
                    commit=commit,
                    best_case=commit,
                    currency="TRY",
                    submitted_at=at(when),
                )
            )
    accuracy = await metric(client, tenant, "forecast-accuracy")
    assert accuracy["value"] == "90.00"
    assert accuracy["inputs"]["forecast"] == "900000.00"
    assert accuracy["inputs"]["actual"] == "1000000.00"
    for_rep = await metric(client, tenant, "forecast-accuracy", owner_id=str(rep))
    assert for_rep["value"] is None and "submitted" in for_rep["reason"]


async def test_cac(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    facts = Facts(app, tenant)
    for category, amount in (("sales", "60000"), ("marketing", "40000")):
        await create(
            client,
            "/v1/spend",
            tenant.headers,
            {"period": "2026-Q2", "category": category, "amount": amount},
        )
    await facts.customers(50, became=at(Q2 + timedelta(days=9)))
    cac = await metric(client, tenant, "cac")
    assert cac["value"] == "2000.00"
    assert cac["inputs"]["numerator"] == "100000.00" and cac["inputs"]["denominator"] == 50


async def test_churn_net_churn_and_retention(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    facts = Facts(app, tenant)
    long_ago = at(date(2024, 1, 1))
    await facts.customers(470, became=long_ago)
    await facts.customers(30, became=long_ago, churned=at(Q2 + timedelta(days=45)))
    await facts.customers(20, became=at(Q2 + timedelta(days=10)))
    await facts.customers(3, became=long_ago, churned=at(Q1))  # lost before the period

    churn = await metric(client, tenant, "churn-rate")
    assert churn["value"] == "6.00"
    assert churn["inputs"]["numerator"] == 30 and churn["inputs"]["denominator"] == 500
    net = await metric(client, tenant, "net-customer-churn-rate")
    assert net["value"] == "2.00"
    retention = await metric(client, tenant, "retention-rate")
    assert retention["value"] == "94.00"
    assert retention["inputs"]["customers_at_end"] == 490


async def test_quota_attainment(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    facts = Facts(app, tenant)
    for i in range(20):
        rep = await facts.user(f"Rep {i:02d}")
        await create(
            client,
            "/v1/quotas",
            tenant.headers,
            {"user_id": str(rep), "period": "2026-Q2", "amount": "100000"},
        )
        won = 100_000 if i < 10 else 150_000 if i < 15 else 99_000
        await facts.deals(1, amount=won, close_date=Q2 + timedelta(days=1), owner_id=rep)
    attainment = await metric(client, tenant, "quota-attainment")
    assert attainment["value"] == "75.00"
    assert attainment["inputs"]["numerator"] == 15 and attainment["inputs"]["denominator"] == 20
    reps = attainment["inputs"]["reps"]
    assert [r["attainment"] for r in reps] == ["100.00"] * 10 + ["150.00"] * 5 + ["99.00"] * 5
    assert reps[0]["quota"] == "100000.00" and reps[0]["won"] == "100000.00"
    # The team: 1,000,000 + 750,000 + 495,000 won against 2,000,000 of quota.
    assert attainment["inputs"]["team_attainment"] == "112.25"
