"""Contracts from accepted quotes: documents, e-signature callbacks, renewal deals."""

from __future__ import annotations

import base64
import hashlib
from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.core.tenancy import Actor, bind_tenant
from app.models import OutboxEvent
from tests.factories import Tenant, assert_problem, create, create_account


async def _accepted_quote(client: AsyncClient, tenant: Tenant, start: date) -> dict[str, Any]:
    h = tenant.headers
    product = await create(client, "/v1/products", h, {"sku": "SAAS", "name": "Platform"})
    book = await create(client, "/v1/price-books", h, {"name": "List", "currency": "TRY"})
    await client.put(
        f"/v1/price-books/{book['id']}/entries",
        headers=h,
        json={"product_id": product["id"], "unit_price": "1000"},
    )
    account = await create_account(client, h, name="Kuzey Lojistik")
    deal = await create(
        client, "/v1/opportunities", h, {"account_id": account["id"], "name": "Platform rollout"}
    )
    quote = await create(
        client,
        "/v1/quotes",
        h,
        {
            "opportunity_id": deal["id"],
            "term_months": 24,
            "line_items": [{"product_id": product["id"], "quantity": "12"}],
        },
    )
    await client.post(f"/v1/quotes/{quote['id']}/submit", headers=h)
    accepted = await client.post(
        f"/v1/quotes/{quote['id']}/accept",
        headers=h,
        json={
            "contract": {
                "start_date": start.isoformat(),
                "renewal_term_months": 12,
                "renewal_notice_days": 60,
                "sla": {"uptime_pct": "99.9"},
            }
        },
    )
    assert accepted.status_code == 200, accepted.text
    return {"deal": deal, "quote": accepted.json(), "account": account}


async def _events(app: FastAPI, tenant: Tenant, prefix: str) -> list[str]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.scalars(
            select(OutboxEvent.event_type)
            .where(OutboxEvent.event_type.startswith(prefix))
            .order_by(OutboxEvent.id)
        )
        return list(rows)


