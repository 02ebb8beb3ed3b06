"""Contacts (org chart), the influence map and buying committees with relationship health.

Rules: a contact reports to a contact of the same account, without cycles; influence-map
edges join contacts of one account (``reports_to`` edges without cycles); a committee
member is a contact of the deal's account tree. Champion changes and members leaving their
company are recorded as risk events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Uuid, and_, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.accounts import service as accounts
from app.core import outbox
from app.core.audit import changed_fields
from app.core.concurrency import check_version, lock_tenant_topic
from app.core.errors import Conflict, NotFound, RuleViolation, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import ensure_active_user, get_or_404
from app.core.tenancy import tenant_id
from app.models import (
    Activity,
    ActivityParticipant,
    Contact,
    ContactRelationship,
    Opportunity,
    OpportunityStakeholder,
    PipelineStage,
)
from app.stakeholders import health
from app.stakeholders.schemas import (
    ContactCreate,
    ContactUpdate,
    RelationshipCreate,
    RelationshipUpdate,
    StakeholderCreate,
    StakeholderUpdate,
)

RESOURCE = "contact"
SORTABLE = {
    "created_at": Contact.created_at,
    "updated_at": Contact.updated_at,
    "last_name": Contact.last_name,
}
MAX_CHAIN = 64


def full_name(contact: Contact) -> str:
    return f"{contact.first_name} {contact.last_name}"


# --- contacts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactFilters:
    account_id: uuid.UUID | None = None
    email: str | None = None
    status: str | None = None
    owner_id: uuid.UUID | None = None
    seniority: str | None = None
    reports_to_id: uuid.UUID | None = None
    updated_since: datetime | None = None


async def list_contacts(
    session: AsyncSession,
    filters: ContactFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Contact], str | None]:
    stmt = select(Contact)
    for column, value in (
        (Contact.account_id, filters.account_id),
        (Contact.email, filters.email.lower() if filters.email else None),
        (Contact.status, filters.status),
        (Contact.owner_id, filters.owner_id),
        (Contact.seniority, filters.seniority),
        (Contact.reports_to_id, filters.reports_to_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.updated_since is not None:
        stmt = stmt.where(Contact.updated_at >= filters.updated_since)
    keys = parse_sort(sort, SORTABLE, default="-created_at", id_column=Contact.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_contact(
    session: AsyncSession, contact_id: uuid.UUID, *, for_update: bool = False
) -> Contact:
    return await get_or_404(session, Contact, contact_id, RESOURCE, for_update=for_update)


async def _check_email_free(
    session: AsyncSession,
    account_id: uuid.UUID,
    email: str | None,
    except_id: uuid.UUID | None = None,
) -> None:
    if email is None:
        return
    stmt = select(Contact.id).where(Contact.account_id == account_id, Contact.email == email)
    if except_id is not None:
        stmt = stmt.where(Contact.id != except_id)
    if (existing := await session.scalar(stmt)) is not None:
        raise Conflict(
            f"The account already has a contact with the e-mail {email!r}",
            code="duplicate_contact",
            extra={"existing_id": str(existing)},
        )


async def _manager_chain(session: AsyncSession, contact_id: uuid.UUID) -> list[uuid.UUID]:
    """The contact and the managers above it, nearest first."""
    org = tenant_id(session)
    chain = (
        select(Contact.id, Contact.reports_to_id, literal(0).label("depth"))
        .where(Contact.id == contact_id, Contact.organization_id == org)
        .cte("chain", recursive=True)
    )
    manager = aliased(Contact)
    chain = chain.union_all(
        select(manager.id, manager.reports_to_id, chain.c.depth + 1).where(
            manager.organization_id == org,
            manager.id == chain.c.reports_to_id,
            chain.c.depth < MAX_CHAIN,
        )
    )
    return [r[0] for r in await session.execute(select(chain.c.id).order_by(chain.c.depth))]


async def _check_manager(
    session: AsyncSession,
    contact_id: uuid.UUID,
    account_id: uuid.UUID,
    manager_id: uuid.UUID | None,
) -> None:
    if manager_id is None:
        return
    await lock_tenant_topic(session, tenant_id(session), "contacts.org_chart")
    manager_account = await session.scalar(
        select(Contact.account_id).where(Contact.id == manager_id)
    )
    if manager_account != account_id:
        raise invalid_reference("reports_to_id", manager_id, "a contact of the same account")
    if contact_id in await _manager_chain(session, manager_id):
        raise RuleViolation(
            "The new manager reports (directly or not) to this contact",
            code="org_chart_cycle",
            unmet=[{"code": "org_chart_cycle", "detail": "reports_to_id would loop"}],
        )


async def create_contact(
    session: AsyncSession, owner_default: uuid.UUID | None, data: ContactCreate
) -> Contact:
    await accounts.get_account_or_invalid(session, data.account_id)
    email = data.email.lower() if data.email else None
    await _check_email_free(session, data.account_id, email)
    owner_id = data.owner_id or owner_default
    await ensure_active_user(session, "owner_id", owner_id)
    contact = Contact(
        id=new_id(),
        account_id=data.account_id,
        first_name=data.first_name.strip(),
        last_name=data.last_name.strip(),
        title=data.title,
        department=data.department,
        seniority=data.seniority,
        email=email,
        phone=data.phone,
        linkedin_url=data.linkedin_url,
        status="active",
        owner_id=owner_id,
    )
    await _check_manager(session, contact.id, contact.account_id, data.reports_to_id)
    contact.reports_to_id = data.reports_to_id
    session.add(contact)
    await session.flush()
    outbox.emit(
        session,
        "contact.created",
        resource_type=RESOURCE,
        resource_id=contact.id,
        data=_snapshot(contact),
    )
    return contact


async def update_contact(
    session: AsyncSession,
    contact_id: uuid.UUID,
    data: ContactUpdate,
    expected_version: int | None,
) -> Contact:
    contact = await get_contact(session, contact_id, for_update=True)
    check_version(RESOURCE, contact.version, expected_version)
    sent = data.model_fields_set
    if "email" in sent:
        email = data.email.lower() if data.email else None
        await _check_email_free(session, contact.account_id, email, contact.id)
        contact.email = email
    if "reports_to_id" in sent and data.reports_to_id != contact.reports_to_id:
        await _check_manager(session, contact.id, contact.account_id, data.reports_to_id)
        contact.reports_to_id = data.reports_to_id
    if "owner_id" in sent:
        await ensure_active_user(session, "owner_id", data.owner_id)
        contact.owner_id = data.owner_id
    for field in ("first_name", "last_name"):
        value = getattr(data, field)
        if field in sent and value is not None:
            setattr(contact, field, value.strip())
    for field in ("title", "department", "seniority", "phone", "linkedin_url"):
        if field in sent:
            setattr(contact, field, getattr(data, field))
    changed = changed_fields(contact)
    if changed:
        await session.flush()
        outbox.emit(
            session,
            "contact.updated",
            resource_type=RESOURCE,
            resource_id=contact.id,
            data={**_snapshot(contact), "changed_fields": changed},
        )
    return contact


async def change_status(
    session: AsyncSession,
    contact_id: uuid.UUID,
    status: str,
    at: datetime | None,
    expected_version: int | None,
) -> Contact:
    """A contact leaving their company is a risk for every open deal they are part of."""
    contact = await get_contact(session, contact_id, for_update=True)
    check_version(RESOURCE, contact.version, expected_version)
    if contact.status == status:
        return contact
    contact.status = status
    contact.left_at = (at or utcnow()) if status == "left_company" else None
    await session.flush()
    outbox.emit(
        session,
        "contact.status_changed",
        resource_type=RESOURCE,
        resource_id=contact.id,
        data={**_snapshot(contact), "left_at": contact.left_at},
    )
    if status == "left_company":
        memberships = await session.execute(
            select(OpportunityStakeholder, Opportunity.name)
            .join(
                Opportunity,
                and_(
                    Opportunity.organization_id == OpportunityStakeholder.organization_id,
                    Opportunity.id == OpportunityStakeholder.opportunity_id,
                ),
            )
            .join(
                PipelineStage,
                and_(
                    PipelineStage.organization_id == Opportunity.organization_id,
                    PipelineStage.id == Opportunity.stage_id,
                ),
            )
            .where(OpportunityStakeholder.contact_id == contact.id, PipelineStage.kind == "open")
        )
        for member, deal_name in memberships:
            outbox.emit(
                session,
                "opportunity.stakeholder_left",
                resource_type="opportunity",
                resource_id=member.opportunity_id,
                data={
                    "opportunity_id": member.opportunity_id,
                    "opportunity_name": deal_name,
                    "contact_id": contact.id,
                    "contact_name": full_name(contact),
                    "roles": member.roles,
                    "left_at": contact.left_at,
                    "was_champion": "champion" in member.roles,
                },
            )
    return contact


async def delete_contact(
    session: AsyncSession, contact_id: uuid.UUID, expected_version: int | None
) -> None:
    contact = await get_contact(session, contact_id, for_update=True)
    check_version(RESOURCE, contact.version, expected_version)
    reports = await session.scalar(
        select(func.count()).select_from(Contact).where(Contact.reports_to_id == contact.id)
    )
    if reports:
        raise RuleViolation(
            "Other contacts report to this one; change their manager first",
            code="contact_has_reports",
            unmet=[{"code": "contact_has_reports", "detail": f"{reports} report(s)"}],
        )
    contact.deleted_at = utcnow()
    await session.flush()
    outbox.emit(
        session,
        "contact.deleted",
        resource_type=RESOURCE,
        resource_id=contact.id,
        data={"id": contact.id},
    )


async def org_chart(session: AsyncSession, account_id: uuid.UUID) -> dict[str, Any]:
    """The account's reporting tree, from one query."""
    await accounts.get_account(session, account_id)
    contacts = list(
        await session.scalars(
            select(Contact)
            .where(Contact.account_id == account_id)
            .order_by(Contact.last_name, Contact.first_name, Contact.id)
        )
    )
    nodes: dict[uuid.UUID, dict[str, Any]] = {
        c.id: {
            "id": c.id,
            "name": full_name(c),
            "title": c.title,
            "department": c.department,
            "status": c.status,
            "reports_to_id": c.reports_to_id,
            "children": [],
        }
        for c in contacts
    }
    roots: list[dict[str, Any]] = []
    for contact in contacts:
        parent = nodes.get(contact.reports_to_id) if contact.reports_to_id else None
        siblings: list[dict[str, Any]] = parent["children"] if parent else roots
        siblings.append(nodes[contact.id])
    return {"account_id": account_id, "total_contacts": len(contacts), "roots": roots}


