"""Activities (touchpoints) and timelines.

Logging a touch on a deal moves its ``last_touch_at`` and ends a stale spell, when the
activity's kind counts as a touch (org setting ``touch_activity_kinds``; by default every
kind but ``note``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, func, literal, null, select, union_all
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.activities.schemas import ActivityCreate, ActivityUpdate
from app.core import outbox
from app.core.audit import changed_fields
from app.core.auth import Principal
from app.core.concurrency import check_version
from app.core.errors import NotFound, ValidationFailed, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.org_settings import org_settings
from app.core.pagination import (
    SortKey,
    decode_cursor,
    encode_cursor,
    keyset_condition,
    paginate,
    parse_sort,
)
from app.core.repository import get_or_404
from app.leads import service as leads
from app.models import (
    Account,
    Activity,
    ActivityParticipant,
    Contact,
    FieldHistory,
    Lead,
    LeadStatusHistory,
    Opportunity,
    PipelineStage,
    Signal,
    StageHistory,
    User,
)

RESOURCE = "activity"
DEFAULT_TOUCH_KINDS = ("email", "call", "meeting", "linkedin", "demo")
SORTABLE = {"occurred_at": Activity.occurred_at, "created_at": Activity.created_at}


@dataclass(frozen=True, slots=True)
class ActivityView:
    activity: Activity
    contact_ids: list[uuid.UUID]
    user_ids: list[uuid.UUID]


@dataclass(frozen=True, slots=True)
class ActivityFilters:
    kind: str | None = None
    account_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    selling: bool | None = None
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None


async def _participants(
    session: AsyncSession, activity_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[list[uuid.UUID], list[uuid.UUID]]]:
    """Contacts and users of many activities in one query (no N+1 on lists)."""
    found: dict[uuid.UUID, tuple[list[uuid.UUID], list[uuid.UUID]]] = {
        a: ([], []) for a in activity_ids
    }
    if not activity_ids:
        return found
    rows = await session.execute(
        select(
            ActivityParticipant.activity_id,
            ActivityParticipant.contact_id,
            ActivityParticipant.user_id,
        )
        .where(ActivityParticipant.activity_id.in_(activity_ids))
        .order_by(ActivityParticipant.id)
    )
    for activity_id, contact_id, user_id in rows:
        contacts, users = found[activity_id]
        if contact_id is not None:
            contacts.append(contact_id)
        if user_id is not None:
            users.append(user_id)
    return found


async def list_activities(
    session: AsyncSession,
    filters: ActivityFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ActivityView], str | None]:
    stmt = select(Activity)
    for column, value in (
        (Activity.kind, filters.kind),
        (Activity.account_id, filters.account_id),
        (Activity.opportunity_id, filters.opportunity_id),
        (Activity.owner_id, filters.owner_id),
        (Activity.selling, filters.selling),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.contact_id is not None:
        stmt = stmt.where(
            Activity.id.in_(
                select(ActivityParticipant.activity_id).where(
                    ActivityParticipant.contact_id == filters.contact_id
                )
            )
        )
    if filters.occurred_after is not None:
        stmt = stmt.where(Activity.occurred_at >= filters.occurred_after)
    if filters.occurred_before is not None:
        stmt = stmt.where(Activity.occurred_at < filters.occurred_before)
    keys = parse_sort(sort, SORTABLE, default="-occurred_at", id_column=Activity.id)
    rows, next_cursor = await paginate(session, stmt, keys, limit=limit, cursor=cursor)
    people = await _participants(session, [a.id for a in rows])
    return [ActivityView(a, *people[a.id]) for a in rows], next_cursor


async def get_activity(
    session: AsyncSession, activity_id: uuid.UUID, *, for_update: bool = False
) -> ActivityView:
    activity = await get_or_404(session, Activity, activity_id, RESOURCE, for_update=for_update)
    people = await _participants(session, [activity.id])
    return ActivityView(activity, *people[activity.id])


async def _check_people(
    session: AsyncSession, contact_ids: list[uuid.UUID], user_ids: list[uuid.UUID]
) -> list[Contact]:
    contacts = list(await session.scalars(select(Contact).where(Contact.id.in_(contact_ids))))
    missing = set(contact_ids) - {c.id for c in contacts}
    if missing:
        raise invalid_reference("contact_ids", sorted(missing)[0], "a contact")
    users = set(await session.scalars(select(User.id).where(User.id.in_(user_ids))))
    if set(user_ids) - users:
        raise invalid_reference("user_ids", sorted(set(user_ids) - users)[0], "a user")
    return contacts


def _add_participants(
    session: AsyncSession,
    activity: Activity,
    contact_ids: list[uuid.UUID],
    user_ids: list[uuid.UUID],
) -> None:
    session.add_all(
        [
            ActivityParticipant(
                id=new_id(), activity_id=activity.id, contact_id=c, occurred_at=activity.occurred_at
            )
            for c in dict.fromkeys(contact_ids)
        ]
        + [
            ActivityParticipant(
                id=new_id(), activity_id=activity.id, user_id=u, occurred_at=activity.occurred_at
            )
            for u in dict.fromkeys(user_ids)
        ]
    )


async def _touch_kinds(session: AsyncSession) -> tuple[str, ...]:
    settings = await org_settings(session)
    return tuple(settings.get("touch_activity_kinds") or DEFAULT_TOUCH_KINDS)


async def _touch_deal(session: AsyncSession, activity: Activity) -> None:
    """A touch moves the deal's last touch; a stale deal whose last touch is now within its
    stage's rotting days is fresh again (the stale spell ends)."""
    if activity.opportunity_id is None or activity.kind not in await _touch_kinds(session):
        return
    deal = await session.scalar(
        select(Opportunity).where(Opportunity.id == activity.opportunity_id).with_for_update()
    )
    if deal is None:  # deleted since: its activities stay, there is nothing to touch
        return
    if deal.last_touch_at is None or activity.occurred_at > deal.last_touch_at:
        deal.last_touch_at = activity.occurred_at
    rotting_days = await session.scalar(
        select(PipelineStage.rotting_days).where(PipelineStage.id == deal.stage_id)
    )
    if (
        deal.is_stale
        and rotting_days is not None
        and utcnow() - deal.last_touch_at < timedelta(days=rotting_days)
    ):
        deal.is_stale, deal.stale_since = False, None
        outbox.emit(
            session,
            "opportunity.unstale",
            resource_type="opportunity",
            resource_id=deal.id,
            data={"id": deal.id, "activity_id": activity.id, "touched_at": activity.occurred_at},
        )


