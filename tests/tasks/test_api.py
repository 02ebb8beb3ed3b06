"""Tasks through HTTP: CRUD, links, status actions, list filters and paging, roles,
tenancy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from tests.factories import (
    Tenant,
    assert_problem,
    create,
    create_account,
    create_user,
    key_for,
)


async def _task(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    return await create(client, "/v1/tasks", tenant.headers, {"title": "Call back", **fields})


async def _deal(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    account = await create_account(client, tenant.headers)
    return await create(
        client, "/v1/opportunities", tenant.headers, {"name": "Deal", "account_id": account["id"]}
    )


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_create_defaults_and_headers(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/tasks",
        json={"title": "Send the revised quote", "due_at": "2026-03-01T09:30:00Z"},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    task = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/v1/tasks/{task['id']}"
    assert task["assignee_id"] == str(tenant.admin_id)
    assert task["source"] == "manual" and task["status"] == "open"
    assert task["completed_at"] is None and task["description"] is None
    assert task["account_id"] is None and task["opportunity_id"] is None
    assert task["version"] == 1
    assert _instant(task["due_at"]) == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

    fetched = await client.get(f"/v1/tasks/{task['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.headers["ETag"] == '"1"'
    assert fetched.json() == task


async def test_due_at_is_returned_in_utc(client: AsyncClient, tenant: Tenant) -> None:
    # What a write returns is what later reads return: RFC 3339 in UTC, "…Z".
    for sent, expected in (
        ("2026-03-01T12:30:00+03:00", "2026-03-01T09:30:00Z"),
        ("2026-03-01T09:30:00", "2026-03-01T09:30:00Z"),  # no offset: taken as UTC
        ("2026-03-01T09:30:00.250Z", "2026-03-01T09:30:00.250000Z"),
    ):
        task = await _task(client, tenant, due_at=sent)
        assert task["due_at"] == expected, sent
        fetched = (await client.get(f"/v1/tasks/{task['id']}", headers=tenant.headers)).json()
        assert fetched["due_at"] == expected, sent
        patched = await client.patch(
            f"/v1/tasks/{task['id']}", json={"due_at": sent}, headers=tenant.headers
        )
        assert patched.json()["due_at"] == expected, sent


async def test_create_with_links(client: AsyncClient, tenant: Tenant) -> None:
    rep = await create_user(client, tenant.headers, role="rep")
    deal = await _deal(client, tenant)
    task = await _task(
        client,
        tenant,
        description="Bring the samples",
        assignee_id=rep["id"],
        account_id=deal["account_id"],
        opportunity_id=deal["id"],
    )
    assert task["assignee_id"] == rep["id"]
    assert task["account_id"] == deal["account_id"]
    assert task["opportunity_id"] == deal["id"]
    assert task["description"] == "Bring the samples"


async def test_create_validation(client: AsyncClient, tenant: Tenant) -> None:
    for body in ({}, {"title": ""}, {"title": "x" * 301}, {"title": "t", "status": "done"}):
        response = await client.post("/v1/tasks", json=body, headers=tenant.headers)
        assert_problem(response, 422, "validation_failed")
    assert (await client.get("/v1/tasks", headers=tenant.headers)).json()["data"] == []


async def test_invalid_links_are_422_with_field(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    foreign_user = await create_user(client, other_tenant.headers)
    foreign_account = await create_account(client, other_tenant.headers)
    for field, value in (
        ("assignee_id", foreign_user["id"]),
        ("assignee_id", str(other_tenant.admin_id)),
        ("assignee_id", str(uuid.uuid4())),
        ("account_id", str(uuid.uuid4())),
        ("account_id", foreign_account["id"]),
        ("opportunity_id", str(uuid.uuid4())),
    ):
        response = await client.post(
            "/v1/tasks", json={"title": "t", field: value}, headers=tenant.headers
        )
        problem = assert_problem(response, 422, "validation_failed")
        assert [e["field"] for e in problem["errors"]] == [f"body.{field}"], problem
        assert problem["errors"][0]["code"] == "not_found"
    assert (await client.get("/v1/tasks", headers=tenant.headers)).json()["data"] == []


async def test_inactive_assignee_is_refused(client: AsyncClient, tenant: Tenant) -> None:
    user = await create_user(client, tenant.headers)
    deactivated = await client.delete(f"/v1/users/{user['id']}", headers=tenant.headers)
    assert deactivated.status_code in (200, 204), deactivated.text
    response = await client.post(
        "/v1/tasks", json={"title": "t", "assignee_id": user["id"]}, headers=tenant.headers
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["field"] == "body.assignee_id"


async def test_patch_with_if_match(client: AsyncClient, tenant: Tenant) -> None:
    task = await _task(client, tenant, description="old")
    rep = await create_user(client, tenant.headers, role="rep")
    url = f"/v1/tasks/{task['id']}"
    response = await client.patch(
        url,
        json={
            "title": "Call back on Monday",
            "due_at": "2026-05-04T08:00:00Z",
            "assignee_id": rep["id"],
        },
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    body = response.json()
    assert body["version"] == 2
    assert body["title"] == "Call back on Monday"
    assert body["assignee_id"] == rep["id"]
    assert body["description"] == "old"  # omitted fields stay
    assert _instant(body["due_at"]) == datetime(2026, 5, 4, 8, tzinfo=UTC)

    stale = await client.patch(
        url, json={"title": "lost update"}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert_problem(stale, 412, "version_mismatch")

    cleared = await client.patch(
        url,
        json={"description": None, "due_at": None, "assignee_id": None},
        headers={**tenant.headers, "If-Match": '"2"'},
    )
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert body["description"] is None and body["due_at"] is None
    assert body["assignee_id"] is None and body["version"] == 3

    got = (await client.get(url, headers=tenant.headers)).json()
    assert got["title"] == "Call back on Monday" and got["version"] == 3


async def test_patch_refuses_null_title_status_and_unknown_fields(
    client: AsyncClient, tenant: Tenant
) -> None:
    task = await _task(client, tenant)
    url = f"/v1/tasks/{task['id']}"
    for body in (
        {"title": None},
        {"title": ""},
        {"status": "done"},
        {"completed_at": "2026-01-01T00:00:00Z"},
        {"source": "handover"},
    ):
        response = await client.patch(url, json=body, headers=tenant.headers)
        problem = assert_problem(response, 422, "validation_failed")
        assert problem["errors"], problem
    null_title = await client.patch(url, json={"title": None}, headers=tenant.headers)
    assert "body.title" in {e["field"] for e in null_title.json()["errors"]}
    unchanged = (await client.get(url, headers=tenant.headers)).json()
    assert unchanged["status"] == "open" and unchanged["version"] == 1
    assert unchanged["title"] == "Call back"


async def test_patch_invalid_assignee(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    task = await _task(client, tenant)
    response = await client.patch(
        f"/v1/tasks/{task['id']}",
        json={"assignee_id": str(other_tenant.admin_id)},
        headers=tenant.headers,
    )
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["body.assignee_id"]


async def test_status_actions(client: AsyncClient, tenant: Tenant) -> None:
    task = await _task(client, tenant)
    url = f"/v1/tasks/{task['id']}"

    done = await client.post(f"{url}/complete", headers={**tenant.headers, "If-Match": '"1"'})
    assert done.status_code == 200, done.text
    assert done.headers["ETag"] == '"2"'
    assert done.json()["status"] == "done" and done.json()["completed_at"] is not None
    assert (await client.get(url, headers=tenant.headers)).json()["status"] == "done"

    again = await client.post(f"{url}/complete", headers=tenant.headers)
    problem = assert_problem(again, 409, "invalid_status_transition")
    assert problem["errors"][0]["code"] == "invalid_status_transition"

    stale = await client.post(f"{url}/reopen", headers={**tenant.headers, "If-Match": '"1"'})
    assert_problem(stale, 412, "version_mismatch")

    reopened = await client.post(f"{url}/reopen", headers={**tenant.headers, "If-Match": '"2"'})
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["status"] == "open" and reopened.json()["completed_at"] is None
    assert reopened.json()["version"] == 3

    not_closed = await client.post(f"{url}/reopen", headers=tenant.headers)
    assert_problem(not_closed, 409, "invalid_status_transition")

    cancelled = await client.post(f"{url}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["completed_at"] is None

    for action in ("complete", "cancel"):
        refused = await client.post(f"{url}/{action}", headers=tenant.headers)
        assert_problem(refused, 409, "invalid_status_transition")
    final = (await client.get(url, headers=tenant.headers)).json()
    assert final["status"] == "cancelled" and final["version"] == 4

    reopened = await client.post(f"{url}/reopen", headers=tenant.headers)
    assert reopened.json()["status"] == "open"
    completed = await client.post(f"{url}/complete", headers=tenant.headers)
    assert completed.json()["status"] == "done" and completed.json()["completed_at"]


async def test_unknown_task_is_404(client: AsyncClient, tenant: Tenant) -> None:
    missing = f"/v1/tasks/{uuid.uuid4()}"
    for method, path in (
        ("GET", missing),
        ("PATCH", missing),
        ("POST", f"{missing}/complete"),
        ("POST", f"{missing}/cancel"),
        ("POST", f"{missing}/reopen"),
    ):
        body = {"title": "x"} if method == "PATCH" else None
        response = await client.request(method, path, json=body, headers=tenant.headers)
        assert_problem(response, 404, "not_found")


async def test_list_filters(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    rep = await create_user(client, tenant.headers, role="rep")
    deal = await _deal(client, tenant)
    other_account = await create_account(client, tenant.headers)
    mine = await _task(client, tenant, title="mine", due_at="2026-01-10T12:00:00Z")
    await _task(
        client, tenant, title="theirs", assignee_id=rep["id"], due_at="2026-02-10T12:00:00Z"
    )
    await _task(
        client,
        tenant,
        title="on deal",
        account_id=deal["account_id"],
        opportunity_id=deal["id"],
        due_at="2026-03-10T12:00:00Z",
    )
    on_account = await _task(client, tenant, title="on account", account_id=other_account["id"])
    await client.post(f"/v1/tasks/{mine['id']}/complete", headers=tenant.headers)
    await client.post(f"/v1/tasks/{on_account['id']}/cancel", headers=tenant.headers)

    async def titles(headers: dict[str, str] | None = None, **params: Any) -> set[str]:
        response = await client.get("/v1/tasks", params=params, headers=headers or tenant.headers)
        assert response.status_code == 200, response.text
        return {t["title"] for t in response.json()["data"]}

    assert await titles() == {"mine", "theirs", "on deal", "on account"}
    assert await titles(assignee_id="me") == {"mine", "on deal", "on account"}
    assert await titles(assignee_id=rep["id"]) == {"theirs"}
    assert await titles(assignee_id=str(uuid.uuid4())) == set()
    rep_key = await key_for(app, tenant, scopes=["*"], role="rep")
    assert await titles(rep_key, assignee_id="me") == set()  # a fresh rep has none
    assert await titles(status="open") == {"theirs", "on deal"}
    assert await titles(status="done") == {"mine"}
    assert await titles(status="cancelled") == {"on account"}
    assert await titles(source="manual") == {"mine", "theirs", "on deal", "on account"}
    assert await titles(source="handover") == set()
    assert await titles(account_id=deal["account_id"]) == {"on deal"}
    assert await titles(account_id=other_account["id"]) == {"on account"}
    assert await titles(opportunity_id=deal["id"]) == {"on deal"}
    assert await titles(due_before="2026-02-10T12:00:00Z") == {"mine"}  # exclusive
    assert await titles(due_after="2026-02-10T12:00:00Z") == {"theirs", "on deal"}  # inclusive
    assert await titles(due_after="2026-01-01T00:00:00Z", due_before="2026-03-01T00:00:00Z") == {
        "mine",
        "theirs",
    }
    assert await titles(assignee_id="me", status="open") == {"on deal"}

    garbage = await client.get(
        "/v1/tasks", params={"assignee_id": "garbage"}, headers=tenant.headers
    )
    problem = assert_problem(garbage, 400, "invalid_parameter")
    assert problem["errors"][0]["field"] == "query.assignee_id"
    for params in (
        {"status": "finished"},
        {"source": "email"},
        {"account_id": "nope"},
        {"due_before": "someday"},
    ):
        response = await client.get("/v1/tasks", params=params, headers=tenant.headers)
        problem = assert_problem(response, 400, "invalid_parameter")
        assert [e["field"] for e in problem["errors"]] == [f"query.{next(iter(params))}"]
    unknown = await client.get("/v1/tasks", params={"owner_id": "me"}, headers=tenant.headers)
    assert_problem(unknown, 400, "unknown_query_parameter")
    assert_problem(
        await client.get("/v1/tasks", params={"sort": "title"}, headers=tenant.headers),
        400,
        "invalid_sort",
    )


async def test_sort_by_due_at_and_walk_cursors(client: AsyncClient, tenant: Tenant) -> None:
    dues = {
        "c": "2026-03-01T00:00:00Z",
        "a": "2026-01-01T00:00:00Z",
        "none-1": None,
        "b": "2026-02-01T00:00:00Z",
        "b-twin": "2026-02-01T00:00:00Z",
        "none-2": None,
    }
    ids: dict[str, str] = {}
    for title, due in dues.items():
        ids[title] = (await _task(client, tenant, title=title, due_at=due))["id"]

    async def walk(sort: str) -> list[str]:
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(len(dues) + 2):
            params: dict[str, Any] = {"sort": sort, "limit": 1}
            if cursor:
                params["cursor"] = cursor
            response = await client.get("/v1/tasks", params=params, headers=tenant.headers)
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["data"]) <= 1
            seen += [t["title"] for t in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen
        raise AssertionError(f"cursor walk did not end: {seen}")

    ascending = await walk("due_at")
    assert sorted(ascending) == sorted(dues)  # every row exactly once
    assert ascending[:4] == ["a", "b", "b-twin", "c"]  # ties broken by id (creation order)
    assert set(ascending[4:]) == {"none-1", "none-2"}  # NULLs last when ascending

    descending = await walk("-due_at")
    assert sorted(descending) == sorted(dues)
    assert set(descending[:2]) == {"none-1", "none-2"}  # and first when descending
    assert descending[2:] == ["c", "b-twin", "b", "a"]

    whole = await client.get("/v1/tasks", params={"sort": "due_at"}, headers=tenant.headers)
    assert [t["title"] for t in whole.json()["data"]] == ascending
    assert whole.json()["next_cursor"] is None

    # Default order: newest first, and a cursor from one sort is refused by another.
    default = await client.get("/v1/tasks", params={"limit": 2}, headers=tenant.headers)
    assert [t["title"] for t in default.json()["data"]] == ["none-2", "b-twin"]
    mismatched = await client.get(
        "/v1/tasks",
        params={"sort": "due_at", "cursor": default.json()["next_cursor"]},
        headers=tenant.headers,
    )
    assert_problem(mismatched, 400, "invalid_cursor")


async def test_viewer_reads_but_cannot_write(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    task = await _task(client, tenant)
    viewer = await key_for(app, tenant, scopes=["*"], role="viewer")
    refused = await client.post("/v1/tasks", json={"title": "t"}, headers=viewer)
    assert_problem(refused, 403, "role_not_allowed")
    patch = await client.patch(f"/v1/tasks/{task['id']}", json={"title": "x"}, headers=viewer)
    assert_problem(patch, 403, "role_not_allowed")
    action = await client.post(f"/v1/tasks/{task['id']}/complete", headers=viewer)
    assert_problem(action, 403, "role_not_allowed")
    listed = await client.get("/v1/tasks", headers=viewer)
    assert [t["id"] for t in listed.json()["data"]] == [task["id"]]
    assert (await client.get(f"/v1/tasks/{task['id']}", headers=viewer)).status_code == 200
    unchanged = (await client.get(f"/v1/tasks/{task['id']}", headers=tenant.headers)).json()
    assert unchanged["version"] == 1 and unchanged["status"] == "open"


async def test_missing_scope_is_403(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    reader = await key_for(app, tenant, scopes=["tasks:read"])
    assert (await client.get("/v1/tasks", headers=reader)).status_code == 200
    refused = await client.post("/v1/tasks", json={"title": "t"}, headers=reader)
    assert_problem(refused, 403, "missing_scope")


async def test_other_tenant_sees_nothing(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    task = await _task(client, tenant)
    url = f"/v1/tasks/{task['id']}"
    b = other_tenant.headers
    for method, path, body in (
        ("GET", url, None),
        ("PATCH", url, {"title": "x"}),
        ("POST", f"{url}/complete", None),
        ("POST", f"{url}/cancel", None),
        ("POST", f"{url}/reopen", None),
    ):
        response = await client.request(method, path, json=body, headers=b)
        assert_problem(response, 404, "not_found")
    for params in ({}, {"assignee_id": str(tenant.admin_id)}, {"status": "open"}):
        listed = await client.get("/v1/tasks", params=params, headers=b)
        assert listed.json() == {"data": [], "next_cursor": None}
    untouched = (await client.get(url, headers=tenant.headers)).json()
    assert untouched == task


async def test_tasks_link_to_leads_and_contacts(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    contact = await create(
        client,
        "/v1/contacts",
        tenant.headers,
        {"account_id": account["id"], "first_name": "A", "last_name": "B"},
    )
    lead = await create(client, "/v1/leads", tenant.headers, {"last_name": "Lead"})
    task = await create(
        client,
        "/v1/tasks",
        tenant.headers,
        {"title": "Call back", "lead_id": lead["id"], "contact_id": contact["id"]},
    )
    assert (task["lead_id"], task["contact_id"]) == (lead["id"], contact["id"])
    for params in ({"lead_id": lead["id"]}, {"contact_id": contact["id"]}):
        listed = (await client.get("/v1/tasks", params=params, headers=tenant.headers)).json()
        assert [t["id"] for t in listed["data"]] == [task["id"]]
    foreign = await client.post(
        "/v1/tasks", headers=other_tenant.headers, json={"title": "x", "lead_id": lead["id"]}
    )
    problem = assert_problem(foreign, 422)
    assert problem["errors"][0]["field"] == "body.lead_id"
