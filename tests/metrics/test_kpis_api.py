"""KPIs over HTTP: filters, group_by, series, currency, zero denominators, stage history,
the summary, bad input and tenant isolation."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event, text

from app.core.tenancy import Actor, bind_tenant
from app.metrics.facts import FACT_CONCURRENCY, prepare_for_aggregates
from app.metrics.kpis import KPIS
from tests.factories import Tenant, assert_problem, create, create_account
from tests.metrics.builders import Facts, at
from tests.metrics.test_worked_examples import metric
from tests.opportunities.test_api import SIMPLE_STAGES

Q2 = date(2026, 4, 1)


async def _simple_deals(
    client: AsyncClient, tenant: Tenant, n: int, **fields: Any
) -> list[dict[str, Any]]:
    """Deals in a pipeline whose requirements the API alone can meet."""
    h = tenant.headers
    pipeline = await create(client, "/v1/pipelines", h, {"name": "Simple", "stages": SIMPLE_STAGES})
    account = await create_account(client, h)
    body = {"name": "Deal", "account_id": account["id"], "pipeline_id": pipeline["id"], **fields}
    return [await create(client, "/v1/opportunities", h, body) for _ in range(n)]


async def test_a_deal_won_through_the_stage_engine_counts_on_its_close_date(
    client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    [deal] = await _simple_deals(client, tenant, 1, amount="12500.50", close_date="2026-12-31")
    path = f"/v1/opportunities/{deal['id']}/stage"
    won_body = {"stage": "won", "won_reason": {"code": "price"}}
    future = (date.today() + timedelta(days=2)).isoformat()
    refused = await client.post(path, json={**won_body, "close_date": future}, headers=h)
    assert_problem(refused, 422)
    open_move = await client.post(
        path, json={"stage": "qualified", "close_date": "2026-05-01"}, headers=h
    )
    assert_problem(open_move, 422)

    won = await client.post(path, json={**won_body, "close_date": "2026-05-10"}, headers=h)
    assert won.status_code == 200, won.text
    assert won.json()["close_date"] == "2026-05-10"
    revenue = await metric(client, tenant, "revenue")
    assert revenue["value"] == "12500.50" and revenue["inputs"]["won_count"] == 1
    assert (await metric(client, tenant, "revenue", "2026-Q4"))["value"] == "0.00"


async def test_amounts_are_converted_on_the_close_date(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    for day, pair, rate in (
        ("2026-04-01", ("EUR", "TRY"), "35"),
        ("2026-05-01", ("EUR", "TRY"), "40"),
        ("2026-01-01", ("TRY", "GBP"), "0.02"),  # only the reverse pair is known
    ):
        await create(
            client,
            "/v1/exchange-rates",
            h,
            {"date": day, "from_currency": pair[0], "to_currency": pair[1], "rate": rate},
        )
    facts = Facts(app, tenant)
    await facts.deals(1, amount=1000, currency="EUR", close_date=date(2026, 4, 15))
    await facts.deals(1, amount=1000, currency="EUR", close_date=date(2026, 5, 15))
    await facts.deals(1, amount=100, currency="GBP", close_date=date(2026, 6, 1))
    await facts.deals(1, amount=1000, currency="USD", close_date=date(2026, 6, 1))  # no rate
    revenue = await metric(client, tenant, "revenue")
    assert revenue["currency"] == "TRY"
    assert revenue["value"] == "80000.00"  # 35,000 + 40,000 + 5,000
    assert revenue["inputs"]["unconverted_count"] == 1


async def _filter_world(app: FastAPI, client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    h = tenant.headers
    team_a = await create(client, "/v1/teams", h, {"name": "Team A"})
    team_b = await create(client, "/v1/teams", h, {"name": "Team B"})
    territory = await create(client, "/v1/territories", h, {"name": "Marmara", "priority": 1})
    second = await create(client, "/v1/pipelines", h, {"name": "Simple", "stages": SIMPLE_STAGES})
    facts = Facts(app, tenant)
    ana = await facts.user("Ana", team_id=team_a["id"])
    bora = await facts.user("Bora", team_id=team_b["id"])
    [smb] = await facts.accounts(1, segment="smb")
    [enterprise] = await facts.accounts(1, segment="enterprise", territory_id=territory["id"])
    close = Q2 + timedelta(days=3)
    await facts.deals(1, amount=100, close_date=close, owner_id=ana, account_id=smb)
    await facts.deals(
        1,
        amount=200,
        close_date=close,
        owner_id=bora,
        account_id=enterprise,
        type="expansion",
        source="partner",
    )
    await facts.deals(
        1, amount=400, close_date=date(2026, 5, 20), owner_id=ana, account_id=enterprise
    )
    async with facts.session() as session:  # move the last deal into the second pipeline
        from sqlalchemy import select

        from app.models import Opportunity, PipelineStage

        won_stage = await session.scalar(
            PipelineStage.__table__.select()
            .with_only_columns(PipelineStage.id)
            .where(PipelineStage.pipeline_id == second["id"], PipelineStage.kind == "won")
        )
        # Through the ORM, as the stage engine writes: the roll-ups count the change.
        for deal in await session.scalars(select(Opportunity).where(Opportunity.amount == 400)):
            deal.pipeline_id, deal.stage_id = second["id"], won_stage
    return {
        "ana": str(ana),
        "bora": str(bora),
        "team_a": team_a["id"],
        "territory": territory["id"],
        "pipeline": second["id"],
    }


async def test_every_filter_narrows_the_facts(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    world = await _filter_world(app, client, tenant)
    cases = {
        (): "700.00",
        (("owner_id", world["ana"]),): "500.00",
        (("team_id", world["team_a"]),): "500.00",
        (("territory_id", world["territory"]),): "600.00",
        (("segment", "enterprise"),): "600.00",
        (("segment", "smb"),): "100.00",
        (("pipeline_id", world["pipeline"]),): "400.00",
        (("type", "expansion"),): "200.00",
        (("source", "partner"),): "200.00",
        (("owner_id", world["ana"]), ("segment", "enterprise")): "400.00",
    }
    for filters, expected in cases.items():
        body = await metric(client, tenant, "revenue", **dict(filters))
        assert body["value"] == expected, filters
        assert body["filters"] == dict(filters)
        assert body["ignored_filters"] == []
    # A lead metric cannot be narrowed by pipeline: it says so rather than pretending.
    leads = await metric(client, tenant, "lead-conversion-rate", pipeline_id=world["pipeline"])
    assert leads["ignored_filters"] == ["pipeline_id"]


async def test_group_by_owner_team_segment_and_month(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    world = await _filter_world(app, client, tenant)

    def rows(body: dict[str, Any]) -> dict[Any, Any]:
        return {(g["group"], g["label"]): g["value"] for g in body["groups"]}

    by_owner = await metric(client, tenant, "revenue", group_by="owner")
    assert by_owner["group_by"] == "owner"
    assert rows(by_owner) == {(world["ana"], "Ana"): "500.00", (world["bora"], "Bora"): "200.00"}
    by_team = await metric(client, tenant, "revenue", group_by="team")
    assert rows(by_team)[(world["team_a"], "Team A")] == "500.00"
    by_segment = await metric(client, tenant, "win-rate", group_by="segment")
    assert rows(by_segment) == {("enterprise", "enterprise"): "100.00", ("smb", "smb"): "100.00"}
    by_month = await metric(client, tenant, "revenue", group_by="month")
    assert [(g["group"], g["value"]) for g in by_month["groups"]] == [
        ("2026-04", "300.00"),
        ("2026-05", "400.00"),
        ("2026-06", "0.00"),
    ]
    refused = await client.get(
        "/v1/metrics/cac", params={"group_by": "owner"}, headers=tenant.headers
    )
    assert_problem(refused, 400, "unsupported_group_by")


async def test_series_by_month_and_quarter(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    facts = Facts(app, tenant)
    await facts.deals(2, amount=1000, close_date=date(2026, 2, 10))
    await facts.deals(1, amount=500, close_date=date(2026, 4, 30))
    h = tenant.headers
    monthly = await client.get(
        "/v1/metrics/revenue/series",
        params={"from": "2026-01-15", "to": "2026-04-02", "interval": "month"},
        headers=h,
    )
    assert monthly.status_code == 200, monthly.text
    points = [(p["period"]["label"], p["value"]) for p in monthly.json()["points"]]
    assert points == [
        ("2026-01", "0.00"),
        ("2026-02", "2000.00"),
        ("2026-03", "0.00"),
        ("2026-04", "500.00"),
    ]
    quarterly = await client.get(
        "/v1/metrics/average-deal-size/series",
        params={"from": "2026-01-01", "to": "2026-09-30", "interval": "quarter"},
        headers=h,
    )
    body = quarterly.json()
    assert [p["value"] for p in body["points"]] == ["1000.00", "500.00", None]
    assert body["points"][2]["reason"] == "no deals were won in the period"
    backwards = await client.get(
        "/v1/metrics/revenue/series", params={"from": "2026-05-01", "to": "2026-01-01"}, headers=h
    )
    assert_problem(backwards, 400)


async def test_summary_of_an_empty_organization_has_null_values_with_reasons(
    client: AsyncClient, tenant: Tenant
) -> None:
    response = await client.get("/v1/metrics/summary?period=2026-Q2", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["metrics"]) == {k.name for k in KPIS}
    for name, result in body["metrics"].items():
        if result["value"] is None:
            assert result["reason"], name
    assert body["metrics"]["revenue"]["value"] == "0.00"
    assert body["metrics"]["win_rate"]["value"] is None
    assert body["metrics"]["churn_rate"]["reason"] == (
        "there were no customers at the start of the period"
    )
    assert body["metrics"]["forecast_accuracy"]["value"] is None


async def test_summary_agrees_with_the_single_metrics(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    await _filter_world(app, client, tenant)
    summary = (
        await client.get(
            "/v1/metrics/summary?period=2026-Q2&segment=enterprise", headers=tenant.headers
        )
    ).json()
    for kpi in KPIS:
        single = await metric(client, tenant, kpi.path, segment="enterprise")
        assert summary["metrics"][kpi.name]["value"] == single["value"], kpi.name
        assert summary["metrics"][kpi.name]["ignored_filters"] == single["ignored_filters"]


async def test_a_summary_computes_its_facts_in_a_few_shared_transactions(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    """The summary's sixteen facts run side by side on ``FACT_CONCURRENCY`` connections,
    each worker computing one fact after another in one transaction: a transaction per
    fact cost about a sixth of a summary's CPU at 10k deals (bench/README)."""
    await _simple_deals(client, tenant, 2, amount="1000")
    begun: list[object] = []

    def count_begin(connection: object) -> None:
        begun.append(connection)

    engine = app.state.aggregates_engine.sync_engine
    event.listen(engine, "begin", count_begin)
    try:
        response = await client.get(
            "/v1/metrics/summary?period=2026-Q2",
            headers=tenant.headers | {"Cache-Control": "no-cache"},
        )
    finally:
        event.remove(engine, "begin", count_begin)
    assert response.status_code == 200, response.text
    assert set(response.json()["metrics"]) == {k.name for k in KPIS}
    assert 1 <= len(begun) <= FACT_CONCURRENCY