def _snapshot(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "account_id": contact.account_id,
        "name": full_name(contact),
        "title": contact.title,
        "status": contact.status,
        "version": contact.version,
    }


# --- influence map ------------------------------------------------------------------------


async def list_relationships(
    session: AsyncSession, contact_id: uuid.UUID
) -> list[ContactRelationship]:
    await get_contact(session, contact_id)
    return list(
        await session.scalars(
            select(ContactRelationship)
            .where(
                or_(
                    ContactRelationship.from_contact_id == contact_id,
                    ContactRelationship.to_contact_id == contact_id,
                )
            )
            .order_by(ContactRelationship.created_at, ContactRelationship.id)
        )
    )


async def _reports_to_path(session: AsyncSession, start: uuid.UUID, goal: uuid.UUID) -> bool:
    """Whether ``goal`` is reachable from ``start`` along reports_to relationships."""
    org = tenant_id(session)
    reach = select(literal(start, type_=Uuid()).label("id"), literal(0).label("depth")).cte(
        "reach", recursive=True
    )
    edge = aliased(ContactRelationship)
    reach = reach.union_all(
        select(edge.to_contact_id, reach.c.depth + 1).where(
            edge.organization_id == org,
            edge.kind == "reports_to",
            edge.from_contact_id == reach.c.id,
            reach.c.depth < MAX_CHAIN,
        )
    )
    found = await session.scalar(select(reach.c.id).where(reach.c.id == goal).limit(1))
    return found is not None


