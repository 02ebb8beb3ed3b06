"""Benchmark the KPI summary, single KPIs and the forecast roll-up on large data.

Seeds the demo organization at ``--scale`` (per unit: 1,000 leads, 5,000 opportunities
with ~4 stage moves and ~5 activities each, 2,500 accounts; scale 200 gives 1,000,000
opportunities and 200,000 leads) into a fresh database (embedded PostgreSQL, or the
server of DATABASE_URL), runs ANALYZE, then calls the API in-process (httpx ASGITransport
on ``create_app()``) and reports p50 / p95 / max latency per endpoint.

    .venv/bin/python bench/metrics.py --scale 20          # 100,000 opportunities
    .venv/bin/python bench/metrics.py --scale 200         # the 1M figures in README.md
    .venv/bin/python bench/metrics.py --url postgresql://…/existing_db --token dlb_…
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import asyncpg
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from import_leads import fresh_database
from sqlalchemy import select

from app.api_keys.service import issue_key
from app.core.config import Settings
from app.core.database import create_engine, create_sessionmaker
from app.core.tenancy import UNSCOPED, Actor, bind_tenant, mark_system
from app.demo import seed_demo
from app.main import create_app
from app.models import User

TABLES = (
    "opportunities",
    "opportunity_stage_history",
    "activities",
    "leads",
    "accounts",
    "quotas",
    "forecast_submissions",
)


async def seed(url: str, scale: int) -> str:
    engine = create_engine(url, Settings(database_url=url, log_level="WARNING"))
    try:
        started = time.perf_counter()
        demo = await seed_demo(create_sessionmaker(engine), seed=7, scale=scale)
        print(f"seeded scale {scale} in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        await engine.dispose()
    return demo.api_key


async def mint_key(url: str) -> str:
    """An admin key for the (first) demo organization of an already seeded database."""
    engine = create_engine(url, Settings(database_url=url, log_level="WARNING"))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            mark_system(session)
            admin = (
                await session.execute(
                    select(User.organization_id, User.id)
                    .where(User.role == "admin")
                    .order_by(User.created_at)
                    .limit(1)
                    .execution_options(**UNSCOPED)
                )
            ).one()
            bind_tenant(session, admin[0], Actor())
            _, token = await issue_key(
                session, organization_id=admin[0], user_id=admin[1], name="bench", scopes=["*"]
            )
        return token
    finally:
        await engine.dispose()


async def analyze_and_count(url: str) -> None:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password or None,
        host=parsed.host or parsed.query.get("host"),
        port=parsed.port,
        database=parsed.database,
    )
    try:
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        print(f"VACUUM ANALYZE in {time.perf_counter() - started:.0f} s")
        for table in TABLES:
            count = await conn.fetchval(f"SELECT count(*) FROM {table}")
            print(f"  {table:28} {count:>12,}")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"  database size {size}")
    finally:
        await conn.close()


async def measure(
    client: AsyncClient, path: str, headers: dict[str, str], runs: int, label: str
) -> str:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await client.get(path, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    timings.sort()
    p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
    return (
        f"{path:72} {label:8} p50 {statistics.median(timings):7.1f} ms  p95 {p95:7.1f} ms"
        f"  max {timings[-1]:7.1f} ms"
    )


async def run(url: str, token: str, runs: int, period: str) -> None:
    settings = Settings(
        database_url=url, log_level="WARNING", log_json=False, rate_limit_per_minute=0
    )
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            app.router.lifespan_context(app),
            AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as client,
        ):
            me = (await client.get("/v1/users?role=manager&limit=1", headers=headers)).json()
            manager = me["data"][0]["id"] if me.get("data") else None
            paths = [
                f"/v1/metrics/summary?period={period}",
                f"/v1/metrics/summary?period={period}&segment=enterprise",
                f"/v1/metrics/revenue?period={period}&group_by=owner",
                f"/v1/metrics/win-rate?period={period}&group_by=team",
                f"/v1/metrics/stage-conversion?period={period}",
                "/v1/metrics/revenue/series?from=2025-01-01&to=2026-12-31&interval=month",
            ]
            if manager:
                paths.append(f"/v1/forecasts?period={period}&user_id={manager}")
            # Each report computed (Cache-Control: no-cache: every KPI aggregated afresh),
            # then as answered from the report cache while the data does not change.
            recompute = headers | {"Cache-Control": "no-cache"}
            for path in paths:
                await client.get(path, headers=recompute)  # warm the connections and pages
                print(await measure(client, path, recompute, runs, "computed"), flush=True)
                if path.startswith("/v1/metrics/"):
                    print(await measure(client, path, headers, runs, "cached"), flush=True)
    finally:
        await app.state.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=20, help="default 20 (100k deals)")
    parser.add_argument("--runs", type=int, default=20, help="requests per endpoint")
    parser.add_argument("--period", default="2026-Q3", help="default 2026-Q3")
    parser.add_argument("--url", help="an already seeded database (skip seeding)")
    parser.add_argument("--token", help="API key for --url (default: mint an admin key)")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    if args.url:
        token = args.token or asyncio.run(mint_key(args.url))
        asyncio.run(run(args.url, token, args.runs, args.period))
        return
    url, drop = fresh_database()
    print(f"database {make_url(url).render_as_string(hide_password=True)}")
    try:
        token = asyncio.run(seed(url, args.scale))
        asyncio.run(analyze_and_count(url))
        asyncio.run(run(url, token, args.runs, args.period))
        if args.keep:
            print(f"kept: --url {url} --token {token}")
    finally:
        if not args.keep:
            drop()


if __name__ == "__main__":
    main()
