"""Engagement signals through HTTP: batches (all or nothing), idempotency by
(source, external_id), signal scoring rules, MQL auto-promotion, the PLG rule, timelines,
events and tenant isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import func, select

from app.core.tenancy import Actor, bind_tenant
from app.models import OutboxEvent, Signal, Task
from tests.factories import Tenant, assert_problem, create, create_account


def _ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def _signal(external_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "type": "feature_used",
        "occurred_at": _ago(0.01),
        "source": "product",
        "external_id": external_id or uuid.uuid4().hex,
        **fields,
    }


async def _send(client: AsyncClient, tenant: Tenant, *signals: dict[str, Any]) -> Response:
    return await client.post("/v1/signals", json={"signals": list(signals)}, headers=tenant.headers)


async def _accepted(client: AsyncClient, tenant: Tenant, *signals: dict[str, Any]) -> Any:
    response = await _send(client, tenant, *signals)
    assert response.status_code == 200, response.text
    return response.json()


async def _lead(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    return await create(client, "/v1/leads", tenant.headers, {"last_name": "Demir", **fields})


async def _get_lead(client: AsyncClient, tenant: Tenant, lead: dict[str, Any]) -> Any:
    response = await client.get(f"/v1/leads/{lead['id']}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _settings(client: AsyncClient, tenant: Tenant, **settings: Any) -> None:
    response = await client.patch("/v1/organization", json=settings, headers=tenant.headers)
    assert response.status_code == 200, response.text


async def _signal_rule(
    client: AsyncClient, tenant: Tenant, name: str, points: int, **value: Any
) -> dict[str, Any]:
    body = {
        "name": name,
        "category": "engagement",
        "field": "signal_count",
        "operator": "matches",
        "value": value,
        "points": points,
    }
    return await create(client, "/v1/lead-scoring-rules", tenant.headers, body)


async def _count(app: FastAPI, model: Any, *where: Any) -> int:
    async with app.state.sessionmaker() as session:
        session.info["dealbase_system"] = True
        stmt = select(func.count()).select_from(model).where(*where)
        return int(await session.scalar(stmt.execution_options(dealbase_unscoped=True)) or 0)


async def _events(app: FastAPI, tenant: Tenant, event_type: str) -> list[Any]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.scalars(
            select(OutboxEvent.payload)
            .where(OutboxEvent.event_type == event_type)
            .order_by(OutboxEvent.id)
        )
        return list(rows)


# --- batches and idempotency ---------------------------------------------------------------


async def test_a_batch_is_stored_and_listed(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    lead = await _lead(client, tenant)
    account = await create_account(client, tenant.headers)
    contact = await create(
        client,
        "/v1/contacts",
        tenant.headers,
        {"account_id": account["id"], "first_name": "Ece", "last_name": "Kaya"},
    )
    body = await _accepted(
        client,
        tenant,
        _signal("e1", lead_id=lead["id"], type="trial_started", properties={"plan": "pro"}),
        _signal("e2", account_id=account["id"], type="active_users", value=12),
        _signal("e3", contact_id=contact["id"], type="email_opened"),
    )
    assert body["accepted"] == 3 and body["duplicates"] == 0 and body["duplicate_indexes"] == []
    assert len(set(body["ids"])) == 3

    listed = await client.get("/v1/signals", headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    assert {s["id"] for s in listed.json()["data"]} == set(body["ids"])
    first = await client.get(f"/v1/signals/{body['ids'][0]}", headers=tenant.headers)
    assert first.status_code == 200
    assert first.json()["type"] == "trial_started"
    assert first.json()["properties"] == {"plan": "pro"}
    assert first.json()["lead_id"] == lead["id"] and first.json()["external_id"] == "e1"

    by_account = await client.get(
        "/v1/signals", params={"account_id": account["id"]}, headers=tenant.headers
    )
    assert [s["id"] for s in by_account.json()["data"]] == [body["ids"][1]]
    by_type = await client.get(
        "/v1/signals", params={"type": "email_opened"}, headers=tenant.headers
    )
    assert [s["id"] for s in by_type.json()["data"]] == [body["ids"][2]]

    events = await _events(app, tenant, "signal.received")
    assert len(events) == 1 and events[0]["ids"] == body["ids"] and events[0]["count"] == 3


async def test_list_pages_and_filters_by_time(client: AsyncClient, tenant: Tenant) -> None:
    lead = await _lead(client, tenant)
    await _accepted(
        client,
        tenant,
        *(_signal(f"p{i}", lead_id=lead["id"], occurred_at=_ago(i)) for i in range(5)),
    )
    first = await client.get("/v1/signals", params={"limit": 2}, headers=tenant.headers)
    assert first.status_code == 200, first.text
    seen = [s["external_id"] for s in first.json()["data"]]
    cursor = first.json()["next_cursor"]
    while cursor:
        page = await client.get(
            "/v1/signals", params={"limit": 2, "cursor": cursor}, headers=tenant.headers
        )
        seen += [s["external_id"] for s in page.json()["data"]]
        cursor = page.json()["next_cursor"]
    assert seen == ["p0", "p1", "p2", "p3", "p4"]  # newest first

    window = await client.get(
        "/v1/signals",
        params={"from": _ago(3.5), "to": _ago(0.5), "lead_id": lead["id"]},
        headers=tenant.headers,
    )
    assert window.status_code == 200, window.text
    assert [s["external_id"] for s in window.json()["data"]] == ["p1", "p2", "p3"]

    unknown = await client.get("/v1/signals", params={"kind": "x"}, headers=tenant.headers)
    assert_problem(unknown, 400)


async def test_a_resent_event_is_a_duplicate_and_stored_once(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    lead = await _lead(client, tenant)
    first = await _accepted(client, tenant, _signal("evt-1", lead_id=lead["id"]))
    again = await _accepted(
        client,
        tenant,
        _signal("evt-1", lead_id=lead["id"]),
        _signal("evt-2", lead_id=lead["id"]),
        _signal("evt-2", lead_id=lead["id"]),  # twice in the same batch
        _signal("evt-1", lead_id=lead["id"], source="website"),  # another source: new
    )
    assert (again["accepted"], again["duplicates"]) == (2, 2)
    assert again["duplicate_indexes"] == [0, 2]
    assert again["ids"][0] == first["ids"][0]
    assert again["ids"][1] == again["ids"][2] != again["ids"][3]
    assert await _count(app, Signal, Signal.organization_id == tenant.organization_id) == 3

    only_duplicates = await _accepted(client, tenant, _signal("evt-1", lead_id=lead["id"]))
    assert (only_duplicates["accepted"], only_duplicates["duplicates"]) == (0, 1)
    # One event per batch that stored something.
    assert [e["count"] for e in await _events(app, tenant, "signal.received")] == [1, 2]


async def test_invalid_batches_store_nothing(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    lead = await _lead(client, tenant)
    missing = str(uuid.uuid4())
    refused = await _send(
        client,
        tenant,
        _signal(lead_id=lead["id"]),
        _signal(lead_id=missing),
        _signal(account_id=missing),
    )
    body = assert_problem(refused, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == [
        "body.signals[1].lead_id",
        "body.signals[2].account_id",
    ]
    assert await _count(app, Signal) == 0

    bad_type = await _send(client, tenant, _signal(lead_id=lead["id"], type="party"))
    assert "signals" in str(assert_problem(bad_type, 422)["errors"])
    no_subject = await _send(client, tenant, _signal())
    assert_problem(no_subject, 422)
    empty = await client.post("/v1/signals", json={"signals": []}, headers=tenant.headers)
    assert_problem(empty, 422)
    too_many = await _send(client, tenant, *(_signal(lead_id=lead["id"]) for _ in range(1001)))
    assert_problem(too_many, 422)
    assert await _count(app, Signal) == 0

    at_most = await _accepted(client, tenant, *(_signal(lead_id=lead["id"]) for _ in range(1000)))
    assert at_most["accepted"] == 1000


# --- scoring -------------------------------------------------------------------------------


async def test_a_signal_rule_contributes_exactly_its_points(
    client: AsyncClient, tenant: Tenant
) -> None:
    rule = await _signal_rule(
        client,
        tenant,
        "Trial in the last 14 days",
        25,
        signal_type="trial_started",
        min_count=1,
        within_days=14,
    )
    await _signal_rule(
        client, tenant, "Busy user", 10, signal_type="feature_used", min_count=3, within_days=7
    )
    lead = await _lead(client, tenant)
    assert lead["score"] == 0

    # Outside the window: no points.
    await _accepted(
        client, tenant, _signal(lead_id=lead["id"], type="trial_started", occurred_at=_ago(20))
    )
    assert (await _get_lead(client, tenant, lead))["score"] == 0

    await _accepted(
        client, tenant, _signal(lead_id=lead["id"], type="trial_started", occurred_at=_ago(2))
    )
    scored = await _get_lead(client, tenant, lead)
    assert scored["score"] == 25
    assert scored["score_breakdown"] == [
        {
            "rule_id": rule["id"],
            "rule": "Trial in the last 14 days",
            "category": "engagement",
            "points": 25,
        }
    ]

    # Two uses are below the minimum of three; the third adds the rule.
    await _accepted(client, tenant, *(_signal(lead_id=lead["id"]) for _ in range(2)))
    assert (await _get_lead(client, tenant, lead))["score"] == 25
    await _accepted(client, tenant, _signal(lead_id=lead["id"]))
    assert (await _get_lead(client, tenant, lead))["score"] == 35

    invalid = await client.post(
        "/v1/lead-scoring-rules",
        json={
            "name": "broken",
            "category": "engagement",
            "field": "signal_count",
            "operator": "matches",
            "value": {"signal_type": "party", "min_count": 1, "within_days": 7},
            "points": 5,
        },
        headers=tenant.headers,
    )
    assert_problem(invalid, 422)


async def test_account_signals_count_for_the_leads_of_its_domain(
    client: AsyncClient, tenant: Tenant
) -> None:
    await _signal_rule(
        client, tenant, "Seats", 15, signal_type="seats_added", min_count=1, within_days=30
    )
    account = await create_account(client, tenant.headers, domain="anadolu.com.tr")
    lead = await _lead(client, tenant, domain="anadolu.com.tr")
    stranger = await _lead(client, tenant, domain="elsewhere.com")
    await _accepted(client, tenant, _signal(account_id=account["id"], type="seats_added", value=5))
    assert (await _get_lead(client, tenant, lead))["score"] == 15
    assert (await _get_lead(client, tenant, stranger))["score"] == 0


async def test_signals_pushing_the_score_over_the_threshold_promote_to_mql(
    client: AsyncClient, tenant: Tenant
) -> None:
    await _signal_rule(
        client, tenant, "Trial", 40, signal_type="trial_started", min_count=1, within_days=14
    )
    await _settings(client, tenant, mql_score_threshold=30)
    lead = await _lead(client, tenant)
    assert lead["status"] == "new"
    await _accepted(client, tenant, _signal(lead_id=lead["id"], type="trial_started"))
    promoted = await _get_lead(client, tenant, lead)
    assert promoted["status"] == "mql" and promoted["mql_at"]
    history = await client.get(f"/v1/leads/{lead['id']}/history", headers=tenant.headers)
    latest = history.json()["data"][0]
    assert (latest["to_status"], latest["actor_type"]) == ("mql", "system")
    assert latest["reason"] == "score 40 reached the MQL threshold 30"


# --- the PLG rule --------------------------------------------------------------------------


PLG = {"signal_type": "active_users", "min_value": 10, "within_days": 7}


async def test_plg_rule_promotes_a_new_lead(client: AsyncClient, tenant: Tenant) -> None:
    invalid = await client.patch(
        "/v1/organization",
        json={"plg_rule": {**PLG, "action": "call_mom"}},
        headers=tenant.headers,
    )
    assert_problem(invalid, 422)
    await _settings(client, tenant, plg_rule={**PLG, "action": "promote_to_mql"})
    lead = await _lead(client, tenant)
    # Below the value, or too old: nothing.
    await _accepted(
        client,
        tenant,
        _signal(lead_id=lead["id"], type="active_users", value=9),
        _signal(lead_id=lead["id"], type="active_users", value=50, occurred_at=_ago(8)),
        _signal(lead_id=lead["id"], type="seats_added", value=50),
    )
    assert (await _get_lead(client, tenant, lead))["status"] == "new"
    await _accepted(client, tenant, _signal(lead_id=lead["id"], type="active_users", value=10))
    promoted = await _get_lead(client, tenant, lead)
    assert promoted["status"] == "mql"
    history = await client.get(f"/v1/leads/{lead['id']}/history", headers=tenant.headers)
    latest = history.json()["data"][0]
    assert latest["actor_type"] == "system" and "PLG rule" in latest["reason"]


async def test_plg_rule_creates_one_task_for_the_owner(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    await _settings(client, tenant, plg_rule={**PLG, "action": "create_task"})
    lead = await _lead(client, tenant)
    hot = _signal("au-1", lead_id=lead["id"], type="active_users", value=25)
    await _accepted(client, tenant, hot)
    tasks = await client.get("/v1/tasks", params={"lead_id": lead["id"]}, headers=tenant.headers)
    assert tasks.status_code == 200, tasks.text
    [task] = tasks.json()["data"]
    assert task["assignee_id"] == lead["owner_id"] and task["source"] == "follow_up"
    assert "active_users reached 25" in task["title"]
    assert (await _get_lead(client, tenant, lead))["status"] == "new"

    # The resent event and a new qualifying one create no second task.
    await _accepted(client, tenant, hot)
    await _accepted(client, tenant, _signal(lead_id=lead["id"], type="active_users", value=30))
    assert await _count(app, Task, Task.lead_id == uuid.UUID(lead["id"])) == 1


# --- timelines -----------------------------------------------------------------------------


async def test_signals_show_on_the_timelines(client: AsyncClient, tenant: Tenant) -> None:
    lead = await _lead(client, tenant)
    account = await create_account(client, tenant.headers)
    sent = await _accepted(
        client,
        tenant,
        _signal("t1", lead_id=lead["id"], account_id=account["id"], type="web_visit", value=3),
    )
    for path in (f"/v1/leads/{lead['id']}", f"/v1/accounts/{account['id']}"):
        timeline = await client.get(f"{path}/timeline", headers=tenant.headers)
        assert timeline.status_code == 200, timeline.text
        [item] = [i for i in timeline.json()["data"] if i["type"] == "signal"]
        assert item["id"] == sent["ids"][0]
        assert item["summary"] == "web_visit 3 (product)"
        assert item["data"]["signal_type"] == "web_visit"
        assert item["data"]["external_id"] == "t1"
        assert item["actor_user_id"] is None


# --- tenant isolation ----------------------------------------------------------------------


async def test_tenants_never_see_each_others_signals(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await _lead(client, other_tenant)
    their_batch = await _accepted(client, other_tenant, _signal("same", lead_id=theirs["id"]))

    refused = await _send(client, tenant, _signal(lead_id=theirs["id"]))
    assert assert_problem(refused, 422)["errors"][0]["field"] == "body.signals[0].lead_id"

    mine = await _lead(client, tenant)
    # The same external id in another organization is not a duplicate.
    my_batch = await _accepted(client, tenant, _signal("same", lead_id=mine["id"]))
    assert my_batch["accepted"] == 1

    listed = await client.get("/v1/signals", headers=tenant.headers)
    assert [s["id"] for s in listed.json()["data"]] == my_batch["ids"]
    filtered = await client.get(
        "/v1/signals", params={"lead_id": theirs["id"]}, headers=tenant.headers
    )
    assert filtered.json()["data"] == []
    hidden = await client.get(f"/v1/signals/{their_batch['ids'][0]}", headers=tenant.headers)
    assert_problem(hidden, 404)
    timeline = await client.get(f"/v1/leads/{theirs['id']}/timeline", headers=tenant.headers)
    assert_problem(timeline, 404)
