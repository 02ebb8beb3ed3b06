"""KPI reports cached until the organization's data changes.

Every transaction that changes data the KPIs read adds one, just before it commits, to its
organization's change counter; the sum of the counter's slots is the organization's
*generation*. A report is stored with the generation read before it was computed and is
served only while that generation is still the current one, so a cached report is never
stale:

- a change committed before the generation was read is seen by every aggregate of the
  report (each runs in a later snapshot);
- a change committed after it raises the generation, so the stored report, tagged with the
  older one, is never served (at worst it is computed in vain).

What counts as a change: flushing the organization's own row or a row of any tenant table
but the bookkeeping ones (``UNCOUNTED_TABLES``: audit, outbox, webhook deliveries,
idempotency, API-key use, import progress, snapshots, this cache), a Core
INSERT/UPDATE/DELETE on such a table, and rows written around the ORM (COPY), which their
writers count with ``record_change``. A rollback counts nothing. Rows written with SQL
around the application are not counted (``dealbase rebuild-rollups`` counts a change).
"""

from __future__ import annotations

import functools
import hashlib
import random
import uuid
from collections.abc import Iterable
from datetime import timedelta
from itertools import chain
from typing import Any

from sqlalchemy import and_, delete, event, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from app.core.driver import DIALECT, execute_records
from app.core.ids import utcnow
from app.core.tenancy import TENANT_KEY, TenantScopeMissing, tenant_id
from app.metrics import rollups
from app.metrics.rollups import add_up_statement
from app.models import ChangeCounter, Organization, ReportCache
from app.models.base import TenantKeyMixin

# Tables no KPI reads: writing them leaves every report as it was.
UNCOUNTED_TABLES = frozenset(
    {
        "api_keys",  # last_used_at, written by authentication
        "audit_log",
        "change_counters",
        "field_history",
        "idempotency_records",
        "import_jobs",  # progress; the imported leads are counted
        "outbox_events",
        "pipeline_snapshots",  # taken by the periodic job; read by trend reports, not KPIs
        "report_cache",
        "webhook_attempts",
        "webhook_deliveries",
        "webhook_endpoints",
    }
)
# Concurrent commits of one organization pick one of these rows at random, so they seldom
# wait for each other's commit on the same row.
SLOTS = 8
# Reports computed longer ago than this are deleted by the periodic job (their key holds
# the day, so yesterday's are never read again).
RETENTION = timedelta(days=2)

_CHANGED = "changed_organizations"


def record_change(session: AsyncSession | Session, organization_id: uuid.UUID) -> None:
    """Count a change of the organization's data when the session commits (writers that
    go around the ORM, with COPY, call this themselves)."""
    session.info.setdefault(_CHANGED, set()).add(organization_id)


def counts_as_change(table_name: str) -> bool:
    return table_name not in UNCOUNTED_TABLES


@event.listens_for(Session, "after_flush")
def _note_flushed(session: Session, _context: Any) -> None:
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, TenantKeyMixin) and counts_as_change(obj.__tablename__):  # type: ignore[attr-defined]
            record_change(session, obj.organization_id)
        elif isinstance(obj, Organization):  # its currency and fiscal year shape every KPI
            record_change(session, obj.id)


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table_name: str = state.statement.table.name  # type: ignore[attr-defined]
    if not counts_as_change(table_name):
        return
    organization_id = state.session.info.get(TENANT_KEY)
    if organization_id is None:
        # A system session writing KPI inputs for an organization it does not name:
        # the change could not be counted, and its reports would stay cached.
        raise TenantScopeMissing(f"write to {table_name} on a session bound to no organization")
    record_change(state.session, organization_id)


_COUNT_CHANGE = add_up_statement(ChangeCounter)


def _counter_rows(changed: set[uuid.UUID]) -> list[dict[str, Any]]:
    slot = random.randrange(SLOTS)
    return [{"organization_id": o, "slot": slot, "changes": 1} for o in sorted(changed)]


