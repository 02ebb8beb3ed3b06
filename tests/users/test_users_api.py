"""Users (management hierarchy), teams and organization settings, through the HTTP API."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from tests.factories import (
    Tenant,
    assert_problem,
    create_account,
    create_team,
    create_user,
    key_for,
)


async def patch(
    client: AsyncClient, path: str, headers: dict[str, str], body: dict[str, Any]
) -> Any:
    return await client.patch(path, json=body, headers=headers)


def ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.text
    return {row["id"] for row in response.json()["data"]}


# --- users: create, read, list ------------------------------------------------------------


async def test_create_user(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/users",
        json={
            "email": "Ayse.Yilmaz@Example.COM",
            "name": "  Ayşe Yılmaz ",
            "role": "manager",
            "approval_max_discount_pct": "12.5",
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    user = response.json()
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/users/{user['id']}"
    assert uuid.UUID(user["id"]).version == 7
    assert user["email"] == "ayse.yilmaz@example.com"
    assert user["name"] == "Ayşe Yılmaz"
    assert user["role"] == "manager"
    assert user["approval_max_discount_pct"] == "12.50"  # as stored: NUMERIC(5, 2)
    assert user["is_active"] is True
    assert user["version"] == 1
    assert user["manager_id"] is None and user["team_id"] is None
    assert user["created_at"].endswith("Z") or user["created_at"].endswith("+00:00")

    got = await client.get(response.headers["location"], headers=tenant.headers)
    assert got.status_code == 200
    assert got.headers["etag"] == '"1"'
    assert got.json() == user


async def test_create_user_defaults_to_rep(client: AsyncClient, tenant: Tenant) -> None:
    user = await create_user(client, tenant.headers)
    assert user["role"] == "rep"
    assert user["approval_max_discount_pct"] is None


async def test_duplicate_email_is_409(client: AsyncClient, tenant: Tenant) -> None:
    first = await create_user(client, tenant.headers, email="dup@example.com")
    response = await client.post(
        "/v1/users",
        json={"email": "DUP@example.com", "name": "Copy"},
        headers=tenant.headers,
    )
    body = assert_problem(response, 409, "duplicate_email")
    assert body["existing_id"] == first["id"]


async def test_same_email_in_another_tenant_is_fine(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await create_user(client, tenant.headers, email="shared@example.com")
    await create_user(client, other_tenant.headers, email="shared@example.com")


async def test_create_user_validation(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/users",
        json={
            "email": "not-an-email",
            "name": "",
            "role": "superuser",
            "approval_max_discount_pct": "150",
        },
        headers=tenant.headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    fields = {e["field"] for e in body["errors"]}
    assert {"body.email", "body.name", "body.role", "body.approval_max_discount_pct"} <= fields


async def test_create_user_with_unknown_references_is_422(
    client: AsyncClient, tenant: Tenant
) -> None:
    for field in ("manager_id", "team_id"):
        response = await client.post(
            "/v1/users",
            json={"email": "x@example.com", "name": "X", field: str(uuid.uuid4())},
            headers=tenant.headers,
        )
        body = assert_problem(response, 422, "validation_failed")
        assert body["errors"][0]["field"] == f"body.{field}"
    listed = await client.get("/v1/users", headers=tenant.headers)
    assert ids(listed) == {str(tenant.admin_id)}


async def test_list_users_with_filters(client: AsyncClient, tenant: Tenant) -> None:
    team = await create_team(client, tenant.headers, name="Anatolia")
    manager = await create_user(client, tenant.headers, role="manager", team_id=team["id"])
    rep = await create_user(
        client, tenant.headers, role="rep", team_id=team["id"], manager_id=manager["id"]
    )
    other_rep = await create_user(client, tenant.headers, role="rep", email="OTHER@example.com")
    gone = await create_user(client, tenant.headers, role="rep")
    assert (await client.delete(f"/v1/users/{gone['id']}", headers=tenant.headers)).is_success
    admin = str(tenant.admin_id)

    async def listed(**params: str) -> set[str]:
        return ids(await client.get("/v1/users", params=params, headers=tenant.headers))

    assert await listed() == {admin, manager["id"], rep["id"], other_rep["id"], gone["id"]}
    assert await listed(role="rep") == {rep["id"], other_rep["id"], gone["id"]}
    assert await listed(role="admin") == {admin}
    assert await listed(team_id=team["id"]) == {manager["id"], rep["id"]}
    assert await listed(manager_id=manager["id"]) == {rep["id"]}
    assert await listed(is_active="false") == {gone["id"]}
    assert await listed(is_active="true", role="rep") == {rep["id"], other_rep["id"]}
    assert await listed(email="other@EXAMPLE.com") == {other_rep["id"]}
    assert await listed(team_id=str(uuid.uuid4())) == set()


async def test_list_users_unknown_filter_is_400(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/users", params={"department": "sales"}, headers=tenant.headers)
    body = assert_problem(response, 400, "unknown_query_parameter")
    assert body["errors"][0]["field"] == "query.department"


async def test_list_users_invalid_filter_value_is_400(client: AsyncClient, tenant: Tenant) -> None:
    for params in ({"role": "superuser"}, {"team_id": "nope"}, {"is_active": "maybe"}):
        response = await client.get("/v1/users", params=params, headers=tenant.headers)
        body = assert_problem(response, 400, "invalid_parameter")
        assert body["errors"][0]["field"] == f"query.{next(iter(params))}"


async def test_list_users_sort_and_pagination(client: AsyncClient, tenant: Tenant) -> None:
    for name in ("Cem", "Ada", "Bora"):
        await create_user(client, tenant.headers, name=name)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"sort": "name", "limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/users", params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 2
        seen.extend(u["name"] for u in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:3] == ["Ada", "Bora", "Cem"]
    assert len(seen) == 4  # and the admin
    descending = await client.get("/v1/users", params={"sort": "-name"}, headers=tenant.headers)
    assert [u["name"] for u in descending.json()["data"]] == sorted(seen, reverse=True)


async def test_users_me(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/users/me", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["id"] == str(tenant.admin_id)
    assert response.json()["role"] == "admin"
    assert response.headers["etag"] == '"1"'

    rep_headers = await key_for(app, tenant, scopes=["users:read"], role="rep")
    rep = await client.get("/v1/users/me", headers=rep_headers)
    assert rep.status_code == 200
    assert rep.json()["role"] == "rep"
    assert rep.json()["id"] != str(tenant.admin_id)


async def test_users_me_needs_users_read(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    headers = await key_for(app, tenant, scopes=["accounts:read"])
    assert_problem(await client.get("/v1/users/me", headers=headers), 403, "missing_scope")


# --- users: update, hierarchy -------------------------------------------------------------


async def test_update_user(client: AsyncClient, tenant: Tenant) -> None:
    team = await create_team(client, tenant.headers)
    manager = await create_user(client, tenant.headers, role="manager")
    user = await create_user(client, tenant.headers)
    response = await patch(
        client,
        f"/v1/users/{user['id']}",
        {**tenant.headers, "If-Match": '"1"'},
        {"name": "Renamed", "role": "viewer", "team_id": team["id"], "manager_id": manager["id"]},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert response.headers["etag"] == '"2"'
    assert updated["version"] == 2
    assert (updated["name"], updated["role"]) == ("Renamed", "viewer")
    assert (updated["team_id"], updated["manager_id"]) == (team["id"], manager["id"])
    assert updated["email"] == user["email"]

    # Fields not sent stay; explicit null clears.
    cleared = await patch(client, f"/v1/users/{user['id']}", tenant.headers, {"team_id": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["team_id"] is None
    assert cleared.json()["manager_id"] == manager["id"]
    assert cleared.json()["name"] == "Renamed"


async def test_one_patch_is_one_version_and_one_audit_entry(
    client: AsyncClient, tenant: Tenant
) -> None:
    team = await create_team(client, tenant.headers)
    manager = await create_user(client, tenant.headers, role="manager")
    user = await create_user(client, tenant.headers)
    response = await patch(
        client,
        f"/v1/users/{user['id']}",
        {**tenant.headers, "If-Match": '"1"'},
        {
            "name": "Everything",
            "role": "manager",
            "manager_id": manager["id"],
            "team_id": team["id"],
            "approval_max_discount_pct": "7.5",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert response.json()["approval_max_discount_pct"] == "7.50"
    got = await client.get(f"/v1/users/{user['id']}", headers=tenant.headers)
    assert got.json() == response.json()

    audit = await client.get(
        "/v1/audit-log",
        params={"resource_id": user["id"], "action": "user.updated"},
        headers=tenant.headers,
    )
    assert audit.status_code == 200, audit.text
    entries = audit.json()["data"]
    assert len(entries) == 1
    assert set(entries[0]["changed_fields"]) == {
        "name",
        "role",
        "manager_id",
        "team_id",
        "approval_max_discount_pct",
    }


async def test_concurrent_demotion_of_the_last_two_admins(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    """Two admins demoting each other at once: one must lose, one admin must remain."""
    second = await create_user(client, tenant.headers, role="admin")
    second_headers = await key_for(app, tenant, scopes=["*"], user_id=uuid.UUID(second["id"]))
    # Warm the connection pool so that neither request waits for a new connection.
    warm = [client.get("/v1/users/me", headers=h) for h in (tenant.headers, second_headers) * 2]
    assert all(r.status_code == 200 for r in await asyncio.gather(*warm))
    results = await asyncio.gather(
        patch(client, f"/v1/users/{second['id']}", tenant.headers, {"role": "rep"}),
        patch(client, f"/v1/users/{tenant.admin_id}", second_headers, {"role": "rep"}),
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses in ([200, 403], [200, 409]), [r.text for r in results]
    loser = next(r for r in results if r.status_code != 200)
    assert_problem(loser, loser.status_code, "last_admin" if statuses[1] == 409 else None)
    admins = await client.get(
        "/v1/users", params={"role": "admin", "is_active": "true"}, headers=tenant.headers
    )
    assert len(admins.json()["data"]) == 1


async def test_update_user_stale_if_match_is_412(client: AsyncClient, tenant: Tenant) -> None:
    user = await create_user(client, tenant.headers)
    assert (
        await patch(client, f"/v1/users/{user['id']}", tenant.headers, {"name": "v2"})
    ).status_code == 200
    response = await patch(
        client, f"/v1/users/{user['id']}", {**tenant.headers, "If-Match": '"1"'}, {"name": "v3"}
    )
    body = assert_problem(response, 412, "version_mismatch")
    assert body["current_version"] == 2


async def test_email_cannot_be_patched(client: AsyncClient, tenant: Tenant) -> None:
    user = await create_user(client, tenant.headers)
    response = await patch(
        client, f"/v1/users/{user['id']}", tenant.headers, {"email": "new@example.com"}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["field"] == "body.email"


async def test_manager_cycle_is_409(client: AsyncClient, tenant: Tenant) -> None:
    a = await create_user(client, tenant.headers, role="manager", name="A")
    b = await create_user(client, tenant.headers, manager_id=a["id"], name="B")
    response = await patch(client, f"/v1/users/{a['id']}", tenant.headers, {"manager_id": b["id"]})
    body = assert_problem(response, 409, "hierarchy_cycle")
    assert body["errors"][0]["code"] == "hierarchy_cycle"
    got = await client.get(f"/v1/users/{a['id']}", headers=tenant.headers)
    assert got.json()["manager_id"] is None
    assert got.json()["version"] == 1


async def test_indirect_manager_cycle_is_409(client: AsyncClient, tenant: Tenant) -> None:
    a = await create_user(client, tenant.headers, role="manager")
    b = await create_user(client, tenant.headers, role="manager", manager_id=a["id"])
    c = await create_user(client, tenant.headers, manager_id=b["id"])
    response = await patch(client, f"/v1/users/{a['id']}", tenant.headers, {"manager_id": c["id"]})
    assert_problem(response, 409, "hierarchy_cycle")
    # Re-parenting without a loop is fine: C reports to A directly.
    ok = await patch(client, f"/v1/users/{c['id']}", tenant.headers, {"manager_id": a["id"]})
    assert ok.status_code == 200, ok.text


async def test_user_cannot_manage_themselves(client: AsyncClient, tenant: Tenant) -> None:
    a = await create_user(client, tenant.headers)
    response = await patch(client, f"/v1/users/{a['id']}", tenant.headers, {"manager_id": a["id"]})
    assert_problem(response, 409, "hierarchy_cycle")


async def test_inactive_user_cannot_become_a_manager(client: AsyncClient, tenant: Tenant) -> None:
    gone = await create_user(client, tenant.headers, role="manager")
    assert (await client.delete(f"/v1/users/{gone['id']}", headers=tenant.headers)).is_success
    user = await create_user(client, tenant.headers)
    response = await patch(
        client, f"/v1/users/{user['id']}", tenant.headers, {"manager_id": gone["id"]}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["field"] == "body.manager_id"
    response = await client.post(
        "/v1/users",
        json={"email": "new@example.com", "name": "New", "manager_id": gone["id"]},
        headers=tenant.headers,
    )
    assert_problem(response, 422, "validation_failed")


# --- users: last admin, deactivation ------------------------------------------------------


async def test_demoting_the_last_admin_is_409(client: AsyncClient, tenant: Tenant) -> None:
    response = await patch(
        client, f"/v1/users/{tenant.admin_id}", tenant.headers, {"role": "manager"}
    )
    body = assert_problem(response, 409, "last_admin")
    assert body["errors"][0]["code"] == "last_admin"
    me = await client.get("/v1/users/me", headers=tenant.headers)
    assert me.json()["role"] == "admin"


async def test_deactivating_the_last_admin_is_409(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.delete(f"/v1/users/{tenant.admin_id}", headers=tenant.headers)
    assert_problem(response, 409, "last_admin")
    # The admin and their key still work.
    me = await client.get("/v1/users/me", headers=tenant.headers)
    assert me.status_code == 200
    assert me.json()["is_active"] is True


async def test_an_inactive_admin_does_not_count(client: AsyncClient, tenant: Tenant) -> None:
    second = await create_user(client, tenant.headers, role="admin")
    assert (await client.delete(f"/v1/users/{second['id']}", headers=tenant.headers)).is_success
    response = await patch(client, f"/v1/users/{tenant.admin_id}", tenant.headers, {"role": "rep"})
    assert_problem(response, 409, "last_admin")


async def test_admin_can_be_demoted_when_another_admin_exists(
    client: AsyncClient, tenant: Tenant
) -> None:
    second = await create_user(client, tenant.headers, role="admin")
    response = await patch(
        client, f"/v1/users/{tenant.admin_id}", tenant.headers, {"role": "manager"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "manager"
    # The demoted user's key now lacks admin powers.
    denied = await client.post(
        "/v1/users", json={"email": "z@example.com", "name": "Z"}, headers=tenant.headers
    )
    assert_problem(denied, 403, "role_not_allowed")
    # And now the second admin is the last one.
    response = await patch(client, f"/v1/users/{second['id']}", tenant.headers, {"role": "rep"})
    assert_problem(response, 403, "role_not_allowed")


async def test_deactivate_user_revokes_their_keys(client: AsyncClient, tenant: Tenant) -> None:
    user = await create_user(client, tenant.headers)
    tokens = []
    for name in ("one", "two"):
        key = await client.post(
            "/v1/api-keys",
            json={"name": name, "scopes": ["accounts:read"], "user_id": user["id"]},
            headers=tenant.headers,
        )
        assert key.status_code == 201, key.text
        tokens.append(key.json()["token"])

    response = await client.delete(
        f"/v1/users/{user['id']}", headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    assert response.headers["etag"] == '"2"'

    keys = await client.get("/v1/api-keys", params={"user_id": user["id"]}, headers=tenant.headers)
    assert len(keys.json()["data"]) == 2
    assert all(k["revoked_at"] is not None for k in keys.json()["data"])
    for token in tokens:
        denied = await client.get("/v1/accounts", headers={"Authorization": f"Bearer {token}"})
        assert_problem(denied, 401, "invalid_api_key")
    # Users are never deleted: still readable, and deactivating again is a no-op.
    got = await client.get(f"/v1/users/{user['id']}", headers=tenant.headers)
    assert got.status_code == 200 and got.json()["is_active"] is False
    again = await client.delete(f"/v1/users/{user['id']}", headers=tenant.headers)
    assert again.status_code == 200 and again.json()["version"] == 2
    # The admin's own keys are untouched.
    assert (await client.get("/v1/accounts", headers=tenant.headers)).status_code == 200


async def test_deactivate_with_stale_if_match_is_412(client: AsyncClient, tenant: Tenant) -> None:
    user = await create_user(client, tenant.headers)
    response = await client.delete(
        f"/v1/users/{user['id']}", headers={**tenant.headers, "If-Match": '"7"'}
    )
    assert_problem(response, 412, "version_mismatch")
    got = await client.get(f"/v1/users/{user['id']}", headers=tenant.headers)
    assert got.json()["is_active"] is True


async def test_only_admins_manage_users(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    user = await create_user(client, tenant.headers)
    manager = await key_for(app, tenant, scopes=["*"], role="manager")
    assert_problem(
        await patch(client, f"/v1/users/{user['id']}", manager, {"name": "x"}),
        403,
        "role_not_allowed",
    )
    assert_problem(
        await client.delete(f"/v1/users/{user['id']}", headers=manager), 403, "role_not_allowed"
    )
    got = await client.get(f"/v1/users/{user['id']}", headers=manager)
    assert got.json()["name"] == user["name"] and got.json()["is_active"] is True


# --- teams --------------------------------------------------------------------------------


async def test_team_crud(client: AsyncClient, tenant: Tenant) -> None:
    manager = await create_user(client, tenant.headers, role="manager")
    response = await client.post(
        "/v1/teams",
        json={"name": " Enterprise EMEA ", "manager_id": manager["id"]},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    team = response.json()
    assert team["name"] == "Enterprise EMEA"
    assert team["manager_id"] == manager["id"]
    assert team["version"] == 1
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/teams/{team['id']}"

    got = await client.get(f"/v1/teams/{team['id']}", headers=tenant.headers)
    assert got.status_code == 200 and got.json() == team
    assert got.headers["etag"] == '"1"'

    updated = await patch(
        client,
        f"/v1/teams/{team['id']}",
        {**tenant.headers, "If-Match": '"1"'},
        {"name": "Enterprise Europe", "manager_id": None},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Enterprise Europe"
    assert updated.json()["manager_id"] is None
    assert updated.headers["etag"] == '"2"'

    other_manager = await create_user(client, tenant.headers, role="manager")
    both = await patch(
        client,
        f"/v1/teams/{team['id']}",
        {**tenant.headers, "If-Match": '"2"'},
        {"name": "Enterprise EU", "manager_id": other_manager["id"]},
    )
    assert both.status_code == 200, both.text
    assert both.json()["version"] == 3
    assert both.headers["etag"] == '"3"'

    stale = await client.delete(
        f"/v1/teams/{team['id']}", headers={**tenant.headers, "If-Match": '"2"'}
    )
    assert_problem(stale, 412, "version_mismatch")
    deleted = await client.delete(
        f"/v1/teams/{team['id']}", headers={**tenant.headers, "If-Match": '"3"'}
    )
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await client.get(f"/v1/teams/{team['id']}", headers=tenant.headers), 404)
    assert_problem(await client.delete(f"/v1/teams/{team['id']}", headers=tenant.headers), 404)


async def test_list_teams_sorted_by_name(client: AsyncClient, tenant: Tenant) -> None:
    for name in ("Gamma", "Alpha", "Beta"):
        await create_team(client, tenant.headers, name=name)
    response = await client.get("/v1/teams", headers=tenant.headers)
    assert response.status_code == 200
    assert [t["name"] for t in response.json()["data"]] == ["Alpha", "Beta", "Gamma"]
    assert response.json()["next_cursor"] is None
    page = await client.get("/v1/teams", params={"limit": "2"}, headers=tenant.headers)
    assert [t["name"] for t in page.json()["data"]] == ["Alpha", "Beta"]
    rest = await client.get(
        "/v1/teams",
        params={"limit": "2", "cursor": page.json()["next_cursor"]},
        headers=tenant.headers,
    )
    assert [t["name"] for t in rest.json()["data"]] == ["Gamma"]
    assert_problem(
        await client.get("/v1/teams", params={"manager_id": "x"}, headers=tenant.headers),
        400,
        "unknown_query_parameter",
    )


async def test_duplicate_team_name_is_409(client: AsyncClient, tenant: Tenant) -> None:
    first = await create_team(client, tenant.headers, name="Inside")
    body = assert_problem(
        await client.post("/v1/teams", json={"name": " Inside "}, headers=tenant.headers),
        409,
        "duplicate_team",
    )
    assert body["existing_id"] == first["id"]
    second = await create_team(client, tenant.headers, name="Outside")
    renamed = await patch(client, f"/v1/teams/{second['id']}", tenant.headers, {"name": "Inside"})
    assert_problem(renamed, 409, "duplicate_team")
    # Renaming a team to its own name is not a conflict.
    same = await patch(client, f"/v1/teams/{first['id']}", tenant.headers, {"name": "Inside"})
    assert same.status_code == 200, same.text


async def test_team_with_unknown_manager_is_422(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/teams",
        json={"name": "Ghosts", "manager_id": str(uuid.uuid4())},
        headers=tenant.headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["field"] == "body.manager_id"


async def test_delete_team_with_members_is_409(client: AsyncClient, tenant: Tenant) -> None:
    team = await create_team(client, tenant.headers)
    member = await create_user(client, tenant.headers, team_id=team["id"])
    response = await client.delete(f"/v1/teams/{team['id']}", headers=tenant.headers)
    body = assert_problem(response, 409, "team_has_members")
    assert "1 member" in body["errors"][0]["detail"]
    assert (await client.get(f"/v1/teams/{team['id']}", headers=tenant.headers)).status_code == 200
    # Move the member out, then the team can go.
    moved = await patch(client, f"/v1/users/{member['id']}", tenant.headers, {"team_id": None})
    assert moved.status_code == 200
    assert (
        await client.delete(f"/v1/teams/{team['id']}", headers=tenant.headers)
    ).status_code == 204


async def test_only_admins_manage_teams(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    team = await create_team(client, tenant.headers)
    manager = await key_for(app, tenant, scopes=["*"], role="manager")
    assert (await client.get(f"/v1/teams/{team['id']}", headers=manager)).status_code == 200
    assert_problem(
        await client.post("/v1/teams", json={"name": "Mine"}, headers=manager),
        403,
        "role_not_allowed",
    )
    assert_problem(
        await patch(client, f"/v1/teams/{team['id']}", manager, {"name": "x"}),
        403,
        "role_not_allowed",
    )
    assert_problem(
        await client.delete(f"/v1/teams/{team['id']}", headers=manager), 403, "role_not_allowed"
    )


# --- organization -------------------------------------------------------------------------


async def test_get_organization(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/organization", headers=tenant.headers)
    assert response.status_code == 200
    org = response.json()
    assert org["id"] == str(tenant.organization_id)
    assert org["name"] == "Org A"
    assert org["currency"] == "TRY"
    assert org["timezone"] == "Europe/Istanbul"
    assert org["fiscal_year_start_month"] == 1
    assert org["settings"] == {}
    assert response.headers["etag"] == f'"{org["version"]}"'


async def test_patch_organization_with_if_match(client: AsyncClient, tenant: Tenant) -> None:
    current = await client.get("/v1/organization", headers=tenant.headers)
    etag = current.headers["etag"]
    response = await patch(
        client,
        "/v1/organization",
        {**tenant.headers, "If-Match": etag},
        {
            "name": "Acme Holding",
            "currency": "EUR",
            "fiscal_year_start_month": 4,
            "timezone": "Europe/Berlin",
        },
    )
    assert response.status_code == 200, response.text
    org = response.json()
    assert (org["name"], org["currency"], org["fiscal_year_start_month"], org["timezone"]) == (
        "Acme Holding",
        "EUR",
        4,
        "Europe/Berlin",
    )
    assert org["version"] == current.json()["version"] + 1
    assert response.headers["etag"] == f'"{org["version"]}"'

    stale = await patch(
        client, "/v1/organization", {**tenant.headers, "If-Match": etag}, {"name": "Lost"}
    )
    body = assert_problem(stale, 412, "version_mismatch")
    assert body["current_version"] == org["version"]
    again = await client.get("/v1/organization", headers=tenant.headers)
    assert again.json()["name"] == "Acme Holding"


async def test_patch_organization_validation(client: AsyncClient, tenant: Tenant) -> None:
    for body, field in (
        ({"currency": "eur"}, "body.currency"),
        ({"fiscal_year_start_month": 13}, "body.fiscal_year_start_month"),
        ({"name": ""}, "body.name"),
        ({"settings": {"x": 1}}, "body.settings"),
    ):
        response = await patch(client, "/v1/organization", tenant.headers, body)
        problem = assert_problem(response, 422, "validation_failed")
        assert field in {e["field"] for e in problem["errors"]}, body


async def test_invalid_timezone_is_422(client: AsyncClient, tenant: Tenant) -> None:
    for tz in ("Mars/Olympus_Mons", "Europe/../etc/passwd", ""):
        response = await patch(client, "/v1/organization", tenant.headers, {"timezone": tz})
        body = assert_problem(response, 422, "validation_failed")
        assert body["errors"][0]["field"] == "body.timezone", tz
    org = await client.get("/v1/organization", headers=tenant.headers)
    assert org.json()["timezone"] == "Europe/Istanbul"


async def test_segment_rules_change_the_segment_of_new_accounts(
    client: AsyncClient, tenant: Tenant
) -> None:
    before = await create_account(client, tenant.headers, employee_count=60)
    assert before["segment"] == "smb"

    rules = {
        "mid_market_min_employees": 50,
        "enterprise_min_employees": 500,
        "mid_market_min_revenue": "1000000",
        "enterprise_min_revenue": "50000000",
    }
    response = await patch(client, "/v1/organization", tenant.headers, {"segment_rules": rules})
    assert response.status_code == 200, response.text
    stored = response.json()["settings"]["segment_rules"]
    assert stored["mid_market_min_employees"] == 50
    assert stored["enterprise_min_employees"] == 500
    assert stored["mid_market_min_revenue"] == "1000000"

    assert (await create_account(client, tenant.headers, employee_count=60))["segment"] == (
        "mid_market"
    )
    assert (await create_account(client, tenant.headers, employee_count=600))["segment"] == (
        "enterprise"
    )
    by_revenue = await create_account(client, tenant.headers, annual_revenue="2000000.00")
    assert by_revenue["segment"] == "mid_market"
    assert (await create_account(client, tenant.headers, employee_count=10))["segment"] == "smb"

    # Clearing the rules returns to the defaults.
    cleared = await patch(client, "/v1/organization", tenant.headers, {"segment_rules": None})
    assert cleared.status_code == 200
    assert "segment_rules" not in cleared.json()["settings"]
    assert (await create_account(client, tenant.headers, employee_count=60))["segment"] == "smb"


async def test_segment_rules_validation(client: AsyncClient, tenant: Tenant) -> None:
    response = await patch(
        client,
        "/v1/organization",
        tenant.headers,
        {"segment_rules": {"mid_market_min_employees": -1}},
    )
    body = assert_problem(response, 422, "validation_failed")
    fields = {e["field"] for e in body["errors"]}
    assert "body.segment_rules.mid_market_min_employees" in fields
    assert "body.segment_rules.enterprise_min_employees" in fields


async def test_segment_rules_are_per_tenant(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    rules = {
        "mid_market_min_employees": 5,
        "enterprise_min_employees": 10,
        "mid_market_min_revenue": "1",
        "enterprise_min_revenue": "2",
    }
    assert (
        await patch(client, "/v1/organization", tenant.headers, {"segment_rules": rules})
    ).status_code == 200
    assert (await create_account(client, tenant.headers, employee_count=20))["segment"] == (
        "enterprise"
    )
    assert (await create_account(client, other_tenant.headers, employee_count=20))["segment"] == (
        "smb"
    )
    other = await client.get("/v1/organization", headers=other_tenant.headers)
    assert other.json()["settings"] == {}
    assert other.json()["name"] == "Org B"


async def test_only_admins_change_the_organization(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    viewer = await key_for(app, tenant, scopes=["*"], role="viewer")
    assert (await client.get("/v1/organization", headers=viewer)).status_code == 200
    assert_problem(
        await patch(client, "/v1/organization", viewer, {"name": "x"}), 403, "role_not_allowed"
    )
    no_scope = await key_for(app, tenant, scopes=["organization:read"])
    assert_problem(
        await patch(client, "/v1/organization", no_scope, {"name": "x"}), 403, "missing_scope"
    )


# --- cross-tenant -------------------------------------------------------------------------


async def test_other_tenant_gets_404_for_users_teams_and_keys(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    user = await create_user(client, tenant.headers)
    team = await create_team(client, tenant.headers)
    key = await client.post(
        "/v1/api-keys", json={"name": "k", "scopes": ["*"]}, headers=tenant.headers
    )
    assert key.status_code == 201
    key_id = key.json()["id"]
    theirs = other_tenant.headers

    for path in (
        f"/v1/users/{user['id']}",
        f"/v1/users/{tenant.admin_id}",
        f"/v1/teams/{team['id']}",
        f"/v1/api-keys/{key_id}",
    ):
        body = assert_problem(await client.get(path, headers=theirs), 404, "not_found")
        assert str(tenant.organization_id) not in str(body)
    assert_problem(await patch(client, f"/v1/users/{user['id']}", theirs, {"name": "pwned"}), 404)
    assert_problem(await client.delete(f"/v1/users/{user['id']}", headers=theirs), 404)
    assert_problem(await patch(client, f"/v1/teams/{team['id']}", theirs, {"name": "x"}), 404)
    assert_problem(await client.delete(f"/v1/teams/{team['id']}", headers=theirs), 404)
    assert_problem(await client.delete(f"/v1/api-keys/{key_id}", headers=theirs), 404)

    # Lists do not leak either.
    assert user["id"] not in ids(await client.get("/v1/users", headers=theirs))
    assert team["id"] not in ids(await client.get("/v1/teams", headers=theirs))
    assert key_id not in ids(await client.get("/v1/api-keys", headers=theirs))
    by_team = await client.get("/v1/users", params={"team_id": team["id"]}, headers=theirs)
    assert ids(by_team) == set()

    # Nothing changed for the owner.
    got = await client.get(f"/v1/users/{user['id']}", headers=tenant.headers)
    assert got.json()["name"] == user["name"] and got.json()["is_active"] is True
    assert (await client.get(f"/v1/teams/{team['id']}", headers=tenant.headers)).status_code == 200
    assert (await client.get(f"/v1/api-keys/{key_id}", headers=tenant.headers)).json()[
        "revoked_at"
    ] is None


async def test_cannot_reference_another_tenants_user_or_team(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign_team = await create_team(client, other_tenant.headers)
    foreign_user = await create_user(client, other_tenant.headers, role="manager")
    for field, value in (("manager_id", foreign_user["id"]), ("team_id", foreign_team["id"])):
        response = await client.post(
            "/v1/users",
            json={"email": f"{field}@example.com", "name": "X", field: value},
            headers=tenant.headers,
        )
        body = assert_problem(response, 422, "validation_failed")
        assert body["errors"][0]["field"] == f"body.{field}"
    response = await client.post(
        "/v1/teams", json={"name": "T", "manager_id": foreign_user["id"]}, headers=tenant.headers
    )
    assert_problem(response, 422, "validation_failed")
    response = await client.post(
        "/v1/api-keys",
        json={"name": "k", "scopes": ["*"], "user_id": foreign_user["id"]},
        headers=tenant.headers,
    )
    assert_problem(response, 422, "validation_failed")


async def test_null_is_refused_for_fields_that_cannot_be_empty(
    client: AsyncClient, tenant: Tenant
) -> None:
    user = await client.post(
        "/v1/users", json={"email": "nul@example.com", "name": "N"}, headers=tenant.headers
    )
    for field in ("role", "name"):
        response = await client.patch(
            f"/v1/users/{user.json()['id']}", json={field: None}, headers=tenant.headers
        )
        problem = assert_problem(response, 422, "validation_failed")
        assert [e["field"] for e in problem["errors"]] == [f"body.{field}"]
    org = await client.patch("/v1/organization", json={"currency": None}, headers=tenant.headers)
    assert_problem(org, 422, "validation_failed")


async def test_enterprise_thresholds_cannot_be_below_mid_market(
    client: AsyncClient, tenant: Tenant
) -> None:
    rules = {
        "mid_market_min_employees": 500,
        "enterprise_min_employees": 100,
        "mid_market_min_revenue": "1000",
        "enterprise_min_revenue": "5000",
    }
    response = await client.patch(
        "/v1/organization", json={"segment_rules": rules}, headers=tenant.headers
    )
    assert_problem(response, 422, "validation_failed")
