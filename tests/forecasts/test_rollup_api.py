"""The forecast roll-up over the management hierarchy: figures, quota, gap, visibility,
currency conversion, validation and tenant isolation."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update

from app.core.tenancy import Actor, bind_tenant
from app.models import Organization
from tests.factories import Tenant, assert_problem
from tests.forecasts.helpers import Sales, sales

Q3 = {"period": "2026-Q3"}


def expected(
    closed_won: str,
    commit: str,
    best_case: str,
    pipeline: str,
    weighted: str,
    counts: tuple[int, int, int, int],
    unconverted: int = 0,
) -> dict[str, Any]:
    return {
        "closed_won": closed_won,
        "commit": commit,
        "best_case": best_case,
        "pipeline": pipeline,
        "weighted_pipeline": weighted,
        "closed_won_count": counts[0],
        "commit_count": counts[1],
        "best_case_count": counts[2],
        "pipeline_count": counts[3],
        "unconverted_count": unconverted,
    }


ZERO = expected("0.00", "0.00", "0.00", "0.00", "0.00", (0, 0, 0, 0))


async def hierarchy(app: FastAPI, client: AsyncClient, tenant: Tenant) -> Sales:
    """VP → (M1 → R1, R2), (M2 → R3); R4 reports to nobody."""
    s = await sales(app, client, tenant)
    await s.person("VP", "manager")
    await s.person("M1", "manager", manager="VP")
    await s.person("M2", "manager", manager="VP")
    await s.person("R1", manager="M1")
    await s.person("R2", manager="M1")
    await s.person("R3", manager="M2")
    await s.person("R4")
    return s


async def deals(s: Sales) -> None:
    # R1: won 100k; commit 50k (80 %); best case 30k (50 %); pipeline 20k (10 %);
    # an override to commit on a 10 % stage (10k); none of the rest counts.
    await s.deal("R1", "100000", "won", "2026-07-10")
    await s.deal("R1", "50000", "commit", "2026-08-15")
    await s.deal("R1", "30000", "proposal", "2026-09-01")
    await s.deal("R1", "20000", "discovery", "2026-09-30")
    await s.deal("R1", "10000", "discovery", "2026-07-01", forecast_category="commit")
    await s.deal("R1", "40000", "commit", "2026-08-01", forecast_category="omitted")
    await s.deal("R1", "99999", "lost", "2026-08-01")
    await s.deal("R1", "77777", "commit", "2026-10-01")  # next quarter
    await s.deal("R1", "66666", "won", "2026-06-30")  # previous quarter
    await s.deal("R1", None, "commit", "2026-08-01")  # no amount: counted, worth 0
    # R2: commit 25k; a deleted deal never counts.
    await s.deal("R2", "25000", "commit", "2026-07-20")
    deleted = await s.deal("R2", "500000", "commit", "2026-07-20")
    response = await s.client.delete(f"/v1/opportunities/{deleted['id']}", headers=s.admin)
    assert response.status_code == 204, response.text
    # M1 sells too: best case 5k.
    await s.deal("M1", "5000", "proposal", "2026-08-10")
    # R3: won 40k; pipeline 8k.
    await s.deal("R3", "40000", "won", "2026-09-30")
    await s.deal("R3", "8000", "discovery", "2026-08-08")
    # R4 is outside the VP's hierarchy.
    await s.deal("R4", "123456", "commit", "2026-08-08")


async def quotas(s: Sales) -> None:
    await s.quota("R1", "2026-Q3", "150000")
    await s.quota("R1", "2026-Q4", "999999")  # another period
    for month in ("2026-07", "2026-08", "2026-09"):  # R2: monthly quotas add up
        await s.quota("R2", month, "20000")
    await s.quota("R3", "2026-Q3", "70000")
    await s.quota("M2", "2026-Q3", "100000")  # M2's own quota wins over R3's
    await s.quota("VP", "2026", "1000000")  # a year does not lie within Q3


async def test_rollup_over_three_levels(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    s = await hierarchy(app, client, tenant)
    await deals(s)
    await quotas(s)

    response = await client.get("/v1/forecasts", params=Q3, headers=s.headers("VP"))
    assert response.status_code == 200, response.text
    vp = response.json()
    assert vp["period"] == {"label": "2026-Q3", "start": "2026-07-01", "end": "2026-10-01"}
    assert vp["currency"] == "TRY"
    assert vp["user"]["id"] == s.id("VP") and vp["user"]["role"] == "manager"
    assert [c["user"]["name"] for c in vp["children"]] == ["M1", "M2"]
    m1, m2 = vp["children"]
    assert [c["user"]["name"] for c in m1["children"]] == ["R1", "R2"]
    assert [c["user"]["name"] for c in m2["children"]] == ["R3"]
    r1, r2 = m1["children"]
    [r3] = m2["children"]
    assert r1["children"] == [] and r1["manager_id"] == s.id("M1")

    r1_figures = expected(
        "100000.00", "60000.00", "90000.00", "110000.00", "58000.00", (1, 3, 4, 5)
    )
    assert r1["own"] == r1_figures and r1["total"] == r1_figures
    r2_figures = expected("0.00", "25000.00", "25000.00", "25000.00", "20000.00", (0, 1, 1, 1))
    assert r2["own"] == r2_figures and r2["total"] == r2_figures
    assert m1["own"] == expected("0.00", "0.00", "5000.00", "5000.00", "2500.00", (0, 0, 1, 1))
    assert m1["total"] == expected(
        "100000.00", "85000.00", "120000.00", "140000.00", "80500.00", (1, 4, 6, 7)
    )
    r3_figures = expected("40000.00", "0.00", "0.00", "8000.00", "800.00", (1, 0, 0, 1))
    assert r3["own"] == r3_figures and r3["total"] == r3_figures
    assert m2["own"] == ZERO and m2["total"] == r3_figures
    assert vp["own"] == ZERO
    assert vp["total"] == expected(
        "140000.00", "85000.00", "120000.00", "148000.00", "81300.00", (2, 4, 6, 8)
    )

    # quota: own if recorded, else the direct reports' rolled quotas; gap against
    # total closed won + total commit.
    def quota(node: dict[str, Any]) -> tuple[Any, Any, Any]:
        return node["quota"], node["quota_source"], node["gap"]

    assert quota(r1) == ("150000.00", "own", "-10000.00")
    assert quota(r2) == ("60000.00", "own", "35000.00")
    assert quota(m1) == ("210000.00", "subordinates", "25000.00")
    assert quota(r3) == ("70000.00", "own", "30000.00")
    assert quota(m2) == ("100000.00", "own", "60000.00")
    assert quota(vp) == ("310000.00", "subordinates", "85000.00")

    # R4 has no quota and nobody under them.
    r4 = (await client.get("/v1/forecasts", params=Q3, headers=s.headers("R4"))).json()
    assert r4["total"]["commit"] == "123456.00"
    assert (r4["quota"], r4["quota_source"], r4["gap"], r4["children"]) == (None, None, None, [])

    # The same numbers asked for a subtree, and for explicit dates.
    again = (
        await client.get("/v1/forecasts", params={**Q3, "user_id": s.id("M1")}, headers=s.admin)
    ).json()
    assert {k: again[k] for k in ("own", "total", "quota", "gap")} == {
        k: m1[k] for k in ("own", "total", "quota", "gap")
    }
    by_dates = (
        await client.get(
            "/v1/forecasts",
            params={"from": "2026-07-01", "to": "2026-09-30", "user_id": s.id("VP")},
            headers=s.admin,
        )
    ).json()
    assert by_dates["period"] == {
        "label": "2026-07-01..2026-09-30",
        "start": "2026-07-01",
        "end": "2026-10-01",
    }
    assert by_dates["total"] == vp["total"] and by_dates["quota"] == vp["quota"]
    # July only: R1's July deals and R2's July quota.
    july = (
        await client.get(
            "/v1/forecasts", params={"period": "2026-07", "user_id": s.id("M1")}, headers=s.admin
        )
    ).json()
    assert july["total"]["closed_won"] == "100000.00"
    assert july["total"]["commit"] == "35000.00"  # R1's override 10k + R2's 25k
    assert (july["quota"], july["quota_source"]) == ("20000.00", "subordinates")


async def test_visibility_follows_the_hierarchy(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    s = await hierarchy(app, client, tenant)

    async def status(viewer: str | None, target: str | None) -> int:
        params = dict(Q3)
        if target is not None:
            params["user_id"] = s.id(target)
        headers = s.admin if viewer is None else s.headers(viewer)
        return (await client.get("/v1/forecasts", params=params, headers=headers)).status_code

    # Yourself, and anyone under you; admins anyone.
    assert await status("R1", None) == 200
    assert await status("R1", "R1") == 200
    assert await status("M1", "R1") == 200
    assert await status("VP", "R3") == 200
    assert await status(None, "R3") == 200
    own = (await client.get("/v1/forecasts", params=Q3, headers=s.headers("R1"))).json()
    assert own["user"]["id"] == s.id("R1") and own["children"] == []
    # Not your peers, not your managers, not other branches.
    for viewer, target in (("R1", "R2"), ("R1", "M1"), ("M1", "R3"), ("M1", "VP"), ("R4", "R1")):
        response = await client.get(
            "/v1/forecasts", params={**Q3, "user_id": s.id(target)}, headers=s.headers(viewer)
        )
        assert_problem(response, 403, "outside_hierarchy")
    # Unknown users and other organizations' users are not found.
    other_user = str(other_tenant.admin_id)
    for user_id in (other_user, "01890000-0000-7000-8000-000000000000"):
        response = await client.get(
            "/v1/forecasts", params={**Q3, "user_id": user_id}, headers=s.admin
        )
        assert_problem(response, 404)


async def test_other_organizations_deals_never_count(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    s = await sales(app, client, tenant)
    await s.person("Rep")
    await s.deal("Rep", "1000", "commit", "2026-08-01")
    other = await sales(app, client, other_tenant)
    await other.person("Rep")
    await other.deal("Rep", "5000", "commit", "2026-08-01")
    await other.quota("Rep", "2026-Q3", "9000")

    mine = (await client.get("/v1/forecasts", params=Q3, headers=s.headers("Rep"))).json()
    theirs = (await client.get("/v1/forecasts", params=Q3, headers=other.headers("Rep"))).json()
    assert (mine["total"]["commit"], mine["quota"]) == ("1000.00", None)
    assert (theirs["total"]["commit"], theirs["quota"]) == ("5000.00", "9000.00")
    # Asking for the other organization's user: not found.
    response = await client.get(
        "/v1/forecasts", params={**Q3, "user_id": other.id("Rep")}, headers=s.admin
    )
    assert_problem(response, 404)


async def test_amounts_are_converted_to_the_corporate_currency(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    s = await sales(app, client, tenant)
    await s.person("Rep")
    await s.rate("2026-01-01", "EUR/TRY", "40")
    await s.rate("2026-08-01", "EUR/TRY", "45")
    await s.rate("2026-01-01", "TRY/GBP", "0.02")  # GBP only through the reverse pair
    # Another organization's rates are never used.
    other = await sales(app, client, other_tenant)
    await other.rate("2026-01-01", "USD/TRY", "30")

    await s.deal("Rep", "1000", "won", "2026-07-15", currency="EUR")  # × 40 (its close date)
    await s.deal("Rep", "2000", "commit", "2026-09-01", currency="EUR")  # × 45 (today)
    await s.deal("Rep", "100", "proposal", "2026-09-01", currency="GBP")  # × 50
    await s.deal("Rep", "500", "commit", "2026-09-01", currency="USD")  # no rate: left out
    await s.deal("Rep", "3000", "discovery", "2026-09-01")  # TRY
    await s.quota("Rep", "2026-Q3", "100000")

    body = (await client.get("/v1/forecasts", params=Q3, headers=s.headers("Rep"))).json()
    assert body["currency"] == "TRY"
    assert body["own"] == expected(
        "40000.00",
        "90000.00",
        "95000.00",
        "98000.00",
        # 90,000 × 80 % + 5,000 × 50 % + 3,000 × 10 %
        "74800.00",
        (1, 1, 2, 3),
        unconverted=1,
    )
    assert body["gap"] == "-30000.00"  # 100,000 − (40,000 + 90,000)


async def test_query_validation(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    h = tenant.headers
    cases = [
        ({}, "missing_period"),
        ({"period": "2026-Q5"}, "invalid_period"),
        ({"period": "26-Q1"}, "invalid_period"),
        ({"period": "2026-Q3", "from": "2026-07-01", "to": "2026-07-31"}, "period_and_range"),
        ({"from": "2026-07-01"}, "missing_period"),
        ({"from": "2026-07-31", "to": "2026-07-01"}, "invalid_range"),
    ]
    for params, code in cases:
        body = assert_problem(await client.get("/v1/forecasts", params=params, headers=h), 422)
        assert body["errors"][0]["code"] == code, (params, body)
    assert_problem(await client.get("/v1/forecasts?from=yesterday&to=2026-01-01", headers=h), 400)
    assert_problem(await client.get("/v1/forecasts?period=2026&team=x", headers=h), 400)
    assert_problem(
        await client.get("/v1/forecasts", params=Q3, headers={"Authorization": "Bearer no"}), 401
    )
    # Quarters follow the fiscal year: with an April start, 2026-Q3 is October–December.
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(
            update(Organization)
            .where(Organization.id == tenant.organization_id)
            .values(fiscal_year_start_month=4)
        )
    body = (await client.get("/v1/forecasts", params=Q3, headers=h)).json()
    assert body["period"] == {"label": "2026-Q3", "start": "2026-10-01", "end": "2027-01-01"}
