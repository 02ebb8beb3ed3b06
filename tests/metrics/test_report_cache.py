"""KPI reports cached per generation of the organization's data: served while nothing
changed, recomputed after any counted change, validated with ETags, kept per tenant."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import select, update

from app.core.config import Settings
from app.core.ids import utcnow
from app.core.tenancy import Actor, bind_tenant
from app.jobs.service import run_for_all
from app.main import create_app
from app.metrics import report_cache
from app.models import ReportCache
from tests.factories import Tenant, assert_problem, create_account
from tests.leads.test_import import _import
from tests.metrics.test_kpis_api import _simple_deals

SUMMARY = "/v1/metrics/summary"
PERIOD = {"period": "2026-Q2"}
TAMPERED = b'{"tampered": true}'


async def generation(app: FastAPI, tenant: Tenant) -> int:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        current, _ = await report_cache.lookup(session, "no report has this key")
        return current


async def tamper_cached_reports(app: FastAPI, tenant: Tenant) -> None:
    """Overwrite the tenant's cached bodies: a response carrying this came from the cache."""
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        await session.execute(update(ReportCache).values(body=TAMPERED))


async def summary(client: AsyncClient, tenant: Tenant, **headers: str) -> Response:
    response = await client.get(SUMMARY, params=PERIOD, headers=tenant.headers | headers)
    assert response.status_code in (200, 304), response.text
    return response


def tampered(response: Response) -> bool:
    return response.json() == {"tampered": True}


