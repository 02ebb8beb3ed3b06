"""Leads through HTTP (SPEC.md §4): the lifecycle and its history, BANT, scoring rules and
re-scoring, MQL auto-promotion, conversion (matching, dry run, atomicity), duplicate
detection, list filters and tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import func, select

from app.core.ids import new_id as other_id
from app.core.tenancy import Actor, bind_tenant
from app.leads import service
from app.models import AuditLog, Lead, LeadStatusHistory, OutboxEvent, TerritoryAssignment
from tests.factories import (
    Tenant,
    assert_problem,
    create,
    create_account,
    create_user,
    key_for,
)
from tests.metrics.test_report_cache import generation

CONFIRMED_BANT = {
    "budget": {"value": "₺2M approved", "confirmed": True},
    "authority": {"value": "CFO signs", "confirmed": True},
    "need": {"value": "replace spreadsheets", "confirmed": True},
    "timeline": {"value": "Q3", "confirmed": True},
}


async def _lead(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    return await create(client, "/v1/leads", tenant.headers, {"last_name": "Yılmaz", **fields})


async def _get(client: AsyncClient, tenant: Tenant, lead: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"/v1/leads/{lead['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _status(
    client: AsyncClient,
    headers: dict[str, str],
    lead: dict[str, Any],
    status: str,
    **body: Any,
) -> Response:
    return await client.post(
        f"/v1/leads/{lead['id']}/status", json={"status": status, **body}, headers=headers
    )


async def _move(
    client: AsyncClient, tenant: Tenant, lead: dict[str, Any], *statuses: str
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for status in statuses:
        response = await _status(client, tenant.headers, lead, status)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == status
    return body


async def _sql_lead(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    lead = await _lead(client, tenant, bant=CONFIRMED_BANT, **fields)
    return await _move(client, tenant, lead, "mql", "sal", "sql")


async def _history(client: AsyncClient, tenant: Tenant, lead: dict[str, Any]) -> list[Any]:
    response = await client.get(f"/v1/leads/{lead['id']}/history", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


async def _settings(client: AsyncClient, tenant: Tenant, **settings: Any) -> None:
    response = await client.patch("/v1/organization", json=settings, headers=tenant.headers)
    assert response.status_code == 200, response.text


async def _rule(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    return await create(client, "/v1/lead-scoring-rules", tenant.headers, fields)


async def _ids(client: AsyncClient, tenant: Tenant, path: str, **params: Any) -> list[str]:
    response = await client.get(path, params={"limit": 200, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


async def _events(app: FastAPI, tenant: Tenant, prefix: str = "") -> list[tuple[str, Any]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.execute(
            select(OutboxEvent.event_type, OutboxEvent.payload)
            .where(OutboxEvent.event_type.startswith(prefix))
            .order_by(OutboxEvent.id)
        )
        return [(r[0], r[1]) for r in rows]


async def test_a_create_that_fails_halfway_leaves_nothing_behind(
    app: FastAPI, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create writes the lead, its history, its territory assignment, its audit row and its
    event on the driver, then enrols the lead in nurture programs. All of it is one
    transaction: when the last step fails, none of the rows stays and no event goes out."""

    async def fail(*_args: Any) -> None:
        raise RuntimeError("injected: enrolling the lead failed")

    monkeypatch.setattr(service.nurture, "on_change", fail)
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/v1/leads",
            json={"last_name": "Yarım", "email": "yarim@example.com.tr"},
            headers=tenant.headers,
        )
    assert response.status_code == 500, response.text
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        for model, about_leads in (
            (Lead, True),
            (LeadStatusHistory, True),
            (TerritoryAssignment, TerritoryAssignment.record_type == "lead"),
            (AuditLog, AuditLog.resource_type == "lead"),
            (OutboxEvent, OutboxEvent.resource_type == "lead"),
        ):
            count = select(func.count()).select_from(model).where(about_leads)
            assert await session.scalar(count) == 0, model.__name__


# --- create, read, delete ------------------------------------------------------------------


