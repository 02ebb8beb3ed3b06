"""Nurture programs: entry and exit on each kind of rule, at-most-once enrollment, step
timing with a controllable clock, outbox events, validation and tenant isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select, update

from app.core.tenancy import Actor, bind_tenant
from app.models import Lead, OutboxEvent
from app.nurture import service
from app.nurture.steps import advance, first_due
from tests.factories import Tenant, assert_problem, create, create_account
from tests.opportunities.test_api import SIMPLE_STAGES

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STEPS = [
    {"content_key": "intro", "wait_days": 0},
    {"content_key": "case-study", "wait_days": 5},
    {"content_key": "webinar", "wait_days": 7},
]


# --- pure scheduling --------------------------------------------------------------------


def test_steps_fall_due_in_order_and_catch_up() -> None:
    waits = [0, 5, 7]
    due = first_due(T0, waits)
    assert due == T0
    now = advance(0, due, waits, T0)
    assert (now.due_steps, now.current_step, now.next_due_at) == ([0], 1, T0 + timedelta(days=5))
    early = advance(1, T0 + timedelta(days=5), waits, T0 + timedelta(days=4))
    assert early.due_steps == [] and not early.completed
    # Away for twelve days: steps 1 (day 5) and 2 (day 12) both fall due, then it is done.
    late = advance(1, T0 + timedelta(days=5), waits, T0 + timedelta(days=12))
    assert (late.due_steps, late.current_step, late.next_due_at, late.completed) == (
        [1, 2],
        3,
        None,
        True,
    )


# --- helpers ----------------------------------------------------------------------------


async def _program(client: AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return await create(
        client,
        "/v1/nurture-programs",
        tenant.headers,
        {"name": f"P {uuid.uuid4().hex[:6]}", "steps": STEPS, "is_active": True, **body},
    )


async def _activate(client: AsyncClient, tenant: Tenant, program: dict[str, Any]) -> None:
    """Programs created inactive enroll nobody until activated (then at the next run)."""
    response = await client.patch(
        f"/v1/nurture-programs/{program['id']}",
        json={"is_active": True},
        headers={**tenant.headers, "If-Match": f'"{program["version"]}"'},
    )
    assert response.status_code == 200, response.text


async def _run(client: AsyncClient, tenant: Tenant, program: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(
        f"/v1/nurture-programs/{program['id']}/run", headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _enrollments(client: AsyncClient, tenant: Tenant, **params: Any) -> list[Any]:
    response = await client.get("/v1/nurture-enrollments", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def _events(app: FastAPI, tenant: Tenant) -> list[tuple[str, dict[str, Any]]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.execute(
            select(OutboxEvent.event_type, OutboxEvent.payload)
            .where(OutboxEvent.event_type.startswith("nurture."))
            .order_by(OutboxEvent.id)
        )
        return [(r[0], r[1]) for r in rows]


async def _lead(client: AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    return await create(
        client,
        "/v1/leads",
        tenant.headers,
        {"last_name": "Yılmaz", "company_name": "Ege Tekstil", **body},
    )


# --- programs -----------------------------------------------------------------------------


async def test_new_organizations_get_inactive_default_programs_by_segment(
    client: AsyncClient, tenant: Tenant
) -> None:
    body = (await client.get("/v1/nurture-programs", headers=tenant.headers)).json()
    programs = {p["name"]: p for p in body["data"]}
    assert set(programs) == {"SMB lead nurture", "Enterprise lead nurture"}
    assert not any(p["is_active"] for p in programs.values())
    assert programs["SMB lead nurture"]["entry_rule"]["segments"] == ["smb"]
    assert programs["Enterprise lead nurture"]["entry_rule"]["segments"] == [
        "mid_market",
        "enterprise",
    ]


async def test_program_validation(client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    base = {"name": "X", "target": "lead", "steps": STEPS, "entry_rule": {}}
    for body, status in (
        ({**base, "entry_rule": {"lifecycles": ["customer"]}}, 422),  # not a lead field
        ({**base, "entry_rule": {"min_score": 50, "max_score": 10}}, 422),
        ({**base, "target": "opportunity", "entry_rule": {"stages": ["lead_in"]}}, 422),
        (
            {
                **base,
                "target": "opportunity",
                "entry_rule": {"pipeline_id": str(uuid.uuid4()), "stages": ["x"]},
            },
            422,
        ),
        ({**base, "steps": []}, 422),
        ({**base, "steps": [{"content_key": "a", "wait_days": -1}]}, 422),
        ({**base, "target": "contact"}, 422),
    ):
        assert_problem(await client.post("/v1/nurture-programs", json=body, headers=h), status)
    created = await create(client, "/v1/nurture-programs", h, base)
    assert created["is_active"] is False and created["version"] == 1
    assert_problem(await client.post("/v1/nurture-programs", json=base, headers=h), 409)
    patched = await client.patch(
        f"/v1/nurture-programs/{created['id']}",
        json={"is_active": True, "steps": STEPS[:1]},
        headers={**h, "If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["steps"] == STEPS[:1] and patched.json()["is_active"]
    stale = await client.patch(
        f"/v1/nurture-programs/{created['id']}",
        json={"name": "Y"},
        headers={**h, "If-Match": '"1"'},
    )
    assert_problem(stale, 412)


# --- leads ------------------------------------------------------------------------------


async def test_lead_program_enrolls_once_and_exits_when_the_rule_stops_holding(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    program = await _program(
        client,
        tenant,
        target="lead",
        entry_rule={"statuses": ["new", "mql"], "segments": ["smb"]},
        is_active=False,
    )
    small = await _lead(client, tenant, employee_count=12)
    big = await _lead(client, tenant, employee_count=5000)
    await _activate(client, tenant, program)
    result = await _run(client, tenant, program)
    assert (result["enrolled"], result["steps_due"]) == (1, 1)  # step 0 waits 0 days
    [enrollment] = await _enrollments(client, tenant, program_id=program["id"])
    assert enrollment["lead_id"] == small["id"] and enrollment["status"] == "active"
    assert (enrollment["current_step"], enrollment["next_content_key"]) == (1, "case-study")
    assert await _enrollments(client, tenant, lead_id=big["id"]) == []

    # Running again enrolls nobody twice.
    assert (await _run(client, tenant, program))["enrolled"] == 0

    disqualified = await client.post(
        f"/v1/leads/{small['id']}/status",
        json={"status": "disqualified", "reason_code": "no_budget"},
        headers=h,
    )
    assert disqualified.status_code == 200, disqualified.text
    await _run(client, tenant, program)
    [ended] = await _enrollments(client, tenant, program_id=program["id"])
    assert (ended["status"], ended["exit_reason"], ended["next_due_at"]) == (
        "exited",
        "disqualified",
        None,
    )
    # Matching again later (recycled to new by hand) never enrolls it a second time.
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(update(Lead).where(Lead.id == small["id"]).values(status="new"))
    assert (await _run(client, tenant, program))["enrolled"] == 0

    events = [(kind, payload.get("content_key")) for kind, payload in await _events(app, tenant)]
    assert events == [
        ("nurture.enrolled", None),
        ("nurture.step_due", "intro"),
        ("nurture.exited", None),
    ]


async def test_score_range_and_days_since_touch(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    program = await _program(
        client,
        tenant,
        target="lead",
        entry_rule={"min_score": 0, "max_score": 100, "min_days_since_touch": 30},
    )
    fresh = await _lead(client, tenant)
    quiet = await _lead(client, tenant)
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(Lead)
            .where(Lead.id == quiet["id"])
            .values(last_activity_at=datetime.now(UTC) - timedelta(days=45))
        )
    assert (await _run(client, tenant, program))["enrolled"] == 1
    assert await _enrollments(client, tenant, lead_id=fresh["id"]) == []
    assert len(await _enrollments(client, tenant, lead_id=quiet["id"])) == 1


# --- deals and accounts: enrolled and released on the change itself ---------------------


async def test_deal_program_follows_the_stage(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    pipeline = await create(client, "/v1/pipelines", h, {"name": "Simple", "stages": SIMPLE_STAGES})
    await _program(
        client,
        tenant,
        target="opportunity",
        entry_rule={"pipeline_id": pipeline["id"], "stages": ["lead_in"]},
    )
    account = await create_account(client, h)
    deal = await create(
        client,
        "/v1/opportunities",
        h,
        {"name": "D", "account_id": account["id"], "pipeline_id": pipeline["id"], "amount": "10"},
    )
    [enrollment] = await _enrollments(client, tenant, opportunity_id=deal["id"])
    assert enrollment["status"] == "active"
    moved = await client.post(
        f"/v1/opportunities/{deal['id']}/stage", json={"stage": "qualified"}, headers=h
    )
    assert moved.status_code == 200, moved.text
    [ended] = await _enrollments(client, tenant, opportunity_id=deal["id"])
    assert (ended["status"], ended["exit_reason"]) == ("exited", "no_longer_matches")


async def test_account_program_follows_lifecycle_and_segment(
    client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    await _program(
        client,
        tenant,
        target="account",
        entry_rule={"lifecycles": ["customer"], "segments": ["enterprise"]},
    )
    customer = await create_account(client, h, lifecycle="customer", employee_count=5000)
    prospect = await create_account(client, h, employee_count=5000)
    [enrollment] = await _enrollments(client, tenant, account_id=customer["id"])
    assert enrollment["status"] == "active"
    assert await _enrollments(client, tenant, account_id=prospect["id"]) == []
    churned = await client.post(
        f"/v1/accounts/{customer['id']}/lifecycle",
        json={"lifecycle": "former_customer"},
        headers={**h, "If-Match": f'"{customer["version"]}"'},
    )
    assert churned.status_code == 200, churned.text
    [ended] = await _enrollments(client, tenant, account_id=customer["id"])
    assert ended["status"] == "exited"


# --- timing ----------------------------------------------------------------------------


async def test_step_timing_with_a_controllable_clock(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    program = await _program(
        client, tenant, target="lead", entry_rule={"statuses": ["new"]}, is_active=False
    )
    lead = await _lead(client, tenant)
    await _activate(client, tenant, program)

    async def run_at(moment: datetime) -> service.RunTotals:
        async with app.state.sessionmaker() as session, session.begin():
            bind_tenant(session, tenant.organization_id, Actor())
            return await service.run(session, moment)

    first = await run_at(T0)
    assert (first.enrolled, first.steps_due) == (1, 1)
    assert (await run_at(T0 + timedelta(days=4))).steps_due == 0
    later = await run_at(T0 + timedelta(days=12))
    assert (later.steps_due, later.completed) == (2, 1)
    [done] = await _enrollments(client, tenant, lead_id=lead["id"])
    assert (done["status"], done["current_step"], done["exit_reason"]) == (
        "completed",
        3,
        "steps_completed",
    )
    due = [p for kind, p in await _events(app, tenant) if kind == "nurture.step_due"]
    assert [(p["step"], p["content_key"]) for p in due] == [
        (0, "intro"),
        (1, "case-study"),
        (2, "webinar"),
    ]
    assert all(p["program_id"] == program["id"] and p["record_id"] == lead["id"] for p in due)


async def test_delete_refused_once_used(client: AsyncClient, tenant: Tenant) -> None:
    program = await _program(client, tenant, target="lead", entry_rule={})
    await _lead(client, tenant)
    await _run(client, tenant, program)
    refused = await client.delete(
        f"/v1/nurture-programs/{program['id']}",
        headers={**tenant.headers, "If-Match": f'"{program["version"]}"'},
    )
    assert_problem(refused, 409, "program_in_use")


async def test_tenant_isolation(client: AsyncClient, tenant: Tenant, other_tenant: Tenant) -> None:
    program = await _program(client, tenant, target="lead", entry_rule={})
    await _lead(client, tenant)
    await _run(client, tenant, program)
    [enrollment] = await _enrollments(client, tenant)
    theirs = other_tenant.headers
    for method, path in (
        ("GET", f"/v1/nurture-programs/{program['id']}"),
        ("PATCH", f"/v1/nurture-programs/{program['id']}"),
        ("DELETE", f"/v1/nurture-programs/{program['id']}"),
        ("POST", f"/v1/nurture-programs/{program['id']}/run"),
        ("GET", f"/v1/nurture-enrollments/{enrollment['id']}"),
    ):
        response = await client.request(
            method,
            path,
            headers={**theirs, "If-Match": '"1"'},
            json={} if method == "PATCH" else None,
        )
        assert_problem(response, 404)
    assert await _enrollments(client, other_tenant) == []
    listed = (await client.get("/v1/nurture-programs", headers=theirs)).json()["data"]
    assert program["id"] not in {p["id"] for p in listed}
    # Their run never enrolls our leads.
    their_program = await _program(client, other_tenant, target="lead", entry_rule={})
    assert (await _run(client, other_tenant, their_program))["enrolled"] == 0


async def test_lead_changes_enroll_and_release_at_once(client: AsyncClient, tenant: Tenant) -> None:
    await _program(client, tenant, target="lead", entry_rule={"statuses": ["mql"]})
    lead = await _lead(client, tenant)
    assert await _enrollments(client, tenant, lead_id=lead["id"]) == []  # still new
    h = tenant.headers
    promoted = await client.post(
        f"/v1/leads/{lead['id']}/status", json={"status": "mql"}, headers=h
    )
    assert promoted.status_code == 200, promoted.text
    [enrolled] = await _enrollments(client, tenant, lead_id=lead["id"])
    assert enrolled["status"] == "active" and enrolled["next_content_key"] == "intro"
    dropped = await client.post(
        f"/v1/leads/{lead['id']}/status",
        json={"status": "disqualified", "reason_code": "no_budget"},
        headers=h,
    )
    assert dropped.status_code == 200, dropped.text
    [ended] = await _enrollments(client, tenant, lead_id=lead["id"])
    assert (ended["status"], ended["exit_reason"]) == ("exited", "disqualified")
