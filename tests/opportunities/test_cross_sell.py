"""Cross-sell rules fire once per won deal, when due, from the follow-ups job."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update

from app.core.ids import utcnow
from app.core.tenancy import Actor, bind_tenant
from app.models import Opportunity
from tests.factories import Tenant, assert_problem, create, create_account


async def _won_deal_with(
    client: AsyncClient, tenant: Tenant, product: dict[str, Any]
) -> dict[str, Any]:
    h = tenant.headers
    account = await create_account(client, h)
    deal = await create(
        client, "/v1/opportunities", h, {"account_id": account["id"], "name": "Looms for Bursa"}
    )
    quote = await create(
        client,
        "/v1/quotes",
        h,
        {
            "opportunity_id": deal["id"],
            "line_items": [{"product_id": product["id"], "quantity": "2"}],
        },
    )
    for action in ("submit", "accept"):
        response = await client.post(f"/v1/quotes/{quote['id']}/{action}", headers=h)
        assert response.status_code == 200, response.text
    won = await client.post(
        f"/v1/opportunities/{deal['id']}/stage",
        headers=h,
        json={"stage": "closed_won", "won_reason": {"code": "price"}},
    )
    assert won.status_code == 200, won.text
    return won.json()


async def _run(client: AsyncClient, tenant: Tenant) -> int:
    result = await client.post("/v1/jobs/follow-ups", headers=tenant.headers)
    return int(result.json()["cross_sell_fired"])


async def test_rules_fire_once_when_due(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    loom = await create(
        client, "/v1/products", h, {"sku": "LOOM", "name": "Loom", "family": "machines"}
    )
    care = await create(client, "/v1/products", h, {"sku": "CARE", "name": "Maintenance plan"})
    book = await create(client, "/v1/price-books", h, {"name": "List", "currency": "TRY"})
    for product in (loom, care):
        await client.put(
            f"/v1/price-books/{book['id']}/entries",
            headers=h,
            json={"product_id": product["id"], "unit_price": "100"},
        )
    deal = await _won_deal_with(client, tenant, loom)
    assert deal["amount"] == "200.00"  # the accepted quote's TCV
    await create(
        client,
        "/v1/cross-sell-rules",
        h,
        {
            "name": "care after looms",
            "trigger_product_id": loom["id"],
            "months_after": 6,
            "suggest_product_id": care["id"],
        },
    )
    await create(
        client,
        "/v1/cross-sell-rules",
        h,
        {
            "name": "machines → expansion",
            "trigger_family": "machines",
            "months_after": 12,
            "suggest_product_id": care["id"],
            "action": "opportunity",
        },
    )
    assert await _run(client, tenant) == 0  # not due yet
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(Opportunity)
            .where(Opportunity.id == deal["id"])
            .values(closed_at=utcnow() - timedelta(days=200))
        )
    assert await _run(client, tenant) == 1  # 6 months passed, 12 not
    tasks = (await client.get("/v1/tasks", params={"source": "cross_sell"}, headers=h)).json()[
        "data"
    ]
    assert [(t["opportunity_id"], t["assignee_id"]) for t in tasks] == [
        (deal["id"], str(tenant.admin_id))
    ]
    assert "Maintenance plan" in tasks[0]["title"]
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(Opportunity)
            .where(Opportunity.id == deal["id"])
            .values(closed_at=utcnow() - timedelta(days=400))
        )
    assert await _run(client, tenant) == 1  # the 12-month rule; the first never again
    assert await _run(client, tenant) == 0
    expansions = (
        await client.get("/v1/opportunities", params={"type": "expansion"}, headers=h)
    ).json()["data"]
    assert len(expansions) == 1
    assert expansions[0]["account_id"] == deal["account_id"]
    assert expansions[0]["stage"] == "prospecting"


async def test_rule_validation_and_isolation(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    h = tenant.headers
    product = await create(client, "/v1/products", h, {"sku": "X", "name": "X"})
    both = await client.post(
        "/v1/cross-sell-rules",
        headers=h,
        json={
            "name": "r",
            "trigger_product_id": product["id"],
            "trigger_family": "f",
            "months_after": 1,
            "suggest_product_id": product["id"],
        },
    )
    assert_problem(both, 422)
    foreign = await client.post(
        "/v1/cross-sell-rules",
        headers=other_tenant.headers,
        json={
            "name": "r",
            "trigger_family": "f",
            "months_after": 1,
            "suggest_product_id": product["id"],
        },
    )
    assert_problem(foreign, 422)
    rule = await create(
        client,
        "/v1/cross-sell-rules",
        h,
        {
            "name": "r",
            "trigger_family": "f",
            "months_after": 1,
            "suggest_product_id": product["id"],
        },
    )
    for method, body in (("PATCH", {"months_after": 2}), ("DELETE", None)):
        response = await client.request(
            method, f"/v1/cross-sell-rules/{rule['id']}", json=body, headers=other_tenant.headers
        )
        assert_problem(response, 404)
    assert (await client.get("/v1/cross-sell-rules", headers=other_tenant.headers)).json()[
        "data"
    ] == []
    retired = await client.delete(f"/v1/cross-sell-rules/{rule['id']}", headers=h)
    assert retired.status_code == 204
    listed = (await client.get("/v1/cross-sell-rules", headers=h)).json()["data"]
    assert [r["active"] for r in listed] == [False]
