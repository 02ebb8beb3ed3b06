"""Partners, partner-scoped keys, deal registration with conflicts and protection, the
joint pipeline and commissions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select, update

from app.core.tenancy import Actor, bind_tenant
from app.models import DealRegistration, OutboxEvent
from tests.factories import Tenant, assert_problem, create, create_account


async def _partner(
    client: AsyncClient, tenant: Tenant, name: str, rate: str = "15"
) -> tuple[dict[str, Any], dict[str, str]]:
    partner = await create(
        client,
        "/v1/partners",
        tenant.headers,
        {"name": name, "tier": "gold", "commission_rate_pct": rate},
    )
    key = await create(client, f"/v1/partners/{partner['id']}/api-keys", tenant.headers, {})
    return partner, {"Authorization": f"Bearer {key['token']}"}


def _registration(company: str = "Marmara Gıda A.Ş.", **extra: Any) -> dict[str, Any]:
    return {
        "company_name": company,
        "domain": "marmaragida.com.tr",
        "country": "TR",
        "contact_name": "Elif Kaya",
        "contact_email": "Elif@MarmaraGida.com.tr",
        "expected_amount": "250000",
        "expected_close_date": "2027-03-31",
        "products": ["ERP"],
        "notes": "met at the Bursa fair",
        **extra,
    }


async def test_partner_keys_are_confined(client: AsyncClient, tenant: Tenant) -> None:
    _, key = await _partner(client, tenant, "Ege Bilişim")
    for method, path in (
        ("GET", "/v1/accounts"),
        ("GET", "/v1/opportunities"),
        ("GET", "/v1/partners"),
        ("POST", "/v1/leads"),
        ("GET", "/v1/users/me"),
        ("GET", "/v1/audit-log"),
    ):
        response = await client.request(
            method, path, headers=key, json={} if method == "POST" else None
        )
        assert_problem(response, 403, "partner_not_allowed")
    assert (await client.get("/v1/deal-registrations", headers=key)).status_code == 200
    assert (await client.get("/v1/partner/pipeline", headers=key)).status_code == 200


async def test_submission_conflicts_approval_and_protection(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    ege, ege_key = await _partner(client, tenant, "Ege Bilişim")
    anadolu, anadolu_key = await _partner(client, tenant, "Anadolu Partner")
    account = await create_account(client, h, name="MARMARA GIDA SAN. VE TİC. A.Ş.")
    await create(
        client, "/v1/opportunities", h, {"account_id": account["id"], "name": "Existing deal"}
    )
    first = await create(client, "/v1/deal-registrations", ege_key, _registration())
    assert first["partner_id"] == ege["id"] and first["status"] == "submitted"
    assert first["contact_email"] == "elif@marmaragida.com.tr"
    assert {(c["kind"], c["reason"]) for c in first["conflicts"]} == {
        ("account", "same company name"),
        ("opportunity", "open deal of the account"),
    }
    # Another partner registers the same prospect: flagged against the first.
    second = await create(
        client, "/v1/deal-registrations", anadolu_key, _registration("Marmara Gida")
    )
    assert ("registration", first["id"]) in {(c["kind"], c["id"]) for c in second["conflicts"]}
    # A partner never sees another partner's registration.
    assert_problem(
        await client.get(f"/v1/deal-registrations/{first['id']}", headers=anadolu_key), 404
    )
    mine = (await client.get("/v1/deal-registrations", headers=anadolu_key)).json()["data"]
    assert [r["id"] for r in mine] == [second["id"]]
    # Partners cannot decide.
    assert_problem(
        await client.post(f"/v1/deal-registrations/{first['id']}/approve", headers=ege_key),
        403,
        "partner_not_allowed",
    )
    approved = await client.post(f"/v1/deal-registrations/{first['id']}/approve", headers=h)
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["status"] == "approved" and body["account_id"] == account["id"]
    assert body["protected_until"] == (date.today() + timedelta(days=90)).isoformat()
    deal = (await client.get(f"/v1/opportunities/{body['opportunity_id']}", headers=h)).json()
    assert deal["partner_id"] == ege["id"] and deal["source"] == "partner"
    assert deal["amount"] == "250000.00"
    splits = (await client.get(f"/v1/opportunities/{deal['id']}/splits", headers=h)).json()[
        "splits"
    ]
    assert sorted((s["split_type"], s["percent"], s["partner_id"] is not None) for s in splits) == [
        ("commission", "15.00", True),
        ("commission", "85.00", False),
    ]
    # While protected, the other partner's registration cannot be approved.
    blocked = await client.post(f"/v1/deal-registrations/{second['id']}/approve", headers=h)
    assert_problem(blocked, 409, "protected_by_other_partner")
    no_reason = await client.post(
        f"/v1/deal-registrations/{second['id']}/reject", headers=h, json={}
    )
    assert_problem(no_reason, 422)
    rejected = await client.post(
        f"/v1/deal-registrations/{second['id']}/reject",
        headers=h,
        json={"reason": "protected by another partner"},
    )
    assert rejected.json()["status"] == "rejected"
    pipeline = (await client.get("/v1/partner/pipeline", headers=ege_key)).json()["data"]
    assert pipeline == [
        {
            "registration_id": first["id"],
            "company_name": "Marmara Gıda A.Ş.",
            "registration_status": "approved",
            "protected_until": body["protected_until"],
            "opportunity_id": deal["id"],
            "stage": "prospecting",
            "amount": "250000.00",
            "currency": "TRY",
            "close_date": "2027-03-31",
        }
    ]
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        events = (
            await session.execute(
                select(OutboxEvent.event_type, OutboxEvent.partner_id)
                .where(OutboxEvent.event_type.startswith("deal_registration."))
                .order_by(OutboxEvent.id)
            )
        ).all()
    assert [(e, str(p)) for e, p in events] == [
        ("deal_registration.submitted", ege["id"]),
        ("deal_registration.submitted", anadolu["id"]),
        ("deal_registration.approved", ege["id"]),
        ("deal_registration.rejected", anadolu["id"]),
    ]


async def test_conversion_expiry_and_commission(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    partner, key = await _partner(client, tenant, "Kuzey Partner", rate="10")
    won = await create(
        client, "/v1/deal-registrations", key, _registration("Won Co", domain="won.example")
    )
    lapsing = await create(
        client, "/v1/deal-registrations", key, _registration("Lapse Co", domain="lapse.example")
    )
    for registration in (won, lapsing):
        await client.post(f"/v1/deal-registrations/{registration['id']}/approve", headers=h)
    won_deal = (await client.get(f"/v1/deal-registrations/{won['id']}", headers=h)).json()[
        "opportunity_id"
    ]
    moved = await client.post(
        f"/v1/opportunities/{won_deal}/stage",
        headers=h,
        json={"stage": "closed_won", "won_reason": {"code": "partner"}},
    )
    assert moved.status_code == 200, moved.text
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(DealRegistration)
            .where(DealRegistration.id == lapsing["id"])
            .values(protected_until=date.today() - timedelta(days=1))
        )
    await client.post("/v1/jobs/follow-ups", headers=h)
    statuses = {
        r["id"]: r["status"]
        for r in (await client.get("/v1/deal-registrations", headers=key)).json()["data"]
    }
    assert statuses == {won["id"]: "converted", lapsing["id"]: "expired"}
    quarter = f"{date.today().year}-Q{(date.today().month - 1) // 3 + 1}"
    commission = (
        await client.get(
            f"/v1/partners/{partner['id']}/commissions", params={"period": quarter}, headers=h
        )
    ).json()
    assert commission["deals"] == 1
    assert commission["currency_totals"] == [
        {"currency": "TRY", "won_revenue": "250000.00", "commission": "25000.00"}
    ]
    bad = await client.get(
        f"/v1/partners/{partner['id']}/commissions", params={"period": "2026-Q5"}, headers=h
    )
    assert_problem(bad, 422)


async def test_internal_users_register_on_behalf_and_isolation(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    h = tenant.headers
    partner, _ = await _partner(client, tenant, "Toros Partner")
    missing = await client.post("/v1/deal-registrations", headers=h, json=_registration())
    assert_problem(missing, 422)
    on_behalf = await create(
        client, "/v1/deal-registrations", h, _registration(partner_id=partner["id"])
    )
    assert on_behalf["partner_id"] == partner["id"]
    b = other_tenant.headers
    for method, path, body in (
        ("GET", f"/v1/partners/{partner['id']}", None),
        ("PATCH", f"/v1/partners/{partner['id']}", {"tier": "silver"}),
        ("POST", f"/v1/partners/{partner['id']}/api-keys", {}),
        ("GET", f"/v1/deal-registrations/{on_behalf['id']}", None),
        ("POST", f"/v1/deal-registrations/{on_behalf['id']}/approve", None),
        ("POST", f"/v1/deal-registrations/{on_behalf['id']}/reject", {"reason": "x"}),
    ):
        assert_problem(await client.request(method, path, json=body, headers=b), 404)
    foreign = await client.post(
        "/v1/deal-registrations", headers=b, json=_registration(partner_id=partner["id"])
    )
    assert_problem(foreign, 422)
    assert (await client.get("/v1/partners", headers=b)).json()["data"] == []
