"""Daily roll-ups of the deals, the stage history and the activities, kept in step with
them in the same transaction.

Deals closing, won and created, stage conversion, time in stage and time spent selling of
a period that no filter or grouping narrows read a few rows per day
(``OpportunityCloseRollup``, ``OpportunityCreatedRollup``, ``StageEntryRollup``,
``StageExitRollup``, ``ActivityRollup``) instead of every deal, move or activity of the
period.

Every deal and activity the session inserts, changes or deletes and every stage-history row
it inserts is counted when it is flushed: a change takes back what the row counted before
and adds what it counts now. Every entry that learns how it was left is counted by
``count_exits`` (the stage engine records exits with one UPDATE, which no flush sees).
The counts wait in the session and are written just before it commits, in one upsert per
table with the rows in key order: the roll-up rows are then locked last and in one global
order, so concurrent writers never deadlock on them and hold them only until their
commit. A rollback discards the counts.

``rebuild`` recomputes an organization's roll-ups from its rows (after a bulk load).
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    Table,
    and_,
    case,
    cast,
    delete,
    event,
    func,
    inspect,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.models import (
    Activity,
    ActivityRollup,
    Lead,
    Opportunity,
    OpportunityCloseRollup,
    OpportunityCreatedRollup,
    StageEntryRollup,
    StageExitRollup,
    StageHistory,
)

# Directions of moves into a closed stage (not entries counted by stage conversion), of
# exits that count as advancing, and of the only move out of a closed stage.
CLOSING_MOVES = ("won", "lost")
ADVANCED = ("forward", "won")
REOPEN = "reopen"

_PENDING = "rollup_counts"

EntryKey = tuple[uuid.UUID, date, uuid.UUID]  # organization, day, stage
ExitKey = tuple[uuid.UUID, date, uuid.UUID, int]  # … and whole days spent
DayKey = tuple[uuid.UUID, date]  # organization, day
CloseKey = tuple[uuid.UUID, date, uuid.UUID, str, str, str]  # OpportunityCloseRollup's key
CreatedKey = tuple[uuid.UUID, date, str, bool]  # organization, day, currency, won
# What an activity adds to its day's roll-up, in ActivityRollup's column order.
ACTIVITY_SUMS = ("activities", "logged_minutes", "selling_minutes", "without_duration")


@dataclass(slots=True)
class _Counts:
    entries: defaultdict[EntryKey, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )  # [entered, advanced]
    exits: defaultdict[ExitKey, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )  # [exits, hundredths]
    activities: defaultdict[DayKey, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0])
    )  # ACTIVITY_SUMS
    closes: defaultdict[CloseKey, list[Any]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, Decimal(0), 0])
    )  # [deals, priced, amount, cycle_days]
    created: defaultdict[CreatedKey, list[Any]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, Decimal(0)])
    )  # [deals, priced, amount]


def _pending(session: Session | AsyncSession) -> _Counts:
    counts = session.info.get(_PENDING)
    if counts is None:
        counts = session.info[_PENDING] = _Counts()
    return counts


def has_pending(session: Session | AsyncSession) -> bool:
    """Counts wait to be written at the session's commit."""
    counts: _Counts | None = session.info.get(_PENDING)
    return counts is not None and any(getattr(counts, counted) for _, counted, *_ in _LAYOUT)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def utc_date(column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamptz column (``utc_day`` in SQL)."""
    return cast(func.timezone("UTC", column), Date)


def _count_row(counts: _Counts, row: StageHistory) -> None:
    day = utc_day(row.moved_at)
    if row.direction not in CLOSING_MOVES:
        entry = counts.entries[(row.organization_id, day, row.to_stage_id)]
        entry[0] += 1
        if row.exit_direction in ADVANCED:
            entry[1] += 1
    days, left = row.days_in_previous_stage, row.from_stage_id
    if days is not None and left is not None and row.direction != REOPEN:  # exit_conditions()
        exit_ = counts.exits[(row.organization_id, day, left, math.floor(days))]
        exit_[0] += 1
        exit_[1] += int(days * 100)


_ACTIVITY_FIELDS = ("occurred_at", "duration_minutes", "selling")
_DEAL_FIELDS = (
    "deleted_at",
    "close_date",
    "stage_id",
    "stage_kind",
    "type",
    "currency",
    "forecast_category_override",
    "amount",
    "created_at",
    "lead_id",
)


def _values(row: Any, fields: tuple[str, ...], *, before: bool) -> tuple[Any, ...]:
    """The row's counted fields as flushed (``before``: as they were before)."""
    if not before:
        return tuple(getattr(row, name) for name in fields)
    state = inspect(row)
    values = []
    for name in fields:
        history = state.attrs[name].history
        values.append(history.deleted[0] if history.deleted else getattr(row, name))
    return tuple(values)


def _count_activity(
    counts: _Counts, organization_id: uuid.UUID, values: tuple[Any, ...], sign: int
) -> None:
    occurred_at, minutes, selling = values
    logged = minutes or 0
    terms = (1, logged, logged if selling else 0, int(minutes is None))  # ACTIVITY_SUMS
    sums = counts.activities[(organization_id, utc_day(occurred_at))]
    for index, term in enumerate(terms):
        sums[index] += sign * term


# The leads table itself, not the mapped class: the tenant's soft-delete criteria do not
# apply to it, so a deal's cycle keeps its start when its source lead is deleted later.
_SOURCE_LEAD = Lead.__table__.alias("source_lead")


class _LeadDays:
    """UTC days of creation of source leads, read once per flush (only won deals need
    them: their sales cycle starts at the lead's creation)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.known: dict[uuid.UUID, date | None] = {}

    def __call__(self, organization_id: uuid.UUID, lead_id: uuid.UUID) -> date | None:
        if lead_id not in self.known:
            lead = _SOURCE_LEAD.c  # deleted leads too, as ``first_contact_day`` reads them
            created_at = self.session.connection().scalar(
                select(lead.created_at).where(
                    lead.organization_id == organization_id, lead.id == lead_id
                )
            )
            self.known[lead_id] = None if created_at is None else utc_day(created_at)
        return self.known[lead_id]


def _count_deal(
    counts: _Counts,
    lead_days: _LeadDays,
    organization_id: uuid.UUID,
    values: tuple[Any, ...],
    sign: int,
) -> None:
    (deleted_at, close_date, stage_id, kind, type_, currency, override, amount, created_at,
     lead_id) = values  # fmt: skip
    if deleted_at is not None:
        return
    priced, amount = int(amount is not None), amount or Decimal(0)
    if close_date is not None:
        cycle = 0
        if kind == "won":
            first_contact = (
                utc_day(created_at) if lead_id is None else lead_days(organization_id, lead_id)
            )
            cycle = 0 if first_contact is None else (close_date - first_contact).days
        key = (organization_id, close_date, stage_id, type_, currency, override or "")
        sums = counts.closes[key]
        for index, term in enumerate((1, priced, amount, cycle)):
            sums[index] += sign * term
    made = counts.created[(organization_id, utc_day(created_at), currency, kind == "won")]
    for index, term in enumerate((1, priced, amount)):
        made[index] += sign * term


def count_exits(
    session: AsyncSession,
    organization_id: uuid.UUID,
    left: Iterable[tuple[datetime, uuid.UUID, str]],
    exit_direction: str,
) -> None:
    """Entries (moved_at, to_stage_id, direction) that were just left by ``exit_direction``."""
    if exit_direction not in ADVANCED:
        return
    counts = _pending(session)
    for moved_at, stage_id, direction in left:
        if direction not in CLOSING_MOVES:
            counts.entries[(organization_id, utc_day(moved_at), stage_id)][1] += 1


@event.listens_for(Session, "after_flush")
def _count_flushed(session: Session, _context: Any) -> None:
    # Still the flush's own view: new, dirty and deleted objects with their history.
    counts = _pending(session)
    lead_days = _LeadDays(session)
    for obj in session.new:
        if isinstance(obj, StageHistory):
            _count_row(counts, obj)
        elif isinstance(obj, Activity):
            after = _values(obj, _ACTIVITY_FIELDS, before=False)
            _count_activity(counts, obj.organization_id, after, 1)
        elif isinstance(obj, Opportunity):
            after = _values(obj, _DEAL_FIELDS, before=False)
            _count_deal(counts, lead_days, obj.organization_id, after, 1)
    for obj in session.dirty:
        if isinstance(obj, Activity | Opportunity):
            fields = _ACTIVITY_FIELDS if isinstance(obj, Activity) else _DEAL_FIELDS
            before = _values(obj, fields, before=True)
            after = _values(obj, fields, before=False)
            if before == after:
                continue
            if isinstance(obj, Activity):
                _count_activity(counts, obj.organization_id, before, -1)
                _count_activity(counts, obj.organization_id, after, 1)
            else:
                _count_deal(counts, lead_days, obj.organization_id, before, -1)
                _count_deal(counts, lead_days, obj.organization_id, after, 1)
    for obj in session.deleted:
        if isinstance(obj, Activity):
            before = _values(obj, _ACTIVITY_FIELDS, before=True)
            _count_activity(counts, obj.organization_id, before, -1)
        elif isinstance(obj, Opportunity):
            before = _values(obj, _DEAL_FIELDS, before=True)
            _count_deal(counts, lead_days, obj.organization_id, before, -1)


def add_up_statement(model: type[Any]) -> Any:
    """INSERT of a roll-up row that adds its counts to the row already there."""
    table: Table = model.__table__
    stmt = insert(table)
    keys = [column.name for column in table.primary_key]
    summed = {c.name: c + stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=keys, set_=summed)


# Each roll-up, the _Counts field counting it, the names of its key and of its sums.
_LAYOUT = (
    (StageEntryRollup, "entries", ("organization_id", "day", "stage_id"), ("entered", "advanced")),
    (
        StageExitRollup,
        "exits",
        ("organization_id", "day", "stage_id", "whole_days"),
        ("exits", "hundredths"),
    ),
    (ActivityRollup, "activities", ("organization_id", "day"), ACTIVITY_SUMS),
    (
        OpportunityCloseRollup,
        "closes",
        ("organization_id", "day", "stage_id", "type", "currency", "category_override"),
        ("deals", "priced", "amount", "cycle_days"),
    ),
    (
        OpportunityCreatedRollup,
        "created",
        ("organization_id", "day", "currency", "won"),
        ("deals", "priced", "amount"),
    ),
)


_ROLLUPS = tuple(model for model, *_ in _LAYOUT)
# Each roll-up's columns, key then sums: what a rebuild inserts.
_COLUMNS = {model: [*keys, *sums] for model, _, keys, sums in _LAYOUT}
# Built once: building and compiling them at each commit cost more than running them.
_ADD_UP = {model: add_up_statement(model) for model in _ROLLUPS}


def _add_up(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Add ``rows`` (sorted by key: the locks are taken in that order) to the roll-up."""
    session.connection().execute(_ADD_UP[model], rows)  # Core: no ORM statement handling


@event.listens_for(Session, "before_commit")
def _write_counts(session: Session) -> None:
    session.flush()  # commit's own flush comes after this hook: count what it would write
    counts: _Counts | None = session.info.pop(_PENDING, None)
    if counts is None:
        return
    for model, counted, key_names, sum_names in _LAYOUT:
        pending: dict[tuple[Any, ...], list[Any]] = getattr(counts, counted)
        rows = [
            {**dict(zip(key_names, key, strict=True)), **dict(zip(sum_names, sums, strict=True))}
            for key, sums in sorted(pending.items())
            if any(sums)
        ]
        if rows:
            _add_up(session, model, rows)


@event.listens_for(Session, "after_rollback")
def _discard_counts(session: Session) -> None:
    session.info.pop(_PENDING, None)


# --- recomputing --------------------------------------------------------------------


def exit_conditions() -> ColumnElement[bool]:
    """The moves counted for time in stage (as ``_count_row`` counts them), as SQL.

    ``'reopen'`` is a constant in the SQL, not a parameter: the partial index
    ``ix_stage_history_exit_duration`` serves only queries that imply its predicate, and
    under a generic plan (a prepared statement run a few times) a parameter implies
    nothing: PostgreSQL then scanned the whole quarter, 945 ms instead of 5 ms."""
    return and_(
        StageHistory.days_in_previous_stage.is_not(None),
        StageHistory.direction != literal_column(f"'{REOPEN}'"),
        StageHistory.from_stage_id.is_not(None),
    )


def activity_sums() -> dict[str, ColumnElement[Any]]:
    """ActivityRollup's sums over a set of activities, as SQL."""
    minutes = func.coalesce(Activity.duration_minutes, 0)
    return {
        "activities": func.count(),
        "logged_minutes": func.coalesce(func.sum(minutes), 0),
        "selling_minutes": func.coalesce(func.sum(minutes).filter(Activity.selling), 0),
        "without_duration": func.count().filter(Activity.duration_minutes.is_(None)),
    }


async def rebuild(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Replace the organization's roll-ups by sums of its deals, stage history and
    activities."""
    # What this transaction wrote before is in the rows now: counted again at its commit,
    # it would be added twice.
    await session.flush()
    counts: _Counts | None = session.info.get(_PENDING)
    if counts is not None:
        for _, counted, *_ in _LAYOUT:
            pending = getattr(counts, counted)
            for key in [key for key in pending if key[0] == organization_id]:
                del pending[key]
    for rollup in _ROLLUPS:
        await session.execute(delete(rollup).where(rollup.organization_id == organization_id))
    await _rebuild_deals(session, organization_id)
    of_org = StageHistory.organization_id == organization_id
    day = utc_date(StageHistory.moved_at)
    entries = (
        select(
            StageHistory.organization_id,
            day,
            StageHistory.to_stage_id,
            func.count(),
            func.count().filter(StageHistory.exit_direction.in_(ADVANCED)),
        )
        .where(of_org, StageHistory.direction.not_in(CLOSING_MOVES))
        .group_by(StageHistory.organization_id, day, StageHistory.to_stage_id)
    )
    await session.execute(insert(StageEntryRollup).from_select(_COLUMNS[StageEntryRollup], entries))
    bucket = cast(func.floor(StageHistory.days_in_previous_stage), Integer)
    exits = (
        select(
            StageHistory.organization_id,
            day,
            StageHistory.from_stage_id,
            bucket,
            func.count(),
            func.sum(cast(StageHistory.days_in_previous_stage * 100, BigInteger)),
        )
        .where(of_org, exit_conditions())
        .group_by(StageHistory.organization_id, day, StageHistory.from_stage_id, bucket)
    )
    await session.execute(insert(StageExitRollup).from_select(_COLUMNS[StageExitRollup], exits))
    activity_day = utc_date(Activity.occurred_at)
    activities = (
        select(Activity.organization_id, activity_day, *activity_sums().values())
        .where(Activity.organization_id == organization_id)
        .group_by(Activity.organization_id, activity_day)
    )
    await session.execute(insert(ActivityRollup).from_select(_COLUMNS[ActivityRollup], activities))


def first_contact_day() -> ColumnElement[Any]:
    """The UTC day a deal's sales cycle starts: its source lead's creation, else its own.
    The lead is looked up, not joined: only deals that came from one need it."""
    lead = _SOURCE_LEAD.c
    lead_created = (
        select(lead.created_at)
        .where(lead.organization_id == Opportunity.organization_id, lead.id == Opportunity.lead_id)
        .correlate(Opportunity)
        .scalar_subquery()
    )
    return utc_date(
        case((Opportunity.lead_id.is_not(None), lead_created), else_=Opportunity.created_at)
    )


async def _rebuild_deals(session: AsyncSession, organization_id: uuid.UUID) -> None:
    live = and_(Opportunity.organization_id == organization_id, Opportunity.deleted_at.is_(None))
    close_keys = (
        Opportunity.organization_id,
        Opportunity.close_date,
        Opportunity.stage_id,
        Opportunity.type,
        Opportunity.currency,
        func.coalesce(Opportunity.forecast_category_override, ""),
    )
    cycle = Opportunity.close_date - first_contact_day()
    closes = (
        select(
            *close_keys,
            func.count(),
            func.count(Opportunity.amount),
            func.coalesce(func.sum(Opportunity.amount), 0),
            func.coalesce(func.sum(cycle).filter(Opportunity.stage_kind == "won"), 0),
        )
        .where(live, Opportunity.close_date.is_not(None))
        .group_by(*close_keys)
    )
    await session.execute(
        insert(OpportunityCloseRollup).from_select(_COLUMNS[OpportunityCloseRollup], closes)
    )
    created_keys = (
        Opportunity.organization_id,
        utc_date(Opportunity.created_at),
        Opportunity.currency,
        Opportunity.stage_kind == "won",
    )
    created = (
        select(
            *created_keys,
            func.count(),
            func.count(Opportunity.amount),
            func.coalesce(func.sum(Opportunity.amount), 0),
        )
        .where(live)
        .group_by(*created_keys)
    )
    await session.execute(
        insert(OpportunityCreatedRollup).from_select(_COLUMNS[OpportunityCreatedRollup], created)
    )
