"""Contacts, the org chart and the influence map through HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from tests.factories import Tenant, assert_problem, create, create_account


async def _contact(
    client: AsyncClient, tenant: Tenant, account: dict[str, Any], first: str, **fields: Any
) -> dict[str, Any]:
    return await create(
        client,
        "/v1/contacts",
        tenant.headers,
        {"account_id": account["id"], "first_name": first, "last_name": "Yılmaz", **fields},
    )


async def test_contact_crud_and_email_uniqueness(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    created = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={
            "account_id": account["id"],
            "first_name": "Ayşe",
            "last_name": "Demir",
            "email": "Ayse.Demir@Example.COM",
            "title": "CFO",
            "seniority": "c_level",
            "linkedin_url": "https://www.linkedin.com/in/aysedemir",
        },
    )
    assert created.status_code == 201, created.text
    contact = created.json()
    assert contact["email"] == "ayse.demir@example.com"
    assert contact["status"] == "active" and contact["owner_id"] == str(tenant.admin_id)
    duplicate = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={
            "account_id": account["id"],
            "first_name": "A",
            "last_name": "D",
            "email": "ayse.demir@example.com",
        },
    )
    problem = assert_problem(duplicate, 409, "duplicate_contact")
    assert problem["existing_id"] == contact["id"]
    # The same person may be a contact of another account.
    other = await create_account(client, tenant.headers)
    await _contact(client, tenant, other, "Ayşe", email="ayse.demir@example.com")
    patched = await client.patch(
        f"/v1/contacts/{contact['id']}",
        json={"title": "CEO"},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert patched.json()["title"] == "CEO" and patched.json()["version"] == 2
    by_email = await client.get(
        "/v1/contacts",
        params={"email": "AYSE.DEMIR@example.com", "account_id": account["id"]},
        headers=tenant.headers,
    )
    assert [c["id"] for c in by_email.json()["data"]] == [contact["id"]]
    bad = await client.post(
        "/v1/contacts",
        headers=tenant.headers,
        json={
            "account_id": account["id"],
            "first_name": "X",
            "last_name": "Y",
            "linkedin_url": "https://evil.example/in/x",
            "email": "nope",
        },
    )
    problem = assert_problem(bad, 422)
    assert {e["field"] for e in problem["errors"]} == {"body.linkedin_url", "body.email"}
    deleted = await client.delete(f"/v1/contacts/{contact['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/v1/contacts/{contact['id']}", headers=tenant.headers), 404)


async def test_org_chart_and_cycles(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    ceo = await _contact(client, tenant, account, "Ceo", title="CEO")
    cfo = await _contact(client, tenant, account, "Cfo", reports_to_id=ceo["id"])
    buyer = await _contact(client, tenant, account, "Buyer", reports_to_id=cfo["id"])
    loner = await _contact(client, tenant, account, "Loner")
    chart = (
        await client.get(f"/v1/accounts/{account['id']}/org-chart", headers=tenant.headers)
    ).json()
    assert chart["total_contacts"] == 4
    roots = {r["name"]: r for r in chart["roots"]}
    assert set(roots) == {"Ceo Yılmaz", "Loner Yılmaz"}
    assert [c["name"] for c in roots["Ceo Yılmaz"]["children"]] == ["Cfo Yılmaz"]
    assert [c["name"] for c in roots["Ceo Yılmaz"]["children"][0]["children"]] == ["Buyer Yılmaz"]
    for contact, manager in ((ceo, buyer), (ceo, cfo), (cfo, cfo)):
        refused = await client.patch(
            f"/v1/contacts/{contact['id']}",
            json={"reports_to_id": manager["id"]},
            headers=tenant.headers,
        )
        assert_problem(refused, 409, "org_chart_cycle")
    other_account = await create_account(client, tenant.headers)
    stranger = await _contact(client, tenant, other_account, "Stranger")
    cross = await client.patch(
        f"/v1/contacts/{loner['id']}",
        json={"reports_to_id": stranger["id"]},
        headers=tenant.headers,
    )
    problem = assert_problem(cross, 422)
    assert problem["errors"][0]["field"] == "body.reports_to_id"
    has_reports = await client.delete(f"/v1/contacts/{cfo['id']}", headers=tenant.headers)
    assert_problem(has_reports, 409, "contact_has_reports")


async def test_influence_map(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    a = await _contact(client, tenant, account, "A")
    b = await _contact(client, tenant, account, "B", reports_to_id=a["id"])
    c = await _contact(client, tenant, account, "C")
    edge = await create(
        client,
        f"/v1/contacts/{a['id']}/relationships",
        tenant.headers,
        {"to_contact_id": c["id"], "kind": "influences", "strength": 4},
    )
    await create(
        client,
        f"/v1/contacts/{c['id']}/relationships",
        tenant.headers,
        {"to_contact_id": a["id"], "kind": "influences", "strength": 2},
    )
    await create(
        client,
        f"/v1/contacts/{c['id']}/relationships",
        tenant.headers,
        {"to_contact_id": b["id"], "kind": "reports_to", "strength": 5},
    )
    # reports_to edges may not loop: b → ... → c → b
    loop = await client.post(
        f"/v1/contacts/{b['id']}/relationships",
        headers=tenant.headers,
        json={"to_contact_id": c["id"], "kind": "reports_to", "strength": 3},
    )
    assert_problem(loop, 409, "relationship_cycle")
    duplicate = await client.post(
        f"/v1/contacts/{a['id']}/relationships",
        headers=tenant.headers,
        json={"to_contact_id": c["id"], "kind": "influences", "strength": 1},
    )
    assert_problem(duplicate, 409, "duplicate_relationship")
    self_edge = await client.post(
        f"/v1/contacts/{a['id']}/relationships",
        headers=tenant.headers,
        json={"to_contact_id": a["id"], "kind": "trusts", "strength": 1},
    )
    assert_problem(self_edge, 422)
    other = await _contact(client, tenant, await create_account(client, tenant.headers), "X")
    cross = await client.post(
        f"/v1/contacts/{a['id']}/relationships",
        headers=tenant.headers,
        json={"to_contact_id": other["id"], "kind": "trusts", "strength": 1},
    )
    assert_problem(cross, 422)
    graph = (
        await client.get(f"/v1/accounts/{account['id']}/influence-map", headers=tenant.headers)
    ).json()
    assert {n["id"] for n in graph["nodes"]} == {a["id"], b["id"], c["id"]}
    edges = {(e["source"], e["target"], e["kind"], e["origin"]) for e in graph["edges"]}
    assert edges == {
        (b["id"], a["id"], "reports_to", "org_chart"),
        (a["id"], c["id"], "influences", "relationship"),
        (c["id"], a["id"], "influences", "relationship"),
        (c["id"], b["id"], "reports_to", "relationship"),
    }
    listed = (
        await client.get(f"/v1/contacts/{a['id']}/relationships", headers=tenant.headers)
    ).json()["data"]
    assert len(listed) == 2
    url = f"/v1/contacts/{a['id']}/relationships/{edge['id']}"
    stronger = await client.patch(
        url, json={"strength": 5}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert stronger.json()["strength"] == 5 and stronger.json()["version"] == 2
    assert (await client.delete(url, headers=tenant.headers)).status_code == 204


async def test_other_tenant_gets_404(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    a = await _contact(client, tenant, account, "A")
    c = await _contact(client, tenant, account, "C")
    edge = await create(
        client,
        f"/v1/contacts/{a['id']}/relationships",
        tenant.headers,
        {"to_contact_id": c["id"], "kind": "trusts", "strength": 3},
    )
    b = other_tenant.headers
    for method, path, body in (
        ("GET", f"/v1/contacts/{a['id']}", None),
        ("PATCH", f"/v1/contacts/{a['id']}", {"title": "x"}),
        ("DELETE", f"/v1/contacts/{a['id']}", None),
        ("POST", f"/v1/contacts/{a['id']}/status", {"status": "left_company"}),
        ("GET", f"/v1/contacts/{a['id']}/relationships", None),
        (
            "POST",
            f"/v1/contacts/{a['id']}/relationships",
            {"to_contact_id": c["id"], "kind": "trusts", "strength": 1},
        ),
        ("PATCH", f"/v1/contacts/{a['id']}/relationships/{edge['id']}", {"strength": 1}),
        ("DELETE", f"/v1/contacts/{a['id']}/relationships/{edge['id']}", None),
        ("GET", f"/v1/accounts/{account['id']}/org-chart", None),
        ("GET", f"/v1/accounts/{account['id']}/influence-map", None),
    ):
        assert_problem(await client.request(method, path, json=body, headers=b), 404)
    assert (await client.get("/v1/contacts", headers=b)).json()["data"] == []
    theirs = await create_account(client, b)
    cross = await client.post(
        "/v1/contacts",
        headers=b,
        json={"account_id": account["id"], "first_name": "x", "last_name": "y"},
    )
    assert_problem(cross, 422)
    assert theirs["id"]