async def create_activity(
    session: AsyncSession, principal: Principal, data: ActivityCreate
) -> ActivityView:
    account_id = data.account_id
    if data.opportunity_id is not None:
        deal_account = await session.scalar(
            select(Opportunity.account_id).where(Opportunity.id == data.opportunity_id)
        )
        if deal_account is None:
            raise invalid_reference("opportunity_id", data.opportunity_id, "an opportunity")
        if account_id is not None and account_id != deal_account:
            raise ValidationFailed(
                "account_id is not the deal's account",
                errors=[{"field": "body.account_id", "code": "account_mismatch"}],
            )
        account_id = deal_account
    elif account_id is not None:
        await accounts.get_account_or_invalid(session, account_id)
    user_ids = (
        data.user_ids
        if data.user_ids is not None
        else ([principal.user_id] if principal.user_id else [])
    )
    contacts = await _check_people(session, data.contact_ids, user_ids)
    if account_id is None and contacts and len({c.account_id for c in contacts}) == 1:
        account_id = contacts[0].account_id
    if data.lead_id is not None:
        await leads.get_lead_or_invalid(session, data.lead_id)
    if account_id is None and not contacts and data.lead_id is None:
        raise ValidationFailed(
            "An activity links to an account, a deal, a lead or contacts",
            errors=[{"field": "body.account_id", "code": "missing_link"}],
        )
    activity = Activity(
        id=new_id(),
        kind=data.kind,
        subject=data.subject,
        occurred_at=data.occurred_at or utcnow(),
        duration_minutes=data.duration_minutes,
        body=data.body,
        outcome=data.outcome,
        selling=data.selling if data.selling is not None else data.kind != "note",
        account_id=account_id,
        opportunity_id=data.opportunity_id,
        lead_id=data.lead_id,
        owner_id=principal.user_id,
    )
    session.add(activity)
    await session.flush()
    _add_participants(session, activity, data.contact_ids, user_ids)
    await _touch_deal(session, activity)
    if activity.lead_id is not None:
        await leads.touched(session, activity.lead_id, activity.occurred_at)
    await session.flush()
    outbox.emit(
        session,
        "activity.created",
        resource_type=RESOURCE,
        resource_id=activity.id,
        data={
            "id": activity.id,
            "kind": activity.kind,
            "subject": activity.subject,
            "occurred_at": activity.occurred_at,
            "account_id": account_id,
            "opportunity_id": activity.opportunity_id,
            "contact_ids": data.contact_ids,
        },
    )
    return ActivityView(
        activity, list(dict.fromkeys(data.contact_ids)), list(dict.fromkeys(user_ids))
    )