async def create_relationship(
    session: AsyncSession, contact_id: uuid.UUID, data: RelationshipCreate
) -> ContactRelationship:
    source = await get_contact(session, contact_id)
    target = await session.scalar(select(Contact).where(Contact.id == data.to_contact_id))
    if target is None or target.account_id != source.account_id or target.id == source.id:
        raise invalid_reference(
            "to_contact_id", data.to_contact_id, "another contact of the same account"
        )
    if data.kind == "reports_to":
        await lock_tenant_topic(session, tenant_id(session), "contacts.influence_map")
        if await _reports_to_path(session, target.id, source.id):
            raise RuleViolation(
                "The target already reports (directly or not) to this contact",
                code="relationship_cycle",
                unmet=[{"code": "relationship_cycle", "detail": "reports_to would loop"}],
            )
    existing = await session.scalar(
        select(ContactRelationship.id).where(
            ContactRelationship.from_contact_id == source.id,
            ContactRelationship.to_contact_id == target.id,
            ContactRelationship.kind == data.kind,
        )
    )
    if existing is not None:
        raise Conflict(
            "This relationship exists already",
            code="duplicate_relationship",
            extra={"existing_id": str(existing)},
        )
    relationship = ContactRelationship(
        id=new_id(),
        from_contact_id=source.id,
        to_contact_id=target.id,
        kind=data.kind,
        strength=data.strength,
        notes=data.notes,
    )
    session.add(relationship)
    await session.flush()
    return relationship


