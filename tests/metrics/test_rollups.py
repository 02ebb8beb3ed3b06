"""The daily roll-ups: kept equal to the stage history and activities they sum, and giving
unfiltered stage conversion, time in stage and time spent selling exactly as those rows
themselves would."""

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
from app.models import ActivityRollup, StageEntryRollup, StageExitRollup, StageHistory
from tests.factories import Tenant, create, create_account
from tests.metrics.builders import Facts, at
from tests.metrics.test_kpis_api import _simple_deals
from tests.metrics.test_worked_examples import metric


async def _rollup_rows(app: FastAPI, tenant: Tenant) -> dict[str, set[tuple[Any, ...]]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
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
        return {
            "entries": {tuple(r) for r in entries},
            "exits": {tuple(r) for r in exits},
            # A day whose activities were all deleted or moved keeps a row of zeros.
            "activities": {tuple(r) for r in activities if r.activities},
        }


async def _rebuilt(app: FastAPI, tenant: Tenant) -> dict[str, set[tuple[Any, ...]]]:
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await rollups.rebuild(session, tenant.organization_id)
    return await _rollup_rows(app, tenant)


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

    counted = await _rollup_rows(app, tenant)
    entered = sum(row[2] for row in counted["entries"])
    # Entries into open stages: 3 creations, 2 forward moves, 1 backward, 1 reopen.
    assert entered == 7
    # Left forward: lead_in twice and qualified once (deal 0), lead_in straight to won.
    assert sum(row[3] for row in counted["entries"]) == 4
    assert sum(row[3] for row in counted["exits"]) == 7  # every move but the reopen
    assert counted == await _rebuilt(app, tenant)
    # The other organization has only its own deal's creation.
    others = await _rollup_rows(app, other_tenant)
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
    counted = await _rollup_rows(app, tenant)
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
    counted = await _rollup_rows(app, tenant)
    assert (date(2026, 5, 6), 2, 100, 100, 0) in counted["activities"]
    assert counted == await _rebuilt(app, tenant)
    assert len((await _rollup_rows(app, other_tenant))["activities"]) == 1


async def test_a_rolled_back_move_is_not_counted(app: FastAPI, tenant: Tenant) -> None:
    facts_ = Facts(app, tenant)
    [deal] = await facts_.deals(1, stage="needs_analysis", close_date=None)
    day = date(2026, 5, 4)
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        session.add(_history_row(facts_, deal, "prospecting", "needs_analysis", day, "3.25"))
        await session.flush()
        await session.rollback()
    assert await _rollup_rows(app, tenant) == {
        "entries": set(),
        "exits": set(),
        "activities": set(),
    }
    await facts_.history(deal, [("prospecting", at(day), None)])
    assert await _rollup_rows(app, tenant) == await _rebuilt(app, tenant)


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


async def _facts_both_ways(
    app: FastAPI, tenant: Tenant, period: Period, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(from the roll-ups, from the rows) for stage entries, stage times and activities."""
    results = []
    for use_rollups in (True, False):
        monkeypatch.setattr(facts, "_reads_rollups", lambda _ctx, _family, use=use_rollups: use)
        async with app.state.sessionmaker() as session, session.begin():
            bind_tenant(session, tenant.organization_id, Actor())
            ctx = FactContext(session, "TRY", date(2026, 11, 1), MetricFilters())
            results.append(
                {
                    "entries": await facts.stage_entry_facts(ctx, period),
                    "times": await facts.stage_time_facts(ctx, period),
                    "activities": await facts.activity_facts(ctx, period),
                }
            )
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
    periods = ["2026-Q2", "2026-Q3", "2026-05", "2026", "2025-Q4"]
    periods += [Period("day", d, d + timedelta(days=1)) for d in (date(2026, 5, 20),)]
    for period in periods:
        parsed = parse_period(period) if isinstance(period, str) else period
        from_rollups, from_history = await _facts_both_ways(app, tenant, parsed, monkeypatch)
        assert from_rollups["entries"] == from_history["entries"], period
        assert _comparable(from_rollups["times"]) == _comparable(from_history["times"]), period
        assert from_rollups["activities"] == from_history["activities"], period
        for row in (from_history["times"].get(None) or {}).get("stages", []):
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
