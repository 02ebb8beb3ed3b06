"""Bulk lead import: CSV (header row) or a JSON array, up to 100,000 rows, as a job.

Rows are validated in Python (every invalid row is reported with row, field and message),
deduplicated by e-mail (within the file and against open leads), scored and assigned to
territories with the same rules as single creation, then written set-based (``COPY``), batch
by batch, in ONE transaction together with the job's final state: an import lands whole or
not at all. Progress (the rows of the batches written so far) is committed separately so
that ``GET /v1/import-jobs/{id}`` can show it while the job runs.

That transaction holds a PostgreSQL advisory lock on the job while it runs. If the process
dies mid-import (killed, crashed, the machine lost), PostgreSQL rolls the transaction back
and releases the lock; the next jobs run (``fail_interrupted``) finds the job ``running``
with nobody holding its lock and marks it ``failed``: nothing of it was written, and the
file can be imported again.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, cast

import orjson
from pydantic import ValidationError
from sqlalchemy import JSON, Table, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts import service as accounts
from app.accounts.rules import SegmentRules
from app.core.collector import collector_paused
from app.core.driver import run
from app.core.errors import NotFound, PayloadTooLarge, ValidationFailed
from app.core.ids import new_id, utcnow
from app.core.org_settings import org_settings
from app.core.tenancy import UNSCOPED, Actor, bind_tenant, tenant_id
from app.leads import scoring
from app.leads.schemas import LeadCreate
from app.leads.service import (
    LeadSettings,
    active_rules,
    new_lead_values,
    score_new_lead,
    territory_fields,
)
from app.metrics.report_cache import record_change
from app.models import ImportJob, Lead, LeadStatusHistory, Territory, User
from app.territories import rules as territory_rules
from app.territories import service as territories

log = logging.getLogger("dealbase.imports")
MAX_ROWS = 100_000
BATCH = 5_000
MAX_STORED_ERRORS = 1_000
OPEN = ("new", "mql", "sal", "sql", "recycled")
# A job still queued this long after it was created was never started: the process that
# accepted it died first. (Jobs start right after they are accepted.)
ABANDONED_QUEUED_AFTER = timedelta(minutes=10)
# The advisory lock a running import holds: (this class, 32 bits of the job's id).
JOB_LOCK_CLASS = 0x494D5054  # "IMPT"
INTERRUPTED = "interrupted (the server stopped); nothing was imported"
Progress = Callable[[int, int], None]
# Written with COPY: the rows are complete dicts, and the ORM's bulk-insert bookkeeping, then
# multi-row INSERTs, cost most of an import's time (bench/README.md).
LEADS = cast(Table, Lead.__table__)
LEAD_STATUS_HISTORY = cast(Table, LeadStatusHistory.__table__)


def _records(
    rows: list[dict[str, Any]], columns: list[str], json_positions: list[int]
) -> list[tuple[Any, ...]]:
    """The rows as tuples in ``columns`` order, JSON columns as text (asyncpg's binary
    encoders take JSON as text; orjson makes it ~10x faster than ``json.dumps``)."""
    values_of = itemgetter(*columns)
    if len(columns) == 1:
        return [(values_of(row),) for row in rows]
    if not json_positions:
        return [values_of(row) for row in rows]
    records = []
    for row in rows:
        values = list(values_of(row))
        for position in json_positions:
            if values[position] is not None:
                values[position] = orjson.dumps(values[position]).decode()
        records.append(tuple(values))
    return records


async def copy_rows(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """``COPY`` complete rows (dicts with the same keys) into ``table``, in the session's
    transaction. COPY skips the ORM's per-row work and SQL parsing of huge INSERTs; the
    rows go through asyncpg's binary encoders, which take JSON columns as text."""
    if not rows:
        return
    columns = list(rows[0])
    records = _records(
        rows, columns, [i for i, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
    )
    await run(
        session,
        f"COPY {table.name}",
        lambda driver: driver.copy_records_to_table(table.name, columns=columns, records=records),
    )
    record_change(session, tenant_id(session))  # COPY bypasses the ORM's change counting


def parse_rows(body: bytes, content_type: str) -> list[dict[str, Any]]:
    """CSV with a header row, or a JSON array of objects; empty cells become null."""
    if "json" in content_type:
        try:
            rows = json.loads(body)
        except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
            raise ValidationFailed("The body is not valid JSON", code="malformed_json") from exc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValidationFailed(
                "A JSON import is an array of objects",
                errors=[{"field": "body", "code": "expected_array"}],
            )
        rows = [{k: (None if v == "" else v) for k, v in row.items() if k} for row in rows]
    else:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationFailed("A CSV import must be UTF-8") from exc
        reader = csv.DictReader(io.StringIO(text))
        try:
            if not reader.fieldnames:
                raise ValidationFailed(
                    "The CSV needs a header row",
                    errors=[{"field": "body", "code": "missing_header"}],
                )
            # An empty cell is an absent value (so a missing required one says "required"), as
            # is a cell beyond the header's columns. The cells are paired with the header
            # here, once, rather than by DictReader and again in a second pass.
            header = [name.strip().lower() for name in reader.fieldnames]
            rows = [
                {name: value for name, value in zip(header, cells, strict=False) if value and name}
                for cells in reader.reader
                if cells
            ]
        except csv.Error as exc:  # a NUL byte, a field over the size limit, …
            raise ValidationFailed(
                f"The CSV cannot be read: {exc}",
                errors=[{"field": "body", "code": "malformed_csv"}],
            ) from exc
    if len(rows) > MAX_ROWS:
        raise PayloadTooLarge(f"An import holds at most {MAX_ROWS} rows, got {len(rows)}")
    return rows


async def create_job(session: AsyncSession, total: int, created_by: uuid.UUID | None) -> ImportJob:
    job = ImportJob(
        id=new_id(),
        kind="leads",
        status="queued",
        total_rows=total,
        created_by_id=created_by,
        errors=[],
    )
    session.add(job)
    await session.flush()
    return job


async def _existing_emails(session: AsyncSession, emails: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(emails), 10_000):
        chunk = emails[start : start + 10_000]
        found |= set(
            await session.scalars(
                select(Lead.email).where(Lead.email.in_(chunk), Lead.status.in_(OPEN))
            )
        )
    return found


async def _set_progress(
    sessionmaker: async_sessionmaker[AsyncSession], job_id: uuid.UUID, **values: Any
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id)
            .values(**values)
            .execution_options(**UNSCOPED)
        )