async def test_win_rate_split_and_funnel(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    facts = Facts(app, tenant)
    close = Q2 + timedelta(days=5)
    await facts.deals(3, close_date=close, type="new_business")
    await facts.deals(7, stage="closed_lost", close_date=close, type="new_business")
    await facts.deals(3, close_date=close, type="expansion")
    await facts.deals(1, stage="closed_lost", close_date=close, type="renewal")
    win = await metric(client, tenant, "win-rate")
    assert win["value"] == "42.86"  # 6 / 14
    assert win["inputs"]["new_business"] == {"won": 3, "lost": 7, "rate": "30.00"}
    assert win["inputs"]["expansion"] == {"won": 3, "lost": 1, "rate": "75.00"}

    mql = at(Q2 + timedelta(days=1))
    [won_deal] = await facts.deals(1, close_date=close)
    await facts.leads(
        1,
        created_at=mql,
        mql_at=mql,
        sal_at=mql,
        sql_at=mql,
        converted_at=mql,
        status="converted",
        converted_opportunity_id=won_deal,
    )
    await facts.leads(2, created_at=mql, mql_at=mql, sal_at=mql, sql_at=mql, status="sql")
    await facts.leads(3, created_at=mql, mql_at=mql, sal_at=mql, status="sal")
    await facts.leads(4, created_at=mql, mql_at=mql, status="mql")
    await facts.leads(5, created_at=mql, mql_at=at(date(2026, 3, 1)), status="mql")
    funnel = await metric(client, tenant, "funnel")
    assert funnel["value"] == "10.00"
    inputs = funnel["inputs"]
    assert (inputs["mql"], inputs["sal"], inputs["sql"], inputs["won"]) == (10, 6, 3, 1)
    assert (inputs["mql_to_sal"], inputs["sal_to_sql"], inputs["sql_to_won"]) == (
        "60.00",
        "50.00",
        "33.33",
    )


async def test_stage_conversion_and_time_in_stage(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    facts = Facts(app, tenant)
    day = Q2 + timedelta(days=1)
    deals = await facts.deals(4, stage="needs_analysis", close_date=None)
    # All four entered prospecting in the period; three moved on (one straight to proposal),
    # one of which was later won after the period ended.
    await facts.history(
        deals[0],
        [
            ("prospecting", at(day), None),
            ("needs_analysis", at(day + timedelta(days=2)), Decimal(2)),
        ],
    )
    await facts.history(
        deals[1],
        [
            ("prospecting", at(day), None),
            ("needs_analysis", at(day + timedelta(days=4)), Decimal(4)),
        ],
    )
    await facts.history(
        deals[2],
        [
            ("prospecting", at(day), None),
            ("proposal", at(day + timedelta(days=10)), Decimal(10)),
            ("closed_won", at(date(2026, 8, 1)), Decimal(40)),
        ],
    )
    await facts.history(deals[3], [("prospecting", at(day), None)])
    [lost] = await facts.deals(1, stage="closed_lost", close_date=day)
    await facts.history(
        lost, [("prospecting", at(day), None), ("closed_lost", at(day + timedelta(days=6)), None)]
    )
    conversion = await metric(client, tenant, "stage-conversion")
    stages = {s["stage"]: s for s in conversion["inputs"]["stages"]}
    # Lost is not progress: the fifth deal entered prospecting and was lost from it.
    assert stages["prospecting"]["entered"] == 5 and stages["prospecting"]["advanced"] == 3
    assert stages["prospecting"]["conversion"] == "60.00"
    assert stages["proposal"]["entered"] == 1 and stages["proposal"]["conversion"] == "100.00"
    assert stages["needs_analysis"]["conversion"] == "0.00"
    assert conversion["value"] == "50.00"  # (3 + 1 + 0) / (5 + 1 + 2)

    times = await metric(client, tenant, "time-in-stage")
    assert times["value"] == "4.00"  # median of 2, 4, 10
    [prospecting] = times["inputs"]["stages"]
    assert prospecting["median_days"] == "4.00" and prospecting["mean_days"] == "5.33"
    four = await metric(client, tenant, "four-vs")
    assert four["unit"] == "mixed" and four["value"]["velocity"] == "5.33"


async def test_pipeline_coverage(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    facts = Facts(app, tenant)
    rep = await facts.user("Rep")
    await create(
        client,
        "/v1/quotas",
        tenant.headers,
        {"user_id": str(rep), "period": "2026-Q4", "amount": "100000"},
    )
    await facts.deals(1, amount=40_000, close_date=date(2026, 10, 5), owner_id=rep)
    await facts.deals(3, stage="proposal", amount=60_000, close_date=date(2026, 12, 5))
    await facts.deals(1, stage="proposal", amount=99_999, close_date=date(2027, 1, 5))
    coverage = await metric(client, tenant, "pipeline-coverage", "2026-Q4")
    assert coverage["value"] == "3.00"  # 180,000 / (100,000 − 40,000)
    assert coverage["inputs"]["open_pipeline"] == "180000.00"
    assert coverage["unit"] == "ratio"


async def test_bad_input_is_a_400_problem(client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    for params, code in (
        ({"period": "2026-Q5"}, "invalid_period"),
        ({"period": "next"}, "invalid_period"),
        ({"from": "2026-01-01"}, "invalid_period"),
        ({"period": "2026", "from": "2026-01-01", "to": "2026-02-01"}, "invalid_period"),
        ({"from": "2026-03-01", "to": "2026-01-01"}, "invalid_period"),
        ({"group_by": "planet"}, None),
        ({"owner_id": "not-a-uuid"}, None),
        ({"colour": "red"}, "unknown_query_parameter"),
    ):
        response = await client.get("/v1/metrics/revenue", params=params, headers=h)
        assert_problem(response, 400, code)
    assert_problem(await client.get("/v1/metrics/no-such-kpi", headers=h), 404)


async def test_catalogue_and_default_period(client: AsyncClient, tenant: Tenant) -> None:
    catalogue = (await client.get("/v1/metrics", headers=tenant.headers)).json()["data"]
    assert [m["name"] for m in catalogue] == [k.name for k in KPIS]
    revenue = next(m for m in catalogue if m["name"] == "revenue")
    assert revenue["path"] == "/v1/metrics/revenue" and "segment" in revenue["filters"]
    cac = next(m for m in catalogue if m["name"] == "cac")
    assert cac["filters"] == [] and cac["group_by"] == ["month"]
    current = await client.get("/v1/metrics/revenue", headers=tenant.headers)
    label = current.json()["period"]["label"]
    today = date.today()
    assert label == f"{today.year}-Q{(today.month - 1) // 3 + 1}"


async def test_tenant_isolation(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    other = Facts(app, other_tenant)
    rep = await other.user("Their rep")
    await other.deals(5, amount=1000, close_date=Q2, owner_id=rep)
    await other.customers(10, became=at(date(2025, 1, 1)))
    mine = await metric(client, tenant, "revenue", owner_id=str(rep))
    assert mine["value"] == "0.00"
    summary = (
        await client.get("/v1/metrics/summary?period=2026-Q2", headers=tenant.headers)
    ).json()
    assert summary["metrics"]["revenue"]["inputs"]["won_count"] == 0
    assert summary["metrics"]["churn_rate"]["inputs"]["denominator"] == 0
    theirs = await metric(client, other_tenant, "revenue")
    assert theirs["value"] == "5000.00"


async def test_the_stage_engine_records_how_each_stage_was_left(
    client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    deals = await _simple_deals(client, tenant, 2, amount="1000")

    async def move(deal: dict[str, Any], stage: str, **body: Any) -> None:
        response = await client.post(
            f"/v1/opportunities/{deal['id']}/stage", json={"stage": stage, **body}, headers=h
        )
        assert response.status_code == 200, response.text

    # One deal: lead_in → qualified → back to lead_in → qualified → won.
    await move(deals[0], "qualified")
    await move(deals[0], "lead_in", reason="Budget moved to next year")
    await move(deals[0], "qualified")
    await move(deals[0], "won", won_reason={"code": "price"})
    # The other: lead_in → lost.
    await move(deals[1], "lost", lost_reason={"code": "no_budget"})

    today = date.today()
    period = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    body = await metric(client, tenant, "stage-conversion", period)
    stages = {s["stage"]: s for s in body["inputs"]["stages"]}
    # lead_in: the first deal entered it twice and left forward both times; the second
    # entered once and was lost. qualified: entered twice, left backward, then won.
    assert (stages["lead_in"]["entered"], stages["lead_in"]["advanced"]) == (3, 2)
    assert (stages["qualified"]["entered"], stages["qualified"]["advanced"]) == (2, 1)
    times = await metric(client, tenant, "time-in-stage", period)
    assert {s["stage"]: s["exits"] for s in times["inputs"]["stages"]} == {
        "lead_in": 3,
        "qualified": 2,
    }


async def test_kpi_transactions_plan_each_statement_for_its_own_values(
    app: FastAPI, tenant: Tenant
) -> None:
    """Generic plans (reused after five runs of a prepared statement) made the KPI
    statements up to 2× slower; the KPI transactions force a plan per run, for themselves
    only."""
    settings = text(
        "SELECT current_setting('plan_cache_mode'), current_setting('work_mem'),"
        " current_setting('max_parallel_workers_per_gather')"
    )
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        async with session.begin():
            default_workers = (await session.execute(settings)).one()[2]
        assert default_workers != "0"
        async with session.begin():
            await prepare_for_aggregates(session)
            assert tuple((await session.execute(settings)).one()) == (
                "force_custom_plan",
                "64MB",
                default_workers,
            )
        async with session.begin():
            # A report's facts, computed side by side, get no parallel workers of their own.
            await prepare_for_aggregates(session, side_by_side=True)
            assert (await session.execute(settings)).one()[2] == "0"
        async with session.begin():
            plan_cache_mode, _, workers = (await session.execute(settings)).one()
            assert (plan_cache_mode, workers) == ("auto", default_workers)
