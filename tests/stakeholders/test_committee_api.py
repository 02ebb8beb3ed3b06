"""Buying committees: membership rules, risk events and the stage engine's role facts."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.core.tenancy import Actor, bind_tenant
from app.models import OutboxEvent
from tests.factories import Tenant, assert_problem, create, create_account


async def _events(app: FastAPI, tenant: Tenant, event_type: str) -> list[dict[str, Any]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.scalars(
            select(OutboxEvent.payload)
            .where(OutboxEvent.event_type == event_type)
            .order_by(OutboxEvent.id)
        )
        return list(rows)


async def _setup(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    parent = await create_account(client, tenant.headers)
    account = await create_account(client, tenant.headers, parent_account_id=parent["id"])
    deal = await create(
        client,
        "/v1/opportunities",
        tenant.headers,
        {
            "account_id": account["id"],
            "name": "Big deal",
            "amount": "100",
            "close_date": "2027-03-01",
        },
    )
    people = {}
    for name, home in (("dm", account), ("champ", account), ("cfo", parent), ("other", account)):
        people[name] = await create(
            client,
            "/v1/contacts",
            tenant.headers,
            {"account_id": home["id"], "first_name": name, "last_name": "X"},
        )
    return {"deal": deal, "account": account, "parent": parent, **people}


async def _add(
    client: AsyncClient,
    tenant: Tenant,
    deal: dict[str, Any],
    contact: dict[str, Any],
    *roles: str,
    **fields: Any,
) -> Any:
    return await client.post(
        f"/v1/opportunities/{deal['id']}/stakeholders",
        headers=tenant.headers,
        json={"contact_id": contact["id"], "roles": list(roles), **fields},
    )


async def test_membership_rules(client: AsyncClient, tenant: Tenant) -> None:
    s = await _setup(client, tenant)
    added = await _add(
        client,
        tenant,
        s["deal"],
        s["dm"],
        "decision_maker",
        "economic_buyer",
        influence=5,
        stance="supporter",
    )
    assert added.status_code == 201, added.text
    assert added.json()["roles"] == ["decision_maker", "economic_buyer"]
    # A contact of the parent account is in the deal's account hierarchy.
    assert (await _add(client, tenant, s["deal"], s["cfo"], "influencer")).status_code == 201
    assert_problem(
        await _add(client, tenant, s["deal"], s["dm"], "legal"), 409, "duplicate_stakeholder"
    )
    unrelated = await create_account(client, tenant.headers)
    outsider = await create(
        client,
        "/v1/contacts",
        tenant.headers,
        {"account_id": unrelated["id"], "first_name": "o", "last_name": "o"},
    )
    problem = assert_problem(await _add(client, tenant, s["deal"], outsider, "champion"), 422)
    assert problem["errors"][0]["field"] == "body.contact_id"
    bad_role = await _add(client, tenant, s["deal"], s["other"], "ceo")
    assert_problem(bad_role, 422)
    bad_influence = await _add(client, tenant, s["deal"], s["other"], "influencer", influence=9)
    assert_problem(bad_influence, 422)
    listed = (
        await client.get(
            f"/v1/opportunities/{s['deal']['id']}/stakeholders", headers=tenant.headers
        )
    ).json()["data"]
    assert [m["contact_id"] for m in listed] == [s["dm"]["id"], s["cfo"]["id"]]


async def test_committee_roles_feed_the_stage_engine(client: AsyncClient, tenant: Tenant) -> None:
    s = await _setup(client, tenant)
    deal_url = f"/v1/opportunities/{s['deal']['id']}"
    refused = await client.post(
        f"{deal_url}/stage", json={"stage": "decision"}, headers=tenant.headers
    )
    assert [e["code"] for e in refused.json()["errors"]] == [
        "role_present:decision_maker",
        "role_present:champion",
    ]
    await _add(client, tenant, s["deal"], s["dm"], "decision_maker")
    refused = await client.post(
        f"{deal_url}/stage", json={"stage": "decision"}, headers=tenant.headers
    )
    assert [e["code"] for e in refused.json()["errors"]] == ["role_present:champion"]
    await _add(client, tenant, s["deal"], s["champ"], "champion")
    moved = await client.post(
        f"{deal_url}/stage", json={"stage": "decision"}, headers=tenant.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["forecast_category"] == "commit"
    # A champion who left the company no longer counts.
    back = await client.post(
        f"{deal_url}/stage",
        json={"stage": "proposal", "reason": "re-scoping"},
        headers=tenant.headers,
    )
    assert back.status_code == 200
    await client.post(
        f"/v1/contacts/{s['champ']['id']}/status",
        json={"status": "left_company"},
        headers=tenant.headers,
    )
    refused = await client.post(
        f"{deal_url}/stage", json={"stage": "decision"}, headers=tenant.headers
    )
    assert [e["code"] for e in refused.json()["errors"]] == ["role_present:champion"]


async def test_champion_changes_and_departures_are_risk_events(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    s = await _setup(client, tenant)
    first = (await _add(client, tenant, s["deal"], s["champ"], "champion")).json()
    await _add(client, tenant, s["deal"], s["other"], "influencer")
    # Not a champion change: no event.
    await client.patch(
        f"/v1/opportunities/{s['deal']['id']}/stakeholders/{first['id']}",
        json={"stance": "supporter"},
        headers=tenant.headers,
    )
    other = (
        await client.get(
            f"/v1/opportunities/{s['deal']['id']}/stakeholders", headers=tenant.headers
        )
    ).json()["data"][1]
    # The champion role moves from one contact to another.
    await client.patch(
        f"/v1/opportunities/{s['deal']['id']}/stakeholders/{first['id']}",
        json={"roles": ["influencer"]},
        headers=tenant.headers,
    )
    await client.patch(
        f"/v1/opportunities/{s['deal']['id']}/stakeholders/{other['id']}",
        json={"roles": ["champion"]},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    changes = await _events(app, tenant, "opportunity.champion_changed")
    assert [
        (c["previous_champion_ids"], c["champion_ids"], c["champion_lost"]) for c in changes
    ] == [
        ([], [s["champ"]["id"]], False),
        ([s["champ"]["id"]], [], True),
        ([], [s["other"]["id"]], False),
    ]
    left = await client.post(
        f"/v1/contacts/{s['other']['id']}/status",
        json={"status": "left_company", "at": "2026-11-01T08:00:00Z"},
        headers=tenant.headers,
    )
    assert left.json()["status"] == "left_company"
    assert left.json()["left_at"] == "2026-11-01T08:00:00Z"
    [departure] = await _events(app, tenant, "opportunity.stakeholder_left")
    assert departure["opportunity_id"] == s["deal"]["id"]
    assert departure["contact_id"] == s["other"]["id"]
    assert departure["was_champion"] is True
    history = (
        await client.get(
            "/v1/audit-log",
            params={"resource_type": "opportunity_stakeholder"},
            headers=tenant.headers,
        )
    ).json()["data"]
    assert {a["action"] for a in history} == {
        "opportunity_stakeholder.created",
        "opportunity_stakeholder.updated",
    }
    removed = await client.delete(
        f"/v1/opportunities/{s['deal']['id']}/stakeholders/{first['id']}", headers=tenant.headers
    )
    assert removed.status_code == 204


async def test_opportunity_influence_map(client: AsyncClient, tenant: Tenant) -> None:
    s = await _setup(client, tenant)
    await _add(client, tenant, s["deal"], s["dm"], "decision_maker", stance="neutral")
    await _add(client, tenant, s["deal"], s["champ"], "champion", stance="supporter", influence=4)
    await create(
        client,
        f"/v1/contacts/{s['champ']['id']}/relationships",
        tenant.headers,
        {"to_contact_id": s["dm"]["id"], "kind": "influences", "strength": 4},
    )
    await create(
        client,
        f"/v1/contacts/{s['champ']['id']}/relationships",
        tenant.headers,
        {"to_contact_id": s["other"]["id"], "kind": "trusts", "strength": 2},
    )
    graph = (
        await client.get(
            f"/v1/opportunities/{s['deal']['id']}/influence-map", headers=tenant.headers
        )
    ).json()
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert set(nodes) == {s["dm"]["id"], s["champ"]["id"]}  # members only
    assert nodes[s["champ"]["id"]]["roles"] == ["champion"]
    assert nodes[s["champ"]["id"]]["influence"] == 4
    assert [(e["source"], e["target"], e["kind"]) for e in graph["edges"]] == [
        (s["champ"]["id"], s["dm"]["id"], "influences")
    ]


async def test_other_tenant_gets_404(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    s = await _setup(client, tenant)
    member = (await _add(client, tenant, s["deal"], s["dm"], "champion")).json()
    base = f"/v1/opportunities/{s['deal']['id']}"
    for method, path, body in (
        ("GET", f"{base}/stakeholders", None),
        ("POST", f"{base}/stakeholders", {"contact_id": s["dm"]["id"], "roles": ["legal"]}),
        ("PATCH", f"{base}/stakeholders/{member['id']}", {"stance": "opponent"}),
        ("DELETE", f"{base}/stakeholders/{member['id']}", None),
        ("GET", f"{base}/committee", None),
        ("GET", f"{base}/influence-map", None),
    ):
        response = await client.request(method, path, json=body, headers=other_tenant.headers)
        assert_problem(response, 404)