async def _get_relationship(
    session: AsyncSession, contact_id: uuid.UUID, relationship_id: uuid.UUID
) -> ContactRelationship:
    relationship = await session.scalar(
        select(ContactRelationship)
        .where(
            ContactRelationship.id == relationship_id,
            or_(
                ContactRelationship.from_contact_id == contact_id,
                ContactRelationship.to_contact_id == contact_id,
            ),
        )
        .with_for_update()
    )
    if relationship is None:
        raise NotFound("relationship")
    return relationship


async def update_relationship(
    session: AsyncSession,
    contact_id: uuid.UUID,
    relationship_id: uuid.UUID,
    data: RelationshipUpdate,
    expected_version: int | None,
) -> ContactRelationship:
    relationship = await _get_relationship(session, contact_id, relationship_id)
    check_version("relationship", relationship.version, expected_version)
    if "strength" in data.model_fields_set and data.strength is not None:
        relationship.strength = data.strength
    if "notes" in data.model_fields_set:
        relationship.notes = data.notes
    await session.flush()
    return relationship


async def delete_relationship(
    session: AsyncSession,
    contact_id: uuid.UUID,
    relationship_id: uuid.UUID,
    expected_version: int | None,
) -> None:
    relationship = await _get_relationship(session, contact_id, relationship_id)
    check_version("relationship", relationship.version, expected_version)
    await session.delete(relationship)
    await session.flush()


def _map(
    contacts: list[Contact],
    relationships: list[ContactRelationship],
    members: dict[uuid.UUID, OpportunityStakeholder],
) -> dict[str, Any]:
    ids = {c.id for c in contacts}
    nodes = []
    for c in contacts:
        member = members.get(c.id)
        nodes.append(
            {
                "id": c.id,
                "name": full_name(c),
                "title": c.title,
                "status": c.status,
                "roles": member.roles if member else [],
                "stance": member.stance if member else None,
                "influence": member.influence if member else None,
            }
        )
    edges: list[dict[str, Any]] = [
        {
            "id": None,
            "source": c.id,
            "target": c.reports_to_id,
            "kind": "reports_to",
            "strength": 5,
            "origin": "org_chart",
        }
        for c in contacts
        if c.reports_to_id in ids
    ]
    edges += [
        {
            "id": r.id,
            "source": r.from_contact_id,
            "target": r.to_contact_id,
            "kind": r.kind,
            "strength": r.strength,
            "origin": "relationship",
        }
        for r in relationships
        if r.from_contact_id in ids and r.to_contact_id in ids
    ]
    return {"nodes": nodes, "edges": edges}


async def _relationships_among(
    session: AsyncSession, contact_ids: list[uuid.UUID]
) -> list[ContactRelationship]:
    return list(
        await session.scalars(
            select(ContactRelationship).where(
                ContactRelationship.from_contact_id.in_(contact_ids),
                ContactRelationship.to_contact_id.in_(contact_ids),
            )
        )
    )


async def account_influence_map(session: AsyncSession, account_id: uuid.UUID) -> dict[str, Any]:
    await accounts.get_account(session, account_id)
    contacts = list(
        await session.scalars(
            select(Contact).where(Contact.account_id == account_id).order_by(Contact.id)
        )
    )
    relationships = await _relationships_among(session, [c.id for c in contacts])
    return {"account_id": account_id, **_map(contacts, relationships, {})}