async def test_create_and_get(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    before = await generation(app, tenant)
    response = await client.post(
        "/v1/leads",
        json={
            "first_name": "Ayşe",
            "last_name": "Yılmaz",
            "email": "Ayse.Yilmaz@Anadolu.com.TR",
            "company_name": "Anadolu Tekstil A.Ş.",
            "domain": "https://www.Anadolu.com.tr/iletisim",
            "employee_count": 250,
            "country": "TR",
            "source": "event",
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    lead = response.json()
    assert response.headers["Location"] == f"/v1/leads/{lead['id']}"
    assert response.headers["ETag"] == '"1"'
    assert lead["status"] == "new" and lead["version"] == 1
    assert lead["email"] == "ayse.yilmaz@anadolu.com.tr"
    assert lead["domain"] == "anadolu.com.tr"
    assert lead["segment"] == "mid_market"
    assert lead["owner_id"] == str(tenant.admin_id)
    assert lead["score"] == 0 and lead["score_breakdown"] == []
    assert lead["bant"] == {}
    assert all(
        lead[k] is None
        for k in (
            "mql_at",
            "sal_at",
            "sql_at",
            "converted_at",
            "disqualified_at",
            "recycled_at",
            "converted_account_id",
            "converted_contact_id",
            "converted_opportunity_id",
        )
    )
    assert await _get(client, tenant, lead) == lead
    [created] = await _history(client, tenant, lead)
    assert created["from_status"] is None and created["to_status"] == "new"
    assert created["actor_user_id"] == str(tenant.admin_id) and created["actor_type"] == "user"
    assert await _events(app, tenant, "lead.") == [
        (
            "lead.created",
            {
                "id": lead["id"],
                "name": "Ayşe Yılmaz",
                "email": "ayse.yilmaz@anadolu.com.tr",
                "company_name": "Anadolu Tekstil A.Ş.",
                "status": "new",
                "score": 0,
                "owner_id": str(tenant.admin_id),
                "territory_id": None,
                "source": "event",
                "version": 1,
            },
        )
    ]
    audit = await client.get(
        "/v1/audit-log", params={"resource_id": lead["id"]}, headers=tenant.headers
    )
    [entry] = audit.json()["data"]
    assert entry["action"] == "lead.created" and entry["actor_user_id"] == str(tenant.admin_id)
    assert entry["changed_fields"] == [  # the fields given a value (scores are not audited)
        "bant",
        "company_name",
        "country",
        "domain",
        "email",
        "employee_count",
        "first_name",
        "last_name",
        "owner_id",
        "segment",
        "source",
        "status",
    ]
    assert await generation(app, tenant) == before + 1  # cached reports see the new lead

    invalid = await client.post(
        "/v1/leads", json={"last_name": "", "source": "tv"}, headers=tenant.headers
    )
    assert_problem(invalid, 422, "validation_failed")
    unknown_owner = await client.post(
        "/v1/leads", json={"last_name": "X", "owner_id": str(other_id())}, headers=tenant.headers
    )
    assert_problem(unknown_owner, 422)


async def test_delete_is_soft_and_hides_the_lead(client: AsyncClient, tenant: Tenant) -> None:
    lead = await _lead(client, tenant, email="gone@example.com")
    stale = await client.delete(
        f"/v1/leads/{lead['id']}", headers={**tenant.headers, "If-Match": '"9"'}
    )
    assert_problem(stale, 412, "version_mismatch")
    deleted = await client.delete(f"/v1/leads/{lead['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/v1/leads/{lead['id']}", headers=tenant.headers), 404)
    assert await _ids(client, tenant, "/v1/leads") == []
    # A deleted lead's e-mail does not block a new lead.
    await _lead(client, tenant, email="gone@example.com")


# --- lifecycle -----------------------------------------------------------------------------


async def test_full_lifecycle_with_history_times_and_actors(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    rep_id = (await create_user(client, tenant.headers, role="rep"))["id"]
    rep = await key_for(app, tenant, scopes=["*"], user_id=rep_id)
    lead = await _lead(client, tenant, bant=CONFIRMED_BANT)
    for status, headers in (("mql", tenant.headers), ("sal", rep), ("sql", rep)):
        moved = await _status(client, headers, lead, status)
        assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["status"] == "sql" and body["version"] == 4
    assert moved.headers["ETag"] == '"4"'
    assert body["mql_at"] <= body["sal_at"] <= body["sql_at"]
    recycled = await _status(client, rep, lead, "recycled", reason="budget frozen")
    assert recycled.json()["status"] == "recycled" and recycled.json()["recycled_at"]
    again = await _status(client, tenant.headers, lead, "mql")
    assert again.status_code == 200 and again.json()["mql_at"] > body["mql_at"]
    gone = await _status(
        client, tenant.headers, lead, "disqualified", reason_code="no_budget", reason="no money"
    )
    assert gone.status_code == 200, gone.text
    final = gone.json()
    assert final["disqualified_reason_code"] == "no_budget"
    assert final["disqualified_reason"] == "no money" and final["disqualified_at"]

    history = await _history(client, tenant, lead)
    assert [(h["from_status"], h["to_status"]) for h in reversed(history)] == [
        (None, "new"),
        ("new", "mql"),
        ("mql", "sal"),
        ("sal", "sql"),
        ("sql", "recycled"),
        ("recycled", "mql"),
        ("mql", "disqualified"),
    ]
    assert [h["at"] for h in history] == sorted((h["at"] for h in history), reverse=True)
    actors = [h["actor_user_id"] for h in reversed(history)]
    admin = str(tenant.admin_id)
    assert actors == [admin, admin, rep_id, rep_id, rep_id, admin, admin]
    assert {h["actor_type"] for h in history} == {"user"}
    assert history[0]["reason_code"] == "no_budget" and history[0]["reason"] == "no money"
    assert history[2]["reason"] == "budget frozen"
    page = await client.get(
        f"/v1/leads/{lead['id']}/history", params={"limit": 3}, headers=tenant.headers
    )
    rest = await client.get(
        f"/v1/leads/{lead['id']}/history",
        params={"limit": 10, "cursor": page.json()["next_cursor"]},
        headers=tenant.headers,
    )
    assert [h["id"] for h in page.json()["data"] + rest.json()["data"]] == [
        h["id"] for h in history
    ]
    # The timeline shows the status changes too.
    timeline = await client.get(
        f"/v1/leads/{lead['id']}/timeline", params={"limit": 200}, headers=tenant.headers
    )
    assert timeline.status_code == 200, timeline.text
    assert sum(1 for i in timeline.json()["data"] if i["type"] == "status_change") == 7

    changed = [p for e, p in await _events(app, tenant, "lead.status_changed")]
    assert [(p["from"], p["to"]) for p in changed] == [
        (h["from_status"], h["to_status"]) for h in reversed(history[:-1])
    ]


async def test_refused_moves_name_every_unmet_requirement(
    client: AsyncClient, tenant: Tenant
) -> None:
    lead = await _lead(client, tenant)
    for target in ("sql", "recycled", "new"):
        refused = await _status(client, tenant.headers, lead, target)
        problem = assert_problem(refused, 409, "lead_transition_refused")
        assert [e["code"] for e in problem["errors"]] == ["invalid_transition"]
        assert (
            problem["errors"][0]["detail"] == "from new the lead can go to: mql, sal, disqualified"
        )
    converted = await _status(client, tenant.headers, lead, "converted")
    problem = assert_problem(converted, 409, "lead_transition_refused")
    assert [e["code"] for e in problem["errors"]] == ["use_conversion"]
    no_reason = await _status(client, tenant.headers, lead, "disqualified", reason="meh")
    problem = assert_problem(no_reason, 409, "lead_transition_refused")
    assert problem["errors"] == [
        {"code": "reason_required", "detail": "disqualifying a lead needs a reason code"}
    ]
    bad_reason = await _status(client, tenant.headers, lead, "disqualified", reason_code="meh")
    assert_problem(bad_reason, 422, "validation_failed")
    assert_problem(await _status(client, tenant.headers, lead, "heaven"), 422)
    stale = await client.post(
        f"/v1/leads/{lead['id']}/status",
        json={"status": "mql"},
        headers={**tenant.headers, "If-Match": '"5"'},
    )
    assert_problem(stale, 412, "version_mismatch")
    # Nothing of the refused moves is visible.
    unchanged = await _get(client, tenant, lead)
    assert unchanged["status"] == "new" and unchanged["version"] == 1
    assert len(await _history(client, tenant, lead)) == 1

    # Recycling only from sal/sql; a recycled lead can go back to mql, not straight to sal.
    await _move(client, tenant, lead, "mql")
    assert_problem(await _status(client, tenant.headers, lead, "recycled"), 409)
    await _move(client, tenant, lead, "sal", "recycled")
    refused = await _status(client, tenant.headers, lead, "sal")
    assert_problem(refused, 409, "lead_transition_refused")
    await _move(client, tenant, lead, "mql")
    # Disqualified is final.
    await _status(client, tenant.headers, lead, "disqualified", reason_code="spam")
    for target in ("new", "mql", "sal", "recycled"):
        problem = assert_problem(await _status(client, tenant.headers, lead, target), 409)
        assert problem["errors"][0]["detail"] == (
            "from disqualified the lead can go to: none (final status)"
        )


async def test_disqualify_from_every_open_status(client: AsyncClient, tenant: Tenant) -> None:
    paths = {
        "new": (),
        "mql": ("mql",),
        "sal": ("sal",),
        "sql": ("mql", "sal", "sql"),
        "recycled": ("sal", "recycled"),
    }
    for start, path in paths.items():
        lead = await _lead(client, tenant, bant=CONFIRMED_BANT)
        if path:
            await _move(client, tenant, lead, *path)
        response = await _status(
            client, tenant.headers, lead, "disqualified", reason_code="competitor", reason="X"
        )
        assert response.status_code == 200, (start, response.text)
        assert response.json()["status"] == "disqualified"
        assert (await _history(client, tenant, lead))[0]["from_status"] == start


async def test_sql_needs_all_four_bant_items_confirmed(client: AsyncClient, tenant: Tenant) -> None:
    lead = await _lead(
        client,
        tenant,
        bant={"budget": {"value": "₺1M", "confirmed": True}, "authority": {"value": "CEO"}},
    )
    await _move(client, tenant, lead, "sal")
    refused = await _status(client, tenant.headers, lead, "sql")
    problem = assert_problem(refused, 409, "lead_transition_refused")
    assert problem["errors"] == [
        {
            "code": "bant_authority_unconfirmed",
            "detail": "BANT authority must be recorded and confirmed",
        },
        {"code": "bant_need_unconfirmed", "detail": "BANT need must be recorded and confirmed"},
        {
            "code": "bant_timeline_unconfirmed",
            "detail": "BANT timeline must be recorded and confirmed",
        },
    ]
    # BANT items merge on PATCH.
    patched = await client.patch(
        f"/v1/leads/{lead['id']}",
        json={
            "bant": {
                "authority": {"value": "CEO", "confirmed": True},
                "need": CONFIRMED_BANT["need"],
            }
        },
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.text
    assert set(patched.json()["bant"]) == {"budget", "authority", "need"}
    assert patched.json()["bant"]["budget"] == {"value": "₺1M", "confirmed": True}
    refused = await _status(client, tenant.headers, lead, "sql")
    problem = assert_problem(refused, 409, "lead_transition_refused")
    assert [e["code"] for e in problem["errors"]] == ["bant_timeline_unconfirmed"]
    await client.patch(
        f"/v1/leads/{lead['id']}",
        json={"bant": {"timeline": {"value": "Q4", "confirmed": True}}},
        headers=tenant.headers,
    )
    moved = await _status(client, tenant.headers, lead, "sql")
    assert moved.status_code == 200, moved.text


async def test_org_can_turn_off_the_bant_requirement(client: AsyncClient, tenant: Tenant) -> None:
    lead = await _lead(client, tenant)
    await _move(client, tenant, lead, "sal")
    assert_problem(await _status(client, tenant.headers, lead, "sql"), 409)
    await _settings(client, tenant, require_bant_for_sql=False)
    await _move(client, tenant, lead, "sql")
    # null restores the default: required again.
    await _settings(client, tenant, require_bant_for_sql=None)
    other = await _lead(client, tenant)
    await _move(client, tenant, other, "sal")
    problem = assert_problem(await _status(client, tenant.headers, other, "sql"), 409)
    assert len(problem["errors"]) == 4


# --- scoring -------------------------------------------------------------------------------


async def test_scoring_rules_crud_and_validation(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    rule = await _rule(
        client,
        tenant,
        name="Textile",
        category="fit",
        field="industry",
        operator="in",
        value=["textile", "apparel"],
        points=20,
    )
    assert rule["active"] and rule["version"] == 1 and rule["value"] == ["textile", "apparel"]
    duplicate = await client.post(
        "/v1/lead-scoring-rules",
        json={
            **{k: rule[k] for k in ("name", "category", "field", "operator", "value")},
            "points": 1,
        },
        headers=tenant.headers,
    )
    assert_problem(duplicate, 409, "duplicate_rule")
    for bad in (
        {"category": "fit", "field": "owner_id", "operator": "equals", "value": "x"},
        {"category": "fit", "field": "industry", "operator": "in", "value": []},
        {"category": "fit", "field": "employee_count", "operator": "range", "value": {}},
        {"category": "fit", "field": "industry", "operator": "matches", "value": "x"},
        {"category": "engagement", "field": "recency", "operator": "equals", "value": {"days": 1}},
        {
            "category": "engagement",
            "field": "activity_count",
            "operator": "matches",
            "value": {"days": 7},
        },
    ):
        response = await client.post(
            "/v1/lead-scoring-rules",
            json={"name": "Bad", "points": 1, **bad},
            headers=tenant.headers,
        )
        problem = assert_problem(response, 422, "validation_failed")
        assert problem["errors"][0]["code"] == "invalid_rule"
    out_of_range = await client.post(
        "/v1/lead-scoring-rules",
        json={
            "name": "Big",
            "category": "fit",
            "field": "industry",
            "operator": "equals",
            "value": "x",
            "points": 5000,
        },
        headers=tenant.headers,
    )
    assert_problem(out_of_range, 422)

    url = f"/v1/lead-scoring-rules/{rule['id']}"
    bad_value = await client.patch(url, json={"value": "textile"}, headers=tenant.headers)
    assert_problem(bad_value, 422, "validation_failed")
    patched = await client.patch(
        url, json={"value": ["textile"], "points": 25, "active": False}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["value"] == ["textile"] and patched.json()["points"] == 25
    assert patched.json()["active"] is False and patched.json()["version"] == 2
    listed = (await client.get("/v1/lead-scoring-rules", headers=tenant.headers)).json()["data"]
    assert [r["id"] for r in listed] == [rule["id"]]

    rep = await key_for(app, tenant, scopes=["*"], role="rep")
    assert_problem(
        await client.post(
            "/v1/lead-scoring-rules",
            json={
                "name": "R",
                "category": "fit",
                "field": "industry",
                "operator": "equals",
                "value": "x",
                "points": 1,
            },
            headers=rep,
        ),
        403,
    )
    assert (await client.get("/v1/lead-scoring-rules", headers=rep)).status_code == 200
    assert_problem(await client.delete(url, headers=rep), 403)
    stale = await client.delete(url, headers={**tenant.headers, "If-Match": '"1"'})
    assert_problem(stale, 412, "version_mismatch")
    assert (await client.delete(url, headers=tenant.headers)).status_code == 204
    assert_problem(await client.delete(url, headers=tenant.headers), 404)
    assert (await client.get("/v1/lead-scoring-rules", headers=tenant.headers)).json()["data"] == []


async def _standard_rules(client: AsyncClient, tenant: Tenant) -> dict[str, str]:
    rules = [
        ("Textile", "fit", "industry", "in", ["textile", "apparel"], 20),
        ("Mid-size", "fit", "employee_count", "range", {"min": 100, "max": 999}, 15),
        ("Manager", "fit", "title", "contains", "müdür", 10),
        ("Turkey", "fit", "country", "equals", "tr", 5),
        ("Free mail", "fit", "domain", "contains", "gmail", -30),
        (
            "Busy",
            "engagement",
            "activity_count",
            "matches",
            {"days": 30, "min": 2, "kinds": ["meeting", "demo"]},
            25,
        ),
        ("Recent", "engagement", "recency", "matches", {"days": 7}, 8),
    ]
    ids = {}
    for name, category, field, operator, value, points in rules:
        made = await _rule(
            client,
            tenant,
            name=name,
            category=category,
            field=field,
            operator=operator,
            value=value,
            points=points,
        )
        ids[name] = made["id"]
    # An inactive rule never scores.
    await _rule(
        client,
        tenant,
        name="Inactive",
        category="fit",
        field="country",
        operator="equals",
        value="TR",
        points=999,
        active=False,
    )
    return ids


def _breakdown(lead: dict[str, Any]) -> dict[str, int]:
    return {item["rule"]: item["points"] for item in lead["score_breakdown"]}


async def test_score_and_breakdown_on_create_and_every_change(
    client: AsyncClient, tenant: Tenant
) -> None:
    ids = await _standard_rules(client, tenant)
    lead = await _lead(
        client,
        tenant,
        industry="Textile",
        employee_count=250,
        title="Satın Alma Müdürü",
        country="TR",
        domain="gmail.com",
    )
    assert lead["score"] == 20 + 15 + 10 + 5 - 30 == 20
    assert _breakdown(lead) == {
        "Textile": 20,
        "Mid-size": 15,
        "Manager": 10,
        "Turkey": 5,
        "Free mail": -30,
    }
    textile = next(i for i in lead["score_breakdown"] if i["rule"] == "Textile")
    assert textile == {
        "rule_id": ids["Textile"],
        "rule": "Textile",
        "category": "fit",
        "points": 20,
    }

    url = f"/v1/leads/{lead['id']}"
    patched = await client.patch(
        url, json={"domain": "anadolu.com.tr", "employee_count": 1000}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["score"] == 20 + 10 + 5 == 35
    assert _breakdown(patched.json()) == {"Textile": 20, "Manager": 10, "Turkey": 5}
    patched = await client.patch(
        url, json={"industry": None, "title": "Engineer"}, headers=tenant.headers
    )
    assert patched.json()["score"] == 5 and _breakdown(patched.json()) == {"Turkey": 5}
    assert (await _get(client, tenant, lead))["score"] == 5

    # Engagement: each logged activity re-scores.
    async def log(kind: str) -> None:
        made = await client.post(
            "/v1/activities",
            json={"kind": kind, "subject": f"{kind} with lead", "lead_id": lead["id"]},
            headers=tenant.headers,
        )
        assert made.status_code == 201, made.text

    await log("email")
    after_email = await _get(client, tenant, lead)
    assert after_email["score"] == 5 + 8 and _breakdown(after_email) == {"Turkey": 5, "Recent": 8}
    assert after_email["last_activity_at"] is not None
    await log("meeting")
    assert (await _get(client, tenant, lead))["score"] == 13  # one meeting is not "busy"
    await log("demo")
    busy = await _get(client, tenant, lead)
    assert busy["score"] == 5 + 8 + 25 == 38
    assert _breakdown(busy) == {"Turkey": 5, "Busy": 25, "Recent": 8}

    unknown_lead = await client.post(
        "/v1/activities",
        json={"kind": "call", "subject": "x", "lead_id": str(other_id())},
        headers=tenant.headers,
    )
    assert_problem(unknown_lead, 422)


def _snapshot(lead: dict[str, Any]) -> dict[str, Any]:
    """A lead as its events show it."""
    names = ("id", "email", "company_name", "status", "score", "owner_id", "territory_id")
    return {
        **{name: lead[name] for name in names},
        "name": f"{lead['first_name'] or ''} {lead['last_name']}".strip(),
        "source": lead["source"],
        "version": lead["version"],
    }


async def test_threshold_auto_promotes_new_leads_as_system(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    await _standard_rules(client, tenant)
    await _settings(client, tenant, mql_score_threshold=30)
    hot = await _lead(client, tenant, industry="textile", employee_count=500)  # 35
    assert hot["score"] == 35 and hot["status"] == "mql" and hot["mql_at"]
    history = await _history(client, tenant, hot)
    assert [(h["from_status"], h["to_status"], h["actor_type"]) for h in history] == [
        ("new", "mql", "system"),
        (None, "new", "user"),
    ]
    assert history[0]["actor_user_id"] is None
    assert history[0]["reason"] == "score 35 reached the MQL threshold 30"
    assert await _events(app, tenant, "lead.") == [
        ("lead.created", _snapshot(hot)),
        (
            "lead.status_changed",
            {
                "id": hot["id"],
                "from": "new",
                "to": "mql",
                "actor_type": "system",
                "reason_code": None,
            },
        ),
    ]

    cold = await _lead(client, tenant, industry="textile")  # 20
    assert cold["status"] == "new"
    warmed = await client.patch(
        f"/v1/leads/{cold['id']}",
        json={"country": "TR", "title": "Genel Müdür"},
        headers=tenant.headers,
    )
    assert warmed.json()["score"] == 35 and warmed.json()["status"] == "mql"
    assert (await _history(client, tenant, cold))[0]["actor_type"] == "system"

    # An activity pushing the score over the threshold promotes too.
    by_activity = await _lead(client, tenant, industry="textile", country="TR")  # 25
    assert by_activity["status"] == "new"
    await client.post(
        "/v1/activities",
        json={"kind": "call", "subject": "intro", "lead_id": by_activity["id"]},
        headers=tenant.headers,
    )
    promoted = await _get(client, tenant, by_activity)
    assert promoted["score"] == 33 and promoted["status"] == "mql"

    # Only new leads are promoted; a sal lead stays where it is.
    await _settings(client, tenant, mql_score_threshold=None)
    accepted = await _lead(client, tenant)
    await _move(client, tenant, accepted, "sal")
    await _settings(client, tenant, mql_score_threshold=0)
    stays = await client.patch(
        f"/v1/leads/{accepted['id']}", json={"industry": "textile"}, headers=tenant.headers
    )
    assert stays.json()["status"] == "sal" and stays.json()["score"] == 20
    assert len(await _history(client, tenant, accepted)) == 2


# --- conversion ----------------------------------------------------------------------------


async def _convert(
    client: AsyncClient,
    tenant: Tenant,
    lead: dict[str, Any],
    body: dict[str, Any] | None = None,
    **params: Any,
) -> Response:
    return await client.post(
        f"/v1/leads/{lead['id']}/convert", json=body or {}, params=params, headers=tenant.headers
    )


async def _counts(client: AsyncClient, tenant: Tenant) -> tuple[int, int, int]:
    return (
        len(await _ids(client, tenant, "/v1/accounts")),
        len(await _ids(client, tenant, "/v1/contacts")),
        len(await _ids(client, tenant, "/v1/opportunities")),
    )


async def test_conversion_creates_account_contact_and_deal(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    lead = await _sql_lead(
        client,
        tenant,
        first_name="Ayşe",
        email="ayse@yenifirma.com.tr",
        title="Satın Alma Müdürü",
        company_name="Yeni Firma A.Ş.",
        domain="yenifirma.com.tr",
        industry="textile",
        employee_count=120,
        country="TR",
        source="referral",
    )
    response = await _convert(
        client,
        tenant,
        lead,
        {
            "opportunity": {
                "name": "Yeni Firma — ERP",
                "amount": "125000",
                "close_date": "2026-11-30",
            }
        },
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["dry_run"] is False and out["lead_id"] == lead["id"]
    assert out["account"] is None and out["contact"] is None  # nothing matched
    assert out["will_create"] == ["account", "contact", "opportunity"]
    assert out["account_id"] and out["contact_id"] and out["opportunity_id"]

    account = (await client.get(f"/v1/accounts/{out['account_id']}", headers=tenant.headers)).json()
    assert account["name"] == "Yeni Firma A.Ş." and account["domain"] == "yenifirma.com.tr"
    assert account["industry"] == "textile" and account["employee_count"] == 120
    contact = (await client.get(f"/v1/contacts/{out['contact_id']}", headers=tenant.headers)).json()
    assert contact["account_id"] == out["account_id"]
    assert (contact["first_name"], contact["last_name"], contact["email"]) == (
        "Ayşe",
        "Yılmaz",
        "ayse@yenifirma.com.tr",
    )
    deal = (
        await client.get(f"/v1/opportunities/{out['opportunity_id']}", headers=tenant.headers)
    ).json()
    default = next(
        p
        for p in (await client.get("/v1/pipelines", headers=tenant.headers)).json()["data"]
        if p["is_default"]
    )
    assert deal["lead_id"] == lead["id"] and deal["account_id"] == out["account_id"]
    assert deal["pipeline_id"] == default["id"] and deal["stage"] == default["stages"][0]["key"]
    assert deal["amount"] == "125000.00" and deal["close_date"] == "2026-11-30"
    assert deal["name"] == "Yeni Firma — ERP" and deal["source"] == "referral"

    converted = await _get(client, tenant, lead)
    assert converted["status"] == "converted" and converted["converted_at"]
    assert (
        converted["converted_account_id"],
        converted["converted_contact_id"],
        converted["converted_opportunity_id"],
    ) == (out["account_id"], out["contact_id"], out["opportunity_id"])
    assert response.headers["ETag"] == f'"{converted["version"]}"'
    history = await _history(client, tenant, lead)
    assert (history[0]["from_status"], history[0]["to_status"]) == ("sql", "converted")
    assert history[0]["actor_user_id"] == str(tenant.admin_id)

    [(_, payload)] = await _events(app, tenant, "lead.converted")
    assert payload["id"] == lead["id"]
    assert payload["account_id"] == out["account_id"] and payload["contact_id"] == out["contact_id"]
    assert payload["opportunity_id"] == out["opportunity_id"]
    assert payload["created"] == ["account", "contact", "opportunity"]

    twice = await _convert(client, tenant, lead)
    problem = assert_problem(twice, 409, "conversion_refused")
    assert [e["code"] for e in problem["errors"]] == ["already_converted"]
    assert_problem(await _convert(client, tenant, lead, dry_run="true"), 409, "conversion_refused")
    assert await _counts(client, tenant) == (1, 1, 1)
    assert len(await _events(app, tenant, "lead.converted")) == 1
    # A converted lead accepts no status change either.
    assert_problem(await _status(client, tenant.headers, lead, "recycled"), 409)

    # The account lists the lead it came from.
    assert await _ids(client, tenant, f"/v1/accounts/{out['account_id']}/leads") == [lead["id"]]


async def test_conversion_without_opportunity(client: AsyncClient, tenant: Tenant) -> None:
    lead = await _sql_lead(client, tenant, company_name="Solo Ltd")
    out = (await _convert(client, tenant, lead)).json()
    assert out["will_create"] == ["account", "contact"] and out["opportunity_id"] is None
    assert await _counts(client, tenant) == (1, 1, 0)
    assert (await _get(client, tenant, lead))["converted_opportunity_id"] is None


async def test_conversion_matches_account_by_domain_and_contact_by_email(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(
        client, tenant.headers, name="Marmara Boya", domain="marmaraboya.com"
    )
    elsewhere = await create_account(client, tenant.headers, name="Elsewhere")
    contact = await create(
        client,
        "/v1/contacts",
        tenant.headers,
        {
            "account_id": account["id"],
            "first_name": "Can",
            "last_name": "Demir",
            "email": "CAN@marmaraboya.com",
        },
    )
    # The same e-mail at another account is not a match.
    await create(
        client,
        "/v1/contacts",
        tenant.headers,
        {
            "account_id": elsewhere["id"],
            "first_name": "Can",
            "last_name": "D",
            "email": "can@marmaraboya.com",
        },
    )
    lead = await _sql_lead(
        client,
        tenant,
        email="Can@MarmaraBoya.com",
        company_name="Totally Different Name",
        domain="www.marmaraboya.com",
    )
    before = await _counts(client, tenant)
    response = await _convert(client, tenant, lead, {"opportunity": {"name": "Paint deal"}})
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["account"] == {
        "id": account["id"],
        "name": "Marmara Boya",
        "domain": "marmaraboya.com",
        "matched_by": "domain",
    }
    assert out["contact"] == {
        "id": contact["id"],
        "name": "Can Demir",
        "email": "can@marmaraboya.com",
        "matched_by": "email",
    }
    assert out["will_create"] == ["opportunity"]
    assert (out["account_id"], out["contact_id"]) == (account["id"], contact["id"])
    assert await _counts(client, tenant) == (before[0], before[1], before[2] + 1)
    [(_, payload)] = await _events(app, tenant, "lead.converted")
    assert payload["created"] == ["opportunity"]


async def test_conversion_matches_account_by_normalised_name(
    client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers, name="ANADOLU TEKSTİL SAN. VE TİC. A.Ş.")
    lead = await _sql_lead(
        client,
        tenant,
        email="ali@anadolu.example",
        company_name="Anadolu Tekstil A.Ş.",
        domain="anadolu.example",
    )
    dry = (await _convert(client, tenant, lead, dry_run="true")).json()
    assert dry["account"]["id"] == account["id"] and dry["account"]["matched_by"] == "name"
    assert dry["contact"] is None and dry["will_create"] == ["contact"]
    out = (await _convert(client, tenant, lead)).json()
    assert out["account_id"] == account["id"] and out["account"]["matched_by"] == "name"
    assert len(await _ids(client, tenant, "/v1/accounts")) == 1  # never duplicated
    contact = (await client.get(f"/v1/contacts/{out['contact_id']}", headers=tenant.headers)).json()
    assert contact["account_id"] == account["id"] and contact["email"] == "ali@anadolu.example"
    # A second lead from the same company lands in the same account.
    second = await _sql_lead(
        client, tenant, email="veli@anadolu.example", company_name="Anadolu Tekstil"
    )
    again = (await _convert(client, tenant, second)).json()
    assert again["account_id"] == account["id"]
    assert len(await _ids(client, tenant, "/v1/accounts")) == 1
    assert len(await _ids(client, tenant, "/v1/contacts", account_id=account["id"])) == 2


async def test_conversion_into_an_explicit_account(client: AsyncClient, tenant: Tenant) -> None:
    chosen = await create_account(client, tenant.headers, name="Chosen")
    await create_account(client, tenant.headers, name="Matcher", domain="match.example")
    lead = await _sql_lead(client, tenant, domain="match.example")
    out = (await _convert(client, tenant, lead, {"account_id": chosen["id"]})).json()
    assert out["account_id"] == chosen["id"] and out["account"]["matched_by"] == "explicit"
    other = await _sql_lead(client, tenant)
    assert_problem(await _convert(client, tenant, other, {"account_id": str(other_id())}), 422)


async def test_dry_run_shows_candidates_and_writes_nothing(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers, name="Ege Kimya", domain="egekimya.com")
    contact = await create(
        client,
        "/v1/contacts",
        tenant.headers,
        {
            "account_id": account["id"],
            "first_name": "Elif",
            "last_name": "Kaya",
            "email": "elif@egekimya.com",
        },
    )
    lead = await _sql_lead(client, tenant, email="elif@egekimya.com", domain="egekimya.com")
    before = (
        await _counts(client, tenant),
        await _events(app, tenant),
        await _get(client, tenant, lead),
    )
    response = await _convert(
        client, tenant, lead, {"opportunity": {"name": "Deal"}}, dry_run="true"
    )
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["dry_run"] is True
    assert out["account"]["id"] == account["id"] and out["account"]["matched_by"] == "domain"
    assert out["contact"]["id"] == contact["id"] and out["contact"]["matched_by"] == "email"
    assert out["will_create"] == ["opportunity"]
    assert out["account_id"] is None and out["contact_id"] is None and out["opportunity_id"] is None
    after = (
        await _counts(client, tenant),
        await _events(app, tenant),
        await _get(client, tenant, lead),
    )
    assert after == before

    fresh = await _sql_lead(client, tenant, email="new@nowhere.example", company_name="Nowhere")
    before = (
        await _counts(client, tenant),
        await _events(app, tenant),
        await _get(client, tenant, fresh),
    )
    out = (await _convert(client, tenant, fresh, dry_run="true")).json()
    assert out["account"] is None and out["contact"] is None
    assert out["will_create"] == ["account", "contact"]
    after = (
        await _counts(client, tenant),
        await _events(app, tenant),
        await _get(client, tenant, fresh),
    )
    assert after == before


async def test_conversion_needs_sql_unless_the_org_allows_sal(
    client: AsyncClient, tenant: Tenant
) -> None:
    sal = await _lead(client, tenant, company_name="Sal Co")
    await _move(client, tenant, sal, "sal")
    for status_path in ((), ("mql",)):
        early = await _lead(client, tenant)
        if status_path:
            await _move(client, tenant, early, *status_path)
        problem = assert_problem(await _convert(client, tenant, early), 409, "conversion_refused")
        assert problem["errors"] == [
            {"code": "not_qualified", "detail": "only a lead in sql converts"}
        ]
    problem = assert_problem(await _convert(client, tenant, sal), 409, "conversion_refused")
    assert problem["errors"][0]["code"] == "not_qualified"
    assert_problem(await _convert(client, tenant, sal, dry_run="true"), 409, "conversion_refused")
    assert await _counts(client, tenant) == (0, 0, 0)

    await _settings(client, tenant, allow_convert_from_sal=True)
    new = await _lead(client, tenant)
    problem = assert_problem(await _convert(client, tenant, new), 409, "conversion_refused")
    assert problem["errors"][0]["detail"] == "only a lead in sql or sal converts"
    converted = await _convert(client, tenant, sal)
    assert converted.status_code == 200, converted.text
    assert (await _get(client, tenant, sal))["status"] == "converted"
    assert (await _history(client, tenant, sal))[0]["from_status"] == "sal"

    disqualified = await _lead(client, tenant)
    await _status(client, tenant.headers, disqualified, "disqualified", reason_code="spam")
    assert_problem(await _convert(client, tenant, disqualified), 409, "conversion_refused")


async def test_conversion_is_atomic(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await create(
        client,
        "/v1/pipelines",
        other_tenant.headers,
        {
            "name": "Theirs",
            "stages": [
                {"key": "a", "name": "A", "probability": "10", "forecast_category": "pipeline"},
                {
                    "key": "won",
                    "name": "Won",
                    "kind": "won",
                    "probability": "100",
                    "forecast_category": "closed",
                },
                {
                    "key": "lost",
                    "name": "Lost",
                    "kind": "lost",
                    "probability": "0",
                    "forecast_category": "omitted",
                },
            ],
        },
    )
    lead = await _sql_lead(
        client,
        tenant,
        email="atomic@fresh.example",
        company_name="Fresh Co",
        domain="fresh.example",
    )
    before_events = await _events(app, tenant)
    for pipeline_id in (theirs["id"], str(other_id())):
        response = await _convert(
            client, tenant, lead, {"opportunity": {"name": "Deal", "pipeline_id": pipeline_id}}
        )
        assert_problem(response, 404)
        # No account, no contact, no deal; the lead is still sql and unchanged.
        assert await _counts(client, tenant) == (0, 0, 0)
        still = await _get(client, tenant, lead)
        assert still["status"] == "sql" and still["converted_account_id"] is None
        assert still["converted_at"] is None and still["version"] == lead["version"]
        assert await _events(app, tenant) == before_events
        assert len(await _history(client, tenant, lead)) == 4
    # Their pipeline is untouched too.
    assert await _ids(client, other_tenant, "/v1/opportunities") == []
    assert await _ids(client, other_tenant, "/v1/accounts") == []
    # The same conversion with a valid pipeline then succeeds.
    done = await _convert(client, tenant, lead, {"opportunity": {"name": "Deal"}})
    assert done.status_code == 200, done.text
    assert await _counts(client, tenant) == (1, 1, 1)


# --- duplicates ----------------------------------------------------------------------------


async def test_duplicate_open_lead_by_email(client: AsyncClient, tenant: Tenant) -> None:
    first = await _lead(client, tenant, email="Mehmet@Example.com")
    duplicate = await client.post(
        "/v1/leads", json={"last_name": "Öz", "email": "mehmet@EXAMPLE.com"}, headers=tenant.headers
    )
    problem = assert_problem(duplicate, 409, "duplicate_lead")
    assert problem["existing_id"] == first["id"]
    allowed = await client.post(
        "/v1/leads",
        params={"allow_duplicate": "true"},
        json={"last_name": "Öz", "email": "mehmet@example.com"},
        headers=tenant.headers,
    )
    assert allowed.status_code == 201, allowed.text
    assert len(await _ids(client, tenant, "/v1/leads", email="MEHMET@example.com")) == 2

    # A PATCH onto an open lead's e-mail is a duplicate too; its own e-mail is fine.
    third = await _lead(client, tenant, email="third@example.com")
    clash = await client.patch(
        f"/v1/leads/{third['id']}", json={"email": "MEHMET@example.com"}, headers=tenant.headers
    )
    assert_problem(clash, 409, "duplicate_lead")
    same = await client.patch(
        f"/v1/leads/{third['id']}", json={"email": "Third@example.com"}, headers=tenant.headers
    )
    assert same.status_code == 200 and same.json()["email"] == "third@example.com"


async def test_closed_leads_do_not_block_their_email(client: AsyncClient, tenant: Tenant) -> None:
    dropped = await _lead(client, tenant, email="dropped@example.com")
    await _status(client, tenant.headers, dropped, "disqualified", reason_code="bad_timing")
    again = await _lead(client, tenant, email="DROPPED@example.com")
    assert again["status"] == "new"

    won = await _sql_lead(client, tenant, email="won@example.com", company_name="Won Co")
    assert (await _convert(client, tenant, won)).status_code == 200
    await _lead(client, tenant, email="won@example.com")

    # A recycled lead is still open: it blocks.
    recycled = await _lead(client, tenant, email="nurture@example.com")
    await _move(client, tenant, recycled, "sal", "recycled")
    blocked = await client.post(
        "/v1/leads", json={"last_name": "X", "email": "nurture@example.com"}, headers=tenant.headers
    )
    assert assert_problem(blocked, 409, "duplicate_lead")["existing_id"] == recycled["id"]


# --- lists ---------------------------------------------------------------------------------


async def test_list_filters(client: AsyncClient, tenant: Tenant) -> None:
    await _rule(
        client,
        tenant,
        name="Textile",
        category="fit",
        field="industry",
        operator="equals",
        value="textile",
        points=30,
    )
    await _rule(
        client,
        tenant,
        name="Big",
        category="fit",
        field="employee_count",
        operator="range",
        value={"min": 1000},
        points=50,
    )
    rep = await create_user(client, tenant.headers, role="rep")
    territory = await create(
        client,
        "/v1/territories",
        tenant.headers,
        {"name": "Germany", "priority": 1, "countries": ["DE"]},
    )
    a = await _lead(client, tenant, email="a@example.com", source="event", industry="textile")  # 30
    b = await _lead(
        client,
        tenant,
        email="b@example.com",
        source="partner",
        owner_id=rep["id"],
        country="DE",
        industry="textile",
        employee_count=5000,
    )  # 80
    c = await _lead(client, tenant, email="c@example.com", source="event")  # 0
    await _move(client, tenant, c, "mql")
    assert (a["score"], b["score"], c["score"]) == (30, 80, 0)
    assert b["territory_id"] == territory["id"] and a["territory_id"] is None

    async def ids(**params: Any) -> set[str]:
        return set(await _ids(client, tenant, "/v1/leads", **params))

    every = {a["id"], b["id"], c["id"]}
    assert await ids() == every
    assert await ids(status="mql") == {c["id"]}
    assert await ids(status="new") == {a["id"], b["id"]}
    assert await ids(source="event") == {a["id"], c["id"]}
    assert await ids(owner_id=rep["id"]) == {b["id"]}
    assert await ids(owner_id=str(tenant.admin_id)) == {a["id"], c["id"]}
    assert await ids(territory_id=territory["id"]) == {b["id"]}
    assert await ids(territory_id=str(other_id())) == set()
    assert await ids(score_min=30) == {a["id"], b["id"]}
    assert await ids(score_max=30) == {a["id"], c["id"]}
    assert await ids(score_min=1, score_max=79) == {a["id"]}
    assert await ids(created_after=b["created_at"]) == {b["id"], c["id"]}
    assert await ids(created_before=b["created_at"]) == {a["id"]}
    assert await ids(created_after=a["created_at"], created_before=c["created_at"]) == {
        a["id"],
        b["id"],
    }
    assert await ids(email="B@Example.COM") == {b["id"]}
    assert await ids(email="nobody@example.com") == set()
    assert await ids(status="mql", source="partner") == set()
    assert await _ids(client, tenant, "/v1/leads", sort="-score") == [b["id"], a["id"], c["id"]]
    assert await _ids(client, tenant, "/v1/leads", sort="created_at") == [a["id"], b["id"], c["id"]]
    for bad in ({"status": "won"}, {"source": "tv"}, {"score_min": "lots"}, {"owner_id": "x"}):
        response = await client.get("/v1/leads", params=bad, headers=tenant.headers)
        assert_problem(response, 400, "invalid_parameter")
    assert_problem(
        await client.get("/v1/leads", params={"sort": "email"}, headers=tenant.headers),
        400,
        "invalid_sort",
    )
    first = await client.get(
        "/v1/leads", params={"limit": 2, "sort": "created_at"}, headers=tenant.headers
    )
    rest = await client.get(
        "/v1/leads",
        params={"limit": 2, "sort": "created_at", "cursor": first.json()["next_cursor"]},
        headers=tenant.headers,
    )
    assert [r["id"] for r in first.json()["data"] + rest.json()["data"]] == [
        a["id"],
        b["id"],
        c["id"],
    ]
    assert rest.json()["next_cursor"] is None


async def test_account_leads(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(
        client, tenant.headers, name="Trakya Cam", domain="trakyacam.example"
    )
    converted = await _sql_lead(
        client, tenant, email="x@trakyacam.example", domain="trakyacam.example"
    )
    await _convert(client, tenant, converted)
    open_lead = await _lead(client, tenant, domain="trakyacam.example")
    dropped = await _lead(client, tenant, domain="trakyacam.example")
    await _status(client, tenant.headers, dropped, "disqualified", reason_code="duplicate")
    await _lead(client, tenant, domain="other.example")
    url = f"/v1/accounts/{account['id']}/leads"
    assert set(await _ids(client, tenant, url)) == {converted["id"], open_lead["id"]}
    assert await _ids(client, tenant, url, status="converted") == [converted["id"]]
    assert_problem(
        await client.get(f"/v1/accounts/{other_id()}/leads", headers=tenant.headers), 404
    )


# --- tenancy -------------------------------------------------------------------------------


async def test_other_tenant_gets_404_everywhere(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    lead = await _sql_lead(client, tenant, email="mine@example.com", company_name="Mine")
    rule = await _rule(
        client,
        tenant,
        name="Mine",
        category="fit",
        field="country",
        operator="equals",
        value="TR",
        points=1,
    )
    account = await create_account(client, tenant.headers, name="Mine", domain="mine.example")
    b = other_tenant.headers
    base = f"/v1/leads/{lead['id']}"
    for method, path, body in (
        ("GET", base, None),
        ("PATCH", base, {"first_name": "x"}),
        ("DELETE", base, None),
        ("POST", f"{base}/status", {"status": "recycled"}),
        ("POST", f"{base}/convert", {}),
        ("POST", f"{base}/convert?dry_run=true", {}),
        ("GET", f"{base}/history", None),
        ("GET", f"{base}/timeline", None),
        ("GET", f"{base}/field-history", None),
        ("PATCH", f"/v1/lead-scoring-rules/{rule['id']}", {"points": 2}),
        ("DELETE", f"/v1/lead-scoring-rules/{rule['id']}", None),
        ("GET", f"/v1/accounts/{account['id']}/leads", None),
    ):
        response = await client.request(method, path, json=body, headers=b)
        assert_problem(response, 404)
    for path in ("/v1/leads", "/v1/lead-scoring-rules"):
        assert (await client.get(path, headers=b)).json()["data"] == []
    assert (await client.get("/v1/leads", params={"email": "mine@example.com"}, headers=b)).json()[
        "data"
    ] == []
    # Their leads do not collide with ours, and activities cannot point at our lead.
    await _lead(client, other_tenant, email="mine@example.com")
    cross = await client.post(
        "/v1/activities", json={"kind": "call", "subject": "x", "lead_id": lead["id"]}, headers=b
    )
    assert_problem(cross, 422)
    # Their rules do not score our leads.
    await _rule(
        client,
        other_tenant,
        name="Theirs",
        category="fit",
        field="country",
        operator="equals",
        value="TR",
        points=50,
    )
    ours = await _lead(client, tenant, country="TR")
    assert ours["score"] == 1
    # Ours is unchanged.
    mine = await _get(client, tenant, lead)
    assert (
        mine["status"] == "sql"
        and mine["first_name"] is None
        and mine["version"] == lead["version"]
    )
    assert (
        len((await client.get("/v1/lead-scoring-rules", headers=tenant.headers)).json()["data"])
        == 1
    )
