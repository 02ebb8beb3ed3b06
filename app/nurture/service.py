"""Nurture programs: who should be in which sequence, when. dealbase sends nothing itself;
it enrolls records whose entry rule starts to hold, lets them go when it stops holding (or
the steps run out) and announces every due step by event (``nurture.step_due``) for the
marketing tool. Runs on relevant changes (``on_change``) and by the jobs runner (``run``),
always with an explicit ``now`` so that time is controllable."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import outbox
from app.core.concurrency import check_version
from app.core.driver import prepared_rows
from app.core.errors import Conflict, ValidationFailed
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import get_or_404
from app.core.tenancy import tenant_id
from app.models import (
    Account,
    Lead,
    NurtureEnrollment,
    NurtureProgram,
    Opportunity,
    PipelineStage,
)
from app.nurture import steps as schedule
from app.nurture.schemas import RULE_FIELDS, EntryRule, ProgramCreate, ProgramUpdate

PROGRAM = "nurture_program"
ENROLLMENT = "nurture_enrollment"
OPEN_LEAD_STATUSES = ("new", "mql", "sal", "sql", "recycled")
RECORD_COLUMN = {
    "lead": NurtureEnrollment.lead_id,
    "opportunity": NurtureEnrollment.opportunity_id,
    "account": NurtureEnrollment.account_id,
}
RECORD_MODEL: dict[str, Any] = {"lead": Lead, "opportunity": Opportunity, "account": Account}
PROGRAM_SORT = {"name": NurtureProgram.name, "created_at": NurtureProgram.created_at}
ENROLLMENT_SORT = {
    "enrolled_at": NurtureEnrollment.enrolled_at,
    "next_due_at": NurtureEnrollment.next_due_at,
}

# Created (inactive) for every new organization: SMB and enterprise leads are nurtured
# differently (seed 000), and stalled proposals get case studies.
DEFAULT_PROGRAMS: tuple[dict[str, Any], ...] = (
    {
        "name": "SMB lead nurture",
        "description": "Short, self-serve sequence for small companies.",
        "target": "lead",
        "entry_rule": {"statuses": ["new", "mql"], "segments": ["smb"]},
        "steps": [
            {"content_key": "education-getting-started", "wait_days": 0},
            {"content_key": "case-study-smb", "wait_days": 5},
            {"content_key": "webinar-invitation", "wait_days": 7},
        ],
    },
    {
        "name": "Enterprise lead nurture",
        "description": "Longer, executive sequence for mid-market and enterprise accounts.",
        "target": "lead",
        "entry_rule": {"statuses": ["new", "mql"], "segments": ["mid_market", "enterprise"]},
        "steps": [
            {"content_key": "industry-report", "wait_days": 0},
            {"content_key": "case-study-enterprise", "wait_days": 10},
            {"content_key": "roi-guide", "wait_days": 14},
            {"content_key": "executive-roundtable-invitation", "wait_days": 21},
        ],
    },
)


# --- programs ---------------------------------------------------------------------------


async def _check_rule(session: AsyncSession, target: str, rule: EntryRule) -> dict[str, Any]:
    given = rule.model_dump(mode="json", exclude_none=True)
    foreign = sorted(set(given) - RULE_FIELDS[target])
    if foreign:
        raise ValidationFailed(
            f"A {target} program's entry rule cannot use: {', '.join(foreign)}",
            errors=[
                {"field": f"body.entry_rule.{name}", "code": "not_applicable"} for name in foreign
            ],
        )
    if rule.pipeline_id is not None:
        keys = set(
            await session.scalars(
                select(PipelineStage.key).where(
                    PipelineStage.pipeline_id == rule.pipeline_id, PipelineStage.kind == "open"
                )
            )
        )
        if not keys:
            raise ValidationFailed(
                "No such pipeline",
                errors=[{"field": "body.entry_rule.pipeline_id", "code": "invalid_reference"}],
            )
        unknown = sorted(set(rule.stages or []) - keys)
        if unknown:
            raise ValidationFailed(
                f"Not open stages of the pipeline: {', '.join(unknown)}",
                errors=[{"field": "body.entry_rule.stages", "code": "unknown_stage"}],
            )
    return given


async def list_programs(
    session: AsyncSession,
    *,
    target: str | None,
    is_active: bool | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[NurtureProgram], str | None]:
    stmt = select(NurtureProgram)
    if target is not None:
        stmt = stmt.where(NurtureProgram.target == target)
    if is_active is not None:
        stmt = stmt.where(NurtureProgram.is_active.is_(is_active))
    keys = parse_sort(sort, PROGRAM_SORT, default="name", id_column=NurtureProgram.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_program(
    session: AsyncSession, program_id: uuid.UUID, *, for_update: bool = False
) -> NurtureProgram:
    return await get_or_404(
        session, NurtureProgram, program_id, "nurture program", for_update=for_update
    )


async def _check_name_free(session: AsyncSession, name: str, program_id: uuid.UUID | None) -> None:
    clash = await session.scalar(
        select(NurtureProgram.id).where(
            func.lower(NurtureProgram.name) == name.lower(), NurtureProgram.id != program_id
        )
    )
    if clash is not None:
        raise Conflict(f"A nurture program is already named {name!r}", code="duplicate_name")


async def create_program(session: AsyncSession, data: ProgramCreate) -> NurtureProgram:
    await _check_name_free(session, data.name, None)
    program = NurtureProgram(
        id=new_id(),
        name=data.name.strip(),
        description=data.description,
        target=data.target,
        entry_rule=await _check_rule(session, data.target, data.entry_rule),
        steps=[s.model_dump() for s in data.steps],
        is_active=data.is_active,
    )
    session.add(program)
    await session.flush()
    return program


async def update_program(
    session: AsyncSession,
    program_id: uuid.UUID,
    data: ProgramUpdate,
    expected_version: int | None,
) -> NurtureProgram:
    program = await get_program(session, program_id, for_update=True)
    check_version(PROGRAM, program.version, expected_version)
    if data.name is not None:
        await _check_name_free(session, data.name, program.id)
        program.name = data.name.strip()
    if "description" in data.model_fields_set:
        program.description = data.description
    if data.entry_rule is not None:
        program.entry_rule = await _check_rule(session, program.target, data.entry_rule)
    if data.steps is not None:
        program.steps = [s.model_dump() for s in data.steps]
    if data.is_active is not None:
        program.is_active = data.is_active
    await session.flush()
    return program


async def delete_program(
    session: AsyncSession, program_id: uuid.UUID, expected_version: int | None
) -> None:
    program = await get_program(session, program_id, for_update=True)
    check_version(PROGRAM, program.version, expected_version)
    if await session.scalar(
        select(NurtureEnrollment.id).where(NurtureEnrollment.program_id == program.id).limit(1)
    ):
        raise Conflict(
            "The program has enrollments; deactivate it instead (is_active: false)",
            code="program_in_use",
        )
    await session.delete(program)
    await session.flush()


async def create_default_programs(session: AsyncSession) -> None:
    for spec in DEFAULT_PROGRAMS:
        session.add(NurtureProgram(id=new_id(), is_active=False, **spec))
    await session.flush()


# --- enrollments ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnrollmentFilters:
    program_id: uuid.UUID | None = None
    status: str | None = None
    lead_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None


async def list_enrollments(
    session: AsyncSession,
    filters: EnrollmentFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[NurtureEnrollment], str | None]:
    stmt = select(NurtureEnrollment)
    for column, value in (
        (NurtureEnrollment.program_id, filters.program_id),
        (NurtureEnrollment.status, filters.status),
        (NurtureEnrollment.lead_id, filters.lead_id),
        (NurtureEnrollment.opportunity_id, filters.opportunity_id),
        (NurtureEnrollment.account_id, filters.account_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    keys = parse_sort(sort, ENROLLMENT_SORT, default="-enrolled_at", id_column=NurtureEnrollment.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_enrollment(session: AsyncSession, enrollment_id: uuid.UUID) -> NurtureEnrollment:
    return await get_or_404(session, NurtureEnrollment, enrollment_id, "nurture enrollment")


async def steps_of(
    session: AsyncSession, program_ids: set[uuid.UUID]
) -> dict[uuid.UUID, list[Any]]:
    """The steps of the given programs, in one query (for showing the next content)."""
    if not program_ids:
        return {}
    rows = await session.execute(
        select(NurtureProgram.id, NurtureProgram.steps).where(NurtureProgram.id.in_(program_ids))
    )
    return {row[0]: row[1] for row in rows}


# --- the engine -------------------------------------------------------------------------


@dataclass
class RunTotals:
    enrolled: int = 0
    exited: int = 0
    steps_due: int = 0
    completed: int = 0
    events: list[str] = field(default_factory=list)


def matching(program: NurtureProgram, now: datetime) -> tuple[Any, list[ColumnElement[bool]]]:
    """The record model and the SQL conditions of the program's entry rule."""
    rule = program.entry_rule
    conditions: list[ColumnElement[bool]] = []
    cutoff = None
    if rule.get("min_days_since_touch"):
        cutoff = now - timedelta(days=int(rule["min_days_since_touch"]))
    if program.target == "lead":
        conditions.append(Lead.status.in_(rule.get("statuses") or OPEN_LEAD_STATUSES))
        if rule.get("min_score") is not None:
            conditions.append(Lead.score >= rule["min_score"])
        if rule.get("max_score") is not None:
            conditions.append(Lead.score <= rule["max_score"])
        if rule.get("segments"):
            conditions.append(Lead.segment.in_(rule["segments"]))
        if cutoff is not None:
            conditions.append(func.coalesce(Lead.last_activity_at, Lead.created_at) <= cutoff)
        return Lead, conditions
    if program.target == "opportunity":
        conditions.append(Opportunity.stage_kind == "open")
        if rule.get("pipeline_id"):
            conditions.append(Opportunity.pipeline_id == uuid.UUID(rule["pipeline_id"]))
        if rule.get("stages"):
            conditions.append(
                Opportunity.stage_id.in_(
                    select(PipelineStage.id).where(
                        PipelineStage.pipeline_id == uuid.UUID(rule["pipeline_id"]),
                        PipelineStage.key.in_(rule["stages"]),
                    )
                )
            )
        if rule.get("segments"):
            conditions.append(
                Opportunity.account_id.in_(
                    select(Account.id).where(Account.segment.in_(rule["segments"]))
                )
            )
        if cutoff is not None:
            conditions.append(
                func.coalesce(Opportunity.last_touch_at, Opportunity.created_at) <= cutoff
            )
        return Opportunity, conditions
    if rule.get("lifecycles"):
        conditions.append(Account.lifecycle.in_(rule["lifecycles"]))
    if rule.get("segments"):
        conditions.append(Account.segment.in_(rule["segments"]))
    return Account, conditions


