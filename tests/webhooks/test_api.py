"""Webhook endpoints, the event log and delivery logs over HTTP: secrets, validation,
roles, tenant isolation and partner confinement."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx
from fastapi import FastAPI
from httpx import AsyncClient

from app.core.ids import new_id, utcnow
from tests.factories import Tenant, assert_problem, create_account, key_for
from tests.webhooks.helpers import Receiver, dispatch, emit, new_endpoint, new_partner


async def test_the_secret_is_shown_only_on_create(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://erp.example.com/hooks", "event_types": ["quote.approved"]},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 24
    assert response.headers["location"] == f"/v1/webhook-endpoints/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["active"] is True and created["partner_id"] is None
    endpoint_id = created["id"]

    got = await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=tenant.headers)
    listed = await client.get("/v1/webhook-endpoints", headers=tenant.headers)
    patched = await client.patch(
        f"/v1/webhook-endpoints/{endpoint_id}",
        json={"description": "ERP"},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    for body in (got.json(), listed.json()["data"][0], patched.json()):
        assert "secret" not in body
    assert created["secret"] not in got.text + listed.text + patched.text
    audit = await client.get(
        "/v1/audit-log", params={"resource_id": endpoint_id}, headers=tenant.headers
    )
    assert created["secret"] not in audit.text
    assert all("secret" not in row["changed_fields"] for row in audit.json()["data"])
    # Each endpoint has its own secret.
    another = await new_endpoint(client, tenant.headers, "https://erp.example.com/other")
    assert another["secret"] != created["secret"]


async def test_endpoint_crud_with_if_match(client: AsyncClient, tenant: Tenant) -> None:
    created = await new_endpoint(
        client, tenant.headers, "https://a.example.com/in", description="first"
    )
    path = f"/v1/webhook-endpoints/{created['id']}"
    changed = await client.patch(
        path,
        json={"url": "https://b.example.com/in", "event_types": ["lead.*", "lead.*"]},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["url"] == "https://b.example.com/in"
    assert changed.json()["event_types"] == ["lead.*"]
    assert changed.json()["version"] == 2 and changed.headers["etag"] == '"2"'
    stale = await client.patch(
        path, json={"active": False}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert_problem(stale, 412, "version_mismatch")
    cleared = await client.patch(path, json={"description": None}, headers=tenant.headers)
    assert cleared.json()["description"] is None
    refused = await client.patch(path, json={"url": None}, headers=tenant.headers)
    assert_problem(refused, 422)
    off = await client.patch(path, json={"active": False}, headers=tenant.headers)
    assert off.json()["active"] is False
    listed = await client.get(
        "/v1/webhook-endpoints", params={"active": "false"}, headers=tenant.headers
    )
    assert [e["id"] for e in listed.json()["data"]] == [created["id"]]
    assert (
        await client.get("/v1/webhook-endpoints", params={"active": "true"}, headers=tenant.headers)
    ).json()["data"] == []

    stale_delete = await client.delete(path, headers={**tenant.headers, "If-Match": '"1"'})
    assert_problem(stale_delete, 412)
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    assert_problem(await client.get(path, headers=tenant.headers), 404, "not_found")
    assert_problem(await client.delete(path, headers=tenant.headers), 404)


async def test_endpoint_validation(client: AsyncClient, tenant: Tenant) -> None:
    for body, field in (
        ({"url": "ftp://example.com/x"}, "body.url"),
        ({"url": "not a url"}, "body.url"),
        ({"url": "https://example.com", "event_types": ["Quote Approved"]}, "body.event_types.0"),
        ({"url": "https://example.com", "event_types": ["*"]}, "body.event_types.0"),
        ({"url": "https://example.com", "secret": "whsec_mine"}, "body.secret"),
        ({}, "body.url"),
    ):
        response = await client.post("/v1/webhook-endpoints", json=body, headers=tenant.headers)
        problem = assert_problem(response, 422)
        assert field in [e["field"] for e in problem["errors"]], problem


async def test_writes_need_an_admin_and_reads_need_the_scope(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    endpoint = await new_endpoint(client, tenant.headers, "https://a.example.com/in")
    event_id = await emit(app, tenant)
    rep = await key_for(app, tenant, scopes=["*"], role="rep")
    assert (await client.get("/v1/webhook-endpoints", headers=rep)).status_code == 200
    assert (await client.get("/v1/events", headers=rep)).status_code == 200
    refused = await client.post(
        "/v1/webhook-endpoints", json={"url": "https://x.example.com"}, headers=rep
    )
    assert_problem(refused, 403, "role_not_allowed")
    assert_problem(await client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=rep), 403)
    assert_problem(await client.post(f"/v1/events/{event_id}/redeliver", headers=rep), 403)
    unscoped = await key_for(app, tenant, scopes=["accounts:read"])
    assert_problem(
        await client.get("/v1/webhook-endpoints", headers=unscoped), 403, "missing_scope"
    )
    assert_problem(await client.get("/v1/events", headers=unscoped), 403, "missing_scope")
    readonly = await key_for(app, tenant, scopes=["webhooks:read", "events:read"])
    assert (
        await client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=readonly)
    ).status_code == 200
    assert_problem(
        await client.post(
            "/v1/webhook-endpoints", json={"url": "https://x.example.com"}, headers=readonly
        ),
        403,
        "missing_scope",
    )


async def test_the_event_log_lists_and_filters_events(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers, name="Boğaziçi Lojistik")
    deal = new_id()
    first = await emit(app, tenant, "opportunity.stage_changed", resource_id=deal)
    second = await emit(app, tenant, "opportunity.won", resource_id=deal)
    quote = await emit(app, tenant, "quote.approved", data={"total": "10.00"})

    everything = await client.get("/v1/events", headers=tenant.headers)
    assert everything.status_code == 200
    data = everything.json()["data"]
    assert [e["id"] for e in data][:3] == [quote, second, first]  # newest first
    created = next(e for e in data if e["type"] == "account.created")
    assert created["resource_id"] == account["id"] and created["resource_type"] == "account"
    assert created["actor_user_id"] == str(tenant.admin_id)
    assert created["data"]["name"] == "Boğaziçi Lojistik"

    async def ids(**params: str) -> list[str]:
        response = await client.get("/v1/events", params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["data"]]

    assert await ids(event_type="quote.approved") == [quote]
    assert await ids(resource_type="opportunity") == [second, first]
    assert await ids(resource_id=str(deal), sort="occurred_at") == [first, second]
    assert await ids(since=(utcnow() + timedelta(minutes=1)).isoformat()) == []
    assert len(await ids(since=(utcnow() - timedelta(minutes=5)).isoformat())) == 4

    page = await client.get("/v1/events", params={"limit": 2}, headers=tenant.headers)
    rest = await client.get(
        "/v1/events",
        params={"limit": 2, "cursor": page.json()["next_cursor"]},
        headers=tenant.headers,
    )
    paged = [e["id"] for e in page.json()["data"] + rest.json()["data"]]
    assert paged == [e["id"] for e in data] and rest.json()["next_cursor"] is None

    one = await client.get(f"/v1/events/{quote}", headers=tenant.headers)
    assert one.json()["type"] == "quote.approved" and one.json()["data"] == {"total": "10.00"}
    assert one.json()["dispatched_at"] is None
    assert_problem(await client.get(f"/v1/events/{new_id()}", headers=tenant.headers), 404)
    assert_problem(
        await client.get("/v1/events", params={"type": "x"}, headers=tenant.headers),
        400,
        "unknown_query_parameter",
    )
    assert_problem(
        await client.get("/v1/events", params={"sort": "type"}, headers=tenant.headers),
        400,
        "invalid_sort",
    )


async def test_the_delivery_log_filters_and_pages(
    app: FastAPI,
    client: AsyncClient,
    tenant: Tenant,
    receiver: Receiver,
    http: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(client, tenant.headers, receiver.url)
    failing = await emit(app, tenant)
    ok = await emit(app, tenant)
    receiver.failing.add(failing)
    await dispatch(app, http)
    path = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"

    async def listed(**params: str) -> list[dict[str, object]]:
        response = await client.get(path, params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    assert [d["event_id"] for d in await listed(status="pending")] == [failing]
    assert [d["event_id"] for d in await listed(status="delivered")] == [ok]
    assert [d["status"] for d in await listed(event_id=failing)] == ["pending"]
    assert len(await listed(limit="1")) == 1
    lost = await client.get(path, params={"status": "lost"}, headers=tenant.headers)
    assert_problem(lost, 400, "invalid_parameter")


async def test_other_tenants_see_nothing(
    app: FastAPI,
    client: AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    receiver: Receiver,
    http: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(client, tenant.headers, receiver.url)
    event_id = await emit(app, tenant)
    await dispatch(app, http)
    theirs = other_tenant.headers
    base = f"/v1/webhook-endpoints/{endpoint['id']}"
    assert_problem(await client.get(base, headers=theirs), 404)
    assert_problem(await client.get(f"{base}/deliveries", headers=theirs), 404)
    assert_problem(await client.patch(base, json={"active": False}, headers=theirs), 404)
    assert_problem(await client.delete(base, headers=theirs), 404)
    assert_problem(await client.get(f"/v1/events/{event_id}", headers=theirs), 404)
    assert_problem(await client.post(f"/v1/events/{event_id}/redeliver", headers=theirs), 404)
    assert (await client.get("/v1/webhook-endpoints", headers=theirs)).json()["data"] == []
    assert (await client.get("/v1/events", headers=theirs)).json()["data"] == []
    # Their endpoint cannot be named in a redelivery of our event either.
    other_endpoint = await new_endpoint(client, theirs, receiver.url)
    refused = await client.post(
        f"/v1/events/{event_id}/redeliver",
        json={"endpoint_id": other_endpoint["id"]},
        headers=tenant.headers,
    )
    assert_problem(refused, 422)


async def test_partner_keys_manage_only_their_own_endpoints(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    partner, partner_headers = await new_partner(app, tenant, "Ege Bilişim")
    _, rival_headers = await new_partner(app, tenant, "Akdeniz Sistem")

    created = await client.post(
        "/v1/partner/webhook-endpoints",
        json={"url": f"{receiver.url}/partner", "event_types": ["deal_registration.*"]},
        headers=partner_headers,
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["partner_id"] == str(partner) and endpoint["secret"].startswith("whsec_")
    assert created.headers["location"] == f"/v1/partner/webhook-endpoints/{endpoint['id']}"
    mine = f"/v1/partner/webhook-endpoints/{endpoint['id']}"

    listed = await client.get("/v1/partner/webhook-endpoints", headers=partner_headers)
    assert [e["id"] for e in listed.json()["data"]] == [endpoint["id"]]
    assert "secret" not in (await client.get(mine, headers=partner_headers)).json()
    patched = await client.patch(mine, json={"description": "portal"}, headers=partner_headers)
    assert patched.status_code == 200 and patched.json()["description"] == "portal"
    event_id = await emit(app, tenant, "deal_registration.submitted", partner_id=partner)
    await dispatch(app, http)
    logged = await client.get(f"{mine}/deliveries", headers=partner_headers)
    assert [d["event_id"] for d in logged.json()["data"]] == [event_id]

    # Another partner sees none of it.
    assert (await client.get("/v1/partner/webhook-endpoints", headers=rival_headers)).json()[
        "data"
    ] == []
    assert_problem(await client.get(mine, headers=rival_headers), 404)
    assert_problem(await client.get(f"{mine}/deliveries", headers=rival_headers), 404)
    assert_problem(await client.patch(mine, json={"active": False}, headers=rival_headers), 404)
    assert_problem(await client.delete(mine, headers=rival_headers), 404)

    # Partner keys never reach the organization's webhook operations or the event log.
    for method, path in (
        ("GET", "/v1/webhook-endpoints"),
        ("POST", "/v1/webhook-endpoints"),
        ("GET", f"/v1/webhook-endpoints/{endpoint['id']}"),
        ("GET", f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"),
        ("GET", "/v1/events"),
        ("GET", f"/v1/events/{event_id}"),
        ("POST", f"/v1/events/{event_id}/redeliver"),
    ):
        response = await client.request(
            method, path, json={"url": receiver.url}, headers=partner_headers
        )
        assert_problem(response, 403, "partner_not_allowed")
    # And organization keys use the organization's operations.
    assert_problem(
        await client.get("/v1/partner/webhook-endpoints", headers=tenant.headers),
        403,
        "partner_key_required",
    )
    # The organization's admins see (and can switch off) partner endpoints.
    org_view = await client.get(
        "/v1/webhook-endpoints", params={"partner_id": str(partner)}, headers=tenant.headers
    )
    assert [e["id"] for e in org_view.json()["data"]] == [endpoint["id"]]

    assert (await client.delete(mine, headers=partner_headers)).status_code == 204
    assert_problem(await client.get(mine, headers=partner_headers), 404)
