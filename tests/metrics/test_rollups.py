"""The daily roll-ups: kept equal to the deals, stage history and activities they sum, and
giving unfiltered deals closing, won and created, stage conversion, time in stage and time
spent selling exactly as those rows themselves would."""

from __future__ import annotations

import logging
import random
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from app.core.ids import new_id
from app.core.tenancy import Actor, bind_tenant
from app.metrics import facts, rollups
from app.metrics.facts import FactContext, MetricFilters
from app.metrics.periods import Period, parse_period
from app.models import (
    ActivityRollup,
    ExchangeRate,
    Opportunity,
    OpportunityCloseRollup,
    OpportunityCreatedRollup,
    StageEntryRollup,
    StageExitRollup,
    StageHistory,
)
from tests.factories import Tenant, create, create_account
from tests.metrics.builders import Facts, at
from tests.metrics.test_kpis_api import _simple_deals
from tests.metrics.test_worked_examples import metric


def _columns(model: type[Any]) -> list[Any]:
    """The model's columns but its tenant, as mapped attributes (so the query is scoped)."""
    return [getattr(model, c.key) for c in model.__table__.c if c.key != "organization_id"]


async def rollup_rows(app: FastAPI, organization_id: uuid.UUID) -> dict[str, set[tuple[Any, ...]]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, organization_id, Actor())
        entries = await session.execute(
            select(
                StageEntryRollup.day,
                StageEntryRollup.stage_id,
                StageEntryRollup.entered,
                StageEntryRollup.advanced,
            )
        )
        exits = await session.execute(
            select(
                StageExitRollup.day,
                StageExitRollup.stage_id,
                StageExitRollup.whole_days,
                StageExitRollup.exits,
                StageExitRollup.hundredths,
            )
        )
        activities = await session.execute(
            select(ActivityRollup.day, *(getattr(ActivityRollup, n) for n in rollups.ACTIVITY_SUMS))
        )
        closes = await session.execute(select(*_columns(OpportunityCloseRollup)))
        created = await session.execute(select(*_columns(OpportunityCreatedRollup)))
        return {
            "entries": {tuple(r) for r in entries},
            "exits": {tuple(r) for r in exits},
            # A day whose activities (or deals) were all deleted or moved keeps a row of zeros.
            "activities": {tuple(r) for r in activities if r.activities},
            "closes": {tuple(r) for r in closes if r.deals},
            "created": {tuple(r) for r in created if r.deals},
        }


async def rebuilt(app: FastAPI, organization_id: uuid.UUID) -> dict[str, set[tuple[Any, ...]]]:
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, organization_id, Actor())
        await rollups.rebuild(session, organization_id)
    return await rollup_rows(app, organization_id)