async def opportunity_influence_map(
    session: AsyncSession, opportunity_id: uuid.UUID
) -> dict[str, Any]:
    members = await list_stakeholders(session, opportunity_id)
    by_contact = {m.contact_id: m for m in members}
    contacts = list(
        await session.scalars(
            select(Contact).where(Contact.id.in_(by_contact)).order_by(Contact.id)
        )
    )
    relationships = await _relationships_among(session, list(by_contact))
    return {"opportunity_id": opportunity_id, **_map(contacts, relationships, by_contact)}


# --- buying committee ---------------------------------------------------------------------


async def _opportunity(session: AsyncSession, opportunity_id: uuid.UUID) -> Opportunity:
    opportunity = await session.scalar(select(Opportunity).where(Opportunity.id == opportunity_id))
    if opportunity is None:
        raise NotFound("opportunity")
    return opportunity


async def list_stakeholders(
    session: AsyncSession, opportunity_id: uuid.UUID
) -> list[OpportunityStakeholder]:
    await _opportunity(session, opportunity_id)
    return list(
        await session.scalars(
            select(OpportunityStakeholder)
            .where(OpportunityStakeholder.opportunity_id == opportunity_id)
            .order_by(
                OpportunityStakeholder.influence.desc(),
                OpportunityStakeholder.created_at,
                OpportunityStakeholder.id,
            )
        )
    )


async def committee_roles(session: AsyncSession, opportunity_id: uuid.UUID) -> frozenset[str]:
    """Roles held on the committee by contacts still at the company (stage engine facts)."""
    rows = await session.scalars(
        select(func.unnest(OpportunityStakeholder.roles))
        .join(
            Contact,
            and_(
                Contact.organization_id == OpportunityStakeholder.organization_id,
                Contact.id == OpportunityStakeholder.contact_id,
            ),
        )
        .where(OpportunityStakeholder.opportunity_id == opportunity_id, Contact.status == "active")
    )
    return frozenset(rows)


async def _champions(session: AsyncSession, opportunity_id: uuid.UUID) -> set[uuid.UUID]:
    return set(
        await session.scalars(
            select(OpportunityStakeholder.contact_id).where(
                OpportunityStakeholder.opportunity_id == opportunity_id,
                OpportunityStakeholder.roles.contains(["champion"]),
            )
        )
    )


async def _emit_if_champion_changed(
    session: AsyncSession, opportunity_id: uuid.UUID, before: set[uuid.UUID]
) -> None:
    await session.flush()
    after = await _champions(session, opportunity_id)
    if after != before:
        outbox.emit(
            session,
            "opportunity.champion_changed",
            resource_type="opportunity",
            resource_id=opportunity_id,
            data={
                "opportunity_id": opportunity_id,
                "previous_champion_ids": sorted(before),
                "champion_ids": sorted(after),
                "champion_lost": bool(before - after),
            },
        )


async def add_stakeholder(
    session: AsyncSession, opportunity_id: uuid.UUID, data: StakeholderCreate
) -> OpportunityStakeholder:
    opportunity = await _opportunity(session, opportunity_id)
    contact = await session.scalar(select(Contact).where(Contact.id == data.contact_id))
    if contact is None:
        raise invalid_reference("contact_id", data.contact_id, "a contact")
    if not await accounts.same_tree(session, opportunity.account_id, contact.account_id):
        raise invalid_reference(
            "contact_id", data.contact_id, "a contact of the deal's account or its hierarchy"
        )
    existing = await session.scalar(
        select(OpportunityStakeholder.id).where(
            OpportunityStakeholder.opportunity_id == opportunity_id,
            OpportunityStakeholder.contact_id == contact.id,
        )
    )
    if existing is not None:
        raise Conflict(
            "The contact is on the committee already",
            code="duplicate_stakeholder",
            extra={"existing_id": str(existing)},
        )
    before = await _champions(session, opportunity_id)
    member = OpportunityStakeholder(
        id=new_id(),
        opportunity_id=opportunity_id,
        contact_id=contact.id,
        roles=sorted(set(data.roles)),
        influence=data.influence,
        stance=data.stance,
        notes=data.notes,
    )
    session.add(member)
    await _emit_if_champion_changed(session, opportunity_id, before)
    return member


