from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.campaigns import service
from app.campaigns.schemas import (
    BulkAddIn,
    BulkAddOut,
    CampaignCreate,
    CampaignOut,
    CampaignStatus,
    CampaignType,
    CampaignUpdate,
    InfluenceOut,
    MemberCreate,
    MemberOut,
    MemberStatus,
    MemberUpdate,
)
from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.errors import BadRequest
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.models import Campaign

router = APIRouter(
    prefix="/campaigns", tags=["campaigns"], route_class=DealbaseRoute, responses=COMMON_ERRORS
)
Reader = Annotated[Principal, Depends(require("campaigns:read"))]
Writer = Annotated[Principal, Depends(require("campaigns:write"))]
# Deleting a campaign is for admins and managers.
Manager = Annotated[
    Principal, Depends(require("campaigns:write", roles=frozenset({"admin", "manager"})))
]
SORT_FIELDS = "created_at, name, start_date, actual_cost"


def _respond(campaign: Campaign, response: Response) -> CampaignOut:
    set_etag(response, campaign.version)
    return CampaignOut.model_validate(campaign)


@router.get("", operation_id="campaigns-list", summary="List campaigns")
async def list_campaigns(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    type: CampaignType | None = None,
    status: CampaignStatus | None = None,
    sort: Annotated[str | None, sort_query(SORT_FIELDS, "-created_at")] = None,
) -> ListEnvelope[CampaignOut]:
    rows, next_cursor = await service.list_campaigns(
        session, type=type, status=status, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[CampaignOut.model_validate(c) for c in rows], next_cursor=next_cursor)


@router.post(
    "",
    operation_id="campaigns-create",
    summary="Create a campaign",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_campaign(
    body: CampaignCreate, _: Writer, session: SessionDep, response: Response
) -> CampaignOut:
    campaign = await service.create_campaign(session, body)
    response.headers["Location"] = f"/v1/campaigns/{campaign.id}"
    return _respond(campaign, response)


@router.get(
    "/{campaign_id}", operation_id="campaigns-get", summary="Get a campaign", responses=errors(404)
)
async def get_campaign(
    campaign_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> CampaignOut:
    return _respond(await service.get_campaign(session, campaign_id), response)


@router.patch(
    "/{campaign_id}",
    operation_id="campaigns-update",
    summary="Change a campaign",
    responses=errors(404, 409, 412, 422),
)
async def update_campaign(
    campaign_id: uuid.UUID,
    body: CampaignUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> CampaignOut:
    campaign = await service.update_campaign(session, campaign_id, body, expected)
    return _respond(campaign, response)


@router.delete(
    "/{campaign_id}",
    operation_id="campaigns-delete",
    summary="Delete an unused campaign (admins and managers)",
    description="Refused (409 `campaign_in_use`) while the campaign has members or "
    "sourced leads: they are attribution history.",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409, 412),
)
async def delete_campaign(
    campaign_id: uuid.UUID, _: Manager, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_campaign(session, campaign_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{campaign_id}/members",
    operation_id="campaigns-list-members",
    summary="A campaign's members, oldest first",
    responses=errors(404),
)
async def list_members(
    campaign_id: uuid.UUID,
    _: Reader,
    session: SessionDep,
    page: PageDep,
    status: MemberStatus | None = None,
) -> ListEnvelope[MemberOut]:
    rows, next_cursor = await service.list_members(
        session, campaign_id, status=status, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[MemberOut.model_validate(m) for m in rows], next_cursor=next_cursor)


@router.post(
    "/{campaign_id}/members",
    operation_id="campaigns-add-member",
    summary="Add a lead or a contact to a campaign",
    status_code=status.HTTP_201_CREATED,
    responses=errors(404, 409, 422),
)
async def add_member(
    campaign_id: uuid.UUID, body: MemberCreate, _: Writer, session: SessionDep, response: Response
) -> MemberOut:
    member = await service.add_member(session, campaign_id, body)
    set_etag(response, member.version)
    return MemberOut.model_validate(member)


@router.post(
    "/{campaign_id}/members/bulk",
    operation_id="campaigns-bulk-add-members",
    summary="Add every lead and/or contact matching a filter",
    description="Records already in the campaign are counted, not added again: a second "
    "run adds nothing.",
    responses=errors(404, 422),
)
async def bulk_add(
    campaign_id: uuid.UUID, body: BulkAddIn, _: Writer, session: SessionDep
) -> BulkAddOut:
    added, already = await service.bulk_add(session, campaign_id, body)
    return BulkAddOut(added=added, already_members=already)


@router.patch(
    "/{campaign_id}/members/{member_id}",
    operation_id="campaigns-update-member",
    summary="Change a member's status",
    description="The first move to responded, attended or registered stamps `responded_at` "
    "(the attribution touch); later changes keep it.",
    responses=errors(404, 412, 422),
)
async def update_member(
    campaign_id: uuid.UUID,
    member_id: uuid.UUID,
    body: MemberUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> MemberOut:
    member = await service.update_member(session, campaign_id, member_id, body, expected)
    set_etag(response, member.version)
    return MemberOut.model_validate(member)


@router.delete(
    "/{campaign_id}/members/{member_id}",
    operation_id="campaigns-remove-member",
    summary="Remove a member from a campaign",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def remove_member(
    campaign_id: uuid.UUID, member_id: uuid.UUID, _: Writer, session: SessionDep, expected: IfMatch
) -> Response:
    await service.remove_member(session, campaign_id, member_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{campaign_id}/influence",
    operation_id="campaigns-influence",
    summary="Leads, deals and won revenue attributed to a campaign",
    description="Sourced: deals converted from the campaign's leads (`leads.campaign_id`). "
    "Influenced: sourced deals and deals with a touch of the campaign before they closed "
    "(a response of the deal's lead or of a buying-committee contact). First/last touch: "
    "each won deal's revenue goes wholly to the campaign with its earliest/latest touch. "
    "`from`/`to` (inclusive days) bound lead and deal creation for the counts and the close "
    "date for revenue. Amounts are in the corporate currency at the close day's rate.",
    responses=errors(404),
)
async def influence(
    campaign_id: uuid.UUID,
    _: Reader,
    session: SessionDep,
    from_date: Annotated[date | None, Query(alias="from", description="First day")] = None,
    to_date: Annotated[date | None, Query(alias="to", description="Last day, inclusive")] = None,
) -> InfluenceOut:
    if from_date is not None and to_date is not None and to_date < from_date:
        raise BadRequest(
            "to is before from",
            code="invalid_parameter",
            errors=[{"field": "query.to", "code": "before_from"}],
        )
    result = await service.influence(session, campaign_id, from_date, to_date)
    return InfluenceOut.model_validate(result)
