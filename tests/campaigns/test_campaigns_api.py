"""Campaigns CRUD, members (one by one and in bulk), the lead's source campaign, and
tenant isolation of every endpoint."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from tests.factories import Tenant, assert_problem, create, create_account, key_for


async def _campaign(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Campaign {uuid.uuid4().hex[:6]}", "type": "webinar", **fields}
    return await create(client, "/v1/campaigns", tenant.headers, body)


async def _lead(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"last_name": f"Lead {uuid.uuid4().hex[:6]}", **fields}
    return await create(client, "/v1/leads", tenant.headers, body)


async def _contact(client: AsyncClient, tenant: Tenant, account_id: str) -> dict[str, Any]:
    body = {"account_id": account_id, "first_name": "Ada", "last_name": uuid.uuid4().hex[:6]}
    return await create(client, "/v1/contacts", tenant.headers, body)


async def test_crud_and_validation(client: AsyncClient, tenant: Tenant) -> None:
    created = await client.post(
        "/v1/campaigns",
        json={
            "name": "FinOps webinar",
            "type": "webinar",
            "channel": "linkedin",
            "start_date": "2026-09-01",
            "end_date": "2026-09-30",
            "budget": "5000",
            "actual_cost": "1234.5",
        },
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert created.headers["ETag"] == '"1"'
    assert created.headers["Location"] == f"/v1/campaigns/{campaign['id']}"
    assert campaign["budget"] == "5000.00"
    assert campaign["actual_cost"] == "1234.50"
    assert campaign["currency"] == "TRY"  # the org's corporate currency
    assert campaign["status"] == "planned"

    got = await client.get(f"/v1/campaigns/{campaign['id']}", headers=tenant.headers)
    assert got.json() == campaign

    # Validation: bad type, end before start, negative cost, unknown field.
    for body in (
        {"name": "X", "type": "radio"},
        {"name": "X", "type": "paid", "start_date": "2026-09-02", "end_date": "2026-09-01"},
        {"name": "X", "type": "paid", "actual_cost": "-1"},
        {"name": "X", "type": "paid", "colour": "red"},
    ):
        response = await client.post("/v1/campaigns", json=body, headers=tenant.headers)
        assert_problem(response, 422)
    duplicate = await client.post(
        "/v1/campaigns", json={"name": "FinOps webinar", "type": "paid"}, headers=tenant.headers
    )
    assert_problem(duplicate, 409, "duplicate_campaign")

    # PATCH with If-Match; stale → 412; null only for nullable fields.
    url = f"/v1/campaigns/{campaign['id']}"
    patched = await client.patch(
        url,
        json={"status": "active", "budget": None, "actual_cost": "2000"},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["budget"] is None
    assert patched.json()["actual_cost"] == "2000.00"
    assert patched.headers["ETag"] == '"2"'
    stale = await client.patch(
        url, json={"channel": "x"}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert_problem(stale, 412)
    assert_problem(await client.patch(url, json={"name": None}, headers=tenant.headers), 422)
    bad_period = await client.patch(url, json={"end_date": "2026-08-01"}, headers=tenant.headers)
    assert_problem(bad_period, 422)

    # Lists: filters, sort, keyset pages.
    await _campaign(client, tenant, name="B paid", type="paid")
    await _campaign(client, tenant, name="C paid", type="paid", status="completed")
    listed = await client.get(
        "/v1/campaigns", params={"type": "paid", "sort": "name"}, headers=tenant.headers
    )
    assert [c["name"] for c in listed.json()["data"]] == ["B paid", "C paid"]
    completed = await client.get(
        "/v1/campaigns", params={"status": "completed"}, headers=tenant.headers
    )
    assert [c["name"] for c in completed.json()["data"]] == ["C paid"]
    page = await client.get(
        "/v1/campaigns", params={"limit": 2, "sort": "name"}, headers=tenant.headers
    )
    assert page.json()["next_cursor"]
    rest = await client.get(
        "/v1/campaigns",
        params={"limit": 2, "sort": "name", "cursor": page.json()["next_cursor"]},
        headers=tenant.headers,
    )
    names = [c["name"] for c in page.json()["data"] + rest.json()["data"]]
    assert names == ["B paid", "C paid", "FinOps webinar"]
    assert_problem(
        await client.get("/v1/campaigns", params={"sort": "budget"}, headers=tenant.headers),
        400,
        "invalid_sort",
    )
    assert_problem(
        await client.get("/v1/campaigns", params={"colour": "red"}, headers=tenant.headers), 400
    )

    # Delete: an unused campaign goes; with members or sourced leads it is refused.
    assert (await client.delete(url, headers=tenant.headers)).status_code == 204
    assert_problem(await client.get(url, headers=tenant.headers), 404)


async def test_delete_refused_while_in_use(client: AsyncClient, tenant: Tenant) -> None:
    campaign = await _campaign(client, tenant)
    url = f"/v1/campaigns/{campaign['id']}"
    lead = await _lead(client, tenant, campaign_id=campaign["id"])
    body = assert_problem(await client.delete(url, headers=tenant.headers), 409, "campaign_in_use")
    assert body["errors"][0]["detail"] == "1 sourced lead(s)"
    other = await _campaign(client, tenant)
    await create(
        client, f"/v1/campaigns/{other['id']}/members", tenant.headers, {"lead_id": lead["id"]}
    )
    refused = await client.delete(f"/v1/campaigns/{other['id']}", headers=tenant.headers)
    assert_problem(refused, 409, "campaign_in_use")


async def test_rep_cannot_delete(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    campaign = await _campaign(client, tenant)
    rep = await key_for(app, tenant, scopes=["campaigns:read", "campaigns:write"], role="rep")
    response = await client.delete(f"/v1/campaigns/{campaign['id']}", headers=rep)
    assert_problem(response, 403, "role_not_allowed")
    reader = await key_for(app, tenant, scopes=["campaigns:read"])
    write = await client.post("/v1/campaigns", json={"name": "X", "type": "paid"}, headers=reader)
    assert_problem(write, 403, "missing_scope")
    assert (await client.get("/v1/campaigns", headers=reader)).status_code == 200


async def test_lead_source_campaign(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    campaign = await _campaign(client, tenant)
    lead = await _lead(client, tenant, campaign="Spring webinar", campaign_id=campaign["id"])
    assert lead["campaign_id"] == campaign["id"]
    assert lead["campaign"] == "Spring webinar"
    foreign = await _campaign(client, other_tenant)
    refused = await client.post(
        "/v1/leads", json={"last_name": "X", "campaign_id": foreign["id"]}, headers=tenant.headers
    )
    body = assert_problem(refused, 422, "validation_failed")
    assert body["errors"][0]["field"] == "body.campaign_id"
    url = f"/v1/leads/{lead['id']}"
    assert_problem(
        await client.patch(url, json={"campaign_id": foreign["id"]}, headers=tenant.headers), 422
    )
    cleared = await client.patch(url, json={"campaign_id": None}, headers=tenant.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["campaign_id"] is None
    again = await client.patch(url, json={"campaign_id": campaign["id"]}, headers=tenant.headers)
    assert again.json()["campaign_id"] == campaign["id"]


async def test_members(client: AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    campaign = await _campaign(client, tenant)
    base = f"/v1/campaigns/{campaign['id']}/members"
    lead = await _lead(client, tenant)
    account = await create_account(client, tenant.headers)
    contact = await _contact(client, tenant, account["id"])

    sent = await create(client, base, tenant.headers, {"lead_id": lead["id"]})
    assert sent["status"] == "sent"
    assert sent["responded_at"] is None
    attended = await create(
        client, base, tenant.headers, {"contact_id": contact["id"], "status": "attended"}
    )
    assert attended["responded_at"] is not None

    # Exactly one of lead_id / contact_id; a duplicate is a 409.
    both = {"lead_id": lead["id"], "contact_id": contact["id"]}
    assert_problem(await client.post(base, json=both, headers=tenant.headers), 422)
    assert_problem(await client.post(base, json={}, headers=tenant.headers), 422)
    assert_problem(
        await client.post(base, json={"lead_id": lead["id"]}, headers=tenant.headers),
        409,
        "already_member",
    )
    assert_problem(
        await client.post(base, json={"lead_id": str(uuid.uuid4())}, headers=tenant.headers), 422
    )
    # Another tenant's lead or contact: an invalid reference.
    foreign_lead = await _lead(client, other_tenant)
    foreign_account = await create_account(client, other_tenant.headers)
    foreign_contact = await _contact(client, other_tenant, foreign_account["id"])
    for body in ({"lead_id": foreign_lead["id"]}, {"contact_id": foreign_contact["id"]}):
        response = await client.post(base, json=body, headers=tenant.headers)
        assert_problem(response, 422, "validation_failed")

    listed = await client.get(base, headers=tenant.headers)
    assert [m["id"] for m in listed.json()["data"]] == [sent["id"], attended["id"]]
    only = await client.get(base, params={"status": "attended"}, headers=tenant.headers)
    assert [m["id"] for m in only.json()["data"]] == [attended["id"]]

    # Status changes: the first response is stamped and then kept.
    member_url = f"{base}/{sent['id']}"
    responded = await client.patch(member_url, json={"status": "responded"}, headers=tenant.headers)
    assert responded.status_code == 200, responded.text
    first = responded.json()["responded_at"]
    assert first is not None
    assert responded.headers["ETag"] == '"2"'
    stale = await client.patch(
        member_url, json={"status": "sent"}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert_problem(stale, 412)
    later = await client.patch(
        member_url, json={"status": "registered"}, headers={**tenant.headers, "If-Match": '"2"'}
    )
    assert later.json()["status"] == "registered"
    assert later.json()["responded_at"] == first
    unsub = await client.patch(member_url, json={"status": "unsubscribed"}, headers=tenant.headers)
    assert unsub.json()["responded_at"] == first
    assert_problem(
        await client.patch(member_url, json={"status": "maybe"}, headers=tenant.headers), 422
    )

    # A member of another campaign is not found under this one.
    other = await _campaign(client, tenant)
    assert_problem(
        await client.patch(
            f"/v1/campaigns/{other['id']}/members/{sent['id']}",
            json={"status": "sent"},
            headers=tenant.headers,
        ),
        404,
    )
    stale_delete = await client.delete(member_url, headers={**tenant.headers, "If-Match": '"1"'})
    assert_problem(stale_delete, 412)
    assert (await client.delete(member_url, headers=tenant.headers)).status_code == 204
    assert_problem(await client.delete(member_url, headers=tenant.headers), 404)
    listed = await client.get(base, headers=tenant.headers)
    assert [m["id"] for m in listed.json()["data"]] == [attended["id"]]


async def test_bulk_add_by_filter(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    campaign = await _campaign(client, tenant)
    url = f"/v1/campaigns/{campaign['id']}/members/bulk"
    tr = [await _lead(client, tenant, country="TR", source="event") for _ in range(3)]
    await _lead(client, tenant, country="DE", source="event")
    await _lead(client, tenant, country="TR", source="paid")
    # Another tenant's leads match the same filter and must never be added.
    for _ in range(2):
        await _lead(client, other_tenant, country="TR", source="event")
    # One of the matches is already a member.
    await create(
        client, f"/v1/campaigns/{campaign['id']}/members", tenant.headers, {"lead_id": tr[0]["id"]}
    )

    body = {"leads": {"country": "TR", "source": "event"}, "status": "sent"}
    first = await client.post(url, json=body, headers=tenant.headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"added": 2, "already_members": 1}
    second = await client.post(url, json=body, headers=tenant.headers)
    assert second.json() == {"added": 0, "already_members": 3}

    members = (
        await client.get(
            f"/v1/campaigns/{campaign['id']}/members",
            params={"limit": 200},
            headers=tenant.headers,
        )
    ).json()["data"]
    assert {m["lead_id"] for m in members} == {lead["id"] for lead in tr}

    # Contacts by account and account segment, with a responding status.
    account = await create_account(client, tenant.headers)
    other_account = await create_account(client, tenant.headers)
    contacts = [await _contact(client, tenant, account["id"]) for _ in range(2)]
    await _contact(client, tenant, other_account["id"])
    foreign_account = await create_account(client, other_tenant.headers)
    await _contact(client, other_tenant, foreign_account["id"])
    by_account = await client.post(
        url,
        json={"contacts": {"account_id": account["id"]}, "status": "registered"},
        headers=tenant.headers,
    )
    assert by_account.json() == {"added": 2, "already_members": 0}
    registered = await client.get(
        f"/v1/campaigns/{campaign['id']}/members",
        params={"status": "registered"},
        headers=tenant.headers,
    )
    rows = registered.json()["data"]
    assert {m["contact_id"] for m in rows} == {c["id"] for c in contacts}
    assert all(m["responded_at"] is not None for m in rows)
    segment = account["segment"]
    by_segment = await client.post(
        url, json={"contacts": {"account_segment": segment}}, headers=tenant.headers
    )
    # Every contact of this tenant's accounts in that segment (both accounts): 1 new.
    assert by_segment.json() == {"added": 1, "already_members": 2}

    # Both filters at once, and nothing at all.
    both = await client.post(url, json={"leads": {}, "contacts": {}}, headers=tenant.headers)
    assert both.json() == {"added": 2, "already_members": 6}
    assert_problem(await client.post(url, json={"status": "sent"}, headers=tenant.headers), 422)
    assert_problem(
        await client.post(url, json={"leads": {"min_score": "x"}}, headers=tenant.headers), 422
    )


async def test_other_tenant_is_not_found(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    campaign = await _campaign(client, other_tenant)
    lead = await _lead(client, other_tenant)
    member = await create(
        client,
        f"/v1/campaigns/{campaign['id']}/members",
        other_tenant.headers,
        {"lead_id": lead["id"]},
    )
    url = f"/v1/campaigns/{campaign['id']}"
    headers = tenant.headers
    own_lead = await _lead(client, tenant)
    for response in (
        await client.get(url, headers=headers),
        await client.patch(url, json={"channel": "x"}, headers=headers),
        await client.delete(url, headers=headers),
        await client.get(f"{url}/members", headers=headers),
        await client.post(f"{url}/members", json={"lead_id": own_lead["id"]}, headers=headers),
        await client.post(f"{url}/members/bulk", json={"leads": {}}, headers=headers),
        await client.patch(
            f"{url}/members/{member['id']}", json={"status": "responded"}, headers=headers
        ),
        await client.delete(f"{url}/members/{member['id']}", headers=headers),
        await client.get(f"{url}/influence", headers=headers),
    ):
        assert_problem(response, 404)
    assert (await client.get("/v1/campaigns", headers=headers)).json()["data"] == []
    # Nothing changed over there.
    still = await client.get(f"{url}/members", headers=other_tenant.headers)
    assert [m["id"] for m in still.json()["data"]] == [member["id"]]