async def _get_stakeholder(
    session: AsyncSession, opportunity_id: uuid.UUID, stakeholder_id: uuid.UUID
) -> OpportunityStakeholder:
    member = await session.scalar(
        select(OpportunityStakeholder)
        .where(
            OpportunityStakeholder.id == stakeholder_id,
            OpportunityStakeholder.opportunity_id == opportunity_id,
        )
        .with_for_update()
    )
    if member is None:
        raise NotFound("stakeholder")
    return member


async def update_stakeholder(
    session: AsyncSession,
    opportunity_id: uuid.UUID,
    stakeholder_id: uuid.UUID,
    data: StakeholderUpdate,
    expected_version: int | None,
) -> OpportunityStakeholder:
    member = await _get_stakeholder(session, opportunity_id, stakeholder_id)
    check_version("stakeholder", member.version, expected_version)
    before = await _champions(session, opportunity_id)
    sent = data.model_fields_set
    if "roles" in sent and data.roles is not None:
        member.roles = sorted(set(data.roles))
    if "influence" in sent and data.influence is not None:
        member.influence = data.influence
    if "stance" in sent and data.stance is not None:
        member.stance = data.stance
    if "notes" in sent:
        member.notes = data.notes
    await _emit_if_champion_changed(session, opportunity_id, before)
    return member


async def remove_stakeholder(
    session: AsyncSession,
    opportunity_id: uuid.UUID,
    stakeholder_id: uuid.UUID,
    expected_version: int | None,
) -> None:
    member = await _get_stakeholder(session, opportunity_id, stakeholder_id)
    check_version("stakeholder", member.version, expected_version)
    before = await _champions(session, opportunity_id)
    await session.delete(member)
    await _emit_if_champion_changed(session, opportunity_id, before)


@dataclass(frozen=True, slots=True)
class CommitteeView:
    members: list[
        tuple[OpportunityStakeholder, Contact, health.Member, health.MemberHealth, datetime | None]
    ]
    committee: health.CommitteeHealth


async def committee(
    session: AsyncSession, opportunity_id: uuid.UUID, now: datetime | None = None
) -> CommitteeView:
    """Members with their touchpoint statistics (one aggregate query) and health."""
    await _opportunity(session, opportunity_id)
    now = now or utcnow()
    touches = (
        select(
            ActivityParticipant.contact_id,
            func.max(ActivityParticipant.occurred_at).label("last_touch"),
            func.count()
            .filter(
                ActivityParticipant.occurred_at
                >= now - timedelta(days=health.FREQUENCY_WINDOW_DAYS)
            )
            .label("touches_90d"),
        )
        .join(
            Activity,
            and_(
                Activity.organization_id == ActivityParticipant.organization_id,
                Activity.id == ActivityParticipant.activity_id,
            ),
        )
        .where(
            Activity.kind != "note",  # a note is not a touchpoint with the person
            ActivityParticipant.contact_id.in_(
                select(OpportunityStakeholder.contact_id).where(
                    OpportunityStakeholder.opportunity_id == opportunity_id
                )
            ),
            ActivityParticipant.occurred_at <= now,
        )
        .group_by(ActivityParticipant.contact_id)
        .subquery()
    )
    rows = (
        await session.execute(
            select(OpportunityStakeholder, Contact, touches.c.last_touch, touches.c.touches_90d)
            .join(
                Contact,
                and_(
                    Contact.organization_id == OpportunityStakeholder.organization_id,
                    Contact.id == OpportunityStakeholder.contact_id,
                ),
            )
            .outerjoin(touches, touches.c.contact_id == OpportunityStakeholder.contact_id)
            .where(OpportunityStakeholder.opportunity_id == opportunity_id)
            .order_by(
                OpportunityStakeholder.influence.desc(),
                OpportunityStakeholder.created_at,
                OpportunityStakeholder.id,
            )
        )
    ).all()
    members = []
    for member, contact, last_touch, touches_90d in rows:
        days = (now - last_touch).total_seconds() / 86400 if last_touch else None
        rule_member = health.Member(
            roles=tuple(member.roles),
            influence=member.influence,
            stance=member.stance,
            days_since_touch=days,
            touches_90d=touches_90d or 0,
            active=contact.status == "active",
        )
        members.append(
            (member, contact, rule_member, health.member_health(rule_member), last_touch)
        )
    return CommitteeView(members, health.committee_health([m[2] for m in members]))
