"""Personal data (SPEC §13): export everything about a person; erase anonymises them
everywhere and leaves deal figures and KPIs exactly as they were."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.core.tenancy import Actor, bind_tenant
from app.models import FieldHistory, OutboxEvent
from tests.factories import Tenant, assert_problem, create, create_account, key_for
from tests.metrics.builders import Facts

EMAIL = "ayse.yilmaz@egetekstil.com.tr"


async def _lead_with_traces(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    h = tenant.headers
    lead = await create(
        client,
        "/v1/leads",
        h,
        {
            "first_name": "Ayşe",
            "last_name": "Yılmaz",
            "email": EMAIL,
            "phone": "+90 532 000 00 00",
            "title": "CFO",
            "company_name": "Ege Tekstil",
        },
    )
    patched = await client.patch(
        f"/v1/leads/{lead['id']}",
        json={"phone": "+90 532 111 11 11"},
        headers={**h, "If-Match": f'"{lead["version"]}"'},
    )
    assert patched.status_code == 200, patched.text
    await create(
        client,
        "/v1/activities",
        h,
        {
            "kind": "call",
            "subject": "Call with Ayşe about pricing",
            "body": "She prefers e-mail at " + EMAIL,
            "duration_minutes": 30,
            "lead_id": lead["id"],
        },
    )
    signals = await client.post(
        "/v1/signals",
        json={
            "signals": [
                {
                    "type": "web_visit",
                    "lead_id": lead["id"],
                    "occurred_at": "2026-05-02T10:00:00Z",
                    "source": "website",
                    "external_id": "visit-1",
                    "properties": {"email": EMAIL, "page": "/pricing"},
                }
            ]
        },
        headers=h,
    )
    assert signals.status_code == 200, signals.text
    return lead


async def test_export_holds_everything_about_the_lead(client: AsyncClient, tenant: Tenant) -> None:
    lead = await _lead_with_traces(client, tenant)
    response = await client.get(f"/v1/leads/{lead['id']}/personal-data", headers=tenant.headers)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["record"]["email"] == EMAIL
    assert {"phone"} <= {h["field"] for h in data["field_history"]}
    assert [a["subject"] for a in data["activities"]] == ["Call with Ayşe about pricing"]
    assert data["signals"][0]["properties"]["email"] == EMAIL
    assert [s["to_status"] for s in data["status_history"]] == ["new"]


async def test_erasure_anonymises_everywhere_and_keeps_the_numbers(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    lead = await _lead_with_traces(client, tenant)
    # A deal the lead became, won in 2026-Q2: its figures must survive the erasure.
    await Facts(app, tenant).deals(
        1, amount=125_000, close_date=date(2026, 5, 20), lead_id=lead["id"]
    )
    before = (await client.get("/v1/metrics/summary?period=2026-Q2", headers=h)).json()

    erased = await client.post(f"/v1/leads/{lead['id']}/erase", headers=h)
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert (body["first_name"], body["last_name"], body["email"], body["phone"]) == (
        "[erased]",
        "[erased]",
        None,
        None,
    )
    assert body["erased_at"] and body["company_name"] == "Ege Tekstil"
    assert (await client.post(f"/v1/leads/{lead['id']}/erase", headers=h)).status_code == 200

    export = (await client.get(f"/v1/leads/{lead['id']}/personal-data", headers=h)).json()
    # The full phone numbers: a bare "532" can appear inside any timestamp or id.
    for personal in (EMAIL, "+90 532 000 00 00", "+90 532 111 11 11", "Ayşe"):
        assert personal not in str(export), personal
    assert export["activities"][0]["duration_minutes"] == 30  # selling time is kept
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        history = await session.execute(
            select(FieldHistory.field, FieldHistory.old_value, FieldHistory.new_value).where(
                FieldHistory.resource_id == lead["id"]
            )
        )
        assert all(
            old is None and new is None
            for field, old, new in history
            if field in ("first_name", "last_name", "email", "phone", "title")
        )
        payloads = await session.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.resource_id == lead["id"])
        )
        assert EMAIL not in str(list(payloads))

    after = (await client.get("/v1/metrics/summary?period=2026-Q2", headers=h)).json()
    assert {k: m["value"] for k, m in after["metrics"].items()} == {
        k: m["value"] for k, m in before["metrics"].items()
    }
    assert after["metrics"]["revenue"]["value"] == "125000.00"


async def test_contact_erasure_keeps_the_committee_role(
    client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    account = await create_account(client, h)
    contact = await create(
        client,
        "/v1/contacts",
        h,
        {
            "account_id": account["id"],
            "first_name": "Mehmet",
            "last_name": "Kaya",
            "email": "mehmet@kaya.example",
            "title": "Genel Müdür",
        },
    )
    deal = await create(
        client, "/v1/opportunities", h, {"name": "ERP", "account_id": account["id"]}
    )
    await create(
        client,
        f"/v1/opportunities/{deal['id']}/stakeholders",
        h,
        {"contact_id": contact["id"], "roles": ["decision_maker"], "notes": "Mehmet golfs"},
    )
    erased = await client.post(f"/v1/contacts/{contact['id']}/erase", headers=h)
    assert erased.status_code == 200, erased.text
    assert erased.json()["email"] is None and erased.json()["first_name"] == "[erased]"
    export = (await client.get(f"/v1/contacts/{contact['id']}/personal-data", headers=h)).json()
    [role] = export["buying_committees"]
    assert role["roles"] == ["decision_maker"] and role["notes"] is None
    assert "Mehmet" not in str(export)


async def test_only_admins_of_the_organization(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    lead = await create(client, "/v1/leads", tenant.headers, {"last_name": "Demir"})
    rep = await key_for(app, tenant, scopes=["leads:read", "leads:write"], role="rep")
    assert_problem(await client.post(f"/v1/leads/{lead['id']}/erase", headers=rep), 403)
    assert_problem(await client.get(f"/v1/leads/{lead['id']}/personal-data", headers=rep), 403)
    theirs = other_tenant.headers
    assert_problem(await client.post(f"/v1/leads/{lead['id']}/erase", headers=theirs), 404)
    assert_problem(await client.get(f"/v1/leads/{lead['id']}/personal-data", headers=theirs), 404)
    still = (await client.get(f"/v1/leads/{lead['id']}", headers=tenant.headers)).json()
    assert still["last_name"] == "Demir" and still["erased_at"] is None
