"""Campaign attribution on a hand-computed case: facts inserted with the dates they need,
figures read over HTTP.

Campaign A (cost 1000) and campaign B (no cost). Deals (TRY, the corporate currency):

- D1 won 10 000, closed 2026-05-10; its lead L1 was sourced by A (created 03-01) and
  responded to B on 04-01. Touches: A 03-01, B 04-01 → first A, last B.
- D2 won 20 000, closed 2026-05-20; lead L2 (sourced by B, created 02-01) converted into it
  (``leads.converted_opportunity_id``). Committee contact K1 responded to A on 04-15 and to
  B on 06-01 (after the close: no touch). Touches: B 02-01, A 04-15 → first B, last A.
- D3 won 5 000, closed 2026-05-25; committee K2 responded to A 03-10, B 03-20 → first A,
  last B.
- D4 lost, closed 2026-04-30; committee K1 (A 04-15: a touch; B 06-01: not).
- D5 open; committee K2 (A and B).
- D6 won 7 000, closed 2026-05-01; committee K3 responded to A on 05-02: after the close.
- L3: another lead sourced by A (created 03-05), not converted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update

from app.core.ids import new_id
from app.models import CampaignMember, Contact, Lead, OpportunityStakeholder
from tests.factories import Tenant, assert_problem, create
from tests.metrics.builders import Facts


def ts(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 9, tzinfo=UTC)


async def _contacts(facts: Facts, n: int) -> list[uuid.UUID]:
    account = (await facts.accounts(1))[0]
    async with facts.session() as session:
        rows = [
            Contact(id=new_id(), account_id=account, first_name="K", last_name=str(i))
            for i in range(n)
        ]
        session.add_all(rows)
    return [r.id for r in rows]


async def _committee(facts: Facts, deal: uuid.UUID, contact: uuid.UUID) -> None:
    async with facts.session() as session:
        session.add(
            OpportunityStakeholder(
                id=new_id(), opportunity_id=deal, contact_id=contact, roles=["champion"]
            )
        )


async def _responded(facts: Facts, campaign: str, at: datetime, **member: Any) -> None:
    async with facts.session() as session:
        session.add(
            CampaignMember(
                id=new_id(),
                campaign_id=uuid.UUID(campaign),
                status="attended",
                responded_at=at,
                **member,
            )
        )


async def _scenario(app: FastAPI, client: AsyncClient, tenant: Tenant) -> tuple[str, str]:
    a = await create(
        client,
        "/v1/campaigns",
        tenant.headers,
        {"name": "A", "type": "webinar", "actual_cost": "1000"},
    )
    b = await create(client, "/v1/campaigns", tenant.headers, {"name": "B", "type": "event"})
    facts = Facts(app, tenant)
    (l1,) = await facts.leads(1, created_at=ts(3, 1), campaign_id=uuid.UUID(a["id"]))
    (l2,) = await facts.leads(1, created_at=ts(2, 1), campaign_id=uuid.UUID(b["id"]))
    await facts.leads(1, created_at=ts(3, 5), campaign_id=uuid.UUID(a["id"]))
    await facts.deals(1, amount=10_000, close_date=date(2026, 5, 10), lead_id=l1)
    (d2,) = await facts.deals(1, amount=20_000, close_date=date(2026, 5, 20))
    (d3,) = await facts.deals(1, amount=5_000, close_date=date(2026, 5, 25))
    (d4,) = await facts.deals(1, stage="closed_lost", amount=50_000, close_date=date(2026, 4, 30))
    (d5,) = await facts.deals(1, stage="negotiation", amount=80_000)
    (d6,) = await facts.deals(1, amount=7_000, close_date=date(2026, 5, 1))
    async with facts.session() as session:
        await session.execute(update(Lead).where(Lead.id == l2).values(converted_opportunity_id=d2))
    k1, k2, k3 = await _contacts(facts, 3)
    for deal, contact in ((d2, k1), (d3, k2), (d4, k1), (d5, k2), (d6, k3)):
        await _committee(facts, deal, contact)
    await _responded(facts, b["id"], ts(4, 1), lead_id=l1)
    await _responded(facts, a["id"], ts(4, 15), contact_id=k1)
    await _responded(facts, b["id"], ts(6, 1), contact_id=k1)
    await _responded(facts, a["id"], ts(3, 10), contact_id=k2)
    await _responded(facts, b["id"], ts(3, 20), contact_id=k2)
    await _responded(facts, a["id"], ts(5, 2), contact_id=k3)
    # A member who never responded is no touch.
    async with facts.session() as session:
        session.add(CampaignMember(id=new_id(), campaign_id=uuid.UUID(b["id"]), contact_id=k3))
    return a["id"], b["id"]


async def test_hand_computed_attribution(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    a, b = await _scenario(app, client, tenant)

    got_a = await client.get(f"/v1/campaigns/{a}/influence", headers=tenant.headers)
    assert got_a.status_code == 200, got_a.text
    assert got_a.json() == {
        "campaign_id": a,
        "currency": "TRY",
        "leads_created": 2,  # L1, L3
        "opportunities_sourced": 1,  # D1
        "opportunities_influenced": 5,  # D1 (sourced), D2, D3, D4 (lost), D5 (open)
        "won_revenue_sourced": "10000.00",  # D1
        "won_revenue_influenced": "35000.00",  # D1 + D2 + D3
        "won_revenue_first_touch": "15000.00",  # D1 + D3
        "won_revenue_last_touch": "20000.00",  # D2
        "cost": "1000.00",
        "roi": "10.00",  # 10 000 sourced / 1 000
        "roi_reason": None,
        "unconverted_deals": 0,
    }

    got_b = await client.get(f"/v1/campaigns/{b}/influence", headers=tenant.headers)
    assert got_b.json() == {
        "campaign_id": b,
        "currency": "TRY",
        "leads_created": 1,  # L2
        "opportunities_sourced": 1,  # D2 (converted_opportunity_id)
        "opportunities_influenced": 4,  # D1, D2, D3, D5; not D4 (B came after its close)
        "won_revenue_sourced": "20000.00",
        "won_revenue_influenced": "35000.00",
        "won_revenue_first_touch": "20000.00",  # D2
        "won_revenue_last_touch": "15000.00",  # D1 + D3
        "cost": "0.00",
        "roi": None,
        "roi_reason": "no_cost",
        "unconverted_deals": 0,
    }

    # A window: revenue by close date (D2, D3 close after 05-15), leads by creation.
    window = await client.get(
        f"/v1/campaigns/{a}/influence",
        params={"from": "2026-05-15", "to": "2026-12-31"},
        headers=tenant.headers,
    )
    figures = window.json()
    assert figures["leads_created"] == 0
    assert figures["won_revenue_sourced"] == "0.00"
    assert figures["won_revenue_influenced"] == "25000.00"
    assert figures["won_revenue_first_touch"] == "5000.00"
    assert figures["won_revenue_last_touch"] == "20000.00"
    assert figures["roi"] == "0.00"
    backwards = await client.get(
        f"/v1/campaigns/{a}/influence",
        params={"from": "2026-05-15", "to": "2026-05-01"},
        headers=tenant.headers,
    )
    assert_problem(backwards, 400)


async def test_other_tenant_touches_do_not_count(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    a, _ = await _scenario(app, client, tenant)
    # The other organization runs the same scenario: this one's figures do not move.
    await _scenario(app, client, other_tenant)
    got = (await client.get(f"/v1/campaigns/{a}/influence", headers=tenant.headers)).json()
    assert got["opportunities_influenced"] == 5
    assert got["won_revenue_first_touch"] == "15000.00"
    assert got["won_revenue_last_touch"] == "20000.00"
