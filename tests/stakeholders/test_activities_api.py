"""Activities (touchpoints) and timelines through HTTP: links and defaults, CRUD with
If-Match, list filters and paging, touches on deals (last touch, ending a stale spell, the
``touch_activity_kinds`` setting), the account/deal/contact timelines and tenancy."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select, update

from app.core.ids import utcnow
from app.core.tenancy import Actor, bind_tenant
from app.models import Opportunity, Organization, OutboxEvent
from tests.factories import (
    Tenant,
    assert_problem,
    create,
    create_account,
    create_user,
    key_for,
)

Json = dict[str, Any]


def _ago(days: float = 0, hours: float = 0) -> str:
    return (utcnow() - timedelta(days=days, hours=hours)).isoformat()


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _deal(client: AsyncClient, tenant: Tenant, **fields: Any) -> Json:
    if "account_id" not in fields:
        fields["account_id"] = (await create_account(client, tenant.headers))["id"]
    return await create(client, "/v1/opportunities", tenant.headers, {"name": "Deal", **fields})


async def _contact(
    client: AsyncClient, tenant: Tenant, account_id: str, first: str = "Ayşe", **fields: Any
) -> Json:
    body = {"account_id": account_id, "first_name": first, "last_name": "Yılmaz", **fields}
    return await create(client, "/v1/contacts", tenant.headers, body)


async def _log(client: AsyncClient, tenant: Tenant, **body: Any) -> Json:
    body = {"kind": "call", "subject": "Discovery call", **body}
    return await create(client, "/v1/activities", tenant.headers, body)


async def _get(client: AsyncClient, tenant: Tenant, path: str) -> Json:
    response = await client.get(path, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _subjects(client: AsyncClient, tenant: Tenant, **params: Any) -> list[str]:
    response = await client.get("/v1/activities", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [a["subject"] for a in response.json()["data"]]


async def _events(app: FastAPI, tenant: Tenant, prefix: str) -> list[tuple[str, Any]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.execute(
            select(OutboxEvent.event_type, OutboxEvent.payload)
            .where(OutboxEvent.event_type.startswith(prefix))
            .order_by(OutboxEvent.id)
        )
        return [(r[0], r[1]) for r in rows]


async def _make_stale(app: FastAPI, client: AsyncClient, tenant: Tenant, deal_id: str) -> None:
    """Back-date the deal's stage entry past the stage's rotting days (prospecting: 21)
    and run the follow-up job."""
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(Opportunity)
            .where(Opportunity.id == uuid.UUID(deal_id))
            .values(stage_entered_at=utcnow() - timedelta(days=30))
        )
    job = await client.post("/v1/jobs/follow-ups", headers=tenant.headers)
    assert job.status_code == 200, job.text
    assert job.json()["stale_marked"] == 1


async def _set_touch_kinds(app: FastAPI, tenant: Tenant, kinds: list[str]) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        settings = await session.scalar(
            select(Organization.settings).where(Organization.id == tenant.organization_id)
        )
        await session.execute(
            update(Organization)
            .where(Organization.id == tenant.organization_id)
            .values(settings={**(settings or {}), "touch_activity_kinds": kinds})
        )


# --- logging activities -------------------------------------------------------------------


async def test_log_an_activity_on_a_deal(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    deal = await _deal(client, tenant, account_id=account["id"])
    first = await _contact(client, tenant, account["id"], "Ayşe")
    second = await _contact(client, tenant, account["id"], "Mehmet")
    before = utcnow()
    response = await client.post(
        "/v1/activities",
        json={
            "kind": "meeting",
            "subject": "Demo for the plant managers",
            "duration_minutes": 45,
            "body": "Went well",
            "outcome": "Pilot agreed",
            "opportunity_id": deal["id"],
            "contact_ids": [first["id"], second["id"], first["id"]],
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    activity = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/v1/activities/{activity['id']}"
    # The account comes from the deal; our side defaults to the caller; duplicates go.
    assert activity["account_id"] == account["id"]
    assert activity["opportunity_id"] == deal["id"]
    assert activity["contact_ids"] == [first["id"], second["id"]]
    assert activity["user_ids"] == [str(tenant.admin_id)]
    assert activity["owner_id"] == str(tenant.admin_id)
    assert activity["selling"] is True
    assert (activity["kind"], activity["duration_minutes"], activity["outcome"]) == (
        "meeting",
        45,
        "Pilot agreed",
    )
    assert before <= _instant(activity["occurred_at"]) <= utcnow()  # default: now
    got = await client.get(f"/v1/activities/{activity['id']}", headers=tenant.headers)
    assert got.json() == activity
    assert got.headers["ETag"] == '"1"'

    # A matching account is fine; explicit people on our side are kept.
    rep = await create_user(client, tenant.headers, role="rep")
    explicit = await _log(
        client,
        tenant,
        opportunity_id=deal["id"],
        account_id=account["id"],
        user_ids=[rep["id"]],
        occurred_at="2026-01-15T09:30:00+03:00",
    )
    assert explicit["user_ids"] == [rep["id"]]
    assert explicit["owner_id"] == str(tenant.admin_id)
    assert _instant(explicit["occurred_at"]) == _instant("2026-01-15T06:30:00+00:00")
    # Contacts alone link the activity to their account.
    by_contact = await _log(client, tenant, contact_ids=[first["id"]])
    assert (by_contact["account_id"], by_contact["opportunity_id"]) == (account["id"], None)
    on_account = await _log(client, tenant, account_id=account["id"])
    assert (on_account["account_id"], on_account["contact_ids"]) == (account["id"], [])


async def test_selling_time_defaults_to_every_kind_but_note(
    client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    for kind in ("email", "call", "meeting", "linkedin", "demo"):
        assert (await _log(client, tenant, kind=kind, account_id=account["id"]))["selling"]
    assert (await _log(client, tenant, kind="note", account_id=account["id"]))["selling"] is False
    explicit_note = await _log(client, tenant, kind="note", selling=True, account_id=account["id"])
    assert explicit_note["selling"] is True
    admin_call = await _log(client, tenant, kind="call", selling=False, account_id=account["id"])
    assert admin_call["selling"] is False


async def test_links_and_people_are_validated(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    elsewhere = await create_account(client, tenant.headers)
    deal = await _deal(client, tenant, account_id=account["id"])

    async def refused(body: Json) -> Json:
        response = await client.post(
            "/v1/activities", json={"kind": "call", "subject": "x", **body}, headers=tenant.headers
        )
        return assert_problem(response, 422, "validation_failed")

    mismatch = await refused({"opportunity_id": deal["id"], "account_id": elsewhere["id"]})
    assert mismatch["errors"] == [{"field": "body.account_id", "code": "account_mismatch"}]
    missing = await refused({})
    assert missing["errors"] == [{"field": "body.account_id", "code": "missing_link"}]
    ghost = str(uuid.uuid4())
    unknown_contact = await refused({"account_id": account["id"], "contact_ids": [ghost]})
    assert unknown_contact["errors"] == [
        {"field": "body.contact_ids", "code": "not_found", "detail": ghost}
    ]
    unknown_deal = await refused({"opportunity_id": ghost})
    assert unknown_deal["errors"][0]["field"] == "body.opportunity_id"
    unknown_account = await refused({"account_id": ghost})
    assert unknown_account["errors"][0]["field"] == "body.account_id"
    unknown_user = await refused({"account_id": account["id"], "user_ids": [ghost]})
    assert unknown_user["errors"][0]["field"] == "body.user_ids"
    await refused({"account_id": account["id"], "kind": "task"})
    await refused({"account_id": account["id"], "subject": ""})
    await refused({"account_id": account["id"], "duration_minutes": -1})
    listed = await client.get("/v1/activities", headers=tenant.headers)
    assert listed.json()["data"] == []


async def test_get_patch_and_delete_with_if_match(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    first = await _contact(client, tenant, account["id"], "Ayşe")
    second = await _contact(client, tenant, account["id"], "Mehmet")
    activity = await _log(
        client, tenant, account_id=account["id"], contact_ids=[first["id"]], outcome="Callback"
    )
    url = f"/v1/activities/{activity['id']}"
    patched = await client.patch(
        url,
        json={"subject": "Follow-up call", "contact_ids": [second["id"]], "outcome": None},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["ETag"] == '"2"'
    body = patched.json()
    assert (body["subject"], body["outcome"], body["version"]) == ("Follow-up call", None, 2)
    assert body["contact_ids"] == [second["id"]]  # replaced, not added
    assert body["user_ids"] == [str(tenant.admin_id)]  # untouched
    assert (await client.get(url, headers=tenant.headers)).json() == body
    assert await _subjects(client, tenant, contact_id=first["id"]) == []
    assert await _subjects(client, tenant, contact_id=second["id"]) == ["Follow-up call"]

    # Only the people change: still a new version.
    people = await client.patch(url, json={"contact_ids": []}, headers=tenant.headers)
    assert (people.json()["contact_ids"], people.json()["version"]) == ([], 3)

    stale = await client.patch(
        url, json={"subject": "Lost update"}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    problem = assert_problem(stale, 412, "version_mismatch")
    assert problem["current_version"] == 3
    bad_contact = await client.patch(
        url, json={"contact_ids": [str(uuid.uuid4())]}, headers=tenant.headers
    )
    assert_problem(bad_contact, 422, "validation_failed")
    assert (await client.get(url, headers=tenant.headers)).json()["subject"] == "Follow-up call"

    refused = await client.delete(url, headers={**tenant.headers, "If-Match": '"2"'})
    assert_problem(refused, 412, "version_mismatch")
    deleted = await client.delete(url, headers={**tenant.headers, "If-Match": '"3"'})
    assert deleted.status_code == 204
    assert_problem(await client.get(url, headers=tenant.headers), 404, "not_found")
    assert_problem(await client.delete(url, headers=tenant.headers), 404, "not_found")
    assert_problem(
        await client.patch(url, json={"subject": "x"}, headers=tenant.headers), 404, "not_found"
    )
    timeline = await _get(client, tenant, f"/v1/contacts/{second['id']}/timeline")
    assert [i for i in timeline["data"] if i["type"] == "activity"] == []


async def test_list_filters_and_cursor_paging(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    other_account = await create_account(client, tenant.headers)
    deal = await _deal(client, tenant, account_id=account["id"])
    other_deal = await _deal(client, tenant, account_id=other_account["id"])
    ayse = await _contact(client, tenant, account["id"], "Ayşe")
    mehmet = await _contact(client, tenant, account["id"], "Mehmet")
    can = await _contact(client, tenant, other_account["id"], "Can")
    await _log(
        client,
        tenant,
        kind="email",
        subject="A",
        opportunity_id=deal["id"],
        contact_ids=[ayse["id"]],
        occurred_at=_ago(days=5),
    )
    b = await _log(
        client,
        tenant,
        kind="call",
        subject="B",
        account_id=account["id"],
        contact_ids=[mehmet["id"]],
        occurred_at=_ago(days=3),
    )
    await _log(
        client, tenant, kind="note", subject="C", opportunity_id=deal["id"], occurred_at=_ago(1)
    )
    rep_headers = await key_for(
        app, tenant, scopes=["activities:write", "opportunities:read"], role="rep"
    )
    d = await create(
        client,
        "/v1/activities",
        rep_headers,
        {
            "kind": "meeting",
            "subject": "D",
            "opportunity_id": other_deal["id"],
            "contact_ids": [can["id"]],
            "occurred_at": _ago(days=2),
        },
    )

    assert await _subjects(client, tenant) == ["C", "D", "B", "A"]  # newest first
    assert await _subjects(client, tenant, sort="occurred_at") == ["A", "B", "D", "C"]
    assert await _subjects(client, tenant, kind="note") == ["C"]
    assert await _subjects(client, tenant, kind="demo") == []
    assert await _subjects(client, tenant, account_id=account["id"]) == ["C", "B", "A"]
    assert await _subjects(client, tenant, account_id=other_account["id"]) == ["D"]
    assert await _subjects(client, tenant, opportunity_id=deal["id"]) == ["C", "A"]
    assert await _subjects(client, tenant, contact_id=ayse["id"]) == ["A"]
    assert await _subjects(client, tenant, contact_id=can["id"]) == ["D"]
    assert await _subjects(client, tenant, owner_id=d["owner_id"]) == ["D"]
    assert d["owner_id"] != str(tenant.admin_id) and d["user_ids"] == [d["owner_id"]]
    assert await _subjects(client, tenant, selling="false") == ["C"]
    assert await _subjects(client, tenant, selling="true") == ["D", "B", "A"]
    assert await _subjects(client, tenant, occurred_after=_ago(days=4)) == ["C", "D", "B"]
    assert await _subjects(client, tenant, occurred_before=_ago(days=2.5)) == ["B", "A"]
    both = await _subjects(
        client, tenant, occurred_after=_ago(days=4), occurred_before=_ago(days=2.5)
    )
    assert both == ["B"]
    # after is inclusive, before exclusive
    assert await _subjects(client, tenant, occurred_after=b["occurred_at"]) == ["C", "D", "B"]
    assert await _subjects(client, tenant, occurred_before=b["occurred_at"]) == ["A"]
    assert await _subjects(client, tenant, kind="call", account_id=other_account["id"]) == []
    bad = await client.get("/v1/activities", params={"kind": "fax"}, headers=tenant.headers)
    assert_problem(bad, 400, "invalid_parameter")

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/activities", params=params, headers=tenant.headers)).json()
        seen += [a["subject"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["C", "D", "B", "A"]
    two = await client.get(
        "/v1/activities",
        params={"limit": 2, "sort": "occurred_at", "selling": "true"},
        headers=tenant.headers,
    )
    rest = await client.get(
        "/v1/activities",
        params={"limit": 2, "sort": "occurred_at", "selling": "true"},
        headers=tenant.headers,
    )
    assert [a["subject"] for a in two.json()["data"]] == ["A", "B"]
    assert rest.json()["next_cursor"] == two.json()["next_cursor"]
    last = await client.get(
        "/v1/activities",
        params={
            "limit": 2,
            "sort": "occurred_at",
            "selling": "true",
            "cursor": two.json()["next_cursor"],
        },
        headers=tenant.headers,
    )
    assert [a["subject"] for a in last.json()["data"]] == ["D"]
    assert last.json()["next_cursor"] is None


# --- touches on deals ---------------------------------------------------------------------


async def test_a_touch_moves_the_deals_last_touch(client: AsyncClient, tenant: Tenant) -> None:
    deal = await _deal(client, tenant)
    url = f"/v1/opportunities/{deal['id']}"
    assert deal["last_touch_at"] is None
    # A note is no touch.
    await _log(client, tenant, kind="note", opportunity_id=deal["id"])
    assert (await _get(client, tenant, url))["last_touch_at"] is None
    call = await _log(client, tenant, kind="call", opportunity_id=deal["id"], occurred_at=_ago(2))
    touched = (await _get(client, tenant, url))["last_touch_at"]
    assert _instant(touched) == _instant(call["occurred_at"])
    # An older touch logged later does not move it back; a newer one moves it on.
    await _log(client, tenant, kind="email", opportunity_id=deal["id"], occurred_at=_ago(5))
    assert _instant((await _get(client, tenant, url))["last_touch_at"]) == _instant(touched)
    demo = await _log(client, tenant, kind="demo", opportunity_id=deal["id"], occurred_at=_ago(1))
    assert _instant((await _get(client, tenant, url))["last_touch_at"]) == _instant(
        demo["occurred_at"]
    )
    # Moving a touch later (an edit) moves the deal's last touch too.
    later = _ago(hours=1)
    moved = await client.patch(
        f"/v1/activities/{call['id']}", json={"occurred_at": later}, headers=tenant.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2
    assert _instant((await _get(client, tenant, url))["last_touch_at"]) == _instant(later)
    # An activity on the account only touches no deal.
    other = await _deal(client, tenant, account_id=deal["account_id"])
    await _log(client, tenant, kind="call", account_id=deal["account_id"])
    assert (await _get(client, tenant, f"/v1/opportunities/{other['id']}"))["last_touch_at"] is None


async def test_a_touch_ends_a_stale_spell_but_a_note_does_not(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    deal = await _deal(client, tenant, name="Quiet deal")
    url = f"/v1/opportunities/{deal['id']}"
    await _make_stale(app, client, tenant, deal["id"])
    stale = await _get(client, tenant, url)
    assert stale["is_stale"] is True and stale["stale_since"]

    await _log(client, tenant, kind="note", subject="Still waiting", opportunity_id=deal["id"])
    after_note = await _get(client, tenant, url)
    assert (after_note["is_stale"], after_note["last_touch_at"]) == (True, None)
    assert await _events(app, tenant, "opportunity.unstale") == []

    call = await _log(client, tenant, kind="call", subject="Finally", opportunity_id=deal["id"])
    fresh = await _get(client, tenant, url)
    assert (fresh["is_stale"], fresh["stale_since"]) == (False, None)
    assert _instant(fresh["last_touch_at"]) == _instant(call["occurred_at"])
    [(event, payload)] = await _events(app, tenant, "opportunity.unstale")
    assert event == "opportunity.unstale"
    assert payload["id"] == deal["id"] and payload["activity_id"] == call["id"]
    assert _instant(payload["touched_at"]) == _instant(call["occurred_at"])
    # Another touch emits nothing more; the job finds nothing stale now.
    await _log(client, tenant, kind="email", opportunity_id=deal["id"])
    assert len(await _events(app, tenant, "opportunity.unstale")) == 1
    job = await client.post("/v1/jobs/follow-ups", headers=tenant.headers)
    assert job.json()["stale_marked"] == 0


async def test_org_setting_chooses_which_kinds_count_as_touches(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    await _set_touch_kinds(app, tenant, ["meeting", "note"])
    deal = await _deal(client, tenant)
    url = f"/v1/opportunities/{deal['id']}"
    await _make_stale(app, client, tenant, deal["id"])
    await _log(client, tenant, kind="call", opportunity_id=deal["id"])
    after_call = await _get(client, tenant, url)
    assert (after_call["is_stale"], after_call["last_touch_at"]) == (True, None)
    note = await _log(client, tenant, kind="note", opportunity_id=deal["id"])
    after_note = await _get(client, tenant, url)
    assert after_note["is_stale"] is False
    assert _instant(after_note["last_touch_at"]) == _instant(note["occurred_at"])
    [(_, payload)] = await _events(app, tenant, "opportunity.unstale")
    assert payload["activity_id"] == note["id"]


# --- timelines ----------------------------------------------------------------------------


def _kinds(timeline: Json) -> list[tuple[str, str]]:
    return [(i["type"], i["summary"]) for i in timeline["data"]]


async def test_opportunity_timeline_merges_activities_stages_and_field_changes(
    client: AsyncClient, tenant: Tenant
) -> None:
    deal = await _deal(client, tenant)
    older = await _log(
        client,
        tenant,
        kind="email",
        subject="Intro",
        opportunity_id=deal["id"],
        occurred_at=_ago(days=2),
    )
    newer = await _log(
        client,
        tenant,
        kind="call",
        subject="Discovery",
        opportunity_id=deal["id"],
        occurred_at=_ago(days=1),
        duration_minutes=30,
    )
    moved = await client.post(
        f"/v1/opportunities/{deal['id']}/stage",
        json={"stage": "needs_analysis"},
        headers=tenant.headers,
    )
    assert moved.status_code == 200, moved.text
    patched = await client.patch(
        f"/v1/opportunities/{deal['id']}", json={"amount": "50000"}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    # Noise elsewhere stays out.
    await _log(client, tenant, account_id=deal["account_id"], subject="Account only")
    await _deal(client, tenant, account_id=deal["account_id"], name="Sibling")

    timeline = await _get(client, tenant, f"/v1/opportunities/{deal['id']}/timeline")
    assert timeline["next_cursor"] is None
    assert _kinds(timeline) == [
        ("field_change", "amount changed"),
        # The stage move is one rich item, not also a raw "stage_id changed" field change.
        ("stage_change", "prospecting → needs_analysis"),
        ("stage_change", "new → prospecting"),
        ("activity", "call: Discovery"),
        ("activity", "email: Intro"),
    ]
    instants = [_instant(i["occurred_at"]) for i in timeline["data"]]
    assert instants == sorted(instants, reverse=True)
    amount, forward, created, call, email = timeline["data"]
    assert amount["data"] == {"field": "amount", "old_value": None, "new_value": "50000.00"}
    assert amount["actor_user_id"] == str(tenant.admin_id)
    assert forward["data"]["from_stage"] == "prospecting"
    assert forward["data"]["to_stage"] == "needs_analysis"
    assert forward["data"]["direction"] == "forward"
    assert created["data"]["direction"] == "created"
    assert (call["id"], email["id"]) == (newer["id"], older["id"])
    assert call["data"]["kind"] == "call" and call["data"]["duration_minutes"] == 30
    assert call["data"]["opportunity_id"] == deal["id"]
    assert _instant(call["occurred_at"]) == _instant(newer["occurred_at"])


async def test_account_timeline_includes_its_deals_stage_changes(
    client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers, name="Anadolu Makina")
    elsewhere = await create_account(client, tenant.headers)
    deal = await _deal(client, tenant, account_id=account["id"])
    await _log(
        client, tenant, subject="On the deal", opportunity_id=deal["id"], occurred_at=_ago(3)
    )
    await _log(client, tenant, subject="Intro", account_id=account["id"], occurred_at=_ago(4))
    await client.post(
        f"/v1/opportunities/{deal['id']}/stage",
        json={"stage": "needs_analysis"},
        headers=tenant.headers,
    )
    renamed = await client.patch(
        f"/v1/accounts/{account['id']}",
        json={"name": "Anadolu Makina A.Ş."},
        headers=tenant.headers,
    )
    assert renamed.status_code == 200, renamed.text
    other_deal = await _deal(client, tenant, account_id=elsewhere["id"])
    await _log(client, tenant, subject="Elsewhere", opportunity_id=other_deal["id"])

    timeline = await _get(client, tenant, f"/v1/accounts/{account['id']}/timeline")
    assert _kinds(timeline) == [
        ("field_change", "name changed"),
        ("stage_change", "prospecting → needs_analysis"),
        ("stage_change", "new → prospecting"),
        ("activity", "call: On the deal"),
        ("activity", "call: Intro"),
    ]
    assert timeline["data"][1]["data"]["opportunity_id"] == deal["id"]
    assert timeline["data"][0]["data"]["new_value"] == "Anadolu Makina A.Ş."


async def test_contact_timeline_has_the_activities_they_took_part_in(
    client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    deal = await _deal(client, tenant, account_id=account["id"])
    ayse = await _contact(client, tenant, account["id"], "Ayşe")
    mehmet = await _contact(client, tenant, account["id"], "Mehmet")
    await _log(
        client,
        tenant,
        kind="meeting",
        subject="Both",
        opportunity_id=deal["id"],
        contact_ids=[ayse["id"], mehmet["id"]],
        occurred_at=_ago(3),
    )
    await _log(
        client, tenant, subject="Only Mehmet", contact_ids=[mehmet["id"]], occurred_at=_ago(2)
    )
    await _log(
        client,
        tenant,
        kind="linkedin",
        subject="Only Ayşe",
        contact_ids=[ayse["id"]],
        occurred_at=_ago(1),
    )
    await _log(client, tenant, subject="Nobody", opportunity_id=deal["id"])
    retitled = await client.patch(
        f"/v1/contacts/{ayse['id']}", json={"title": "CFO"}, headers=tenant.headers
    )
    assert retitled.status_code == 200, retitled.text

    ayse_timeline = await _get(client, tenant, f"/v1/contacts/{ayse['id']}/timeline")
    assert _kinds(ayse_timeline) == [
        ("field_change", "title changed"),
        ("activity", "linkedin: Only Ayşe"),
        ("activity", "meeting: Both"),
    ]
    mehmet_timeline = await _get(client, tenant, f"/v1/contacts/{mehmet['id']}/timeline")
    assert _kinds(mehmet_timeline) == [
        ("activity", "call: Only Mehmet"),
        ("activity", "meeting: Both"),
    ]


async def test_timeline_pages_visit_every_item_once_in_order(
    client: AsyncClient, tenant: Tenant
) -> None:
    deal = await _deal(client, tenant)
    same_moment = _ago(days=1)
    for subject in ("One", "Two", "Three"):  # ties on occurred_at: the id breaks them
        await _log(
            client, tenant, subject=subject, opportunity_id=deal["id"], occurred_at=same_moment
        )
    await _log(client, tenant, subject="Older", opportunity_id=deal["id"], occurred_at=_ago(2))
    await client.post(
        f"/v1/opportunities/{deal['id']}/stage",
        json={"stage": "needs_analysis"},
        headers=tenant.headers,
    )
    await client.patch(
        f"/v1/opportunities/{deal['id']}",
        json={"next_step": "Send proposal"},
        headers=tenant.headers,
    )
    url = f"/v1/opportunities/{deal['id']}/timeline"
    everything = (await _get(client, tenant, f"{url}?limit=200"))["data"]
    assert len(everything) == 7  # 4 activities, 2 stage changes, 1 field change
    ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 2
        ids += [i["id"] for i in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 4
    assert ids == [i["id"] for i in everything]
    assert len(set(ids)) == len(ids)
    keys = [(_instant(i["occurred_at"]), i["id"]) for i in everything]
    assert keys == sorted(keys, reverse=True)
    bad_cursor = await client.get(url, params={"cursor": "garbage"}, headers=tenant.headers)
    assert_problem(bad_cursor, 400)


async def test_unknown_ids_are_404(client: AsyncClient, tenant: Tenant) -> None:
    ghost = uuid.uuid4()
    for path in (
        f"/v1/opportunities/{ghost}/timeline",
        f"/v1/accounts/{ghost}/timeline",
        f"/v1/contacts/{ghost}/timeline",
        f"/v1/activities/{ghost}",
    ):
        assert_problem(await client.get(path, headers=tenant.headers), 404, "not_found")
    assert_problem(
        await client.patch(
            f"/v1/activities/{ghost}", json={"subject": "x"}, headers=tenant.headers
        ),
        404,
        "not_found",
    )
    assert_problem(
        await client.delete(f"/v1/activities/{ghost}", headers=tenant.headers), 404, "not_found"
    )


async def test_other_tenants_see_nothing(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    deal = await _deal(client, tenant, account_id=account["id"])
    contact = await _contact(client, tenant, account["id"])
    activity = await _log(client, tenant, opportunity_id=deal["id"], contact_ids=[contact["id"]])
    h = other_tenant.headers
    for path in (
        f"/v1/opportunities/{deal['id']}/timeline",
        f"/v1/accounts/{account['id']}/timeline",
        f"/v1/contacts/{contact['id']}/timeline",
        f"/v1/activities/{activity['id']}",
    ):
        assert_problem(await client.get(path, headers=h), 404, "not_found")
    url = f"/v1/activities/{activity['id']}"
    assert_problem(await client.patch(url, json={"subject": "Mine"}, headers=h), 404, "not_found")
    assert_problem(await client.delete(url, headers=h), 404, "not_found")
    listed = await client.get("/v1/activities", headers=h)
    assert listed.status_code == 200 and listed.json()["data"] == []
    for params in ({"opportunity_id": deal["id"]}, {"contact_id": contact["id"]}):
        assert (await client.get("/v1/activities", params=params, headers=h)).json()["data"] == []
    # Their rows cannot be named from another organization either.
    for body in (
        {"opportunity_id": deal["id"]},
        {"account_id": account["id"]},
        {"contact_ids": [contact["id"]]},
    ):
        response = await client.post(
            "/v1/activities", json={"kind": "call", "subject": "x", **body}, headers=h
        )
        assert_problem(response, 422, "validation_failed")
    # The owner still sees everything, unchanged.
    mine = (await client.get(url, headers=tenant.headers)).json()
    assert mine == activity
    timeline = await _get(client, tenant, f"/v1/contacts/{contact['id']}/timeline")
    assert [i["id"] for i in timeline["data"]] == [activity["id"]]