async def test_moves_through_the_api_keep_the_rollups_equal_to_the_history(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    h = tenant.headers
    deals = await _simple_deals(client, tenant, 3, amount="1000")
    await _simple_deals(client, other_tenant, 1, amount="1000")

    async def post(deal: dict[str, Any], action: str, body: dict[str, Any]) -> None:
        url = f"/v1/opportunities/{deal['id']}/{action}"
        response = await client.post(url, json=body, headers=h)
        assert response.status_code == 200, response.text

    # Forward, backward, forward again, won, reopened, lost; a skip; a straight loss.
    await post(deals[0], "stage", {"stage": "qualified"})
    await post(deals[0], "stage", {"stage": "lead_in", "reason": "Budget moved"})
    await post(deals[0], "stage", {"stage": "qualified"})
    await post(deals[0], "stage", {"stage": "won", "won_reason": {"code": "price"}})
    await post(deals[0], "reopen", {"reason": "Signed the wrong entity"})
    await post(deals[0], "stage", {"stage": "lost", "lost_reason": {"code": "no_budget"}})
    await post(deals[1], "stage", {"stage": "won", "won_reason": {"code": "price"}})
    await post(deals[2], "stage", {"stage": "lost", "lost_reason": {"code": "no_budget"}})
    # A refused move changes nothing, the roll-ups included.
    refused = await client.post(
        f"/v1/opportunities/{deals[2]['id']}/stage", json={"stage": "qualified"}, headers=h
    )
    assert refused.status_code == 409  # a lost deal moves only by reopening

    counted = await rollup_rows(app, tenant.organization_id)
    entered = sum(row[2] for row in counted["entries"])
    # Entries into open stages: 3 creations, 2 forward moves, 1 backward, 1 reopen.
    assert entered == 7
    # Left forward: lead_in twice and qualified once (deal 0), lead_in straight to won.
    assert sum(row[3] for row in counted["entries"]) == 4
    assert sum(row[3] for row in counted["exits"]) == 7  # every move but the reopen
    assert counted == await rebuilt(app, tenant.organization_id)
    # The other organization has only its own deal's creation.
    others = await rollup_rows(app, other_tenant.organization_id)
    assert sum(row[2] for row in others["entries"]) == 1 and not others["exits"]


async def test_activity_writes_through_the_api_keep_the_rollups_equal_to_the_activities(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    h = tenant.headers
    account = await create_account(client, h)

    async def log(**body: Any) -> dict[str, Any]:
        return await create(
            client, "/v1/activities", h, {"subject": "Work", "account_id": account["id"], **body}
        )

    call = await log(kind="call", duration_minutes=30, occurred_at="2026-05-04T23:30:00+03:00")
    note = await log(kind="note", duration_minutes=15, occurred_at="2026-05-04T10:00:00Z")
    meeting = await log(kind="meeting", occurred_at="2026-05-05T09:00:00Z")
    await log(kind="demo", duration_minutes=60, occurred_at="2026-05-06T09:00:00Z")
    theirs = await create_account(client, other_tenant.headers)
    await create(
        client,
        "/v1/activities",
        other_tenant.headers,
        {"kind": "call", "subject": "Theirs", "duration_minutes": 45, "account_id": theirs["id"]},
    )
    counted = await rollup_rows(app, tenant.organization_id)
    # The call was on 4 May in UTC (23:30 at +03:00): 45 minutes that day, 30 selling.
    assert (date(2026, 5, 4), 2, 45, 30, 0) in counted["activities"]

    async def patch(activity: dict[str, Any], **body: Any) -> None:
        response = await client.patch(
            f"/v1/activities/{activity['id']}",
            json=body,
            headers={**h, "If-Match": f'"{activity["version"]}"'},
        )
        assert response.status_code == 200, response.text

    # Moved to another day, made selling, given a duration; then deleted.
    await patch(call, occurred_at="2026-05-06T12:00:00Z", duration_minutes=40)
    await patch(note, selling=True)
    await patch(meeting, duration_minutes=90)
    deleted = await client.delete(f"/v1/activities/{note['id']}", headers={**h, "If-Match": '"2"'})
    assert deleted.status_code == 204, deleted.text
    counted = await rollup_rows(app, tenant.organization_id)
    assert (date(2026, 5, 6), 2, 100, 100, 0) in counted["activities"]
    assert counted == await rebuilt(app, tenant.organization_id)
    assert len((await rollup_rows(app, other_tenant.organization_id))["activities"]) == 1


async def test_deal_writes_through_the_api_keep_the_rollups_equal_to_the_deals(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """Creation, edits of every counted field, wins (with the sales cycle from the source
    lead), losses, reopening and deletion: each takes back what the deal counted and adds
    what it counts now."""
    h = tenant.headers
    deals = await _simple_deals(client, tenant, 3, amount="1000", close_date="2026-05-20")
    await _simple_deals(client, other_tenant, 1, amount="7", close_date="2026-05-20")
    builder = Facts(app, tenant)
    [lead] = await builder.leads(1, created_at=at(date(2026, 3, 1), 23))
    [from_lead] = await builder.deals(
        1, stage="negotiation", amount=300, close_date=date(2026, 5, 1), lead_id=lead
    )
    versions = {d["id"]: d["version"] for d in deals}

    async def call(method: str, url: str, body: dict[str, Any] | None = None) -> None:
        deal_id = url.split("/")[3]
        headers = {**h, "If-Match": f'"{versions[deal_id]}"'} if deal_id in versions else h
        response = await client.request(method, url, json=body, headers=headers)
        assert response.status_code in (200, 204), response.text
        if response.status_code == 200 and deal_id in versions:
            versions[deal_id] = response.json()["version"]

    first, second, third = (f"/v1/opportunities/{d['id']}" for d in deals)
    await call("PATCH", first, {"amount": "2500.50", "currency": "USD", "close_date": "2026-06-02"})
    await call("PATCH", first, {"forecast_category": "omitted", "type": "expansion"})
    await call("PATCH", second, {"amount": None, "close_date": None})
    await call("PATCH", second, {"close_date": "2026-04-30", "amount": "80"})
    await call("POST", f"{second}/stage", {"stage": "won", "won_reason": {"code": "price"}})
    await call("POST", f"{second}/reopen", {"reason": "Signed the wrong entity"})
    await call("POST", f"{third}/stage", {"stage": "lost", "lost_reason": {"code": "no_budget"}})
    await call("DELETE", first)
    won = await client.post(
        f"/v1/opportunities/{from_lead}/stage",
        json={"stage": "closed_won", "won_reason": {"code": "price"}, "close_date": "2026-05-11"},
        headers=h,
    )
    assert won.status_code == 200, won.text

    counted = await rollup_rows(app, tenant.organization_id)
    assert counted == await rebuilt(app, tenant.organization_id)
    # The won deal's cycle runs from its lead's creation (1 March, UTC) to 11 May: 71 days.
    [won_row] = [row for row in counted["closes"] if row[-1]]
    assert (won_row[0], won_row[-1]) == (date(2026, 5, 11), 71)
    assert sum(row[5] for row in counted["closes"]) == 3  # the deleted deal counts nowhere
    assert sum(row[3] for row in counted["created"]) == 3
    others = await rollup_rows(app, other_tenant.organization_id)
    assert [row[5:8] for row in others["closes"]] == [(1, 1, Decimal("7.00"))]


async def test_deal_rollups_give_the_same_facts_as_the_deals(
    app: FastAPI, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random deals (stages of every kind, currencies with and without rates, amounts or
    none, forecast category overrides, types, source leads, deleted ones) and periods of a
    day, a month, a quarter and a year."""
    rng = random.Random(20261124)
    builder = Facts(app, tenant)
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        for day in (date(2026, 1, 1), date(2026, 6, 1)):  # none for EUR
            rate = Decimal("32.5") + day.month
            session.add(ExchangeRate(date=day, from_currency="USD", to_currency="TRY", rate=rate))
    leads = await builder.leads(5, created_at=at(date(2026, 2, 1)))
    stages = ["prospecting", "negotiation", "closed_won", "closed_won", "closed_lost"]
    for _ in range(70):
        day = date(2026, 3, 1) + timedelta(days=rng.randrange(200))
        [deal] = await builder.deals(
            1,
            stage=rng.choice(stages),
            amount=rng.choice((None, 1000, "2500.25", 40)),
            currency=rng.choice(("TRY", "TRY", "USD", "EUR")),
            close_date=rng.choice((None, day, day)),
            created_at=at(day - timedelta(days=rng.randrange(60)), rng.randrange(24)),
            type=rng.choice(("new_business", "expansion", "renewal")),
            forecast_category_override=rng.choice((None, None, "omitted", "commit")),
            lead_id=rng.choice((None, *leads)),
        )
        if rng.random() < 0.1:
            async with builder.session() as session:
                gone = await session.get_one(Opportunity, (tenant.organization_id, deal))
                gone.deleted_at = at(day)

    compared = {}
    for period in PERIODS:
        from_rollups, from_deals = await _facts_both_ways(
            app, tenant, period, monkeypatch, ("closing", "created", "won", "trailing_revenue")
        )
        assert from_rollups == from_deals, period
        compared[period.label] = from_deals
    # What was compared holds every case: won, open, unconverted, cycles, created.
    year = compared["2026"]
    closing = year["closing"][None]
    assert closing["won_count"] and closing["open_count"] and closing["open_amount_unconverted"]
    assert closing["cycle_days"] and year["created"][None]["created_won"]


async def test_a_rolled_back_move_is_not_counted(app: FastAPI, tenant: Tenant) -> None:
    facts_ = Facts(app, tenant)
    [deal] = await facts_.deals(1, stage="needs_analysis", close_date=None)
    before = await rollup_rows(app, tenant.organization_id)
    assert len(before["created"]) == 1 and not before["closes"] and not before["entries"]
    day = date(2026, 5, 4)
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        session.add(_history_row(facts_, deal, "prospecting", "needs_analysis", day, "3.25"))
        changed = await session.get_one(Opportunity, (tenant.organization_id, deal))
        changed.close_date, changed.amount = day, Decimal(5)
        await session.flush()
        await session.rollback()
    assert await rollup_rows(app, tenant.organization_id) == before
    await facts_.history(deal, [("prospecting", at(day), None)])
    assert await rollup_rows(app, tenant.organization_id) == await rebuilt(
        app, tenant.organization_id
    )


def _history_row(
    builder: Facts, deal: uuid.UUID, before: str, after: str, day: date, days: str
) -> StageHistory:
    source, target = builder.stages[before], builder.stages[after]
    return StageHistory(
        id=new_id(),
        opportunity_id=deal,
        from_stage_id=source.id,
        to_stage_id=target.id,
        from_stage=source.key,
        to_stage=target.key,
        direction="forward",
        moved_at=at(day),
        days_in_previous_stage=Decimal(days),
        currency="TRY",
        probability=target.probability,
        forecast_category=target.forecast_category,
    )


# A day, a month, two quarters, a year, and a quarter before any row.
PERIODS = [
    *(parse_period(label) for label in ("2026-Q2", "2026-Q3", "2026-05", "2026", "2025-Q4")),
    Period("day", date(2026, 5, 20), date(2026, 5, 21)),
]


async def _facts_both_ways(
    app: FastAPI,
    tenant: Tenant,
    period: Period,
    monkeypatch: pytest.MonkeyPatch,
    names: tuple[str, ...],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The facts ``names`` (of ``facts.FACTS``), (from the roll-ups, from the rows)."""
    results = []
    for use_rollups in (True, False):
        monkeypatch.setattr(facts, "_reads_rollups", lambda _ctx, _family, use=use_rollups: use)
        async with app.state.sessionmaker() as session, session.begin():
            bind_tenant(session, tenant.organization_id, Actor())
            ctx = FactContext(session, "TRY", date(2026, 11, 1), MetricFilters())
            results.append({name: await facts.FACTS[name](ctx, period) for name in names})
    return results[0], results[1]


def _comparable(times: dict[Any, Any]) -> dict[str, Any]:
    """Stage times with every number a Decimal of four places (the history's query
    computes days in floating point)."""
    if not times:
        return {}
    row = times[None]

    def numbers(values: dict[str, Any]) -> dict[str, Any]:
        return {
            key: Decimal(value).quantize(Decimal("0.0001"))
            if key in ("exits", "total_days", "median_days")
            else value
            for key, value in values.items()
        }

    return {
        **numbers({k: v for k, v in row.items() if k != "stages"}),
        "stages": [numbers(s) for s in row["stages"]],
    }


async def test_rollups_give_the_same_facts_as_the_rows(
    app: FastAPI, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random histories (durations in hundredths, many in the same whole day, repeated
    values, odd and even counts) and periods of a day, a month, a quarter and a year."""
    rng = random.Random(20261123)
    builder = Facts(app, tenant)
    deals = await builder.deals(60, stage="needs_analysis", close_date=None)
    path = ["prospecting", "needs_analysis", "proposal", "negotiation"]
    for deal in deals:
        moment = at(date(2026, 4, 1) + timedelta(days=rng.randrange(120)), rng.randrange(24))
        moves: list[tuple[str, Any, Decimal | None]] = [(path[0], moment, None)]
        for stage in path[1 : rng.randrange(2, len(path) + 1)]:
            days = Decimal(rng.choice((rng.randrange(0, 1500), 250, 250, 700))) / 100
            moment += timedelta(days=float(days))
            moves.append((stage, moment, days))
        if rng.random() < 0.3:  # and back to the start
            moves.append((path[0], moment + timedelta(hours=5), Decimal("0.21")))
        await builder.history(deal, moves)
    for _ in range(80):
        minutes = rng.choice((None, 0, 15, 30, 45, 90))
        await builder.activity(
            minutes,
            selling=rng.random() < 0.6,
            occurred_at=at(
                date(2026, 4, 1) + timedelta(days=rng.randrange(120)), rng.randrange(24)
            ),
        )

    parities = set()
    names = ("stage_entries", "stage_times", "activities")
    for period in PERIODS:
        from_rollups, from_history = await _facts_both_ways(app, tenant, period, monkeypatch, names)
        times, history_times = from_rollups.pop("stage_times"), from_history.pop("stage_times")
        assert _comparable(times) == _comparable(history_times), period
        assert from_rollups == from_history, period
        for row in (history_times.get(None) or {}).get("stages", []):
            parities.add(int(row["exits"]) % 2)
    assert parities == {0, 1}  # medians of one middle value and of two were both compared


async def test_time_in_stage_reads_the_history_when_the_rollups_are_out_of_step(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    """Moves deleted around the API leave exits in the roll-ups that the history lacks:
    the answer then comes from the history (and a warning says to rebuild), not a 500."""
    builder = Facts(app, tenant)
    deals = await builder.deals(3, stage="needs_analysis", close_date=None)
    for deal, days in zip(deals, ("1.50", "2.50", "9.00"), strict=True):
        await builder.history(
            deal,
            [
                ("prospecting", at(date(2026, 5, 1)), None),
                ("needs_analysis", at(date(2026, 5, 10)), Decimal(days)),
            ],
        )
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            text("DELETE FROM opportunity_stage_history WHERE opportunity_id = :d"),
            {"d": deals[1]},
        )
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warnings.append  # type: ignore[method-assign]
    level = facts.log.level
    facts.log.addHandler(handler)
    facts.log.setLevel(logging.WARNING)  # the suite may run with a quieter log level
    try:
        times = await metric(client, tenant, "time-in-stage")
    finally:
        facts.log.removeHandler(handler)
        facts.log.setLevel(level)
    assert times["inputs"]["exits"] == 2
    assert times["value"] == "5.25"  # the median of the 1.50 and 9.00 left in the history
    assert ["rebuild-rollups" in w.getMessage() for w in warnings] == [True]


def test_the_exit_conditions_hold_no_parameter() -> None:
    """The partial index of the exact-median lookups serves a prepared statement's generic
    plan only if its predicate is written as constants."""
    compiled = rollups.exit_conditions().compile(dialect=postgresql.dialect())
    assert compiled.params == {}
    assert "'reopen'" in str(compiled)
