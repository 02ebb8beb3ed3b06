from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.stakeholders import health, service
from app.stakeholders.schemas import (
    CommitteeHealthOut,
    CommitteeMemberOut,
    CommitteeOut,
    ContactCreate,
    ContactOut,
    ContactStatus,
    ContactStatusChange,
    ContactUpdate,
    InfluenceMap,
    MemberHealthOut,
    OrgChart,
    RelationshipCreate,
    RelationshipOut,
    RelationshipUpdate,
    Seniority,
    StakeholderCreate,
    StakeholderOut,
    StakeholderUpdate,
)

router = APIRouter(tags=["stakeholders"], route_class=DealbaseRoute, responses=COMMON_ERRORS)
Reader = Annotated[Principal, Depends(require("stakeholders:read"))]
Writer = Annotated[Principal, Depends(require("stakeholders:write"))]


# --- contacts -----------------------------------------------------------------------------


@router.get("/contacts", operation_id="stakeholders-list-contacts", summary="List contacts")
async def list_contacts(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[
        str | None, sort_query("created_at, updated_at, last_name", "-created_at")
    ] = None,
    account_id: uuid.UUID | None = None,
    email: Annotated[str | None, Query(description="Exact, case-insensitive")] = None,
    status: ContactStatus | None = None,
    owner_id: uuid.UUID | None = None,
    seniority: Seniority | None = None,
    reports_to_id: uuid.UUID | None = None,
    updated_since: datetime | None = None,
) -> ListEnvelope[ContactOut]:
    filters = service.ContactFilters(
        account_id, email, status, owner_id, seniority, reports_to_id, updated_since
    )
    rows, next_cursor = await service.list_contacts(
        session, filters, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[ContactOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/contacts",
    operation_id="stakeholders-create-contact",
    summary="Create a contact",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_contact(
    body: ContactCreate, principal: Writer, session: SessionDep, response: Response
) -> ContactOut:
    contact = await service.create_contact(session, principal.user_id, body)
    set_etag(response, contact.version)
    response.headers["Location"] = f"/v1/contacts/{contact.id}"
    return ContactOut.model_validate(contact)


@router.get(
    "/contacts/{contact_id}",
    operation_id="stakeholders-get-contact",
    summary="Get a contact",
    responses=errors(404),
)
async def get_contact(
    contact_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> ContactOut:
    contact = await service.get_contact(session, contact_id)
    set_etag(response, contact.version)
    return ContactOut.model_validate(contact)


@router.patch(
    "/contacts/{contact_id}",
    operation_id="stakeholders-update-contact",
    summary="Update a contact",
    description="Status changes through the status action.",
    responses=errors(404, 409, 412, 422),
)
async def update_contact(
    contact_id: uuid.UUID,
    body: ContactUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> ContactOut:
    contact = await service.update_contact(session, contact_id, body, expected)
    set_etag(response, contact.version)
    return ContactOut.model_validate(contact)


@router.post(
    "/contacts/{contact_id}/status",
    operation_id="stakeholders-change-contact-status",
    summary="Mark a contact as left the company (or back)",
    description="Leaving emits `opportunity.stakeholder_left` for every open deal whose "
    "buying committee the contact is on.",
    responses=errors(404, 412, 422),
)
async def change_contact_status(
    contact_id: uuid.UUID,
    body: ContactStatusChange,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> ContactOut:
    contact = await service.change_status(session, contact_id, body.status, body.at, expected)
    set_etag(response, contact.version)
    return ContactOut.model_validate(contact)


@router.delete(
    "/contacts/{contact_id}",
    operation_id="stakeholders-delete-contact",
    summary="Delete a contact (soft)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409, 412),
)
async def delete_contact(
    contact_id: uuid.UUID, _: Writer, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_contact(session, contact_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/accounts/{account_id}/org-chart",
    operation_id="stakeholders-org-chart",
    summary="The account's reporting tree",
    responses=errors(404),
)
async def org_chart(account_id: uuid.UUID, _: Reader, session: SessionDep) -> OrgChart:
    return OrgChart.model_validate(await service.org_chart(session, account_id))


# --- influence map ------------------------------------------------------------------------


@router.get(
    "/contacts/{contact_id}/relationships",
    operation_id="stakeholders-list-relationships",
    summary="Influence-map edges from and to a contact",
    responses=errors(404),
)
async def list_relationships(
    contact_id: uuid.UUID, _: Reader, session: SessionDep
) -> ListEnvelope[RelationshipOut]:
    rows = await service.list_relationships(session, contact_id)
    return ListEnvelope(data=[RelationshipOut.model_validate(r) for r in rows], next_cursor=None)


@router.post(
    "/contacts/{contact_id}/relationships",
    operation_id="stakeholders-create-relationship",
    summary="Add an edge: this contact influences/trusts/blocks/reports to another",
    status_code=status.HTTP_201_CREATED,
    responses=errors(404, 409, 422),
)
async def create_relationship(
    contact_id: uuid.UUID,
    body: RelationshipCreate,
    _: Writer,
    session: SessionDep,
    response: Response,
) -> RelationshipOut:
    relationship = await service.create_relationship(session, contact_id, body)
    set_etag(response, relationship.version)
    return RelationshipOut.model_validate(relationship)


@router.patch(
    "/contacts/{contact_id}/relationships/{relationship_id}",
    operation_id="stakeholders-update-relationship",
    summary="Change an edge's strength or notes",
    responses=errors(404, 412, 422),
)
async def update_relationship(
    contact_id: uuid.UUID,
    relationship_id: uuid.UUID,
    body: RelationshipUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> RelationshipOut:
    relationship = await service.update_relationship(
        session, contact_id, relationship_id, body, expected
    )
    set_etag(response, relationship.version)
    return RelationshipOut.model_validate(relationship)


@router.delete(
    "/contacts/{contact_id}/relationships/{relationship_id}",
    operation_id="stakeholders-delete-relationship",
    summary="Remove an edge",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_relationship(
    contact_id: uuid.UUID,
    relationship_id: uuid.UUID,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
) -> Response:
    await service.delete_relationship(session, contact_id, relationship_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/accounts/{account_id}/influence-map",
    operation_id="stakeholders-account-influence-map",
    summary="Contacts and their relationships as a graph",
    responses=errors(404),
)
async def account_influence_map(
    account_id: uuid.UUID, _: Reader, session: SessionDep
) -> InfluenceMap:
    return InfluenceMap.model_validate(await service.account_influence_map(session, account_id))


@router.get(
    "/opportunities/{opportunity_id}/influence-map",
    operation_id="stakeholders-opportunity-influence-map",
    summary="The buying committee and the relationships among its members",
    responses=errors(404),
)
async def opportunity_influence_map(
    opportunity_id: uuid.UUID, _: Reader, session: SessionDep
) -> InfluenceMap:
    return InfluenceMap.model_validate(
        await service.opportunity_influence_map(session, opportunity_id)
    )


# --- buying committee ---------------------------------------------------------------------


@router.get(
    "/opportunities/{opportunity_id}/stakeholders",
    operation_id="stakeholders-list",
    summary="The deal's buying committee",
    responses=errors(404),
)
async def list_stakeholders(
    opportunity_id: uuid.UUID, _: Reader, session: SessionDep
) -> ListEnvelope[StakeholderOut]:
    rows = await service.list_stakeholders(session, opportunity_id)
    return ListEnvelope(data=[StakeholderOut.model_validate(r) for r in rows], next_cursor=None)


@router.post(
    "/opportunities/{opportunity_id}/stakeholders",
    operation_id="stakeholders-add",
    summary="Add a contact to the buying committee",
    description="The contact must belong to the deal's account or its hierarchy. A change of "
    "champion emits `opportunity.champion_changed`.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(404, 409, 422),
)
async def add_stakeholder(
    opportunity_id: uuid.UUID,
    body: StakeholderCreate,
    _: Writer,
    session: SessionDep,
    response: Response,
) -> StakeholderOut:
    member = await service.add_stakeholder(session, opportunity_id, body)
    set_etag(response, member.version)
    return StakeholderOut.model_validate(member)


@router.patch(
    "/opportunities/{opportunity_id}/stakeholders/{stakeholder_id}",
    operation_id="stakeholders-update",
    summary="Change a member's roles, influence or stance",
    responses=errors(404, 412, 422),
)
async def update_stakeholder(
    opportunity_id: uuid.UUID,
    stakeholder_id: uuid.UUID,
    body: StakeholderUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> StakeholderOut:
    member = await service.update_stakeholder(
        session, opportunity_id, stakeholder_id, body, expected
    )
    set_etag(response, member.version)
    return StakeholderOut.model_validate(member)


@router.delete(
    "/opportunities/{opportunity_id}/stakeholders/{stakeholder_id}",
    operation_id="stakeholders-remove",
    summary="Remove a member from the committee",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def remove_stakeholder(
    opportunity_id: uuid.UUID,
    stakeholder_id: uuid.UUID,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
) -> Response:
    await service.remove_stakeholder(session, opportunity_id, stakeholder_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/opportunities/{opportunity_id}/committee",
    operation_id="stakeholders-committee",
    summary="The committee with relationship health, coverage and gaps",
    description=health.__doc__ or "",
    responses=errors(404),
)
async def get_committee(opportunity_id: uuid.UUID, _: Reader, session: SessionDep) -> CommitteeOut:
    view = await service.committee(session, opportunity_id)
    members = [
        CommitteeMemberOut(
            **StakeholderOut.model_validate(member).model_dump(),
            contact_name=service.full_name(contact),
            contact_title=contact.title,
            contact_status=contact.status,
            health=MemberHealthOut(
                score=scores.score,
                recency=scores.recency,
                frequency=scores.frequency,
                stance=scores.stance,
                last_touch_at=last_touch,
                touches_90d=rule_member.touches_90d,
                engaged_30d=rule_member.engaged_30d,
            ),
        )
        for member, contact, rule_member, scores, last_touch in view.members
    ]
    c = view.committee
    return CommitteeOut(
        opportunity_id=opportunity_id,
        members=members,
        committee_health=CommitteeHealthOut(
            score=c.score,
            member_average=c.member_average,
            coverage=c.coverage,
            engaged_share=c.engaged_share,
            key_roles_present=c.key_roles_present,
        ),
        gaps=c.gaps,
        formula=" ".join((health.__doc__ or "").split()),
    )
