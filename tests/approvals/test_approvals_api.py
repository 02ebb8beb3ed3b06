"""Discount approvals through HTTP: the plan, sequential steps decided by the manager chain
and approver groups, rejection, recall, delegation, expiry, custom policies, events and
tenant isolation.

The organization: VP (authority 30 %) ← manager (20 %) ← rep (no authority); a finance
and a legal approver; quotes are requested by the rep for 10 seats at 100 each, so the
effective discount is the line's discount percentage.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import select, update

from app.core.tenancy import Actor, bind_tenant
from app.models import ApprovalRequest, OutboxEvent
from tests.factories import (
    Tenant,
    assert_problem,
    create,
    create_account,
    create_user,
    key_for,
)

Headers = dict[str, str]


@dataclass
class Person:
    id: str
    headers: Headers


@dataclass
class Org:
    vp: Person
    manager: Person
    rep: Person
    finance: Person
    legal: Person
    seat_id: str
    deal: dict[str, Any]


async def _person(app: FastAPI, client: AsyncClient, tenant: Tenant, **fields: Any) -> Person:
    user = await create_user(client, tenant.headers, **fields)
    headers = await key_for(app, tenant, scopes=["*"], user_id=uuid.UUID(user["id"]))
    return Person(user["id"], headers)


async def _org(app: FastAPI, client: AsyncClient, tenant: Tenant) -> Org:
    vp = await _person(
        app, client, tenant, name="VP", role="manager", approval_max_discount_pct="30"
    )
    manager = await _person(
        app,
        client,
        tenant,
        name="Manager",
        role="manager",
        manager_id=vp.id,
        approval_max_discount_pct="20",
    )
    rep = await _person(app, client, tenant, name="Rep", role="rep", manager_id=manager.id)
    finance = await _person(app, client, tenant, name="CFO", approval_groups=["finance"])
    legal = await _person(app, client, tenant, name="Counsel", approval_groups=["legal"])
    book = await create(
        client, "/v1/price-books", tenant.headers, {"name": "Standard", "currency": "TRY"}
    )
    seat = await create(client, "/v1/products", tenant.headers, {"sku": "SEAT", "name": "Seat"})
    put = await client.put(
        f"/v1/price-books/{book['id']}/entries",
        json={"product_id": seat["id"], "unit_price": "100"},
        headers=tenant.headers,
    )
    assert put.status_code == 200, put.text
    account = await create_account(client, tenant.headers)
    deal = await create(
        client,
        "/v1/opportunities",
        tenant.headers,
        {"name": "Deal", "account_id": account["id"], "owner_id": rep.id},
    )
    return Org(vp, manager, rep, finance, legal, seat["id"], deal)


async def _quote(
    client: AsyncClient, org: Org, discount: str, *, by: Person | None = None, **terms: Any
) -> dict[str, Any]:
    """10 seats at 100 with ``discount`` % off."""
    line = {"product_id": org.seat_id, "quantity": "10", "discount_pct": discount}
    body = {"opportunity_id": org.deal["id"], "line_items": [line], **terms}
    return await create(client, "/v1/quotes", (by or org.rep).headers, body)


async def _ok(response: Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def _plan(client: AsyncClient, quote: dict[str, Any], headers: Headers) -> dict[str, Any]:
    return await _ok(await client.get(f"/v1/quotes/{quote['id']}/approval-plan", headers=headers))


def _steps(plan: dict[str, Any]) -> list[tuple[str, list[str], bool]]:
    return [(s["kind"], s["approver_ids"], s["resolvable"]) for s in plan["steps"]]


async def _submit(client: AsyncClient, quote: dict[str, Any], person: Person) -> Response:
    return await client.post(f"/v1/quotes/{quote['id']}/submit", headers=person.headers)


async def _request(client: AsyncClient, quote: dict[str, Any], headers: Headers) -> dict[str, Any]:
    """The quote's newest approval request."""
    rows = (await client.get(f"/v1/approvals?quote_id={quote['id']}", headers=headers)).json()[
        "data"
    ]
    assert rows, "no approval request"
    return dict(rows[0])


async def _inbox(client: AsyncClient, person: Person) -> list[str]:
    body = (await client.get("/v1/approvals?assignee=me", headers=person.headers)).json()
    return [r["id"] for r in body["data"]]


