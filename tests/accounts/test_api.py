"""Accounts end to end through HTTP: CRUD, segments, hierarchy, roll-up, lifecycle,
soft delete, field history, audit log and outbox events."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.core.tenancy import Actor, bind_tenant
from app.models import OutboxEvent
from tests.factories import Tenant, assert_problem, create_account


async def _events(app: FastAPI, tenant: Tenant) -> list[tuple[str, dict[str, Any]]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.execute(
            select(OutboxEvent.event_type, OutboxEvent.payload).order_by(OutboxEvent.id)
        )
        return [(r[0], r[1]) for r in rows]


async def test_create_normalises_and_derives(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/accounts",
        json={
            "name": "  Anadolu Tekstil A.Ş. ",
            "domain": "HTTPS://www.Anadolu-Tekstil.com.tr/hakkimizda",
            "employee_count": 1200,
            "annual_revenue": "350000000.50",
            "country": "TR",
            "city": "Bursa",
            "industry": "textile",
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/v1/accounts/{body['id']}"
    assert body["name"] == "Anadolu Tekstil A.Ş."
    assert body["domain"] == "anadolu-tekstil.com.tr"
    assert body["annual_revenue"] == "350000000.50"
    assert body["segment"] == "enterprise"
    assert body["segment_source"] == "derived"
    assert body["lifecycle"] == "prospect"
    assert body["owner_id"] == str(tenant.admin_id)
    assert body["created_at"].endswith("Z")


async def test_segment_derivation_and_override(client: AsyncClient, tenant: Tenant) -> None:
    small = await create_account(client, tenant.headers, employee_count=20)
    assert small["segment"] == "smb"
    url = f"/v1/accounts/{small['id']}"
    grown = await client.patch(url, json={"employee_count": 250}, headers=tenant.headers)
    assert grown.json()["segment"] == "mid_market"
    manual = await client.patch(url, json={"segment": "enterprise"}, headers=tenant.headers)
    assert manual.json()["segment"] == "enterprise"
    assert manual.json()["segment_source"] == "manual"
    # A manual segment survives size changes …
    kept = await client.patch(url, json={"employee_count": 10}, headers=tenant.headers)
    assert kept.json()["segment"] == "enterprise"
    # … until it is cleared, which returns to the derived one.
    cleared = await client.patch(url, json={"segment": None}, headers=tenant.headers)
    assert cleared.json()["segment"] == "smb"
    assert cleared.json()["segment_source"] == "derived"


async def test_duplicate_domain_is_409_with_existing_id(
    client: AsyncClient, tenant: Tenant
) -> None:
    first = await create_account(client, tenant.headers, domain="acme.com")
    response = await client.post(
        "/v1/accounts",
        json={"name": "Acme again", "domain": "www.ACME.com"},
        headers=tenant.headers,
    )
    problem = assert_problem(response, 409, "duplicate_account")
    assert problem["existing_id"] == first["id"]
    other = await create_account(client, tenant.headers, domain="other.com")
    response = await client.patch(
        f"/v1/accounts/{other['id']}", json={"domain": "acme.com"}, headers=tenant.headers
    )
    assert_problem(response, 409, "duplicate_account")


async def test_validation_errors_name_fields(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/accounts",
        json={
            "name": "",
            "employee_count": -1,
            "country": "Turkey",
            "annual_revenue": "abc",
            "stage": "won",
        },
        headers=tenant.headers,
    )
    problem = assert_problem(response, 422, "validation_failed")
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {
        "body.name",
        "body.employee_count",
        "body.country",
        "body.annual_revenue",
        "body.stage",
    }
    nulled = await create_account(client, tenant.headers)
    response = await client.patch(
        f"/v1/accounts/{nulled['id']}", json={"name": None}, headers=tenant.headers
    )
    assert_problem(response, 422, "validation_failed")
    lifecycle = await client.patch(
        f"/v1/accounts/{nulled['id']}", json={"lifecycle": "customer"}, headers=tenant.headers
    )
    assert_problem(lifecycle, 422, "validation_failed")


async def _tree(client: AsyncClient, tenant: Tenant) -> dict[str, dict[str, Any]]:
    """holding → (europe → germany), (turkey)"""
    h = tenant.headers
    holding = await create_account(
        client, h, name="Holding", employee_count=10, lifecycle="customer", annual_revenue="100.00"
    )
    europe = await create_account(
        client, h, name="Europe", parent_account_id=holding["id"], employee_count=20
    )
    germany = await create_account(
        client,
        h,
        name="Germany",
        parent_account_id=europe["id"],
        employee_count=30,
        lifecycle="customer",
        annual_revenue="50.25",
    )
    turkey = await create_account(
        client, h, name="Turkey", parent_account_id=holding["id"], employee_count=40
    )
    return {"holding": holding, "europe": europe, "germany": germany, "turkey": turkey}


async def test_hierarchy_returns_whole_tree_from_any_node(
    client: AsyncClient, tenant: Tenant
) -> None:
    tree = await _tree(client, tenant)
    response = await client.get(
        f"/v1/accounts/{tree['germany']['id']}/hierarchy", headers=tenant.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["root_id"] == tree["holding"]["id"]
    assert body["total_accounts"] == 4
    root = body["tree"]
    assert root["name"] == "Holding" and root["depth"] == 0
    assert [c["name"] for c in root["children"]] == ["Europe", "Turkey"]
    assert [c["name"] for c in root["children"][0]["children"]] == ["Germany"]
    assert root["children"][0]["children"][0]["depth"] == 2


async def test_rollup_sums_over_descendants(client: AsyncClient, tenant: Tenant) -> None:
    tree = await _tree(client, tenant)
    response = await client.get(
        f"/v1/accounts/{tree['holding']['id']}/rollup", headers=tenant.headers
    )
    body = response.json()
    assert body == {
        "account_id": tree["holding"]["id"],
        "accounts": 4,
        "descendants": 3,
        "max_depth": 2,
        "customers": 2,
        "prospects": 2,
        "former_customers": 0,
        "employee_count": 100,
        "annual_revenue": "150.25",
        "open_opportunities": 0,
        "won_opportunities": 0,
        "open_pipeline": [],
        "won_revenue": [],
    }
    europe = await client.get(f"/v1/accounts/{tree['europe']['id']}/rollup", headers=tenant.headers)
    assert europe.json()["accounts"] == 2
    assert europe.json()["employee_count"] == 50


async def test_hierarchy_cycles_are_refused(client: AsyncClient, tenant: Tenant) -> None:
    tree = await _tree(client, tenant)
    h = tenant.headers
    for account, new_parent in (
        ("holding", "germany"),  # grandchild as parent
        ("holding", "europe"),  # child as parent
        ("europe", "europe"),  # itself
    ):
        response = await client.patch(
            f"/v1/accounts/{tree[account]['id']}",
            json={"parent_account_id": tree[new_parent]["id"]},
            headers=h,
        )
        assert_problem(response, 409, "hierarchy_cycle")
    # A legal move still works: Germany moves under Turkey.
    moved = await client.patch(
        f"/v1/accounts/{tree['germany']['id']}",
        json={"parent_account_id": tree["turkey"]["id"]},
        headers=h,
    )
    assert moved.status_code == 200
    detached = await client.patch(
        f"/v1/accounts/{tree['europe']['id']}", json={"parent_account_id": None}, headers=h
    )
    assert detached.json()["parent_account_id"] is None


async def test_lifecycle_moves(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    url = f"/v1/accounts/{account['id']}/lifecycle"
    refused = await client.post(url, json={"lifecycle": "former_customer"}, headers=tenant.headers)
    problem = assert_problem(refused, 409, "invalid_lifecycle_transition")
    assert "customer" in problem["errors"][0]["detail"]
    won = await client.post(
        url, json={"lifecycle": "customer", "at": "2026-03-01T09:00:00Z"}, headers=tenant.headers
    )
    assert won.status_code == 200
    assert won.json()["became_customer_at"] == "2026-03-01T09:00:00Z"
    churned = await client.post(url, json={"lifecycle": "former_customer"}, headers=tenant.headers)
    assert churned.json()["churned_at"] is not None
    back = await client.post(url, json={"lifecycle": "customer"}, headers=tenant.headers)
    assert back.json()["churned_at"] is None
    assert back.json()["became_customer_at"] == "2026-03-01T09:00:00Z"
    assert back.json()["version"] == 4


async def test_soft_delete(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    tree = await _tree(client, tenant)
    h = tenant.headers
    refused = await client.delete(f"/v1/accounts/{tree['europe']['id']}", headers=h)
    assert_problem(refused, 409, "account_has_children")
    deleted = await client.delete(
        f"/v1/accounts/{tree['germany']['id']}", headers={**h, "If-Match": '"1"'}
    )
    assert deleted.status_code == 204
    gone = await client.get(f"/v1/accounts/{tree['germany']['id']}", headers=h)
    assert_problem(gone, 404)
    listed = await client.get("/v1/accounts", headers=h)
    assert tree["germany"]["id"] not in {a["id"] for a in listed.json()["data"]}
    rollup = await client.get(f"/v1/accounts/{tree['holding']['id']}/rollup", headers=h)
    assert rollup.json()["accounts"] == 3
    # The domain of a deleted account is free again.
    reused = await create_account(client, h, domain="reused.example")
    assert (await client.delete(f"/v1/accounts/{reused['id']}", headers=h)).status_code == 204
    await create_account(client, h, domain="reused.example")
    deletions = [p for e, p in await _events(app, tenant) if e == "account.deleted"]
    assert [p["id"] for p in deletions] == [tree["germany"]["id"], reused["id"]]


async def test_history_audit_and_events(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    account = await create_account(client, h, name="Tracked", city="Ankara")
    url = f"/v1/accounts/{account['id']}"
    await client.patch(
        url, json={"city": "İstanbul", "industry": "saas"}, headers={**h, "X-Request-ID": "req-123"}
    )
    await client.patch(url, json={"city": "İzmir"}, headers=h)
    history = (await client.get(f"{url}/history", headers=h)).json()["data"]
    changes = [(c["field"], c["old_value"], c["new_value"]) for c in history]
    assert changes[0] == ("city", "İstanbul", "İzmir")
    assert set(changes[1:]) == {("city", "Ankara", "İstanbul"), ("industry", None, "saas")}
    assert all(c["actor_user_id"] == str(tenant.admin_id) for c in history)
    assert {c["request_id"] for c in history[1:]} == {"req-123"}
    only_city = (await client.get(f"{url}/history", params={"field": "city"}, headers=h)).json()[
        "data"
    ]
    assert len(only_city) == 2

    audit = (
        await client.get("/v1/audit-log", params={"resource_id": account["id"]}, headers=h)
    ).json()["data"]
    assert [a["action"] for a in audit] == ["account.updated", "account.updated", "account.created"]
    assert audit[1]["changed_fields"] == ["city", "industry"]
    assert audit[1]["request_id"] == "req-123"
    assert all(a["api_key_id"] for a in audit)

    events = await _events(app, tenant)
    assert [e for e, _ in events] == ["account.created", "account.updated", "account.updated"]
    assert events[0][1]["id"] == account["id"]
    assert events[1][1]["changed_fields"] == ["city", "industry"]


async def test_noop_patch_changes_nothing(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers, city="Ankara")
    same = await client.patch(
        f"/v1/accounts/{account['id']}", json={"city": "Ankara"}, headers=tenant.headers
    )
    assert same.json()["version"] == 1
    assert [e for e, _ in await _events(app, tenant)] == ["account.created"]


async def test_failed_write_leaves_no_trace(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    tree = await _tree(client, tenant)
    before = await _events(app, tenant)
    response = await client.patch(
        f"/v1/accounts/{tree['holding']['id']}",
        json={"city": "Van", "parent_account_id": tree["germany"]["id"]},
        headers=tenant.headers,
    )
    assert_problem(response, 409, "hierarchy_cycle")
    assert await _events(app, tenant) == before
    holding = await client.get(f"/v1/accounts/{tree['holding']['id']}", headers=tenant.headers)
    assert holding.json()["city"] is None
    assert holding.json()["version"] == 1
    history = await client.get(
        f"/v1/accounts/{tree['holding']['id']}/history", headers=tenant.headers
    )
    assert history.json()["data"] == []


async def test_one_patch_is_one_version_and_amounts_read_back_as_stored(
    client: AsyncClient, tenant: Tenant
) -> None:
    parent = await create_account(client, tenant.headers)
    account = await create_account(client, tenant.headers, annual_revenue="100")
    assert account["annual_revenue"] == "100.00"
    patched = await client.patch(
        f"/v1/accounts/{account['id']}",
        json={
            "name": "Renamed",
            "domain": "renamed.example",
            "employee_count": 5000,
            "owner_id": str(tenant.admin_id),
            "parent_account_id": parent["id"],
            "annual_revenue": "12.5",
        },
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    assert patched.json()["annual_revenue"] == "12.50"
    got = await client.get(f"/v1/accounts/{account['id']}", headers=tenant.headers)
    assert got.json() == patched.json()
    audit = await client.get(
        "/v1/audit-log",
        params={"resource_id": account["id"], "action": "account.updated"},
        headers=tenant.headers,
    )
    assert len(audit.json()["data"]) == 1