# Registered after the roll-ups' own before_commit hook (that module is imported above). The
# roll-up rows it writes go around the ORM, uncounted: they sum stage-history and activity
# rows whose own writes were counted in this same commit.
@event.listens_for(Session, "before_commit")
def _count_changes(session: Session) -> None:
    session.flush()  # commit's own flush comes after this hook: count what it would write
    changed: set[uuid.UUID] | None = session.info.pop(_CHANGED, None)
    if changed:
        # Core: no ORM statement handling
        session.connection().execute(_COUNT_CHANGE, _counter_rows(changed))


@functools.cache
def _count_change_sql() -> tuple[str, tuple[str, ...]]:
    compiled = _COUNT_CHANGE.compile(
        dialect=DIALECT, column_keys=["organization_id", "slot", "changes"]
    )
    return compiled.string, tuple(compiled.positiontup or ())


async def count_changes_now(session: AsyncSession) -> None:
    """Write the session's change count on the driver, just before its commit, when the
    commit will write nothing more (``_count_changes`` otherwise): the commit hook's
    upsert, through SQLAlchemy in the commit's greenlet, was ~4 % of a created lead's
    CPU. Roll-up counts are written at commit, and before the change counter (the order
    every writer locks them in), so a session holding some leaves the count to the hook."""
    if session.new or session.dirty or session.deleted or rollups.has_pending(session):
        return
    changed: set[uuid.UUID] | None = session.info.pop(_CHANGED, None)
    if not changed:
        return
    sql, names = _count_change_sql()
    records = [tuple(row[name] for name in names) for row in _counter_rows(changed)]
    await execute_records(session, sql, records)


@event.listens_for(Session, "after_rollback")
def _discard_changes(session: Session) -> None:
    session.info.pop(_CHANGED, None)


# --- the cache ------------------------------------------------------------------------


def report_key(parts: Iterable[Any]) -> str:
    """The cache key of a report: a digest of what determines it besides the data (the
    endpoint and its parsed parameters, given as ``parts``: values with a stable ``repr``,
    such as strings, dates, UUIDs and frozen dataclasses of those) and today's date, which
    periods and ages are relative to."""
    return hashlib.sha256(repr((*parts, utcnow().date())).encode()).hexdigest()


_GENERATION = select(
    func.coalesce(func.sum(ChangeCounter.changes), 0).label("generation")
).subquery()


async def lookup(session: AsyncSession, key: str) -> tuple[int, bytes | None]:
    """The organization's current generation, and the report stored under ``key`` at that
    generation (None if there is none: never computed, or computed before a change)."""
    row = (
        await session.execute(
            select(_GENERATION.c.generation, ReportCache.body)
            .select_from(_GENERATION)
            .outerjoin(
                ReportCache,
                and_(ReportCache.key == key, ReportCache.generation == _GENERATION.c.generation),
            )
        )
    ).one()
    return int(row[0]), row[1]


async def store(session: AsyncSession, key: str, generation: int, body: bytes) -> None:
    """Keep ``body`` as the report of ``key`` at ``generation`` (unless one of a later
    generation was stored meanwhile)."""
    stmt = insert(ReportCache).values(
        organization_id=tenant_id(session),
        key=key,
        generation=generation,
        body=body,
        computed_at=utcnow(),
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[ReportCache.organization_id, ReportCache.key],
            set_={
                "generation": stmt.excluded.generation,
                "body": stmt.excluded.body,
                "computed_at": stmt.excluded.computed_at,
            },
            where=ReportCache.generation <= stmt.excluded.generation,
        )
    )


def etag(key: str, generation: int) -> str:
    """Reports of one key at one generation are identical: the pair is their validator."""
    return '"' + hashlib.sha256(f"{key}:{generation}".encode()).hexdigest()[:32] + '"'


async def purge(session: AsyncSession) -> None:
    """Delete the organization's reports computed before the retention period."""
    await session.execute(delete(ReportCache).where(ReportCache.computed_at < utcnow() - RETENTION))