async def test_a_report_is_served_from_the_cache_until_the_data_changes(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    [deal, _] = await _simple_deals(client, tenant, 2, amount="1000")
    first = await summary(client, tenant)
    assert first.json()["metrics"]["revenue"]["inputs"]["won_count"] == 0
    assert first.headers["cache-control"] == "private, no-cache"
    await tamper_cached_reports(app, tenant)
    assert tampered(await summary(client, tenant))

    won = await client.post(
        f"/v1/opportunities/{deal['id']}/stage",
        json={"stage": "won", "won_reason": {"code": "price"}, "close_date": "2026-05-10"},
        headers=h,
    )
    assert won.status_code == 200, won.text
    fresh = await summary(client, tenant)
    assert not tampered(fresh)
    assert fresh.json()["metrics"]["revenue"]["inputs"]["won_count"] == 1
    assert fresh.headers["etag"] != first.headers["etag"]
    # Served as computed: the same body as the uncached path, byte for byte.
    assert (await summary(client, tenant)).content == fresh.content


async def test_every_report_kind_is_cached_per_query(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    queries = [
        ("/v1/metrics/revenue", PERIOD),
        ("/v1/metrics/revenue", {**PERIOD, "group_by": "owner"}),
        ("/v1/metrics/revenue", {"period": "2026-Q3"}),
        ("/v1/metrics/win-rate/series", {"from": "2026-01-01", "to": "2026-06-30"}),
    ]
    computed = [await client.get(path, params=params, headers=h) for path, params in queries]
    assert all(r.status_code == 200 for r in computed)
    assert len({r.headers["etag"] for r in computed}) == len(queries)
    await tamper_cached_reports(app, tenant)
    for path, params in queries:
        assert tampered(await client.get(path, params=params, headers=h))
    other = await client.get("/v1/metrics/revenue", params={"period": "2026-Q1"}, headers=h)
    assert not tampered(other)


async def test_if_none_match_is_answered_304_until_a_change(
    client: AsyncClient, tenant: Tenant
) -> None:
    etag = (await summary(client, tenant)).headers["etag"]
    for validator in (etag, f"W/{etag}", f'"other", {etag}'):
        not_modified = await summary(client, tenant, **{"If-None-Match": validator})
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag
    assert (await summary(client, tenant, **{"If-None-Match": '"other"'})).status_code == 200

    await create_account(client, tenant.headers)
    changed = await summary(client, tenant, **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_cache_control_no_cache_recomputes_the_report(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    await summary(client, tenant)
    await tamper_cached_reports(app, tenant)
    recomputed = await summary(client, tenant, **{"Cache-Control": "no-cache"})
    assert not tampered(recomputed)
    assert (await summary(client, tenant)).content == recomputed.content  # stored again


async def test_writes_are_counted_and_bookkeeping_is_not(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    h = tenant.headers
    start = await generation(app, tenant)
    await client.get("/v1/accounts", headers=h)  # authentication notes the key's use
    await summary(client, tenant)  # stores a report
    assert await generation(app, tenant) == start

    account = await create_account(client, h)
    after_create = await generation(app, tenant)
    assert after_create == start + 1

    refused = await client.post(
        "/v1/opportunities", json={"name": "No account", "amount": "-1"}, headers=h
    )
    assert_problem(refused, 422)
    renamed = await client.patch(
        f"/v1/accounts/{account['id']}", json={"name": "Renamed"}, headers=h
    )
    assert renamed.status_code == 200, renamed.text
    assert await generation(app, tenant) == after_create + 1  # the 422 counted nothing

    await create_account(client, other_tenant.headers)
    assert await generation(app, tenant) == after_create + 1  # another tenant's change

    currency = await client.patch("/v1/organization", json={"currency": "EUR"}, headers=h)
    assert currency.status_code == 200, currency.text
    assert await generation(app, tenant) == after_create + 2  # reports are in EUR now

    job = await _import(
        client,
        tenant,
        "first_name,last_name,email\nAda,L,ada@example.com\n",
        {"Content-Type": "text/csv"},
    )
    assert job["status"] == "completed", job
    after_import = await generation(app, tenant)
    assert after_import > after_create + 2  # leads written with COPY

    await run_for_all(app.state.sessionmaker, "follow-ups")
    settled = await generation(app, tenant)
    await run_for_all(app.state.sessionmaker, "follow-ups")  # nothing left to do
    assert await generation(app, tenant) == settled


async def test_a_report_computed_across_a_change_is_never_served(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        before, _ = await report_cache.lookup(session, "key")
        await session.commit()
        # A change commits while the report is being computed from the older data.
        await create_account(client, tenant.headers)
        await report_cache.store(session, "key", before, b"{}")
        await session.commit()
        current, body = await report_cache.lookup(session, "key")
    assert (current, body) == (before + 1, None)


async def test_cached_reports_belong_to_their_tenant(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await summary(client, tenant)
    await summary(client, other_tenant)  # the same query, so the same key
    await tamper_cached_reports(app, tenant)
    assert tampered(await summary(client, tenant))
    assert not tampered(await summary(client, other_tenant))
    async with app.state.sessionmaker() as session:
        bind_tenant(session, other_tenant.organization_id, Actor())
        assert [b for b in await session.scalars(select(ReportCache.body))] != [TAMPERED]


async def test_reports_past_their_retention_are_purged(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    await summary(client, tenant)
    await client.get("/v1/metrics/revenue", params=PERIOD, headers=tenant.headers)
    aged = utcnow() - report_cache.RETENTION - timedelta(minutes=1)
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        oldest = min(await session.scalars(select(ReportCache.key)))
        await session.execute(
            update(ReportCache).where(ReportCache.key == oldest).values(computed_at=aged)
        )
    await run_for_all(app.state.sessionmaker, "follow-ups")
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        assert len((await session.scalars(select(ReportCache.key))).all()) == 1


async def test_reports_compute_with_every_request_connection_taken(
    settings: Settings, tenant: Tenant
) -> None:
    """A report holds its request's connection while its facts run on others: from a pool
    of their own, so concurrent reports cannot take every connection and wait forever."""
    app = create_app(
        settings.model_copy(
            update={
                "db_pool_size": 1,
                "db_max_overflow": 0,
                "jobs_interval_seconds": 0,
                "webhook_interval_seconds": 0,
            }
        )
    )
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
            answers = await asyncio.gather(
                *(
                    client.get(
                        SUMMARY,
                        params={"period": period},
                        headers=tenant.headers | {"Cache-Control": "no-cache"},
                    )
                    for period in ("2026-Q1", "2026-Q2", "2026-Q3")
                )
            )
        assert [r.status_code for r in answers] == [200, 200, 200]
    finally:
        await app.state.engine.dispose()
        await app.state.aggregates_engine.dispose()
