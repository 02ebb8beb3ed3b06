"""Daily pipeline snapshots (one per organization and day) and the trend read from them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from app.core.tenancy import Actor, bind_tenant
from app.forecasts.service import take_pipeline_snapshot, today
from app.models import PipelineSnapshot
from tests.factories import Tenant, assert_problem
from tests.forecasts.helpers import Sales, sales


async def stored_rows(app: FastAPI, tenant: Tenant) -> list[tuple[Any, ...]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.execute(
            select(
                PipelineSnapshot.snapshot_date,
                PipelineSnapshot.stage_id,
                PipelineSnapshot.forecast_category,
                PipelineSnapshot.owner_id,
                PipelineSnapshot.deal_count,
                PipelineSnapshot.amount,
            ).order_by(PipelineSnapshot.snapshot_date, PipelineSnapshot.amount)
        )
        return [tuple(r) for r in rows]


async def snapshot_on(app: FastAPI, tenant: Tenant, day: date) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await take_pipeline_snapshot(session, day)


def stage_ids(s: Sales) -> dict[str, str]:
    return {stage["key"]: stage["id"] for stage in s.pipeline["stages"]}


async def team(app: FastAPI, client: AsyncClient, tenant: Tenant) -> Sales:
    s = await sales(app, client, tenant)
    await s.person("Boss", "manager")
    await s.person("Ann", manager="Boss")
    await s.person("Bob", manager="Boss")
    await s.rate("2026-01-01", "EUR/TRY", "40")
    return s


async def test_snapshot_is_idempotent_per_day(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    s = await team(app, client, tenant)
    stages = stage_ids(s)
    ann_commit = await s.deal("Ann", "1000", "commit", "2026-12-01")
    await s.deal("Ann", "500", "commit", "2027-03-01", currency="EUR")  # 20,000 TRY
    await s.deal("Ann", "700", "commit", "2026-12-01", forecast_category="omitted")
    await s.deal("Bob", "3000", "proposal", "2026-12-01")
    await s.deal("Bob", None, "proposal", "2026-12-01")
    await s.deal("Bob", "100", "discovery", "2026-12-01", currency="USD")  # no rate
    orphan = await s.deal("Bob", "400", "discovery", "2026-12-01")
    unowned = await client.patch(
        f"/v1/opportunities/{orphan['id']}", json={"owner_id": None}, headers=s.admin
    )
    assert unowned.status_code == 200, unowned.text
    await s.deal("Ann", "9999", "won", "2026-11-01")  # closed deals are not pipeline
    await s.deal("Bob", "8888", "lost", "2026-11-01")
    # Another organization's deals and rates never enter this snapshot.
    other = await sales(app, client, other_tenant)
    await other.person("Rep")
    await other.rate("2025-01-01", "EUR/TRY", "99")
    await other.deal("Rep", "123", "commit", "2026-12-01")

    first = await client.post("/v1/forecasts/snapshots", headers=s.admin)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["snapshot_date"] == today().isoformat() and body["currency"] == "TRY"
    rows = {
        (r["stage_id"], r["forecast_category"], r["owner_id"]): (
            r["deal_count"],
            r["amount"],
            r["weighted_amount"],
            r["unconverted_count"],
        )
        for r in body["rows"]
    }
    assert all(r["pipeline_id"] == s.pipeline["id"] for r in body["rows"])
    assert rows == {
        (stages["commit"], "commit", s.id("Ann")): (2, "21000.00", "16800.00", 0),
        (stages["commit"], "omitted", s.id("Ann")): (1, "700.00", "560.00", 0),
        (stages["proposal"], "best_case", s.id("Bob")): (2, "3000.00", "1500.00", 0),
        (stages["discovery"], "pipeline", s.id("Bob")): (0, "0.00", "0.00", 1),
        (stages["discovery"], "pipeline", None): (1, "400.00", "40.00", 0),
    }
    assert (body["deal_count"], body["amount"], body["weighted_amount"]) == (
        6,
        "25100.00",
        "18900.00",
    )
    assert body["unconverted_count"] == 1

    # Again the same day, after a change: the day's rows are replaced, not added.
    changed = await client.patch(
        f"/v1/opportunities/{ann_commit['id']}", json={"amount": "2000"}, headers=s.admin
    )
    assert changed.status_code == 200, changed.text
    second = (await client.post("/v1/forecasts/snapshots", headers=s.admin)).json()
    assert len(second["rows"]) == len(body["rows"]) == 5
    assert second["amount"] == "26100.00"
    stored = await stored_rows(app, tenant)
    assert len(stored) == 5 and {r[0] for r in stored} == {today()}
    assert (stages["commit"], "commit", ann_commit["owner_id"], 2, 22000) in {
        (str(r[1]), r[2], str(r[3]) if r[3] else None, r[4], r[5]) for r in stored
    }
    # The daily job takes it too, still one set of rows per day.
    job = await client.post("/v1/jobs/follow-ups", headers=s.admin)
    assert job.status_code == 200, job.text
    assert len(await stored_rows(app, tenant)) == 5
    assert [r[5] for r in await stored_rows(app, other_tenant)] == []  # the job ran for us only
    # Only admins take snapshots on demand.
    assert_problem(
        await client.post("/v1/forecasts/snapshots", headers=s.headers("Boss")),
        403,
        "role_not_allowed",
    )


async def test_trend_series(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    s = await team(app, client, tenant)
    stages = stage_ids(s)
    ann = await s.deal("Ann", "1000", "discovery", "2026-12-01")
    await s.deal("Bob", "500", "commit", "2026-12-01", currency="EUR")  # 20,000 TRY
    await s.deal("Bob", "50", "discovery", "2026-12-01", forecast_category="omitted")
    await snapshot_on(app, tenant, date(2026, 9, 1))
    # Ann's deal moves to proposal and grows.
    moved = await client.post(
        f"/v1/opportunities/{ann['id']}/stage", json={"stage": "proposal"}, headers=s.admin
    )
    assert moved.status_code == 200, moved.text
    await client.patch(f"/v1/opportunities/{ann['id']}", json={"amount": "4000"}, headers=s.admin)
    await snapshot_on(app, tenant, date(2026, 9, 2))
    await snapshot_on(app, tenant, date(2026, 9, 4))
    await snapshot_on(app, tenant, date(2026, 8, 31))  # outside the range asked
    other = await sales(app, client, other_tenant)
    await other.person("Rep")
    await other.deal("Rep", "777", "discovery", "2026-12-01")
    await snapshot_on(app, other_tenant, date(2026, 9, 3))

    params = {"from": "2026-09-01", "to": "2026-09-04"}
    response = await client.get(
        "/v1/forecasts/trend", params={**params, "group_by": "stage"}, headers=s.admin
    )
    assert response.status_code == 200, response.text
    trend = response.json()
    assert (trend["from"], trend["to"], trend["group_by"], trend["currency"]) == (
        "2026-09-01",
        "2026-09-04",
        "stage",
        "TRY",
    )
    assert trend["dates"] == ["2026-09-01", "2026-09-02", "2026-09-04"]

    def points(series: dict[str, Any]) -> list[tuple[str, str, int]]:
        return [(p["value"], p["weighted_value"], p["count"]) for p in series["points"]]

    by_label = {t["label"]: t for t in trend["series"]}
    assert [t["label"] for t in trend["series"]] == ["Discovery", "Proposal", "Commit"]
    assert by_label["Discovery"]["key"] == stages["discovery"]
    assert by_label["Discovery"]["pipeline_id"] == s.pipeline["id"]
    assert points(by_label["Discovery"]) == [
        ("1000.00", "100.00", 1),
        ("0.00", "0.00", 0),
        ("0.00", "0.00", 0),
    ]
    assert points(by_label["Proposal"]) == [
        ("0.00", "0.00", 0),
        ("4000.00", "2000.00", 1),
        ("4000.00", "2000.00", 1),
    ]
    assert points(by_label["Commit"]) == [("20000.00", "16000.00", 1)] * 3
    assert [(p["value"], p["count"]) for p in trend["totals"]] == [
        ("21000.00", 2),
        ("24000.00", 2),
        ("24000.00", 2),
    ]

    category = (
        await client.get(
            "/v1/forecasts/trend",
            params={**params, "group_by": "category", "include_omitted": "true"},
            headers=s.admin,
        )
    ).json()
    assert [(t["key"], points(t)[0]) for t in category["series"]] == [
        ("commit", ("20000.00", "16000.00", 1)),
        ("best_case", ("0.00", "0.00", 0)),
        ("pipeline", ("1000.00", "100.00", 1)),
        ("omitted", ("50.00", "5.00", 1)),
    ]
    assert category["series"][1]["label"] == "best_case"
    assert category["totals"][0]["value"] == "21050.00"

    owners = (
        await client.get(
            "/v1/forecasts/trend", params={**params, "group_by": "owner"}, headers=s.admin
        )
    ).json()
    assert [(t["label"], t["key"]) for t in owners["series"]] == [
        ("Ann", s.id("Ann")),
        ("Bob", s.id("Bob")),
    ]
    # A rep sees their own deals; filters narrow it down.
    mine = (
        await client.get(
            "/v1/forecasts/trend", params={**params, "group_by": "owner"}, headers=s.headers("Ann")
        )
    ).json()
    assert [t["label"] for t in mine["series"]] == ["Ann"]
    assert mine["dates"] == trend["dates"]
    bob = (
        await client.get(
            "/v1/forecasts/trend",
            params={**params, "owner_id": s.id("Bob"), "pipeline_id": s.pipeline["id"]},
            headers=s.headers("Boss"),
        )
    ).json()
    assert [t["label"] for t in bob["series"]] == ["Commit"]
    elsewhere = (
        await client.get(
            "/v1/forecasts/trend",
            params={**params, "pipeline_id": other.pipeline["id"]},
            headers=s.admin,
        )
    ).json()
    assert elsewhere["series"] == [] and all(t["count"] == 0 for t in elsewhere["totals"])
    assert_problem(
        await client.get(
            "/v1/forecasts/trend",
            params={**params, "owner_id": s.id("Bob")},
            headers=s.headers("Ann"),
        ),
        403,
        "outside_hierarchy",
    )
    # The other organization sees only its own snapshot.
    theirs = (await client.get("/v1/forecasts/trend", params=params, headers=other.admin)).json()
    assert theirs["dates"] == ["2026-09-03"]
    assert [t["label"] for t in theirs["series"]] == ["Discovery"]
    assert_problem(
        await client.get(
            "/v1/forecasts/trend",
            params={**params, "owner_id": other.id("Rep")},
            headers=s.admin,
        ),
        404,
    )
    # Default range: the 90 days up to today.
    recent = (await client.get("/v1/forecasts/trend", headers=s.admin)).json()
    assert (recent["from"], recent["to"]) == (
        (today() - timedelta(days=89)).isoformat(),
        today().isoformat(),
    )


async def test_trend_validation(client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    for params, status in (
        ({"from": "2026-09-02", "to": "2026-09-01"}, 422),
        ({"from": "2024-01-01", "to": "2026-09-01"}, 422),
        ({"group_by": "team"}, 400),
        ({"from": "someday"}, 400),
        ({"owner_id": "01890000-0000-7000-8000-000000000000"}, 404),
    ):
        assert_problem(await client.get("/v1/forecasts/trend", params=params, headers=h), status)
    # The default 90 days before the first day a date can hold stop at that day (was a 500).
    earliest = await client.get("/v1/forecasts/trend", params={"to": "0001-01-01"}, headers=h)
    assert earliest.status_code == 200, earliest.text
    assert (earliest.json()["from"], earliest.json()["to"]) == ("0001-01-01", "0001-01-01")


async def test_snapshot_counts_rows_in_sql(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    """Many deals of one group make one row (aggregated in SQL, not per deal)."""
    s = await team(app, client, tenant)
    for _ in range(5):
        await s.deal("Ann", "10", "discovery", "2026-12-01")
    await snapshot_on(app, tenant, date(2026, 9, 1))
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        count, deals = (
            await session.execute(
                select(func.count(), func.sum(PipelineSnapshot.deal_count)).where(
                    PipelineSnapshot.snapshot_date == date(2026, 9, 1)
                )
            )
        ).one()
    assert (count, deals) == (1, 5)