async def _enroll(
    session: AsyncSession,
    program: NurtureProgram,
    now: datetime,
    record_ids: list[uuid.UUID] | None,
    totals: RunTotals,
) -> None:
    model, conditions = matching(program, now)
    column = RECORD_COLUMN[program.target]
    stmt: Select[Any] = select(model.id).where(
        *conditions,
        ~exists().where(NurtureEnrollment.program_id == program.id, column == model.id),
    )
    if record_ids is not None:
        stmt = stmt.where(model.id.in_(record_ids))
    candidates = list(await session.scalars(stmt))
    if not candidates:
        return
    waits = [int(s["wait_days"]) for s in program.steps]
    org = tenant_id(session)
    rows = [
        {
            "organization_id": org,
            "id": new_id(),
            "program_id": program.id,
            column.key: record_id,
            "status": "active",
            "current_step": 0,
            "next_due_at": schedule.first_due(now, waits),
            "enrolled_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for record_id in candidates
    ]
    # At most once per program and record, even when a change and the runner race.
    inserted = await session.execute(
        insert(NurtureEnrollment)
        .values(rows)
        .on_conflict_do_nothing()
        .returning(NurtureEnrollment.id, column)
    )
    for enrollment_id, record_id in inserted.all():
        totals.enrolled += 1
        _emit(session, "nurture.enrolled", enrollment_id, program, record_id, {})
        totals.events.append("nurture.enrolled")


async def _exit(
    session: AsyncSession,
    program: NurtureProgram,
    now: datetime,
    record_ids: list[uuid.UUID] | None,
    totals: RunTotals,
) -> None:
    model, conditions = matching(program, now)
    column = RECORD_COLUMN[program.target]
    still = and_(*conditions) if conditions else None
    stmt = (
        select(NurtureEnrollment, model)
        .outerjoin(model, model.id == column)
        .where(NurtureEnrollment.program_id == program.id, NurtureEnrollment.status == "active")
        .with_for_update(of=NurtureEnrollment, skip_locked=True)
    )
    stmt = stmt.where(or_(model.id.is_(None), ~still) if still is not None else model.id.is_(None))
    if record_ids is not None:
        stmt = stmt.where(column.in_(record_ids))
    for enrollment, record in (await session.execute(stmt)).all():
        enrollment.status, enrollment.ended_at = "exited", now
        enrollment.next_due_at = None
        enrollment.exit_reason = _exit_reason(program.target, record)
        totals.exited += 1
        _emit(
            session,
            "nurture.exited",
            enrollment.id,
            program,
            getattr(enrollment, column.key),
            {"reason": enrollment.exit_reason},
        )
    await session.flush()


def _exit_reason(target: str, record: Any) -> str:
    if record is None:
        return "record_deleted"
    if target == "lead" and record.status in ("converted", "disqualified"):
        return str(record.status)
    if target == "opportunity" and record.stage_kind != "open":
        return "won" if record.stage_kind == "won" else "lost"
    return "no_longer_matches"


async def _advance(
    session: AsyncSession, program: NurtureProgram, now: datetime, totals: RunTotals
) -> None:
    column = RECORD_COLUMN[program.target]
    due = await session.scalars(
        select(NurtureEnrollment)
        .where(
            NurtureEnrollment.program_id == program.id,
            NurtureEnrollment.status == "active",
            NurtureEnrollment.next_due_at <= now,
        )
        .order_by(NurtureEnrollment.next_due_at)
        .with_for_update(skip_locked=True)
    )
    waits = [int(s["wait_days"]) for s in program.steps]
    for enrollment in due:
        progress = schedule.advance(enrollment.current_step, enrollment.next_due_at, waits, now)
        record_id = getattr(enrollment, column.key)
        for step in progress.due_steps:
            totals.steps_due += 1
            _emit(
                session,
                "nurture.step_due",
                enrollment.id,
                program,
                record_id,
                {
                    "step": step,
                    "content_key": program.steps[step]["content_key"],
                    "steps": len(program.steps),
                },
            )
        enrollment.current_step = progress.current_step
        enrollment.next_due_at = progress.next_due_at
        if progress.completed:
            enrollment.status, enrollment.ended_at = "completed", now
            enrollment.exit_reason = "steps_completed"
            totals.completed += 1
            _emit(
                session,
                "nurture.exited",
                enrollment.id,
                program,
                record_id,
                {"reason": "steps_completed"},
            )
    await session.flush()


def _emit(
    session: AsyncSession,
    event: str,
    enrollment_id: uuid.UUID,
    program: NurtureProgram,
    record_id: uuid.UUID | None,
    extra: dict[str, Any],
) -> None:
    outbox.emit(
        session,
        event,
        resource_type=ENROLLMENT,
        resource_id=enrollment_id,
        data={
            "enrollment_id": enrollment_id,
            "program_id": program.id,
            "program": program.name,
            "record_type": program.target,
            "record_id": record_id,
            **extra,
        },
    )


async def run(
    session: AsyncSession,
    now: datetime | None = None,
    *,
    program_id: uuid.UUID | None = None,
) -> RunTotals:
    """Every active program (or one): exit who stopped matching, enroll who started,
    then let due steps fall due."""
    now = now or utcnow()
    totals = RunTotals()
    stmt = select(NurtureProgram).where(NurtureProgram.is_active).order_by(NurtureProgram.id)
    if program_id is not None:
        stmt = stmt.where(NurtureProgram.id == program_id)
    for program in await session.scalars(stmt):
        await _exit(session, program, now, None, totals)
        await _enroll(session, program, now, None, totals)
        await _advance(session, program, now, totals)
    return totals


def _active_for_target() -> ColumnElement[bool]:
    return and_(NurtureProgram.is_active, NurtureProgram.target == bindparam("target"))


@functools.cache
def _active_programs() -> Any:
    return select(NurtureProgram).where(_active_for_target())


@functools.cache
def _any_active_program() -> Any:
    return select(NurtureProgram.id).where(_active_for_target()).limit(1)


async def on_change(
    session: AsyncSession, target: str, record_id: uuid.UUID, now: datetime | None = None
) -> None:
    """A lead, deal or account changed: enroll it where it now matches, let it go where
    it no longer does (due steps are left to the runner)."""
    # Most changes meet no active program: a column read, then the programs if any.
    if not await prepared_rows(session, _any_active_program(), {"target": target}):
        return
    programs = list(await session.scalars(_active_programs(), {"target": target}))
    await session.flush()  # the change itself must be visible to the rules
    now = now or utcnow()
    totals = RunTotals()
    for program in programs:
        await _exit(session, program, now, [record_id], totals)
        await _enroll(session, program, now, [record_id], totals)
