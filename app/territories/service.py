"""Territories: rule CRUD with conflict prevention, assignment (first match by priority,
round-robin within), and realignment (preview or apply, set-based in SQL)."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Uuid, and_, case, func, insert, literal, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.core import outbox
from app.core.concurrency import check_version, lock_tenant_topic
from app.core.driver import prepared_rows
from app.core.errors import Conflict, invalid_reference
from app.core.ids import new_id
from app.core.repository import get_or_404, insert_rows
from app.core.tenancy import INCLUDE_DELETED, actor_of, tenant_id
from app.models import Account, Lead, Territory, TerritoryAssignment, User
from app.territories import rules
from app.territories.schemas import TerritoryCreate, TerritoryUpdate

RESOURCE = "territory"
OPEN_LEAD_STATUSES = ("new", "mql", "sal", "sql", "recycled")
PREVIEW_LIMIT = 1000


def to_rule(territory: Territory | Row[Any]) -> rules.TerritoryRule:
    """The rule of a territory, or of a row of its columns (``_rules_in_order``)."""
    return rules.TerritoryRule(
        id=str(territory.id),
        name=territory.name,
        priority=territory.priority,
        countries=frozenset(territory.countries),
        cities=frozenset(territory.cities),
        industries=frozenset(territory.industries),
        segments=frozenset(territory.segments),
    )


@functools.cache
def _territories_in_order() -> Any:
    return select(Territory).order_by(Territory.priority, Territory.name, Territory.id)


@functools.cache
def _rules_in_order() -> Any:
    """What assignment reads of each territory: its rule and members (columns, no ORM
    objects: every created lead and account reads them)."""
    t = Territory
    return select(
        t.id, t.name, t.priority, t.countries, t.cities, t.industries, t.segments, t.member_ids
    ).order_by(t.priority, t.name, t.id)


async def list_territories(session: AsyncSession) -> list[Territory]:
    return list(await session.scalars(_territories_in_order()))


async def get_territory(
    session: AsyncSession, territory_id: uuid.UUID, *, for_update: bool = False
) -> Territory:
    # A locked load refreshes the instance: another transaction may have moved the
    # round-robin position since it was loaded.
    return await get_or_404(session, Territory, territory_id, RESOURCE, for_update=for_update)


async def _check_members(session: AsyncSession, member_ids: list[uuid.UUID]) -> None:
    active = set(
        await session.scalars(select(User.id).where(User.id.in_(member_ids), User.is_active))
    )
    missing = [m for m in member_ids if m not in active]
    if missing:
        raise invalid_reference("member_ids", missing[0], "an active user")


async def _check_conflicts(session: AsyncSession, candidate: Territory) -> None:
    """Rules at one priority must not be able to match the same record (first-match
    would depend on creation order); names must be unique."""
    await lock_tenant_topic(session, tenant_id(session), "territories")
    others = [t for t in await list_territories(session) if t.id != candidate.id]
    if any(t.name == candidate.name for t in others):
        raise Conflict(f"A territory named {candidate.name!r} exists", code="duplicate_territory")
    clashing = rules.conflicts(to_rule(candidate), [to_rule(t) for t in others])
    if clashing:
        raise Conflict(
            f"At priority {candidate.priority} this territory can match the same records as "
            + ", ".join(repr(t.name) for t in clashing),
            code="territory_conflict",
            errors=[{"code": "overlapping_territory", "detail": t.id} for t in clashing],
        )


def _normalise(values: list[str]) -> list[str]:
    return sorted({v.strip() for v in values if v.strip()})


async def create_territory(session: AsyncSession, data: TerritoryCreate) -> Territory:
    await _check_members(session, data.member_ids)
    territory = Territory(
        id=new_id(),
        name=data.name.strip(),
        priority=data.priority,
        countries=sorted({c.upper() for c in data.countries}),
        cities=_normalise(data.cities),
        industries=_normalise(data.industries),
        segments=sorted(set(data.segments)),
        member_ids=list(dict.fromkeys(data.member_ids)),
        last_assigned_index=-1,
    )
    await _check_conflicts(session, territory)
    session.add(territory)
    await session.flush()
    return territory


async def update_territory(
    session: AsyncSession,
    territory_id: uuid.UUID,
    data: TerritoryUpdate,
    expected_version: int | None,
) -> Territory:
    territory = await get_territory(session, territory_id, for_update=True)
    check_version(RESOURCE, territory.version, expected_version)
    sent = data.model_fields_set
    if data.member_ids is not None:
        await _check_members(session, data.member_ids)
        territory.member_ids = list(dict.fromkeys(data.member_ids))
    if data.name is not None:
        territory.name = data.name.strip()
    if data.priority is not None:
        territory.priority = data.priority
    if data.countries is not None:
        territory.countries = sorted({c.upper() for c in data.countries})
    for field in ("cities", "industries"):
        if field in sent and getattr(data, field) is not None:
            setattr(territory, field, _normalise(getattr(data, field)))
    if data.segments is not None:
        territory.segments = sorted(set(data.segments))
    await _check_conflicts(session, territory)
    await session.flush()
    return territory


async def delete_territory(
    session: AsyncSession, territory_id: uuid.UUID, expected_version: int | None
) -> None:
    """Records of a deleted territory go to the default queue (deleted records too: they
    still reference it)."""
    territory = await get_territory(session, territory_id, for_update=True)
    check_version(RESOURCE, territory.version, expected_version)
    for model in (Lead, Account):
        await session.execute(
            update(model)
            .where(model.territory_id == territory.id)
            .values(territory_id=None)
            .execution_options(synchronize_session=False, **{INCLUDE_DELETED: True})
        )
    await session.delete(territory)
    await session.flush()


@dataclass(frozen=True, slots=True)
class Assignment:
    territory_id: uuid.UUID | None
    owner_id: uuid.UUID | None


async def assign(
    session: AsyncSession, record: dict[str, str | None], *, pick_owner: bool
) -> Assignment:
    """The territory of a new record and, with ``pick_owner``, its next member
    (round-robin, serialised by a row lock on the territory)."""
    territories = {str(row.id): row for row in await prepared_rows(session, _rules_in_order())}
    match = rules.first_match([to_rule(row) for row in territories.values()], record)
    if match is None:
        return Assignment(None, None)
    territory = territories[match.id]
    if not pick_owner or not territory.member_ids:
        return Assignment(territory.id, None)
    locked = await get_territory(session, territory.id, for_update=True)
    owner, index = rules.next_member(
        [str(m) for m in locked.member_ids], locked.last_assigned_index
    )
    await save_position(session, locked, index)
    return Assignment(territory.id, uuid.UUID(owner) if owner else None)


async def save_position(session: AsyncSession, territory: Territory, index: int) -> None:
    """Store the round-robin position without touching the territory's version: handing
    out a lead is not an edit of the territory (its ETag stays valid)."""
    await session.execute(
        update(Territory)
        .where(Territory.id == territory.id)
        .values(last_assigned_index=index, updated_at=Territory.updated_at)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(territory, "last_assigned_index", index)


DIMENSION_COLUMNS = (
    ("countries", "country"),
    ("cities", "city"),
    ("industries", "industry"),
    ("segments", "segment"),
)


async def _stored_values(session: AsyncSession, model: Any) -> dict[str, list[str]]:
    """The distinct values each dimension holds: the SQL CASE compares them exactly, so
    that case-insensitivity is Python's (``rules``), not the database's ``lower()`` (which
    disagrees for e.g. "İstanbul")."""
    return {
        dimension: [
            v
            for v in await session.scalars(
                select(getattr(model, column)).where(getattr(model, column).is_not(None)).distinct()
            )
        ]
        for dimension, column in DIMENSION_COLUMNS
    }


def _territory_case(model: Any, territories: list[Territory], stored: dict[str, list[str]]) -> Any:
    """SQL twin of ``rules.first_match``: the territory id for each row, in one CASE."""
    whens = []
    for territory in sorted(territories, key=lambda t: (t.priority, t.name, t.id)):
        rule = to_rule(territory)
        conditions = []
        for dimension, column in DIMENSION_COLUMNS:
            allowed = rule.constraint(dimension)
            if allowed:
                matching = sorted(v for v in stored[dimension] if rules.fold(v) in allowed)
                conditions.append(getattr(model, column).in_(matching))
        whens.append(
            (and_(*conditions) if conditions else literal(True), literal(territory.id, Uuid()))
        )
    return case(*whens, else_=null()) if whens else null()


async def realign(session: AsyncSession, *, dry_run: bool) -> tuple[int, list[dict[str, Any]]]:
    """Recompute the territory of every open lead and every account; preview or apply the
    moves (one transaction, with history)."""
    await lock_tenant_topic(session, tenant_id(session), "territories")
    territories = await list_territories(session)
    moves: list[dict[str, Any]] = []
    total = 0
    actor = actor_of(session)
    for record_type, model, scope in (
        ("lead", Lead, Lead.status.in_(OPEN_LEAD_STATUSES)),
        ("account", Account, literal(True)),
    ):
        stored = await _stored_values(session, model)
        target = _territory_case(model, territories, stored)
        # Explicitly scoped: the INSERT … SELECT below is not scoped by the session.
        where = and_(scope, model.organization_id == tenant_id(session), model.deleted_at.is_(None))
        changed = select(model.id, model.territory_id, target.label("target")).where(
            where, model.territory_id.is_distinct_from(target)
        )
        total += await session.scalar(select(func.count()).select_from(changed.subquery())) or 0
        if len(moves) < PREVIEW_LIMIT:
            for row in await session.execute(
                changed.order_by(model.id).limit(PREVIEW_LIMIT - len(moves))
            ):
                moves.append(
                    {
                        "record_type": record_type,
                        "record_id": row[0],
                        "from_territory_id": row[1],
                        "to_territory_id": row[2],
                    }
                )
        if dry_run:
            continue
        history = changed.subquery()
        await session.execute(
            insert(TerritoryAssignment).from_select(
                [
                    "organization_id",
                    "id",
                    "record_type",
                    "record_id",
                    "from_territory_id",
                    "to_territory_id",
                    "reason",
                    "actor_user_id",
                ],
                select(
                    literal(tenant_id(session)),
                    func.gen_random_uuid(),
                    literal(record_type),
                    history.c.id,
                    history.c.territory_id,
                    history.c.target,
                    literal("realignment"),
                    literal(actor.user_id, type_=TerritoryAssignment.actor_user_id.type),
                ),
            )
        )
        await session.execute(
            update(model)
            .where(where, model.territory_id.is_distinct_from(target))
            .values(territory_id=target, version=model.version + 1)
            .execution_options(synchronize_session=False)
        )
    if not dry_run and total:
        outbox.emit(
            session,
            "territories.realigned",
            resource_type=RESOURCE,
            resource_id=None,
            data={"moves": total},
        )
    return total, moves


def record_assignment(
    session: AsyncSession,
    record_type: str,
    record_id: uuid.UUID,
    territory_id: uuid.UUID | None,
) -> None:
    session.add(
        TerritoryAssignment(**_assignment_values(session, record_type, record_id, territory_id))
    )


async def record_assignment_now(
    session: AsyncSession,
    record_type: str,
    record_id: uuid.UUID,
    territory_id: uuid.UUID | None,
) -> None:
    """``record_assignment`` for a record inserted without the ORM (``insert_rows``)."""
    values = _assignment_values(session, record_type, record_id, territory_id)
    await insert_rows(session, TerritoryAssignment, [values])


def _assignment_values(
    session: AsyncSession,
    record_type: str,
    record_id: uuid.UUID,
    territory_id: uuid.UUID | None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "organization_id": tenant_id(session),
        "record_type": record_type,
        "record_id": record_id,
        "from_territory_id": None,
        "to_territory_id": territory_id,
        "reason": "created",
        "actor_user_id": actor_of(session).user_id,
    }