async def update_activity(
    session: AsyncSession,
    activity_id: uuid.UUID,
    data: ActivityUpdate,
    expected_version: int | None,
) -> ActivityView:
    view = await get_activity(session, activity_id, for_update=True)
    activity = view.activity
    check_version(RESOURCE, activity.version, expected_version)
    sent = data.model_fields_set
    contact_ids = data.contact_ids if data.contact_ids is not None else view.contact_ids
    user_ids = data.user_ids if data.user_ids is not None else view.user_ids
    await _check_people(session, contact_ids, user_ids)
    for field in ("subject", "occurred_at", "selling"):
        if field in sent and getattr(data, field) is not None:
            setattr(activity, field, getattr(data, field))
    for field in ("duration_minutes", "body", "outcome"):
        if field in sent:
            setattr(activity, field, getattr(data, field))
    people_changed = (contact_ids, user_ids) != (view.contact_ids, view.user_ids)
    # Decided before any flush: the flush below writes the activity (one version per
    # change) and would hide its changes from ``changed_fields``.
    changed = bool(changed_fields(activity)) or people_changed
    if changed:
        activity.updated_at = utcnow()
    if people_changed or "occurred_at" in sent:
        for participant in await session.scalars(
            select(ActivityParticipant).where(ActivityParticipant.activity_id == activity.id)
        ):
            await session.delete(participant)
        await session.flush()
        _add_participants(session, activity, contact_ids, user_ids)
    if changed:
        await session.flush()
        await _touch_deal(session, activity)
    return ActivityView(activity, list(dict.fromkeys(contact_ids)), list(dict.fromkeys(user_ids)))


async def delete_activity(
    session: AsyncSession, activity_id: uuid.UUID, expected_version: int | None
) -> None:
    view = await get_activity(session, activity_id, for_update=True)
    check_version(RESOURCE, view.activity.version, expected_version)
    for participant in await session.scalars(
        select(ActivityParticipant).where(ActivityParticipant.activity_id == activity_id)
    ):
        await session.delete(participant)
    await session.flush()
    await session.delete(view.activity)
    await session.flush()


# --- timelines ----------------------------------------------------------------------------

TIMELINE_SUBJECTS: dict[str, type[Account | Opportunity | Contact | Lead]] = {
    "account": Account,
    "opportunity": Opportunity,
    "contact": Contact,
    "lead": Lead,
}


async def require_subject(session: AsyncSession, subject: str, subject_id: uuid.UUID) -> None:
    model = TIMELINE_SUBJECTS[subject]
    if await session.scalar(select(model.id).where(model.id == subject_id)) is None:
        raise NotFound(subject)


def _activity_items(where: Any) -> Any:
    return select(
        Activity.occurred_at.label("occurred_at"),
        Activity.id.label("id"),
        literal("activity").label("type"),
        Activity.owner_id.label("actor_user_id"),
        (Activity.kind + literal(": ") + Activity.subject).label("summary"),
        func.jsonb_build_object(
            "kind",
            Activity.kind,
            "subject",
            Activity.subject,
            "outcome",
            Activity.outcome,
            "duration_minutes",
            Activity.duration_minutes,
            "opportunity_id",
            Activity.opportunity_id,
            "account_id",
            Activity.account_id,
        ).label("data"),
    ).where(where)


def _stage_items(where: Any) -> Any:
    return select(
        StageHistory.moved_at.label("occurred_at"),
        StageHistory.id.label("id"),
        literal("stage_change").label("type"),
        StageHistory.actor_user_id.label("actor_user_id"),
        (
            func.coalesce(StageHistory.from_stage, literal("new"))
            + literal(" → ")
            + StageHistory.to_stage
        ).label("summary"),
        func.jsonb_build_object(
            "opportunity_id",
            StageHistory.opportunity_id,
            "from_stage",
            StageHistory.from_stage,
            "to_stage",
            StageHistory.to_stage,
            "direction",
            StageHistory.direction,
            "reason",
            StageHistory.reason,
            "amount",
            cast(StageHistory.amount, String),
        ).label("data"),
    ).where(where)


