"""Campaign costs in CAC and campaign ROI, with their inputs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fastapi import FastAPI
from httpx import AsyncClient

from app.core.ids import new_id
from app.models import Campaign
from tests.factories import Tenant, create
from tests.metrics.builders import Facts, at
from tests.metrics.test_worked_examples import metric


async def test_campaign_costs_feed_cac_and_roi(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    facts = Facts(app, tenant)
    async with facts.session() as session:
        webinar = Campaign(
            id=new_id(),
            name="Textile webinar",
            type="webinar",
            currency="TRY",
            actual_cost=Decimal("30000"),
            start_date=date(2026, 5, 10),
            end_date=date(2026, 5, 10),
        )
        # 91 days, of which 30 (June) fall in 2026-Q2: 91,000 × 30 / 91 = 30,000.
        fair = Campaign(
            id=new_id(),
            name="Trade fair",
            type="event",
            currency="TRY",
            actual_cost=Decimal("91000"),
            start_date=date(2026, 6, 1),
            end_date=date(2026, 8, 30),
        )
        session.add_all([webinar, fair])
    async with Facts(app, other_tenant).session() as session:
        session.add(
            Campaign(
                id=new_id(),
                name="Theirs",
                type="paid",
                currency="TRY",
                actual_cost=Decimal("999999"),
                start_date=date(2026, 5, 1),
            )
        )
    await create(
        client,
        "/v1/spend",
        tenant.headers,
        {"period": "2026-Q2", "category": "marketing", "amount": "40000"},
    )
    await facts.customers(10, became=at(date(2026, 5, 1)))
    cac = await metric(client, tenant, "cac")
    assert cac["inputs"]["campaign_costs"] == "60000.00"
    assert cac["inputs"]["marketing_spend"] == "100000.00"
    assert cac["value"] == "10000.00"  # (40,000 + 60,000) / 10

    [lead] = await facts.leads(1, created_at=at(date(2026, 4, 2)), campaign_id=webinar.id)
    await facts.deals(1, amount=150_000, close_date=date(2026, 6, 1), lead_id=lead)
    await facts.deals(1, amount=77_000, close_date=date(2026, 6, 1))  # not campaign-sourced
    roi = await metric(client, tenant, "campaign-roi")
    assert roi["value"] == "2.50"  # 150,000 / 60,000
    assert roi["inputs"]["numerator"] == "150000.00" and roi["inputs"]["won_deals"] == 1
    empty = await metric(client, tenant, "campaign-roi", "2025-Q1")
    assert empty["value"] is None and empty["reason"] == "no campaign cost falls in the period"