async def test_accepting_with_terms_creates_the_contract_and_signing_flow(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    setup = await _accepted_quote(client, tenant, date(2027, 1, 1))
    [contract] = (
        await client.get("/v1/contracts", params={"account_id": setup["account"]["id"]}, headers=h)
    ).json()["data"]
    assert contract["quote_id"] == setup["quote"]["id"] and contract["quote_version"] == 1
    assert contract["end_date"] == "2028-12-31"  # 24 months from 2027-01-01
    assert contract["annual_value"] == "12000.00"  # ACV: 12 × 1000 a year
    assert contract["status"] == "draft" and contract["sla"] == {"uptime_pct": "99.9"}
    url = f"/v1/contracts/{contract['id']}"
    refused = await client.post(f"{url}/send-for-signature", headers=h)
    assert_problem(refused, 409, "no_document")
    content = "Sipariş formu — imza sayfası".encode()
    document = await client.post(
        f"{url}/documents",
        headers=h,
        json={"filename": "siparis.pdf", "content_base64": base64.b64encode(content).decode()},
    )
    assert document.status_code == 201, document.text
    assert document.json()["checksum_sha256"] == hashlib.sha256(content).hexdigest()
    assert document.json()["size_bytes"] == len(content)
    second = await client.post(
        f"{url}/documents",
        headers=h,
        json={"filename": "siparis-v2.pdf", "checksum_sha256": "a" * 64, "size_bytes": 10},
    )
    assert second.json()["number"] == 2
    sent = await client.post(f"{url}/send-for-signature", headers=h)
    assert sent.json()["status"] == "sent_for_signature"
    assert [d["e_signature_status"] for d in sent.json()["documents"]] == ["none", "sent"]
    event = {"provider_event_id": "evt-1", "event": "signed", "occurred_at": "2026-12-20T10:00:00Z"}
    signed = await client.post(f"{url}/signature-events", headers=h, json=event)
    assert signed.json()["status"] == "signed"
    assert signed.json()["signed_at"] == "2026-12-20T10:00:00Z"
    retried = await client.post(f"{url}/signature-events", headers=h, json=event)
    assert retried.json()["version"] == signed.json()["version"]  # applied once
    late = await client.post(
        f"{url}/documents", headers=h, json={"filename": "x.pdf", "checksum_sha256": "b" * 64}
    )
    assert_problem(late, 409, "contract_signed")
    assert await _events(app, tenant, "contract.") == [
        "contract.created",
        "contract.sent_for_signature",
        "contract.signed",
    ]


async def test_declined_signature_and_validation(client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    account = await create_account(client, h)
    contract = await create(
        client,
        "/v1/contracts",
        h,
        {"account_id": account["id"], "contract_type": "msa", "start_date": "2027-01-01"},
    )
    url = f"/v1/contracts/{contract['id']}"
    await client.post(
        f"{url}/documents", headers=h, json={"filename": "msa.pdf", "checksum_sha256": "c" * 64}
    )
    await client.post(f"{url}/send-for-signature", headers=h)
    declined = await client.post(
        f"{url}/signature-events", headers=h, json={"provider_event_id": "e1", "event": "declined"}
    )
    assert declined.json()["status"] == "declined"
    for body in (
        {"filename": "x", "content_base64": "!!!"},
        {"filename": "x"},
        {"filename": "x", "content_base64": "YQ==", "checksum_sha256": "d" * 64},
    ):
        assert_problem(await client.post(f"{url}/documents", headers=h, json=body), 422)
    bad_period = await client.post(
        "/v1/contracts",
        headers=h,
        json={"account_id": account["id"], "start_date": "2027-01-01", "end_date": "2026-01-01"},
    )
    assert_problem(bad_period, 422)


async def test_renewal_deal_is_opened_once_ahead_of_the_end(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    # Started 23 months ago: ends within the 60-day notice period.
    start = date.today() - timedelta(days=700)
    setup = await _accepted_quote(client, tenant, start)
    [contract] = (await client.get("/v1/contracts", headers=h)).json()["data"]
    url = f"/v1/contracts/{contract['id']}"
    await client.post(
        f"{url}/documents", headers=h, json={"filename": "f.pdf", "checksum_sha256": "e" * 64}
    )
    await client.post(f"{url}/send-for-signature", headers=h)
    await client.post(
        f"{url}/signature-events", headers=h, json={"provider_event_id": "s", "event": "signed"}
    )
    for _ in range(2):
        await client.post("/v1/jobs/follow-ups", headers=h)
    renewals = (
        await client.get("/v1/opportunities", params={"type": "renewal"}, headers=h)
    ).json()["data"]
    assert len(renewals) == 1
    renewal = renewals[0]
    assert renewal["account_id"] == setup["account"]["id"]
    assert renewal["amount"] == "12000.00" and renewal["close_date"] == contract["end_date"]
    again = (await client.get(url, headers=h)).json()
    assert again["renewal_opportunity_id"] == renewal["id"]
    assert await _events(app, tenant, "contract.renewal_due") == ["contract.renewal_due"]


async def test_other_tenant_gets_404(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    contract = await create(
        client,
        "/v1/contracts",
        tenant.headers,
        {"account_id": account["id"], "start_date": "2027-01-01"},
    )
    url = f"/v1/contracts/{contract['id']}"
    b = other_tenant.headers
    for method, path, body in (
        ("GET", url, None),
        ("PATCH", url, {"auto_renew": True}),
        ("POST", f"{url}/documents", {"filename": "x", "checksum_sha256": "f" * 64}),
        ("POST", f"{url}/send-for-signature", None),
        ("POST", f"{url}/signature-events", {"provider_event_id": "x", "event": "signed"}),
    ):
        assert_problem(await client.request(method, path, json=body, headers=b), 404)
    assert (await client.get("/v1/contracts", headers=b)).json()["data"] == []
    cross = await client.post(
        "/v1/contracts", headers=b, json={"account_id": account["id"], "start_date": "2027-01-01"}
    )
    assert_problem(cross, 422)