async def _decide(
    client: AsyncClient,
    request: dict[str, Any],
    person: Person,
    action: str = "approve",
    **body: Any,
) -> Response:
    return await client.post(
        f"/v1/approvals/{request['id']}/{action}", json=body, headers=person.headers
    )


async def _quote_status(client: AsyncClient, quote: dict[str, Any], headers: Headers) -> str:
    return str((await client.get(f"/v1/quotes/{quote['id']}", headers=headers)).json()["status"])


async def _events(app: FastAPI, tenant: Tenant) -> list[tuple[str, dict[str, Any]]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.execute(
            select(OutboxEvent.event_type, OutboxEvent.payload)
            .where(OutboxEvent.event_type.startswith("quote."))
            .order_by(OutboxEvent.id)
        )
        return [(r[0], r[1]) for r in rows]


# --- the plan -----------------------------------------------------------------------------


async def test_plan_follows_discount_and_authority(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    org = await _org(app, client, tenant)
    quote = await _quote(client, org, "5")
    line_id = quote["current"]["line_items"][0]["id"]

    async def discount(pct: str) -> dict[str, Any]:
        await _ok(
            await client.patch(
                f"/v1/quotes/{quote['id']}/line-items/{line_id}",
                json={"discount_pct": pct},
                headers=org.rep.headers,
            )
        )
        return await _plan(client, quote, org.rep.headers)

    # ≤ 10 %: nothing needed.
    plan = await _plan(client, quote, org.rep.headers)
    assert plan["quote_id"] == quote["id"] and plan["version"] == 1
    assert plan["effective_discount_pct"] == "5.00"
    assert (plan["needs_approval"], plan["resolvable"], plan["steps"]) == (False, True, [])

    # 15 %: the manager's 20 % covers it.
    plan = await discount("15")
    assert plan["effective_discount_pct"] == "15.00"
    assert plan["needs_approval"] and plan["resolvable"]
    assert _steps(plan) == [("manager_chain", [org.manager.id], True)]
    assert plan["steps"][0]["rule"] == "discount above 10%"
    assert plan["steps"][0]["position"] == 1

    # 25 %: the manager (20 %) does not cover it; their VP (30 %) does: both, in order.
    plan = await discount("25")
    assert _steps(plan) == [
        ("manager_chain", [org.manager.id], True),
        ("manager_chain", [org.vp.id], True),
    ]
    assert [s["position"] for s in plan["steps"]] == [1, 2]

    # 35 %: no one's authority in the chain covers it; finance is added above 30 %.
    plan = await discount("35")
    assert not plan["resolvable"]
    assert _steps(plan) == [
        ("manager_chain", [org.manager.id], True),
        ("manager_chain", [org.vp.id], True),
        ("manager_chain", [], False),
        ("group", [org.finance.id], True),
    ]
    assert plan["steps"][3]["group"] == "finance"
    assert plan["steps"][3]["rule"] == "discount above 30%"
    refused = await _submit(client, quote, org.rep)
    problem = assert_problem(refused, 409, "no_approver")
    assert [e["code"] for e in problem["errors"]] == ["no_approver"]
    assert await _quote_status(client, quote, org.rep.headers) == "draft"

    # A CEO above the VP with 50 % resolves the chain.
    ceo = await _person(
        app, client, tenant, name="CEO", role="manager", approval_max_discount_pct="50"
    )
    moved = await client.patch(
        f"/v1/users/{org.vp.id}", json={"manager_id": ceo.id}, headers=tenant.headers
    )
    assert moved.status_code == 200, moved.text
    plan = await _plan(client, quote, org.rep.headers)
    assert plan["resolvable"]
    assert _steps(plan) == [
        ("manager_chain", [org.manager.id], True),
        ("manager_chain", [org.vp.id], True),
        ("manager_chain", [ceo.id], True),
        ("group", [org.finance.id], True),
    ]
    submitted = await _ok(await _submit(client, quote, org.rep))
    assert submitted["status"] == "pending_approval"
    request = await _request(client, quote, org.rep.headers)
    assert [(s["position"], s["status"]) for s in request["steps"]] == [
        (1, "pending"),
        (2, "waiting"),
        (3, "waiting"),
        (4, "waiting"),
    ]
    assert request["steps"][3]["approver_ids"] == [org.finance.id]


async def test_plan_for_non_standard_terms(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    org = await _org(app, client, tenant)
    # Payment terms above 60 days need finance, even without a discount.
    late_payer = await _quote(client, org, "5", payment_terms_days=90)
    plan = await _plan(client, late_payer, org.rep.headers)
    assert _steps(plan) == [("group", [org.finance.id], True)]
    assert plan["steps"][0]["rule"] == "payment terms above 60 days"
    # 60 days exactly is standard.
    standard = await _quote(client, org, "5", payment_terms_days=60)
    assert (await _plan(client, standard, org.rep.headers))["steps"] == []
    # A term above 36 months needs legal.
    long_term = await _quote(client, org, "5", term_months=48)
    plan = await _plan(client, long_term, org.rep.headers)
    assert _steps(plan) == [("group", [org.legal.id], True)]
    assert plan["steps"][0]["group"] == "legal"
    assert plan["effective_discount_pct"] == "5.00"
    # Everything at once: each step once, in the policy's order.
    everything = await _quote(client, org, "25", payment_terms_days=90, term_months=48)
    plan = await _plan(client, everything, org.rep.headers)
    assert _steps(plan) == [
        ("manager_chain", [org.manager.id], True),
        ("manager_chain", [org.vp.id], True),
        ("group", [org.finance.id], True),
        ("group", [org.legal.id], True),
    ]
    # An approver group never includes the requester: finance asking for 90 days has no one.
    own = await _quote(client, org, "0", by=org.finance, payment_terms_days=90)
    plan = await _plan(client, own, org.finance.headers)
    assert _steps(plan) == [("group", [], False)]
    assert_problem(await _submit(client, own, org.finance), 409, "no_approver")


# --- deciding -----------------------------------------------------------------------------


async def test_sequential_steps_inbox_and_recorded_decisions(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    org = await _org(app, client, tenant)
    quote = await _quote(client, org, "25")  # net 750.00
    before = datetime.now(UTC)
    submitted = await _ok(await _submit(client, quote, org.rep))
    assert submitted["status"] == "pending_approval"
    assert submitted["current"]["submitted_at"] is not None
    request = await _request(client, quote, org.rep.headers)
    assert request["status"] == "pending"
    assert request["quote_version"] == 1
    assert request["requested_by_id"] == org.rep.id
    assert request["current_step"] == 1
    expires = datetime.fromisoformat(request["expires_at"])
    assert before + timedelta(days=7) - timedelta(minutes=1) < expires
    assert expires < datetime.now(UTC) + timedelta(days=7, minutes=1)
    fetched = await client.get(f"/v1/approvals/{request['id']}", headers=org.rep.headers)
    assert fetched.status_code == 200 and fetched.json() == request

    # The inbox shows the request only to the current step's approver.
    assert await _inbox(client, org.manager) == [request["id"]]
    for person in (org.vp, org.rep, org.finance):
        assert await _inbox(client, person) == []
    # Everyone with approvals:read sees the request in the plain list.
    listed = (await client.get("/v1/approvals?status=pending", headers=tenant.headers)).json()
    assert [r["id"] for r in listed["data"]] == [request["id"]]
    listed = (await client.get("/v1/approvals?status=approved", headers=tenant.headers)).json()
    assert listed["data"] == []

    # Steps run in order: the VP cannot decide step 1, nor can anyone outside the plan.
    assert_problem(await _decide(client, request, org.vp), 403, "not_an_approver")
    assert_problem(await _decide(client, request, org.finance), 403, "not_an_approver")
    admin = Person(str(tenant.admin_id), tenant.headers)
    assert_problem(await _decide(client, request, admin), 403, "not_an_approver")
    # The requester never approves.
    assert_problem(await _decide(client, request, org.rep), 403, "self_approval")
    assert_problem(
        await _decide(client, request, org.rep, "reject", reason_code="other", reason="x"),
        403,
        "self_approval",
    )

    decided = await _ok(await _decide(client, request, org.manager, comment="fine by me"))
    assert decided["status"] == "pending" and decided["current_step"] == 2
    first, second = decided["steps"]
    assert first["status"] == "approved"
    assert first["decided_by_id"] == org.manager.id
    assert first["on_behalf_of_id"] is None
    assert first["comment"] == "fine by me"
    assert datetime.fromisoformat(first["decided_at"]) >= before
    assert (second["status"], second["decided_by_id"], second["decided_at"]) == (
        "pending",
        None,
        None,
    )
    assert await _quote_status(client, quote, org.rep.headers) == "pending_approval"
    # Now it is the VP's turn.
    assert await _inbox(client, org.manager) == []
    assert await _inbox(client, org.vp) == [request["id"]]
    assert_problem(await _decide(client, request, org.manager), 403, "not_an_approver")
    # Not approved yet: no sending.
    sent = await client.post(f"/v1/quotes/{quote['id']}/send", headers=org.rep.headers)
    assert_problem(sent, 409, "approval_required")

    decided = await _ok(await _decide(client, request, org.vp))
    assert decided["status"] == "approved"
    assert decided["decided_at"] is not None
    assert [(s["status"], s["decided_by_id"]) for s in decided["steps"]] == [
        ("approved", org.manager.id),
        ("approved", org.vp.id),
    ]
    assert decided["steps"][1]["comment"] is None
    assert await _inbox(client, org.vp) == []
    assert_problem(await _decide(client, request, org.vp), 409, "not_pending")
    current = (await client.get(f"/v1/quotes/{quote['id']}", headers=org.rep.headers)).json()
    assert (current["status"], current["current"]["approval"]) == ("approved", "approved")

    # Approved: it can be sent and accepted; the deal takes the quote's TCV.
    await _ok(await client.post(f"/v1/quotes/{quote['id']}/send", headers=org.rep.headers))
    accepted = await _ok(
        await client.post(f"/v1/quotes/{quote['id']}/accept", headers=org.rep.headers)
    )
    assert accepted["status"] == "accepted"
    deal = (await client.get(f"/v1/opportunities/{org.deal['id']}", headers=tenant.headers)).json()
    assert deal["amount"] == "750.00"

    events = await _events(app, tenant)
    types = [t for t, _ in events]
    for expected in (
        "quote.approval_requested",
        "quote.approval_step_approved",
        "quote.approved",
        "quote.sent",
        "quote.accepted",
    ):
        assert expected in types, types
    assert types.index("quote.approval_requested") < types.index("quote.approved")
    requested = next(p for t, p in events if t == "quote.approval_requested")
    assert requested["request_id"] == request["id"]
    assert [s["approver_ids"] for s in requested["steps"]] == [
        [org.manager.id],
        [org.vp.id],
    ]
    approved = next(p for t, p in events if t == "quote.approved")
    assert approved["decided_by"] == org.vp.id
    accepted_event = next(p for t, p in events if t == "quote.accepted")
    assert accepted_event["opportunity_amount"] == "750.00"


async def test_rejection_needs_a_reason_and_returns_the_quote_to_draft(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    org = await _org(app, client, tenant)
    quote = await _quote(client, org, "25")
    await _ok(await _submit(client, quote, org.rep))
    request = await _request(client, quote, org.rep.headers)

    for body in (
        {},
        {"reason": "too much"},
        {"reason_code": "discount_too_high"},
        {"reason_code": "discount_too_high", "reason": ""},
        {"reason_code": "because", "reason": "too much"},
    ):
        refused = await _decide(client, request, org.manager, "reject", **body)
        assert_problem(refused, 422, "validation_failed")
    assert (await _request(client, quote, org.rep.headers))["status"] == "pending"

    rejected = await _ok(
        await _decide(
            client,
            request,
            org.manager,
            "reject",
            reason_code="discount_too_high",
            reason="25 % is above what this account warrants",
        )
    )
    assert rejected["status"] == "rejected"
    assert rejected["decided_at"] is not None
    first, second = rejected["steps"]
    assert first["status"] == "rejected"
    assert first["reason_code"] == "discount_too_high"
    assert first["comment"] == "25 % is above what this account warrants"
    assert first["decided_by_id"] == org.manager.id
    assert first["decided_at"] is not None
    assert second["status"] == "cancelled"
    assert await _inbox(client, org.vp) == []
    assert await _quote_status(client, quote, org.rep.headers) == "draft"
    assert_problem(
        await _decide(client, request, org.manager, "reject", reason_code="other", reason="again"),
        409,
        "not_pending",
    )

    # Back in draft: the rep lowers the discount (a new version) and resubmits.
    line_id = quote["current"]["line_items"][0]["id"]
    edited = await _ok(
        await client.patch(
            f"/v1/quotes/{quote['id']}/line-items/{line_id}",
            json={"discount_pct": "15"},
            headers=org.rep.headers,
        )
    )
    assert edited["current_version"] == 2
    await _ok(await _submit(client, quote, org.rep))
    request = await _request(client, quote, org.rep.headers)
    assert (request["quote_version"], request["status"]) == (2, "pending")
    assert [s["approver_ids"] for s in request["steps"]] == [[org.manager.id]]
    # A comment is kept apart from the reason.
    rejected = await _ok(
        await _decide(
            client,
            request,
            org.manager,
            "reject",
            reason_code="margin",
            reason="margin below floor",
            comment="try 10 %",
        )
    )
    assert (rejected["steps"][0]["reason_code"], rejected["steps"][0]["comment"]) == (
        "margin",
        "try 10 %",
    )

    events = await _events(app, tenant)
    rejections = [p for t, p in events if t == "quote.rejected"]
    assert [(r["reason_code"], r["reason"]) for r in rejections] == [
        ("discount_too_high", "25 % is above what this account warrants"),
        ("margin", "margin below floor"),
    ]
    assert all(r["decided_by"] == org.manager.id for r in rejections)


async def test_recall_by_the_requester(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    org = await _org(app, client, tenant)
    quote = await _quote(client, org, "15")
    await _ok(await _submit(client, quote, org.rep))
    request = await _request(client, quote, org.rep.headers)
    url = f"/v1/quotes/{quote['id']}/recall"

    refused = await client.post(url, headers=org.manager.headers)
    assert_problem(refused, 403, "not_requester")
    recalled = await _ok(await client.post(url, headers=org.rep.headers))
    assert recalled["status"] == "recalled"
    request = await _ok(await client.get(f"/v1/approvals/{request['id']}", headers=org.rep.headers))
    assert request["status"] == "recalled"
    assert request["decided_at"] is not None
    assert [s["status"] for s in request["steps"]] == ["cancelled"]
    assert await _inbox(client, org.manager) == []
    assert_problem(await _decide(client, request, org.manager), 409, "not_pending")
    assert_problem(await client.post(url, headers=org.rep.headers), 409, "not_pending")
    # Not sendable; resubmitting opens a new request.
    sent = await client.post(f"/v1/quotes/{quote['id']}/send", headers=org.rep.headers)
    assert_problem(sent, 409, "approval_required")
    again = await _ok(await _submit(client, quote, org.rep))
    assert again["status"] == "pending_approval"
    newest = await _request(client, quote, org.rep.headers)
    assert newest["id"] != request["id"] and newest["status"] == "pending"
    # An admin may recall anyone's request.
    recalled = await _ok(await client.post(url, headers=tenant.headers))
    assert recalled["status"] == "recalled"
    events = [t for t, _ in await _events(app, tenant)]
    assert events.count("quote.recalled") == 2


async def test_delegation(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    org = await _org(app, client, tenant)
    deputy = await _person(app, client, tenant, name="Deputy", role="manager")
    quote = await _quote(client, org, "15")
    await _ok(await _submit(client, quote, org.rep))
    request = await _request(client, quote, org.rep.headers)
    assert await _inbox(client, deputy) == []
    assert_problem(await _decide(client, request, deputy), 403, "not_an_approver")

    now = datetime.now(UTC)
    url = "/v1/approval-delegations"
    for body in (
        {"delegate_id": org.manager.id, "ends_at": (now + timedelta(days=1)).isoformat()},
        {"delegate_id": deputy.id, "ends_at": (now - timedelta(days=1)).isoformat()},
    ):
        assert_problem(
            await client.post(url, json=body, headers=org.manager.headers), 422, "validation_failed"
        )
    unknown = {"delegate_id": str(uuid.uuid4()), "ends_at": (now + timedelta(days=1)).isoformat()}
    assert_problem(
        await client.post(url, json=unknown, headers=org.manager.headers), 422, "validation_failed"
    )
    # Only admins delegate someone else's approvals.
    for_vp = {
        "delegate_id": deputy.id,
        "user_id": org.vp.id,
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    assert_problem(
        await client.post(url, json=for_vp, headers=org.manager.headers), 403, "role_not_allowed"
    )
    # A delegation that has not started yet gives nothing.
    later = await _ok(
        await client.post(
            url,
            json={
                "delegate_id": deputy.id,
                "starts_at": (now + timedelta(days=10)).isoformat(),
                "ends_at": (now + timedelta(days=20)).isoformat(),
            },
            headers=org.manager.headers,
        )
    )
    assert await _inbox(client, deputy) == []

    delegation = await _ok(
        await client.post(
            url,
            json={"delegate_id": deputy.id, "ends_at": (now + timedelta(days=3)).isoformat()},
            headers=org.manager.headers,
        )
    )
    assert (delegation["user_id"], delegation["delegate_id"]) == (org.manager.id, deputy.id)
    mine = (await client.get(url, headers=org.manager.headers)).json()["data"]
    assert {d["id"] for d in mine} == {later["id"], delegation["id"]}
    theirs = (await client.get(url, headers=deputy.headers)).json()["data"]
    assert {d["id"] for d in theirs} == {later["id"], delegation["id"]}
    assert (await client.get(url, headers=org.vp.headers)).json()["data"] == []

    # The deputy sees the manager's pending step and decides it on their behalf.
    assert await _inbox(client, deputy) == [request["id"]]
    assert await _inbox(client, org.manager) == [request["id"]]
    decided = await _ok(await _decide(client, request, deputy, comment="for the manager"))
    assert decided["status"] == "approved"
    [step] = decided["steps"]
    assert step["decided_by_id"] == deputy.id
    assert step["on_behalf_of_id"] == org.manager.id
    assert step["comment"] == "for the manager"
    assert await _quote_status(client, quote, org.rep.headers) == "approved"

    # Ending the delegation: only its owner (or an admin) may.
    gone = await client.delete(f"{url}/{delegation['id']}", headers=deputy.headers)
    assert_problem(gone, 404, "not_found")
    gone = await client.delete(f"{url}/{delegation['id']}", headers=org.manager.headers)
    assert gone.status_code == 204
    second = await _quote(client, org, "15")
    await _ok(await _submit(client, second, org.rep))
    assert await _inbox(client, deputy) == []
    assert_problem(
        await _decide(client, await _request(client, second, org.rep.headers), deputy),
        403,
        "not_an_approver",
    )


async def test_a_delegation_to_the_requester_does_not_allow_self_approval(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    org = await _org(app, client, tenant)
    ends = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await _ok(
        await client.post(
            "/v1/approval-delegations",
            json={"delegate_id": org.rep.id, "ends_at": ends},
            headers=org.manager.headers,
        )
    )
    quote = await _quote(client, org, "15")
    await _ok(await _submit(client, quote, org.rep))
    request = await _request(client, quote, org.rep.headers)
    assert await _inbox(client, org.rep) == []
    assert_problem(await _decide(client, request, org.rep), 403, "self_approval")
    assert await _inbox(client, org.manager) == [request["id"]]


async def test_pending_requests_expire(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    org = await _org(app, client, tenant)
    quote = await _quote(client, org, "15")
    await _ok(await _submit(client, quote, org.rep))
    request = await _request(client, quote, org.rep.headers)
    untouched = await _quote(client, org, "15")
    await _ok(await _submit(client, untouched, org.rep))

    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == uuid.UUID(request["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(hours=1))
        )
    # Past its expiry it can no longer be decided, even before the job ran.
    assert_problem(await _decide(client, request, org.manager), 409, "approval_expired")

    run = await client.post("/v1/jobs/follow-ups", headers=tenant.headers)
    assert run.status_code == 200, run.text
    expired = await _ok(await client.get(f"/v1/approvals/{request['id']}", headers=org.rep.headers))
    assert expired["status"] == "expired"
    assert [s["status"] for s in expired["steps"]] == ["cancelled"]
    assert await _quote_status(client, quote, org.rep.headers) == "draft"
    assert_problem(await _decide(client, request, org.manager), 409, "not_pending")
    # The other request is still pending.
    assert (await _request(client, untouched, org.rep.headers))["status"] == "pending"
    assert await _quote_status(client, untouched, org.rep.headers) == "pending_approval"
    events = [t for t, _ in await _events(app, tenant)]
    assert events.count("quote.approval_expired") == 1
    # The expired quote may be submitted again.
    assert (await _ok(await _submit(client, quote, org.rep)))["status"] == "pending_approval"


# --- policies -----------------------------------------------------------------------------

FINANCE_FOR_ANY_DISCOUNT = {
    "name": "Finance signs every discount",
    "rules": [
        {
            "name": "any discount",
            "when": {"discount_pct_gt": "0"},
            "steps": [{"kind": "group", "group": "finance"}],
        }
    ],
    "expires_after_days": 3,
}


async def test_a_custom_policy_replaces_the_default(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    org = await _org(app, client, tenant)
    url = "/v1/approval-policies"
    assert (await client.get(url, headers=tenant.headers)).json()["data"] == []
    # Admins only; rules are validated.
    refused = await client.post(url, json=FINANCE_FOR_ANY_DISCOUNT, headers=org.manager.headers)
    assert_problem(refused, 403, "role_not_allowed")
    for rules in (
        [{"name": "x", "when": {"discount_above": "5"}, "steps": [{"kind": "manager_chain"}]}],
        [{"name": "x", "when": {}, "steps": [{"kind": "ceo"}]}],
        [{"name": "x", "when": {}, "steps": [{"kind": "group"}]}],
        [{"name": "x", "when": {}, "steps": [{"kind": "user"}]}],
        [{"name": "x", "when": {}, "steps": []}],
        [{"name": "", "when": {}, "steps": [{"kind": "manager_chain"}]}],
    ):
        bad = await client.post(url, json={"name": "Bad", "rules": rules}, headers=tenant.headers)
        problem = assert_problem(bad, 422, "validation_failed")
        assert problem["errors"][0]["code"] == "invalid_rule", problem
    assert (await client.get(url, headers=tenant.headers)).json()["data"] == []

    policy = await _ok(
        await client.post(url, json=FINANCE_FOR_ANY_DISCOUNT, headers=tenant.headers)
    )
    assert policy["active"] is True and policy["expires_after_days"] == 3
    assert policy["rules"] == FINANCE_FOR_ANY_DISCOUNT["rules"]
    duplicate = await client.post(url, json=FINANCE_FOR_ANY_DISCOUNT, headers=tenant.headers)
    assert_problem(duplicate, 409, "duplicate_policy")
    listed = (await client.get(url, headers=tenant.headers)).json()["data"]
    assert [p["id"] for p in listed] == [policy["id"]]

    # 5 % now needs finance; 25 % needs only finance (no manager chain in this policy).
    small = await _quote(client, org, "5")
    plan = await _plan(client, small, org.rep.headers)
    assert _steps(plan) == [("group", [org.finance.id], True)]
    assert plan["steps"][0]["rule"] == "any discount"
    big = await _quote(client, org, "25")
    assert _steps(await _plan(client, big, org.rep.headers)) == [("group", [org.finance.id], True)]
    none = await _quote(client, org, "0")
    assert (await _plan(client, none, org.rep.headers))["needs_approval"] is False

    await _ok(await _submit(client, big, org.rep))
    request = await _request(client, big, org.rep.headers)
    expires = datetime.fromisoformat(request["expires_at"])
    assert timedelta(days=2, hours=23) < expires - datetime.now(UTC) <= timedelta(days=3)
    assert await _inbox(client, org.manager) == []
    assert await _inbox(client, org.finance) == [request["id"]]
    assert_problem(await _decide(client, request, org.manager), 403, "not_an_approver")
    assert (await _ok(await _decide(client, request, org.finance)))["status"] == "approved"

    # Deactivating it brings the default back; a second active policy replaces the first.
    off = await client.patch(
        f"{url}/{policy['id']}", json={"active": False}, headers=tenant.headers
    )
    assert off.status_code == 200 and off.json()["active"] is False
    assert (await _plan(client, small, org.rep.headers))["needs_approval"] is False
    vp_only = await _ok(
        await client.post(
            url,
            json={
                "name": "VP signs",
                "rules": [
                    {
                        "name": "vp",
                        "when": {"net_total_gt": "500"},
                        "steps": [{"kind": "user", "user_id": org.vp.id}],
                    }
                ],
            },
            headers=tenant.headers,
        )
    )
    on = await client.patch(f"{url}/{policy['id']}", json={"active": True}, headers=tenant.headers)
    assert on.status_code == 200 and on.json()["active"] is True
    active = [
        p["id"]
        for p in (await client.get(url, headers=tenant.headers)).json()["data"]
        if p["active"]
    ]
    assert active == [policy["id"]]
    assert vp_only["id"] not in active
    # Rules are replaced through PATCH too.
    patched = await client.patch(
        f"{url}/{policy['id']}",
        json={"rules": vp_only["rules"]},
        headers=tenant.headers,
    )
    assert patched.status_code == 200, patched.text
    # 10 seats at 5 % = 950.00 net > 500: the VP, by name.
    assert _steps(await _plan(client, small, org.rep.headers)) == [("user", [org.vp.id], True)]
    invalid = await client.patch(
        f"{url}/{policy['id']}", json={"rules": [{"name": "x"}]}, headers=tenant.headers
    )
    assert_problem(invalid, 422, "validation_failed")


# --- tenancy ------------------------------------------------------------------------------


async def test_approvals_and_policies_are_tenant_scoped(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    org = await _org(app, client, tenant)
    quote = await _quote(client, org, "15")
    await _ok(await _submit(client, quote, org.rep))
    request = await _request(client, quote, org.rep.headers)
    policy = await _ok(
        await client.post(
            "/v1/approval-policies", json=FINANCE_FOR_ANY_DISCOUNT, headers=tenant.headers
        )
    )
    delegation = await _ok(
        await client.post(
            "/v1/approval-delegations",
            json={
                "delegate_id": org.vp.id,
                "ends_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            },
            headers=org.manager.headers,
        )
    )
    theirs = other_tenant.headers

    for response in (
        await client.get(f"/v1/approvals/{request['id']}", headers=theirs),
        await client.post(f"/v1/approvals/{request['id']}/approve", json={}, headers=theirs),
        await client.post(
            f"/v1/approvals/{request['id']}/reject",
            json={"reason_code": "other", "reason": "no"},
            headers=theirs,
        ),
        await client.patch(
            f"/v1/approval-policies/{policy['id']}", json={"active": False}, headers=theirs
        ),
        await client.delete(f"/v1/approval-delegations/{delegation['id']}", headers=theirs),
        await client.get(f"/v1/quotes/{quote['id']}/approval-plan", headers=theirs),
    ):
        assert_problem(response, 404, "not_found")
    for path in (
        "/v1/approvals",
        f"/v1/approvals?quote_id={quote['id']}",
        "/v1/approvals?assignee=me",
        "/v1/approval-policies",
        "/v1/approval-delegations",
    ):
        assert (await client.get(path, headers=theirs)).json()["data"] == [], path
    # Another organization's user cannot be a delegate.
    foreign = await client.post(
        "/v1/approval-delegations",
        json={
            "delegate_id": org.vp.id,
            "ends_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        headers=theirs,
    )
    assert_problem(foreign, 422, "validation_failed")
    # Their policy does not apply here (and ours not there).
    await _ok(
        await client.post(
            "/v1/approval-policies",
            json={**FINANCE_FOR_ANY_DISCOUNT, "name": "Theirs"},
            headers=theirs,
        )
    )
    # Nothing changed for the owner.
    mine = await _ok(await client.get(f"/v1/approvals/{request['id']}", headers=org.rep.headers))
    assert mine["status"] == "pending" and mine["version"] == request["version"]
    policies = (await client.get("/v1/approval-policies", headers=tenant.headers)).json()["data"]
    assert [(p["id"], p["active"]) for p in policies] == [(policy["id"], True)]


async def test_plan_walks_up_from_the_quote_creator_whoever_asks(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    org = await _org(app, client, tenant)
    quote = await _quote(client, org, "25")  # created by the rep
    expected = [("manager_chain", [org.manager.id], True), ("manager_chain", [org.vp.id], True)]
    for viewer in (org.rep, org.manager, org.vp):
        assert _steps(await _plan(client, quote, viewer.headers)) == expected
    # The manager submitting the rep's quote still needs the chain above the rep, and the
    # rep (its creator) can never approve it.
    await _ok(await _submit(client, quote, org.manager))
    request = await _request(client, quote, org.manager.headers)
    refused = await client.post(
        f"/v1/approvals/{request['id']}/approve", json={}, headers=org.rep.headers
    )
    assert_problem(refused, 403)
