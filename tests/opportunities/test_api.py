"""Opportunities through HTTP: pipelines, the stage engine, history, splits, handover,
stale-deal follow-ups."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select, update

from app.core.ids import new_id as other_id
from app.core.ids import utcnow
from app.core.tenancy import Actor, bind_tenant
from app.models import Opportunity, OutboxEvent
from tests.factories import (
    Tenant,
    assert_problem,
    create,
    create_account,
    create_user,
    key_for,
)

# A pipeline whose requirements can all be met through this API alone.
SIMPLE_STAGES = [
    {
        "key": "lead_in",
        "name": "Lead in",
        "probability": "10",
        "forecast_category": "pipeline",
        "rotting_days": 5,
    },
    {
        "key": "qualified",
        "name": "Qualified",
        "probability": "30",
        "forecast_category": "pipeline",
        "requirements": ["amount_set"],
    },
    {
        "key": "proposal",
        "name": "Proposal",
        "probability": "60",
        "forecast_category": "best_case",
        "requirements": ["amount_set", "close_date_set"],
    },
    {
        "key": "commit",
        "name": "Commit",
        "probability": "90",
        "forecast_category": "commit",
        "requirements": ["next_step_set"],
    },
    {
        "key": "won",
        "name": "Won",
        "kind": "won",
        "probability": "100",
        "forecast_category": "closed",
        "requirements": ["quote_accepted_or_amount", "won_reason_set"],
    },
    {
        "key": "lost",
        "name": "Lost",
        "kind": "lost",
        "probability": "0",
        "forecast_category": "omitted",
        "requirements": ["lost_reason_set", "competitor_set_if_lost_to_competitor"],
    },
]


async def _pipeline(client: AsyncClient, tenant: Tenant, **extra: Any) -> dict[str, Any]:
    return await create(
        client,
        "/v1/pipelines",
        tenant.headers,
        {"name": "Simple", "stages": SIMPLE_STAGES, **extra},
    )


async def _deal(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    if "account_id" not in fields:
        fields["account_id"] = (await create_account(client, tenant.headers))["id"]
    return await create(client, "/v1/opportunities", tenant.headers, {"name": "Deal", **fields})


async def _move(
    client: AsyncClient, tenant: Tenant, deal: dict[str, Any], stage: str, **body: Any
) -> Any:
    return await client.post(
        f"/v1/opportunities/{deal['id']}/stage",
        json={"stage": stage, **body},
        headers=tenant.headers,
    )


async def _events(app: FastAPI, tenant: Tenant, prefix: str = "") -> list[tuple[str, Any]]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await session.execute(
            select(OutboxEvent.event_type, OutboxEvent.payload)
            .where(OutboxEvent.event_type.startswith(prefix))
            .order_by(OutboxEvent.id)
        )
        return [(r[0], r[1]) for r in rows]


async def test_new_organization_has_the_default_b2b_pipeline(
    client: AsyncClient, tenant: Tenant
) -> None:
    body = (await client.get("/v1/pipelines", headers=tenant.headers)).json()
    [pipeline] = body["data"]
    assert pipeline["is_default"] and pipeline["template"] == "b2b"
    stages = [
        (s["key"], s["probability"], s["forecast_category"], s["kind"]) for s in pipeline["stages"]
    ]
    assert stages == [
        ("prospecting", "10.00", "pipeline", "open"),
        ("needs_analysis", "20.00", "pipeline", "open"),
        ("proposal", "40.00", "pipeline", "open"),
        ("presentation", "50.00", "best_case", "open"),
        ("negotiation", "70.00", "best_case", "open"),
        ("decision", "85.00", "commit", "open"),
        ("closed_won", "100.00", "closed", "won"),
        ("closed_lost", "0.00", "omitted", "lost"),
    ]
    decision = pipeline["stages"][5]
    assert decision["requirements"] == ["role_present:decision_maker", "role_present:champion"]


async def test_default_pipeline_requirements_are_enforced(
    client: AsyncClient, tenant: Tenant
) -> None:
    deal = await _deal(client, tenant)
    assert deal["stage"] == "prospecting" and deal["probability"] == "10.00"
    # Skipping to decision: every unmet requirement is named.
    refused = await _move(client, tenant, deal, "decision")
    problem = assert_problem(refused, 409, "stage_requirements_unmet")
    assert [e["code"] for e in problem["errors"]] == [
        "role_present:decision_maker",
        "role_present:champion",
    ]
    refused = await _move(client, tenant, deal, "proposal")
    problem = assert_problem(refused, 409, "stage_requirements_unmet")
    assert [e["code"] for e in problem["errors"]] == ["amount_set", "close_date_set"]
    assert all(e["detail"] for e in problem["errors"])
    await client.patch(
        f"/v1/opportunities/{deal['id']}",
        json={"amount": "50000", "close_date": "2026-12-31"},
        headers=tenant.headers,
    )
    moved = await _move(client, tenant, deal, "proposal")
    assert moved.status_code == 200, moved.text
    assert moved.json()["stage"] == "proposal"
    # Presentation needs a quote: none exists yet.
    refused = await _move(client, tenant, deal, "presentation")
    assert [e["code"] for e in refused.json()["errors"]] == ["quote_exists"]
    # closed_won with an explicit amount and a won reason is allowed from any open stage.
    won = await _move(
        client, tenant, deal, "closed_won", won_reason={"code": "price", "text": "best offer"}
    )
    assert won.status_code == 200, won.text
    assert won.json()["won_reason"] == {"code": "price", "text": "best offer"}


async def test_forward_backward_close_and_reopen(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    pipeline = await _pipeline(client, tenant)
    deal = await _deal(client, tenant, pipeline_id=pipeline["id"], amount="1000")
    assert deal["stage"] == "lead_in"
    assert (await _move(client, tenant, deal, "qualified")).status_code == 200
    back = await _move(client, tenant, deal, "lead_in")
    problem = assert_problem(back, 409, "stage_requirements_unmet")
    assert problem["errors"] == [
        {"code": "reason_required", "detail": "moving a deal backward needs a reason"}
    ]
    back = await _move(client, tenant, deal, "lead_in", reason="budget frozen until Q2")
    assert back.status_code == 200
    same = await _move(client, tenant, deal, "lead_in")
    assert_problem(same, 409, "invalid_stage_move")
    unknown = await _move(client, tenant, deal, "heaven")
    assert_problem(unknown, 422, "validation_failed")

    lost = await _move(client, tenant, deal, "lost", lost_reason={"code": "lost_to_competitor"})
    problem = assert_problem(lost, 409, "stage_requirements_unmet")
    assert [e["code"] for e in problem["errors"]] == ["competitor_set_if_lost_to_competitor"]
    lost = await _move(
        client,
        tenant,
        deal,
        "lost",
        lost_reason={"code": "lost_to_competitor", "text": "cheaper"},
        competitor="RivalSoft",
    )
    assert lost.status_code == 200, lost.text
    body = lost.json()
    assert body["stage_kind"] == "lost" and body["closed_at"]
    assert body["forecast_category"] == "omitted"
    assert body["competitors"] == [{"name": "RivalSoft", "strength": None, "status": "won"}]

    terminal = await _move(client, tenant, deal, "qualified")
    problem = assert_problem(terminal, 409, "invalid_stage_move")
    assert problem["errors"][0]["code"] == "closed_is_terminal"

    rep = await key_for(app, tenant, scopes=["*"], role="rep")
    forbidden = await client.post(
        f"/v1/opportunities/{deal['id']}/reopen", json={"reason": "they came back"}, headers=rep
    )
    assert_problem(forbidden, 403, "role_not_allowed")
    no_reason = await client.post(
        f"/v1/opportunities/{deal['id']}/reopen", json={}, headers=tenant.headers
    )
    assert_problem(no_reason, 422)
    reopened = await client.post(
        f"/v1/opportunities/{deal['id']}/reopen",
        json={"reason": "they came back"},
        headers=tenant.headers,
    )
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["stage"] == "lead_in"  # the stage it was lost from
    assert reopened.json()["closed_at"] is None and reopened.json()["lost_reason"] is None

    history = (
        await client.get(f"/v1/opportunities/{deal['id']}/stage-history", headers=tenant.headers)
    ).json()["data"]
    assert [
        (h["from_stage"], h["to_stage"], h["direction"], h["is_backward"])
        for h in reversed(history)
    ] == [
        (None, "lead_in", "created", False),
        ("lead_in", "qualified", "forward", False),
        ("qualified", "lead_in", "backward", True),
        ("lead_in", "lost", "lost", False),
        ("lost", "lead_in", "reopen", False),
    ]
    assert history[2]["reason"] == "budget frozen until Q2"
    assert all(h["actor_user_id"] == str(tenant.admin_id) for h in history)
    assert history[0]["days_in_previous_stage"] is not None
    assert history[1]["amount"] == "1000.00" and history[1]["forecast_category"] == "omitted"
    events = [e for e, _ in await _events(app, tenant, "opportunity.")]
    assert events == [
        "opportunity.created",
        "opportunity.stage_changed",
        "opportunity.stage_changed",
        "opportunity.stage_changed",
        "opportunity.lost",
        "opportunity.stage_changed",
        "opportunity.reopened",
    ]


async def test_patch_cannot_change_stage_or_reasons(client: AsyncClient, tenant: Tenant) -> None:
    deal = await _deal(client, tenant)
    for body in (
        {"stage": "decision"},
        {"stage_id": deal["stage_id"]},
        {"won_reason": {"code": "price"}},
        {"account_id": deal["account_id"]},
    ):
        response = await client.patch(
            f"/v1/opportunities/{deal['id']}", json=body, headers=tenant.headers
        )
        assert_problem(response, 422, "validation_failed")
    unchanged = await client.get(f"/v1/opportunities/{deal['id']}", headers=tenant.headers)
    assert unchanged.json()["stage"] == "prospecting" and unchanged.json()["version"] == 1


async def test_won_hands_over_atomically(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    account = await create_account(client, tenant.headers)
    deal = await _deal(
        client, tenant, pipeline_id=pipeline["id"], account_id=account["id"], amount="2500"
    )
    refused = await _move(client, tenant, deal, "won")
    assert [e["code"] for e in refused.json()["errors"]] == ["won_reason_set"]
    # Nothing of the refused move is visible.
    assert (await client.get(f"/v1/accounts/{account['id']}", headers=tenant.headers)).json()[
        "lifecycle"
    ] == "prospect"
    won = await _move(client, tenant, deal, "won", won_reason={"code": "relationship"})
    assert won.status_code == 200
    assert won.json()["forecast_category"] == "closed" and won.json()["probability"] == "100.00"
    customer = (await client.get(f"/v1/accounts/{account['id']}", headers=tenant.headers)).json()
    assert customer["lifecycle"] == "customer" and customer["became_customer_at"]
    tasks = (
        await client.get("/v1/tasks", params={"opportunity_id": deal["id"]}, headers=tenant.headers)
    ).json()["data"]
    assert len(tasks) == 3
    assert {t["source"] for t in tasks} == {"handover"}
    assert {t["assignee_id"] for t in tasks} == {str(tenant.admin_id)}
    events = [e for e, _ in await _events(app, tenant)]
    assert "opportunity.won" in events and "account.lifecycle_changed" in events


async def test_won_respects_configured_onboarding(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    cs = await create_user(client, tenant.headers, role="rep")
    configured = await client.patch(
        "/v1/organization",
        json={
            "customer_success_owner_id": cs["id"],
            "onboarding_tasks": [{"title": "Welcome call", "due_in_days": 2}],
        },
        headers=tenant.headers,
    )
    assert configured.status_code == 200, configured.text
    assert configured.json()["settings"]["onboarding_tasks"] == [
        {"title": "Welcome call", "due_in_days": 2}
    ]
    unknown_owner = await client.patch(
        "/v1/organization",
        json={"customer_success_owner_id": str(other_id())},
        headers=tenant.headers,
    )
    assert_problem(unknown_owner, 422)
    pipeline = await _pipeline(client, tenant)
    deal = await _deal(client, tenant, pipeline_id=pipeline["id"], amount="10")
    await _move(client, tenant, deal, "won", won_reason={"code": "price"})
    tasks = (
        await client.get("/v1/tasks", params={"source": "handover"}, headers=tenant.headers)
    ).json()["data"]
    assert [(t["title"], t["assignee_id"]) for t in tasks] == [("Welcome call", cs["id"])]


async def test_stale_if_match_and_racing_moves(client: AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    deal = await _deal(client, tenant, pipeline_id=pipeline["id"], amount="5")
    stale = await client.post(
        f"/v1/opportunities/{deal['id']}/stage",
        json={"stage": "qualified"},
        headers={**tenant.headers, "If-Match": '"7"'},
    )
    assert_problem(stale, 412, "version_mismatch")
    # Several races at once: for each deal exactly one of two moves with one If-Match wins.
    deals = [deal] + [
        await _deal(client, tenant, pipeline_id=pipeline["id"], amount="5") for _ in range(4)
    ]
    headers = {**tenant.headers, "If-Match": '"1"'}
    results = await asyncio.gather(
        *(
            client.post(f"/v1/opportunities/{d['id']}/stage", json=body, headers=headers)
            for d in deals
            for body in ({"stage": "qualified"}, {"stage": "won", "won_reason": {"code": "price"}})
        )
    )
    for index, d in enumerate(deals):
        pair = results[2 * index : 2 * index + 2]
        assert sorted(r.status_code for r in pair) == [200, 412], [r.text for r in pair]
        history = (
            await client.get(f"/v1/opportunities/{d['id']}/stage-history", headers=tenant.headers)
        ).json()["data"]
        assert len(history) == 2  # created + exactly one move
        final = (await client.get(f"/v1/opportunities/{d['id']}", headers=tenant.headers)).json()
        assert final["version"] == 2
        winner = next(r for r in pair if r.status_code == 200).json()
        assert final["stage"] == winner["stage"] == history[0]["to_stage"]


async def test_custom_fields_validated_and_required_from_stage(
    client: AsyncClient, tenant: Tenant
) -> None:
    pipeline = await _pipeline(client, tenant)
    await create(
        client,
        "/v1/custom-fields",
        tenant.headers,
        {
            "key": "po_number",
            "label": "PO number",
            "field_type": "text",
            "required_from_stage": "commit",
        },
    )
    await create(
        client,
        "/v1/custom-fields",
        tenant.headers,
        {
            "key": "region",
            "label": "Region",
            "field_type": "select",
            "allowed_values": ["north", "south"],
        },
    )
    bad = await client.post(
        "/v1/opportunities",
        headers=tenant.headers,
        json={
            "name": "X",
            "account_id": (await create_account(client, tenant.headers))["id"],
            "pipeline_id": pipeline["id"],
            "custom_fields": {"region": "east", "colour": "red"},
        },
    )
    problem = assert_problem(bad, 422)
    assert {e["field"] for e in problem["errors"]} == {
        "body.custom_fields.region",
        "body.custom_fields.colour",
    }
    deal = await _deal(
        client,
        tenant,
        pipeline_id=pipeline["id"],
        amount="9",
        close_date="2027-01-31",
        next_step="call",
        custom_fields={"region": "north"},
    )
    refused = await _move(client, tenant, deal, "commit")
    assert [e["code"] for e in refused.json()["errors"]] == ["field_set:po_number"]
    await client.patch(
        f"/v1/opportunities/{deal['id']}",
        json={"custom_fields": {"po_number": "PO-1"}},
        headers=tenant.headers,
    )
    moved = await _move(client, tenant, deal, "commit")
    assert moved.status_code == 200
    assert moved.json()["custom_fields"] == {"region": "north", "po_number": "PO-1"}


async def test_pipeline_editing_never_breaks_deals(client: AsyncClient, tenant: Tenant) -> None:
    pipeline = await _pipeline(client, tenant)
    deal = await _deal(client, tenant, pipeline_id=pipeline["id"])
    url = f"/v1/pipelines/{pipeline['id']}"
    without_used = [s for s in SIMPLE_STAGES if s["key"] != "lead_in"]
    refused = await client.patch(url, json={"stages": without_used}, headers=tenant.headers)
    problem = assert_problem(refused, 409, "stage_in_use")
    assert problem["errors"] == [{"code": "stage_in_use", "detail": "lead_in"}]
    # Removing an unused stage, renaming and reordering are fine.
    edited = [dict(s) for s in SIMPLE_STAGES if s["key"] != "proposal"]
    edited[0]["probability"] = "15"
    response = await client.patch(
        url, json={"stages": edited}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert response.status_code == 200, response.text
    assert [s["key"] for s in response.json()["stages"]] == [
        "lead_in",
        "qualified",
        "commit",
        "won",
        "lost",
    ]
    assert response.json()["version"] == 2
    still = (await client.get(f"/v1/opportunities/{deal['id']}", headers=tenant.headers)).json()
    assert still["stage"] == "lead_in" and still["probability"] == "15.00"
    invalid = await client.patch(url, json={"stages": edited[:3]}, headers=tenant.headers)
    assert_problem(invalid, 422)
    in_use = await client.delete(url, headers=tenant.headers)
    assert_problem(in_use, 409, "pipeline_in_use")


async def test_templates_and_default_switch(client: AsyncClient, tenant: Tenant) -> None:
    templates = (await client.get("/v1/pipelines/templates", headers=tenant.headers)).json()
    keys = {t["key"] for t in templates["data"]}
    assert keys == {"b2b", "manufacturing", "textile_seasonal", "construction_tender", "saas"}
    for key in keys - {"b2b"}:
        made = await client.post(
            "/v1/pipelines", params={"template": key}, json={}, headers=tenant.headers
        )
        assert made.status_code == 201, made.text
        assert made.json()["template"] == key and not made.json()["is_default"]
    listed = (await client.get("/v1/pipelines", headers=tenant.headers)).json()["data"]
    saas = next(p for p in listed if p["template"] == "saas")
    switched = await client.patch(
        f"/v1/pipelines/{saas['id']}", json={"is_default": True}, headers=tenant.headers
    )
    assert switched.json()["is_default"]
    defaults = [
        p
        for p in (await client.get("/v1/pipelines", headers=tenant.headers)).json()["data"]
        if p["is_default"]
    ]
    assert [p["id"] for p in defaults] == [saas["id"]]
    deal = await _deal(client, tenant)
    assert deal["pipeline_id"] == saas["id"] and deal["stage"] == "qualified"
    unknown = await client.post(
        "/v1/pipelines", params={"template": "nope"}, json={}, headers=tenant.headers
    )
    assert_problem(unknown, 422)


async def test_splits_sum_to_100(client: AsyncClient, tenant: Tenant) -> None:
    deal = await _deal(client, tenant)
    rep = await create_user(client, tenant.headers, role="rep")
    url = f"/v1/opportunities/{deal['id']}/splits"
    bad = await client.put(
        url,
        json={
            "splits": [
                {"user_id": str(tenant.admin_id), "percent": "60"},
                {"user_id": rep["id"], "percent": "30"},
            ]
        },
        headers=tenant.headers,
    )
    problem = assert_problem(bad, 422)
    assert problem["errors"][0]["code"] == "sum_not_100"
    good = await client.put(
        url,
        json={
            "splits": [
                {"user_id": str(tenant.admin_id), "percent": "66.67"},
                {"user_id": rep["id"], "percent": "33.33"},
                {"user_id": rep["id"], "percent": "100", "split_type": "commission"},
            ]
        },
        headers=tenant.headers,
    )
    assert good.status_code == 200, good.text
    assert [s["percent"] for s in good.json()["splits"]] == ["100.00", "66.67", "33.33"] or sorted(
        s["percent"] for s in good.json()["splits"]
    ) == ["100.00", "33.33", "66.67"]
    listed = (await client.get(url, headers=tenant.headers)).json()["splits"]
    assert len(listed) == 3
    replaced = await client.put(
        url, json={"splits": [{"user_id": rep["id"], "percent": "100"}]}, headers=tenant.headers
    )
    assert [s["user_id"] for s in replaced.json()["splits"]] == [rep["id"]]


async def test_follow_ups_job_is_idempotent_and_a_move_clears_staleness(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    pipeline = await _pipeline(client, tenant)
    fresh = await _deal(client, tenant, pipeline_id=pipeline["id"], name="Fresh")
    rotten = await _deal(client, tenant, pipeline_id=pipeline["id"], name="Rotten", amount="1")
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(Opportunity)
            .where(Opportunity.id == rotten["id"])
            .values(stage_entered_at=utcnow() - timedelta(days=6))
        )
    first = await client.post("/v1/jobs/follow-ups", headers=tenant.headers)
    assert first.json() == {
        "stale_marked": 1,
        "tasks_created": 1,
        "cross_sell_fired": 0,
        "organizations": 1,
    }
    again = await client.post("/v1/jobs/follow-ups", headers=tenant.headers)
    assert again.json()["tasks_created"] == 0
    stale = (
        await client.get("/v1/opportunities", params={"is_stale": "true"}, headers=tenant.headers)
    ).json()["data"]
    assert [d["name"] for d in stale] == ["Rotten"]
    assert stale[0]["stale_since"]
    tasks = (
        await client.get("/v1/tasks", params={"source": "follow_up"}, headers=tenant.headers)
    ).json()["data"]
    assert [(t["opportunity_id"], t["assignee_id"]) for t in tasks] == [
        (rotten["id"], str(tenant.admin_id))
    ]
    assert [e for e, _ in await _events(app, tenant, "opportunity.stale")] == ["opportunity.stale"]
    moved = await _move(client, tenant, rotten, "qualified")
    assert moved.json()["is_stale"] is False
    assert fresh["is_stale"] is False


async def test_list_filters_and_sorting(client: AsyncClient, tenant: Tenant) -> None:
    parent = await create_account(client, tenant.headers, name="Parent")
    child = await create_account(
        client, tenant.headers, name="Child", parent_account_id=parent["id"]
    )
    a = await _deal(
        client, tenant, account_id=parent["id"], name="A", amount="100", close_date="2026-12-01"
    )
    b = await _deal(
        client,
        tenant,
        account_id=child["id"],
        name="B",
        amount="300",
        close_date="2027-01-15",
        type="expansion",
    )
    await _deal(client, tenant, name="C", amount="200", forecast_category="commit")

    async def names(**params: Any) -> list[str]:
        r = await client.get("/v1/opportunities", params=params, headers=tenant.headers)
        assert r.status_code == 200, r.text
        return [d["name"] for d in r.json()["data"]]

    assert await names(sort="-amount") == ["B", "C", "A"]
    assert await names(account_id=parent["id"]) == ["A"]
    assert sorted(await names(account_id=parent["id"], include_child_accounts="true")) == ["A", "B"]
    assert await names(type="expansion") == ["B"]
    assert await names(forecast_category="commit") == ["C"]
    assert sorted(await names(forecast_category="pipeline")) == ["A", "B"]
    assert await names(amount_min="150", amount_max="250") == ["C"]
    assert await names(close_date_from="2027-01-01") == ["B"]
    assert await names(stage="prospecting", sort="name") == ["A", "B", "C"]
    assert await names(sort="close_date", limit=1) == ["A"]
    page = await client.get(
        "/v1/opportunities", params={"sort": "close_date", "limit": 1}, headers=tenant.headers
    )
    rest = await client.get(
        "/v1/opportunities",
        params={"sort": "close_date", "limit": 5, "cursor": page.json()["next_cursor"]},
        headers=tenant.headers,
    )
    assert [d["name"] for d in rest.json()["data"]] == ["B", "C"]  # NULL close dates last
    assert a["forecast_category_source"] == "stage"
    assert b["currency"] == "TRY"
    assert_problem(
        await client.get(
            "/v1/opportunities", params={"sort": "probability"}, headers=tenant.headers
        ),
        400,
        "invalid_sort",
    )


async def test_account_rollup_gains_pipeline_and_revenue(
    client: AsyncClient, tenant: Tenant
) -> None:
    parent = await create_account(client, tenant.headers)
    child = await create_account(client, tenant.headers, parent_account_id=parent["id"])
    await _deal(client, tenant, account_id=parent["id"], amount="100")
    await _deal(client, tenant, account_id=child["id"], amount="250.50")
    await _deal(client, tenant, account_id=child["id"], amount="7", currency="EUR")
    won = await _deal(client, tenant, account_id=child["id"], amount="1000")
    await _move(client, tenant, won, "closed_won", won_reason={"code": "price"})
    rollup = (
        await client.get(f"/v1/accounts/{parent['id']}/rollup", headers=tenant.headers)
    ).json()
    assert rollup["open_opportunities"] == 3 and rollup["won_opportunities"] == 1
    assert rollup["open_pipeline"] == [
        {"currency": "EUR", "amount": "7.00"},
        {"currency": "TRY", "amount": "350.50"},
    ]
    assert rollup["won_revenue"] == [{"currency": "TRY", "amount": "1000.00"}]
    assert rollup["customers"] == 1  # the child became a customer on winning


async def test_other_tenant_gets_404_everywhere(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    pipeline = await _pipeline(client, tenant)
    deal = await _deal(client, tenant, pipeline_id=pipeline["id"])
    task = await create(client, "/v1/tasks", tenant.headers, {"title": "t"})
    field = await create(
        client,
        "/v1/custom-fields",
        tenant.headers,
        {"key": "k", "label": "K", "field_type": "text"},
    )
    b = other_tenant.headers
    base = f"/v1/opportunities/{deal['id']}"
    for method, path, body in (
        ("GET", base, None),
        ("PATCH", base, {"name": "x"}),
        ("DELETE", base, None),
        ("POST", f"{base}/stage", {"stage": "qualified"}),
        ("POST", f"{base}/reopen", {"reason": "x"}),
        ("GET", f"{base}/stage-history", None),
        ("GET", f"{base}/history", None),
        ("GET", f"{base}/splits", None),
        ("PUT", f"{base}/splits", {"splits": []}),
        ("GET", f"/v1/pipelines/{pipeline['id']}", None),
        ("PATCH", f"/v1/pipelines/{pipeline['id']}", {"name": "x"}),
        ("DELETE", f"/v1/pipelines/{pipeline['id']}", None),
        ("GET", f"/v1/tasks/{task['id']}", None),
        ("PATCH", f"/v1/tasks/{task['id']}", {"title": "x"}),
        ("POST", f"/v1/tasks/{task['id']}/complete", None),
        ("GET", f"/v1/custom-fields/{field['id']}", None),
        ("PATCH", f"/v1/custom-fields/{field['id']}", {"label": "x"}),
        ("DELETE", f"/v1/custom-fields/{field['id']}", None),
    ):
        response = await client.request(method, path, json=body, headers=b)
        assert_problem(response, 404)
    for path in ("/v1/opportunities", "/v1/tasks", "/v1/custom-fields"):
        assert (await client.get(path, headers=b)).json()["data"] == []
    theirs = [p["id"] for p in (await client.get("/v1/pipelines", headers=b)).json()["data"]]
    assert pipeline["id"] not in theirs
    cross = await client.post(
        "/v1/opportunities", headers=b, json={"name": "x", "account_id": deal["account_id"]}
    )
    assert_problem(cross, 422)
    cross = await client.post(
        "/v1/opportunities",
        headers=b,
        json={
            "name": "x",
            "account_id": (await create_account(client, b))["id"],
            "pipeline_id": pipeline["id"],
        },
    )
    assert_problem(cross, 404)


async def test_reads_show_a_deal_as_its_writes_return_it(
    client: AsyncClient, tenant: Tenant
) -> None:
    """GET and the list read columns (no ORM objects); every write answers from the ORM
    object. Both must give the same representation, field for field."""
    h = tenant.headers
    pipeline = await _pipeline(client, tenant)
    owner_set = await _deal(
        client, tenant, pipeline_id=pipeline["id"], amount="1200.50", close_date="2026-12-01"
    )
    overridden = await client.patch(
        f"/v1/opportunities/{owner_set['id']}",
        json={"forecast_category": "commit", "next_step": "Call the CFO"},
        headers=h,
    )
    assert overridden.json()["forecast_category_source"] == "owner"
    won = await _move(
        client,
        tenant,
        await _deal(client, tenant, pipeline_id=pipeline["id"], amount="10"),
        "won",
        won_reason={"code": "price", "text": "best offer"},
    )
    lost = await _move(
        client,
        tenant,
        await _deal(client, tenant, pipeline_id=pipeline["id"]),
        "lost",
        lost_reason={"code": "lost_to_competitor", "text": "cheaper"},
        competitor="RivalSoft",
    )
    plain = await client.post(
        "/v1/opportunities",
        json={"name": "Plain", "account_id": owner_set["account_id"]},
        headers=h,
    )
    written = [r.json() for r in (overridden, won, lost, plain)]
    assert all(r.status_code in (200, 201) for r in (overridden, won, lost, plain))
    listed = (await client.get("/v1/opportunities?limit=200", headers=h)).json()["data"]
    by_id = {deal["id"]: deal for deal in listed}
    for deal in written:
        got = await client.get(f"/v1/opportunities/{deal['id']}", headers=h)
        assert got.json() == deal
        assert got.headers["etag"] == f'"{deal["version"]}"'
        assert by_id[deal["id"]] == deal
