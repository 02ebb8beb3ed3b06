"""Personal data of leads and contacts (KVKK / GDPR, SPEC §13): an export of everything
held about a person, and an erasure that anonymises the person everywhere — the record,
its field history, the events about it, its signals and notes — while every deal, amount,
date and status stays, so pipeline figures and KPIs do not change."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import outbox
from app.core.audit import to_json_value
from app.core.ids import utcnow
from app.core.repository import get_or_404
from app.models import (
    Activity,
    ActivityParticipant,
    CampaignMember,
    Contact,
    ContactRelationship,
    FieldHistory,
    Lead,
    LeadStatusHistory,
    NurtureEnrollment,
    OpportunityStakeholder,
    OutboxEvent,
    Signal,
)

PersonKind = Literal["lead", "contact"]
ERASED_NAME = "[erased]"
# Fields that identify the person; erasure blanks them (names get a placeholder).
PERSONAL_FIELDS: dict[str, tuple[str, ...]] = {
    "lead": ("first_name", "last_name", "email", "phone", "title", "city", "bant"),
    "contact": ("first_name", "last_name", "email", "phone", "title", "linkedin_url"),
}
MODEL: dict[str, Any] = {"lead": Lead, "contact": Contact}


def _row(obj: Any) -> dict[str, Any]:
    return {c.key: to_json_value(getattr(obj, c.key)) for c in obj.__mapper__.column_attrs}


def _rows(objs: Any) -> list[dict[str, Any]]:
    return [_row(o) for o in objs]


async def _person(session: AsyncSession, kind: PersonKind, person_id: uuid.UUID) -> Any:
    return await get_or_404(session, MODEL[kind], person_id, kind, for_update=True)


async def export(session: AsyncSession, kind: PersonKind, person_id: uuid.UUID) -> dict[str, Any]:
    """Everything held about the person, one query per kind of data."""
    person = await get_or_404(session, MODEL[kind], person_id, kind)
    column = Signal.lead_id if kind == "lead" else Signal.contact_id
    member = CampaignMember.lead_id if kind == "lead" else CampaignMember.contact_id
    data: dict[str, Any] = {
        "kind": kind,
        "record": _row(person),
        "field_history": _rows(
            await session.scalars(
                select(FieldHistory)
                .where(FieldHistory.resource_type == kind, FieldHistory.resource_id == person_id)
                .order_by(FieldHistory.changed_at)
            )
        ),
        "signals": _rows(
            await session.scalars(
                select(Signal).where(column == person_id).order_by(Signal.occurred_at)
            )
        ),
        "campaign_memberships": _rows(
            await session.scalars(select(CampaignMember).where(member == person_id))
        ),
    }
    if kind == "lead":
        data["status_history"] = _rows(
            await session.scalars(
                select(LeadStatusHistory)
                .where(LeadStatusHistory.lead_id == person_id)
                .order_by(LeadStatusHistory.at)
            )
        )
        data["activities"] = _rows(
            await session.scalars(
                select(Activity).where(Activity.lead_id == person_id).order_by(Activity.occurred_at)
            )
        )
        data["nurture_enrollments"] = _rows(
            await session.scalars(
                select(NurtureEnrollment).where(NurtureEnrollment.lead_id == person_id)
            )
        )
    else:
        data["buying_committees"] = _rows(
            await session.scalars(
                select(OpportunityStakeholder).where(OpportunityStakeholder.contact_id == person_id)
            )
        )
        data["relationships"] = _rows(
            await session.scalars(
                select(ContactRelationship).where(
                    or_(
                        ContactRelationship.from_contact_id == person_id,
                        ContactRelationship.to_contact_id == person_id,
                    )
                )
            )
        )
        data["activities"] = _rows(
            await session.scalars(
                select(Activity)
                .join(ActivityParticipant, ActivityParticipant.activity_id == Activity.id)
                .where(ActivityParticipant.contact_id == person_id)
                .order_by(Activity.occurred_at)
            )
        )
    return data


async def erase(session: AsyncSession, kind: PersonKind, person_id: uuid.UUID) -> Any:
    """Anonymise the person; idempotent (erasing again changes nothing more)."""
    person = await _person(session, kind, person_id)
    if person.erased_at is None:
        person.first_name = ERASED_NAME
        person.last_name = ERASED_NAME
        for name in PERSONAL_FIELDS[kind][2:]:
            setattr(person, name, {} if name == "bant" else None)
        if kind == "lead":
            person.disqualified_reason = None
        person.erased_at = utcnow()
        await session.flush()  # the audit layer writes field history: scrubbed below
    await _scrub_traces(session, kind, person_id)
    outbox.emit(
        session,
        f"{kind}.erased",
        resource_type=kind,
        resource_id=person_id,
        data={"id": person_id},
    )
    await session.flush()
    return person


async def _scrub_traces(session: AsyncSession, kind: PersonKind, person_id: uuid.UUID) -> None:
    """Old values in the field history, event payloads, signal properties and free-text
    notes tied to the person."""
    fields = PERSONAL_FIELDS[kind]
    await session.execute(
        update(FieldHistory)
        .where(
            FieldHistory.resource_type == kind,
            FieldHistory.resource_id == person_id,
            FieldHistory.field.in_((*fields, "disqualified_reason")),
        )
        .values(old_value=None, new_value=None)
        .execution_options(synchronize_session=False)
    )
    # Events about the person lose their personal keys (not yet delivered ones too).
    await session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.resource_type == kind, OutboxEvent.resource_id == person_id)
        .values(payload=OutboxEvent.payload.op("-")(array(fields)))
        .execution_options(synchronize_session=False)
    )
    column = Signal.lead_id if kind == "lead" else Signal.contact_id
    await session.execute(
        update(Signal)
        .where(column == person_id)
        .values(properties={})
        .execution_options(synchronize_session=False)
    )
    if kind == "lead":
        # The lead's own activities are about them; kind, time and duration stay (the
        # time-spent-selling KPI reads those), the text goes.
        await session.execute(
            update(Activity)
            .where(Activity.lead_id == person_id)
            .values(body=None, outcome=None, subject=ERASED_NAME)
            .execution_options(synchronize_session=False)
        )
    else:
        await session.execute(
            update(OpportunityStakeholder)
            .where(OpportunityStakeholder.contact_id == person_id)
            .values(notes=None)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(ContactRelationship)
            .where(
                or_(
                    ContactRelationship.from_contact_id == person_id,
                    ContactRelationship.to_contact_id == person_id,
                )
            )
            .values(notes=None)
            .execution_options(synchronize_session=False)
        )