def job_lock_key(job_id: uuid.UUID) -> int:
    return int.from_bytes(job_id.bytes[-4:], "big", signed=True)


async def _start(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """Take the job's lock for this transaction; False if the job is no longer queued
    (already run, or given up as abandoned)."""
    await session.execute(select(func.pg_advisory_xact_lock(JOB_LOCK_CLASS, job_lock_key(job_id))))
    status = await session.scalar(select(ImportJob.status).where(ImportJob.id == job_id))
    if status != "queued":
        log.warning("import job not run", extra={"job_id": str(job_id), "status": status})
        return False
    return True


async def run_import(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    organization_id: uuid.UUID,
    job_id: uuid.UUID,
    rows: list[dict[str, Any]],
    actor: Actor,
    progress: Progress | None = None,
) -> None:
    """Process an import job; never raises (a failure is recorded on the job)."""
    try:
        async with sessionmaker() as session, session.begin():
            bind_tenant(session, organization_id, actor)
            if not await _start(session, job_id):
                return
            # Committed separately; by then this transaction holds the job's lock.
            await _set_progress(sessionmaker, job_id, status="running", started_at=utcnow())
            with collector_paused():
                await _import(session, sessionmaker, job_id, rows, actor, progress)
    except Exception as exc:
        log.exception("import failed", extra={"job_id": str(job_id)})
        await _set_progress(
            sessionmaker,
            job_id,
            status="failed",
            finished_at=utcnow(),
            failure=f"{type(exc).__name__}: nothing was imported",
        )


@dataclass
class _RowBuilder:
    """Validates rows, then turns them into complete lead and history rows, in file order:
    the e-mail check (within the file, and against the open leads put in ``taken``),
    territory matching and round-robin, scoring and MQL promotion, as single creation does.
    Pure Python: runs in a worker thread while the previous batch is written."""

    organization_id: uuid.UUID
    job_id: uuid.UUID
    actor: Actor
    settings: LeadSettings
    segment_rules: SegmentRules
    scoring_rules: list[scoring.Rule]
    territory_by_id: dict[str, Territory]
    active_owners: set[uuid.UUID]
    taken: set[str]
    now: datetime
    errors: list[dict[str, Any]] = field(default_factory=list)
    round_robin: dict[str, int] = field(init=False)
    members: dict[str, list[str]] = field(init=False)
    rules: list[territory_rules.TerritoryRule] = field(init=False)

    def __post_init__(self) -> None:
        by_id = self.territory_by_id
        self.round_robin = {key: t.last_assigned_index for key, t in by_id.items()}
        self.members = {key: [str(m) for m in t.member_ids] for key, t in by_id.items()}
        self.rules = [territories.to_rule(t) for t in by_id.values()]

    def validate(self, rows: list[dict[str, Any]], first: int) -> list[tuple[int, LeadCreate]]:
        """The valid rows (numbered from ``first``); the invalid ones go to ``errors``."""
        valid = []
        for number, row in enumerate(rows, start=first):
            try:
                valid.append((number, LeadCreate.model_validate(row)))
            except ValidationError as exc:
                for error in exc.errors():
                    name = ".".join(str(p) for p in error["loc"]) or None
                    self.errors.append({"row": number, "field": name, "message": error["msg"]})
        return valid

    def build(
        self, valid: list[tuple[int, LeadCreate]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        lead_rows: list[dict[str, Any]] = []
        history_rows: list[dict[str, Any]] = []
        for number, data in valid:
            email = data.email.lower() if data.email else None
            if data.owner_id is not None and data.owner_id not in self.active_owners:
                self.errors.append(
                    {
                        "row": number,
                        "field": "owner_id",
                        "message": "not an active user of this organization",
                    }
                )
                continue
            if email and email in self.taken:
                self.errors.append(
                    {
                        "row": number,
                        "field": "email",
                        "message": f"an open lead with {email} exists (or is earlier in the file)",
                    }
                )
                continue
            if email:
                self.taken.add(email)
            row = new_lead_values(data, self.organization_id, self.segment_rules, self.now)
            row["import_job_id"] = self.job_id
            self._assign(row, data.owner_id)
            lead_rows.append(row)
            history_rows.extend(
                score_new_lead(row, self.scoring_rules, self.settings, self.now, self.actor.user_id)
            )
        return lead_rows, history_rows

    def _assign(self, row: dict[str, Any], owner_id: uuid.UUID | None) -> None:
        match = territory_rules.first_match(self.rules, territory_fields(row))
        row["territory_id"] = uuid.UUID(match.id) if match else None
        if owner_id is None and match is not None:
            owner, self.round_robin[match.id] = territory_rules.next_member(
                self.members[match.id], self.round_robin[match.id]
            )
            row["owner_id"] = uuid.UUID(owner) if owner else self.actor.user_id
        elif owner_id is None:
            row["owner_id"] = self.actor.user_id


async def _import(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    rows: list[dict[str, Any]],
    actor: Actor,
    progress: Progress | None,
) -> None:
    """A pipeline over batches of rows: while PostgreSQL writes batch k, a worker thread
    builds batch k + 1 and validates batch k + 2 (the CPU-bound steps; the event loop stays
    free to serve requests)."""
    total = len(rows)
    # The open leads with the file's e-mails, in one query before anything is written (the
    # addresses as given; validation only lowercases them, apart from rare Unicode or
    # "Name <address>" forms, which check_emails looks up per batch).
    checked = {str(row["email"]).strip().lower() for row in rows if row.get("email")}
    territory_list = await territories.list_territories(session)
    builder = _RowBuilder(
        organization_id=session.info["organization_id"],
        job_id=job_id,
        actor=actor,
        settings=LeadSettings.of(await org_settings(session)),
        segment_rules=await accounts.segment_rules(session),
        scoring_rules=await active_rules(session),
        territory_by_id={str(t.id): t for t in territory_list},
        active_owners=set(await session.scalars(select(User.id).where(User.is_active))),
        taken=await _existing_emails(session, sorted(checked)),
        now=utcnow(),
    )

    async def check_emails(valid: list[tuple[int, LeadCreate]]) -> None:
        emails = {data.email.lower() for _, data in valid if data.email} - checked
        if emails:
            builder.taken |= await _existing_emails(session, sorted(emails))
            checked.update(emails)

    async def write(
        lead_rows: list[dict[str, Any]], history_rows: list[dict[str, Any]], done: int
    ) -> None:
        await copy_rows(session, LEADS, lead_rows)
        await copy_rows(session, LEAD_STATUS_HISTORY, history_rows)
        await _set_progress(sessionmaker, job_id, processed_rows=done)
        if progress:
            progress(done, total)

    created = 0
    writing: asyncio.Task[None] | None = None
    valid = await asyncio.to_thread(builder.validate, rows[:BATCH], 1)
    await check_emails(valid)
    try:
        for start in range(0, total, BATCH):
            lead_rows, history_rows = await asyncio.to_thread(builder.build, valid)
            following = start + BATCH
            valid = await asyncio.to_thread(
                builder.validate, rows[following : following + BATCH], following + 1
            )
            if writing:
                await writing
            await check_emails(valid)
            created += len(lead_rows)
            writing = asyncio.create_task(write(lead_rows, history_rows, min(following, total)))
        if writing:
            await writing
    finally:
        if writing and not writing.done():
            writing.cancel()
        if writing:  # collect its outcome; an error of its own is already on its way up
            await asyncio.gather(writing, return_exceptions=True)
    for territory_id, index in builder.round_robin.items():
        if index != builder.territory_by_id[territory_id].last_assigned_index:
            await territories.save_position(session, builder.territory_by_id[territory_id], index)
    errors = sorted(builder.errors, key=lambda e: (e["row"], e["field"] or ""))
    await session.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id)
        .values(
            status="completed",
            processed_rows=total,
            created_count=created,
            error_count=len(errors),
            errors=errors[:MAX_STORED_ERRORS],
            finished_at=utcnow(),
        )
    )
    if progress:
        progress(total, total)


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> ImportJob:
    job = await session.scalar(select(ImportJob).where(ImportJob.id == job_id))
    if job is None:
        raise NotFound("import job")
    return job


async def fail_interrupted(session: AsyncSession) -> int:
    """Jobs a dead process left behind, marked failed (nothing of them was written): running
    ones whose advisory lock no transaction holds any more, and queued ones never started.
    A job being imported right now holds its lock and is left alone, however long it runs.
    """
    now = utcnow()
    candidates = (
        await session.execute(
            select(ImportJob.id, ImportJob.status).where(
                or_(
                    ImportJob.status == "running",
                    and_(
                        ImportJob.status == "queued",
                        ImportJob.created_at < now - ABANDONED_QUEUED_AFTER,
                    ),
                )
            )
        )
    ).all()
    failed = 0
    for job_id, status in candidates:
        # Held until this transaction ends, so the job cannot start meanwhile either.
        if not await session.scalar(
            select(func.pg_try_advisory_xact_lock(JOB_LOCK_CLASS, job_lock_key(job_id)))
        ):
            continue  # its import is running
        result = await session.execute(
            update(ImportJob)
            .where(ImportJob.id == job_id, ImportJob.status == status)
            .values(status="failed", finished_at=now, failure=INTERRUPTED)
            .execution_options(synchronize_session=False)
        )
        failed += int(getattr(result, "rowcount", 0) or 0)
    return failed