def _lead_status_items(lead_id: uuid.UUID) -> Any:
    return select(
        LeadStatusHistory.at.label("occurred_at"),
        LeadStatusHistory.id.label("id"),
        literal("status_change").label("type"),
        LeadStatusHistory.actor_user_id.label("actor_user_id"),
        (
            func.coalesce(LeadStatusHistory.from_status, literal("created"))
            + literal(" → ")
            + LeadStatusHistory.to_status
        ).label("summary"),
        func.jsonb_build_object(
            "from_status",
            LeadStatusHistory.from_status,
            "to_status",
            LeadStatusHistory.to_status,
            "actor_type",
            LeadStatusHistory.actor_type,
            "reason_code",
            LeadStatusHistory.reason_code,
            "reason",
            LeadStatusHistory.reason,
        ).label("data"),
    ).where(LeadStatusHistory.lead_id == lead_id)


def _signal_items(where: Any) -> Any:
    return select(
        Signal.occurred_at.label("occurred_at"),
        Signal.id.label("id"),
        literal("signal").label("type"),
        cast(null(), UUID(as_uuid=True)).label("actor_user_id"),
        (
            Signal.type
            + func.coalesce(literal(" ") + cast(Signal.value, String), literal(""))
            + literal(" (")
            + Signal.source
            + literal(")")
        ).label("summary"),
        func.jsonb_build_object(
            "signal_type",
            Signal.type,
            "value",
            Signal.value,
            "source",
            Signal.source,
            "external_id",
            Signal.external_id,
            "properties",
            Signal.properties,
            "lead_id",
            Signal.lead_id,
            "contact_id",
            Signal.contact_id,
            "account_id",
            Signal.account_id,
        ).label("data"),
    ).where(where)


def _field_items(resource_type: str, resource_id: uuid.UUID) -> Any:
    return select(
        FieldHistory.changed_at.label("occurred_at"),
        FieldHistory.id.label("id"),
        literal("field_change").label("type"),
        FieldHistory.actor_user_id.label("actor_user_id"),
        (FieldHistory.field + literal(" changed")).label("summary"),
        func.jsonb_build_object(
            "field",
            FieldHistory.field,
            "old_value",
            FieldHistory.old_value,
            "new_value",
            FieldHistory.new_value,
        ).label("data"),
    ).where(
        FieldHistory.resource_type == resource_type,
        FieldHistory.resource_id == resource_id,
        # Stage moves have their own, richer items.
        FieldHistory.field.not_in(("stage_id", "stage_entered_at", "closed_at")),
    )


async def timeline(
    session: AsyncSession,
    subject: str,
    subject_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Activities, history and engagement signals of an account, deal, contact or lead,
    newest first; one query a page (a keyset over the union of the sources)."""
    if subject == "account":
        deals = select(Opportunity.id).where(Opportunity.account_id == subject_id)
        parts = [
            _activity_items(Activity.account_id == subject_id),
            _stage_items(StageHistory.opportunity_id.in_(deals)),
            _field_items("account", subject_id),
            _signal_items(Signal.account_id == subject_id),
        ]
    elif subject == "opportunity":
        parts = [
            _activity_items(Activity.opportunity_id == subject_id),
            _stage_items(StageHistory.opportunity_id == subject_id),
            _field_items("opportunity", subject_id),
        ]
    elif subject == "lead":
        parts = [
            _activity_items(Activity.lead_id == subject_id),
            _lead_status_items(subject_id),
            _field_items("lead", subject_id),
            _signal_items(Signal.lead_id == subject_id),
        ]
    else:
        touched = select(ActivityParticipant.activity_id).where(
            ActivityParticipant.contact_id == subject_id
        )
        parts = [
            _activity_items(Activity.id.in_(touched)),
            _field_items("contact", subject_id),
            _signal_items(Signal.contact_id == subject_id),
        ]
    items = union_all(*parts).subquery("timeline")
    keys = [
        SortKey("occurred_at", items.c.occurred_at, True),  # type: ignore[arg-type]
        SortKey("id", items.c.id, True),  # type: ignore[arg-type]
    ]
    stmt = select(items)
    if cursor:
        stmt = stmt.where(keyset_condition(keys, decode_cursor(keys, cursor)))
    rows = (
        await session.execute(
            stmt.order_by(items.c.occurred_at.desc(), items.c.id.desc()).limit(limit + 1)
        )
    ).all()
    next_cursor = encode_cursor(keys, rows[limit - 1]) if len(rows) > limit else None
    return [dict(r._mapping) for r in rows[:limit]], next_cursor
