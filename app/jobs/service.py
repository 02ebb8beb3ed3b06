"""Background jobs: run per organization, each in its own transaction.

Jobs are safe to run concurrently and repeatedly: they lock what they change
(``SKIP LOCKED``) and create each follow-up at most once. ``serve`` runs them periodically
behind a PostgreSQL advisory lock, so several workers never run the same job at once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.approvals.service import expire_requests
from app.contracts.service import open_renewals
from app.core.tenancy import UNSCOPED, Actor, bind_tenant, mark_system
from app.cross_sell.service import fire_due
from app.forecasts.service import take_pipeline_snapshot, today
from app.leads.imports import fail_interrupted
from app.metrics import report_cache
from app.models import Organization
from app.nurture.service import run as run_nurture
from app.opportunities.service import mark_stale_deals
from app.partners.service import settle as settle_registrations
from app.quotes.service import expire_quotes

log = logging.getLogger("dealbase.jobs")
# Advisory lock key of the periodic runner (any constant unique to this purpose).
RUNNER_LOCK = 0x6465616C62617365  # "dealbase"


@dataclass(frozen=True, slots=True)
class FollowUpResult:
    stale_marked: int = 0
    tasks_created: int = 0
    cross_sell_fired: int = 0
    organizations: int = 0

    def __add__(self, other: FollowUpResult) -> FollowUpResult:
        return FollowUpResult(
            self.stale_marked + other.stale_marked,
            self.tasks_created + other.tasks_created,
            self.cross_sell_fired + other.cross_sell_fired,
            self.organizations + other.organizations,
        )


async def follow_ups(session: AsyncSession) -> FollowUpResult:
    """Follow-ups for the session's organization: stale deals → tasks and events; approval
    requests and sent quotes past their dates expire; import jobs a crashed process left
    behind are closed; due cross-sell rules fire; contracts near their end get a renewal
    deal; partner registrations are converted (deal won) or expire (protection over); and
    today's pipeline snapshot is taken (replacing the one an earlier run took today, so
    there is exactly one per day); cached KPI reports past their retention are deleted."""
    marked, tasks = await mark_stale_deals(session)
    await fail_interrupted(session)
    await expire_requests(session)
    await expire_quotes(session)
    fired = await fire_due(session)
    await open_renewals(session)
    await settle_registrations(session)
    await take_pipeline_snapshot(session, today())
    await run_nurture(session)
    await report_cache.purge(session)
    return FollowUpResult(marked, tasks, fired, 1)


JOBS: dict[str, Callable[[AsyncSession], Awaitable[FollowUpResult]]] = {
    "follow-ups": follow_ups,
}


async def all_organization_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    async with sessionmaker() as session:
        mark_system(session)
        return list(await session.scalars(select(Organization.id).execution_options(**UNSCOPED)))


async def run_for_all(sessionmaker: async_sessionmaker[AsyncSession], job: str) -> FollowUpResult:
    total = FollowUpResult()
    for organization_id in await all_organization_ids(sessionmaker):
        async with sessionmaker() as session, session.begin():
            bind_tenant(session, organization_id, Actor(request_id=f"job:{job}"))
            total += await JOBS[job](session)
    return total


async def run_periodically(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], interval: float
) -> None:
    """Run every job each ``interval`` seconds in one worker at a time; never raises."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with engine.begin() as conn:
                if not await conn.scalar(select(func.pg_try_advisory_xact_lock(RUNNER_LOCK))):
                    continue  # another worker is running them
                for job in JOBS:
                    result = await run_for_all(sessionmaker, job)
                    log.info("job finished", extra={"job": job, **asdict(result)})
        except Exception:  # a failed run is logged and retried next interval
            log.exception("periodic jobs failed")
