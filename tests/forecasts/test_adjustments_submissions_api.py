"""Manager adjustments (beside, never instead of, the computed figures) and forecast
submissions (every call kept)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from app.core.tenancy import Actor, bind_tenant
from app.models import OutboxEvent
from tests.factories import Tenant, assert_problem, key_for
from tests.forecasts.helpers import Sales, find, sales

Q3 = {"period": "2026-Q3"}


async def team(app: FastAPI, client: AsyncClient, tenant: Tenant) -> Sales:
    """VP → M1 → (R1, R2); VP → M2."""
    s = await sales(app, client, tenant)
    await s.person("VP", "manager")
    await s.person("M1", "manager", manager="VP")
    await s.person("M2", "manager", manager="VP")
    await s.person("R1", manager="M1")
    await s.person("R2", manager="M1")
    await s.person("Viewer", "viewer", manager="M1")
    return s


async def adjust(
    s: Sales, by: str | None, user: str, category: str, amount: str, note: str | None = None
) -> Any:
    body = {"user_id": s.id(user), "category": category, "amount": amount, **Q3}
    if note is not None:
        body["note"] = note
    headers = s.admin if by is None else s.headers(by)
    return await s.client.post("/v1/forecasts/adjustments", json=body, headers=headers)


async def test_adjustments_sit_beside_the_computed_figures(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    s = await team(app, client, tenant)
    await s.deal("R1", "50000", "commit", "2026-08-15")
    await s.deal("R1", "30000", "proposal", "2026-08-15")

    first = await adjust(s, "M1", "R1", "commit", "70000", note="big logo pending")
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["user_id"] == s.id("R1") and created["adjusted_by_id"] == s.id("M1")
    assert created["adjusted_by_name"] == "M1"
    assert (created["period"], created["period_start"], created["period_end"]) == (
        "2026-Q3",
        "2026-07-01",
        "2026-10-01",
    )
    assert (created["amount"], created["currency"], created["note"]) == (
        "70000.00",
        "TRY",
        "big logo pending",
    )
    assert (await adjust(s, "M1", "R1", "commit", "65000.5")).status_code == 201
    assert (await adjust(s, "VP", "R1", "commit", "60000")).status_code == 201
    assert (await adjust(s, "M1", "R1", "best_case", "95000")).status_code == 201
    assert (await adjust(s, "M1", "M1", "commit", "1000")).status_code == 201  # own number
    assert (await adjust(s, None, "R2", "best_case", "5")).status_code == 201  # an admin

    forecast = (await client.get("/v1/forecasts", params=Q3, headers=s.headers("VP"))).json()
    r1 = find(forecast, s.id("R1"))
    # The computed numbers are untouched ...
    assert (r1["own"]["commit"], r1["own"]["best_case"]) == ("50000.00", "80000.00")
    assert find(forecast, s.id("M1"))["total"]["commit"] == "50000.00"
    # ... and the effective adjustments (latest per category and manager) sit beside them.
    shown = [(a["category"], a["adjusted_by_name"], a["amount"]) for a in r1["adjustments"]]
    assert shown == [
        ("best_case", "M1", "95000.00"),
        ("commit", "VP", "60000.00"),
        ("commit", "M1", "65000.50"),
    ]
    assert [a["amount"] for a in find(forecast, s.id("M1"))["adjustments"]] == ["1000.00"]
    assert find(forecast, s.id("R2"))["adjustments"][0]["adjusted_by_id"] == str(tenant.admin_id)
    assert forecast["adjustments"] == []
    # Another period shows none of them.
    q4 = (
        await client.get("/v1/forecasts", params={"period": "2026-Q4"}, headers=s.headers("VP"))
    ).json()
    assert find(q4, s.id("R1"))["adjustments"] == []

    # The whole history, newest first.
    history = await client.get(
        "/v1/forecasts/adjustments",
        params={"user_id": s.id("R1"), **Q3},
        headers=s.headers("R1"),
    )
    assert history.status_code == 200, history.text
    assert [(a["category"], a["amount"]) for a in history.json()["data"]] == [
        ("best_case", "95000.00"),
        ("commit", "60000.00"),
        ("commit", "65000.50"),
        ("commit", "70000.00"),
    ]
    commits = (
        await client.get(
            "/v1/forecasts/adjustments",
            params={"user_id": s.id("R1"), "category": "commit", "limit": 2},
            headers=s.headers("M1"),
        )
    ).json()
    assert len(commits["data"]) == 2 and commits["next_cursor"]
    rest = (
        await client.get(
            "/v1/forecasts/adjustments",
            params={
                "user_id": s.id("R1"),
                "category": "commit",
                "limit": 2,
                "cursor": commits["next_cursor"],
            },
            headers=s.headers("M1"),
        )
    ).json()
    assert [a["amount"] for a in rest["data"]] == ["70000.00"] and rest["next_cursor"] is None
    # Without user_id: what the caller may see (R1: their own; M2: nobody's).
    mine = (await client.get("/v1/forecasts/adjustments", headers=s.headers("R1"))).json()
    assert {a["user_id"] for a in mine["data"]} == {s.id("R1")}
    assert (await client.get("/v1/forecasts/adjustments", headers=s.headers("M2"))).json()[
        "data"
    ] == []
    everything = (await client.get("/v1/forecasts/adjustments", headers=s.admin)).json()
    assert len(everything["data"]) == 6
    assert_problem(
        await client.get(
            "/v1/forecasts/adjustments", params={"user_id": s.id("R1")}, headers=s.headers("M2")
        ),
        403,
        "outside_hierarchy",
    )
    # The change is an event for integrations.
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        types = list(
            await session.scalars(
                select(OutboxEvent.event_type).where(OutboxEvent.event_type.startswith("forecast."))
            )
        )
    assert types == ["forecast.adjusted"] * 6


async def test_who_may_adjust(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    s = await team(app, client, tenant)
    # Reps may not adjust, not even their own number; viewers write nothing.
    assert_problem(await adjust(s, "R1", "R1", "commit", "1"), 403, "role_not_allowed")
    assert_problem(await adjust(s, "Viewer", "R1", "commit", "1"), 403, "role_not_allowed")
    # Managers only for people under them (or themselves).
    assert_problem(await adjust(s, "M2", "R1", "commit", "1"), 403, "outside_hierarchy")
    assert_problem(await adjust(s, "M1", "VP", "commit", "1"), 403, "outside_hierarchy")
    # Body validation.
    for bad in (
        {"category": "pipeline"},
        {"amount": "-1"},
        {"amount": "1.234"},
        {"period": "2026-Q9"},
        {"period": "Q3"},
        {"user_id": "not-a-uuid"},
        {"user_id": str(other_tenant.admin_id)},  # another organization's user
        {"extra": 1},
    ):
        body = {"user_id": s.id("R1"), "category": "commit", "amount": "1", **Q3, **bad}
        response = await client.post("/v1/forecasts/adjustments", json=body, headers=s.admin)
        assert_problem(response, 422)
    assert (await client.get("/v1/forecasts/adjustments", headers=s.admin)).json()["data"] == []
    # Unknown user in a filter, bad period filter.
    assert_problem(
        await client.get(
            "/v1/forecasts/adjustments",
            params={"user_id": str(other_tenant.admin_id)},
            headers=s.admin,
        ),
        404,
    )
    assert_problem(
        await client.get("/v1/forecasts/adjustments", params={"period": "x"}, headers=s.admin),
        422,
    )


async def submit(s: Sales, by: str | None, **body: Any) -> Any:
    headers = s.admin if by is None else s.headers(by)
    return await s.client.post("/v1/forecasts/submissions", json={**Q3, **body}, headers=headers)


async def test_submissions_are_kept_and_listed(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    s = await team(app, client, tenant)
    first = await submit(s, "R1", commit="60000", best_case="90000", note="first call")
    assert first.status_code == 201, first.text
    call = first.json()
    assert first.headers["location"] == f"/v1/forecasts/submissions/{call['id']}"
    assert (call["user_id"], call["submitted_by_id"]) == (s.id("R1"), s.id("R1"))
    assert (call["period"], call["period_start"], call["period_end"]) == (
        "2026-Q3",
        "2026-07-01",
        "2026-10-01",
    )
    assert (call["commit"], call["best_case"], call["currency"], call["note"]) == (
        "60000.00",
        "90000.00",
        "TRY",
        "first call",
    )
    assert call["submitted_at"]
    second = (await submit(s, "R1", commit="65000", best_case="65000")).json()
    by_manager = (
        await submit(s, "M1", user_id=s.id("R1"), commit="50000", best_case="70000")
    ).json()
    assert by_manager["submitted_by_id"] == s.id("M1")
    assert (await submit(s, None, user_id=s.id("M2"), commit="1", best_case="2")).status_code == 201
    await submit(s, "R2", period="2026-Q4", commit="1", best_case="1")

    # Kept, newest first.
    listed = await client.get(
        "/v1/forecasts/submissions", params={"user_id": s.id("R1"), **Q3}, headers=s.headers("R1")
    )
    assert listed.status_code == 200, listed.text
    assert [c["id"] for c in listed.json()["data"]] == [by_manager["id"], second["id"], call["id"]]
    page = (
        await client.get(
            "/v1/forecasts/submissions",
            params={"user_id": s.id("R1"), "limit": 2},
            headers=s.headers("VP"),
        )
    ).json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    rest = (
        await client.get(
            "/v1/forecasts/submissions",
            params={"user_id": s.id("R1"), "limit": 2, "cursor": page["next_cursor"]},
            headers=s.headers("VP"),
        )
    ).json()
    assert [c["id"] for c in rest["data"]] == [call["id"]] and rest["next_cursor"] is None
    oldest_first = (
        await client.get(
            "/v1/forecasts/submissions",
            params={"user_id": s.id("R1"), "sort": "submitted_at"},
            headers=s.admin,
        )
    ).json()
    assert oldest_first["data"][0]["id"] == call["id"]

    # What each caller sees without a user filter.
    def users(body: dict[str, Any]) -> set[str]:
        return {c["user_id"] for c in body["data"]}

    mine = (await client.get("/v1/forecasts/submissions", headers=s.headers("R1"))).json()
    assert users(mine) == {s.id("R1")}
    m1 = (await client.get("/v1/forecasts/submissions", headers=s.headers("M1"))).json()
    assert users(m1) == {s.id("R1"), s.id("R2")}
    q4 = (
        await client.get("/v1/forecasts/submissions", params={"period": "2026-q4"}, headers=s.admin)
    ).json()
    assert users(q4) == {s.id("R2")}
    assert len((await client.get("/v1/forecasts/submissions", headers=s.admin)).json()["data"]) == 5

    # One submission: visible to its user and those above them.
    url = f"/v1/forecasts/submissions/{call['id']}"
    assert (await client.get(url, headers=s.headers("R1"))).json() == call
    assert (await client.get(url, headers=s.headers("VP"))).status_code == 200
    assert_problem(await client.get(url, headers=s.headers("R2")), 403, "outside_hierarchy")
    assert_problem(await client.get(url, headers=s.headers("M2")), 403, "outside_hierarchy")
    # Another organization's admin does not find it.
    assert_problem(await client.get(url, headers=other_tenant.headers), 404)
    assert_problem(await client.get("/v1/forecasts/submissions/not-a-uuid", headers=s.admin), 400)


async def test_who_may_submit_and_validation(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    s = await team(app, client, tenant)
    ok = {"commit": "10", "best_case": "20"}
    # Reps submit for themselves only; managers for people under them; viewers not at all.
    assert_problem(await submit(s, "R1", user_id=s.id("R2"), **ok), 403, "role_not_allowed")
    assert_problem(await submit(s, "R1", user_id=s.id("M1"), **ok), 403, "role_not_allowed")
    assert_problem(await submit(s, "M2", user_id=s.id("R1"), **ok), 403, "outside_hierarchy")
    assert_problem(await submit(s, "Viewer", **ok), 403, "role_not_allowed")
    for bad in (
        {"best_case": "5"},  # below commit
        {"commit": "-1"},
        {"commit": "abc"},
        {"period": "2026-Q0"},
        {"period": "2026-13"},
        {"user_id": str(other_tenant.admin_id)},  # not a user of this organization
        {"note": "x" * 2001},
    ):
        response = await submit(s, "M1", **{**ok, **bad})
        body = assert_problem(response, 422)
        assert body["errors"], body
    missing = assert_problem(await submit(s, "R1", commit="1"), 422)
    assert missing["errors"][0]["field"] == "body.best_case"
    bad_period = assert_problem(await submit(s, "R1", period="2026-Q5", **ok), 422)
    assert bad_period["errors"][0] == {
        "field": "body.period",
        "code": "invalid_period",
        "detail": bad_period["errors"][0]["detail"],
    }
    assert (await client.get("/v1/forecasts/submissions", headers=s.admin)).json()["data"] == []
    # Idempotent POST: a retried call is stored once.
    headers = {**s.headers("R1"), "Idempotency-Key": "call-1"}
    body = {**Q3, **ok}
    one = await client.post("/v1/forecasts/submissions", json=body, headers=headers)
    two = await client.post("/v1/forecasts/submissions", json=body, headers=headers)
    assert one.status_code == two.status_code == 201
    assert two.headers.get("idempotent-replayed") == "true"
    assert len((await client.get("/v1/forecasts/submissions", headers=s.admin)).json()["data"]) == 1
    # A key without the scope.
    narrow = await key_for(app, tenant, scopes=["forecasts:read"])
    assert_problem(
        await client.post("/v1/forecasts/submissions", json=body, headers=narrow),
        403,
        "missing_scope",
    )
    assert (await client.get("/v1/forecasts", params=Q3, headers=narrow)).status_code == 200
