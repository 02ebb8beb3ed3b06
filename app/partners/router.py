from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.core.auth import Principal
from app.core.deps import ADMIN, IfMatch, PageDep, SessionDep, require, set_etag
from app.core.errors import BadRequest
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.partners import service
from app.partners.schemas import (
    CommissionOut,
    JointPipelineItem,
    PartnerCreate,
    PartnerKeyCreate,
    PartnerKeyOut,
    PartnerOut,
    PartnerUpdate,
    RegistrationCreate,
    RegistrationOut,
    RegistrationStatus,
    RejectIn,
)

router = APIRouter(route_class=DealbaseRoute, responses=COMMON_ERRORS)
Reader = Annotated[Principal, Depends(require("partners:read"))]
Admin = Annotated[Principal, Depends(require("partners:write", roles=ADMIN))]
Decider = Annotated[
    Principal, Depends(require("partners:write", roles=frozenset({"admin", "manager"})))
]
# Partner keys reach these (and only these, with webhooks) operations.
PartnerReader = Annotated[Principal, Depends(require("partners:read", partners=True))]
PartnerWriter = Annotated[Principal, Depends(require("partners:write", partners=True))]


@router.get(
    "/partners", tags=["partners"], operation_id="partners-list", summary="List channel partners"
)
async def list_partners(_: Reader, session: SessionDep) -> ListEnvelope[PartnerOut]:
    rows = await service.list_partners(session)
    return ListEnvelope(data=[PartnerOut.model_validate(p) for p in rows], next_cursor=None)


@router.post(
    "/partners",
    tags=["partners"],
    operation_id="partners-create",
    summary="Add a partner (admins)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_partner(
    body: PartnerCreate, _: Admin, session: SessionDep, response: Response
) -> PartnerOut:
    partner = await service.create_partner(session, body)
    set_etag(response, partner.version)
    return PartnerOut.model_validate(partner)


@router.get(
    "/partners/{partner_id}",
    tags=["partners"],
    operation_id="partners-get",
    summary="Get a partner",
    responses=errors(404),
)
async def get_partner(
    partner_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> PartnerOut:
    partner = await service.get_partner(session, partner_id)
    set_etag(response, partner.version)
    return PartnerOut.model_validate(partner)


@router.patch(
    "/partners/{partner_id}",
    tags=["partners"],
    operation_id="partners-update",
    summary="Change a partner (admins)",
    responses=errors(404, 409, 412, 422),
)
async def update_partner(
    partner_id: uuid.UUID,
    body: PartnerUpdate,
    _: Admin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> PartnerOut:
    partner = await service.update_partner(session, partner_id, body, expected)
    set_etag(response, partner.version)
    return PartnerOut.model_validate(partner)


@router.post(
    "/partners/{partner_id}/api-keys",
    tags=["partners"],
    operation_id="partners-create-key",
    summary="Issue a partner API key (the token is shown once; admins)",
    description="A partner key reaches only /v1/deal-registrations (its own), "
    "/v1/partner/pipeline and /v1/partner/webhook-endpoints.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(404, 409, 422),
)
async def create_key(
    partner_id: uuid.UUID, body: PartnerKeyCreate, principal: Admin, session: SessionDep
) -> PartnerKeyOut:
    key_id, token = await service.create_partner_key(session, principal, partner_id, body.name)
    return PartnerKeyOut(id=key_id, partner_id=partner_id, token=token)


@router.get(
    "/partners/{partner_id}/commissions",
    tags=["partners"],
    operation_id="partners-commissions",
    summary="Commission on the partner's deals won in a period",
    responses=errors(404),
)
async def commissions(
    partner_id: uuid.UUID,
    _: Reader,
    session: SessionDep,
    period: Annotated[str, Query(description="YYYY, YYYY-Qn or YYYY-MM", examples=["2026-Q3"])],
) -> CommissionOut:
    return CommissionOut.model_validate(await service.commissions(session, partner_id, period))


@router.get(
    "/deal-registrations",
    tags=["partners"],
    operation_id="partners-list-registrations",
    summary="Deal registrations (a partner key sees its own)",
)
async def list_registrations(
    principal: PartnerReader,
    session: SessionDep,
    page: PageDep,
    status: RegistrationStatus | None = None,
    partner_id: uuid.UUID | None = None,
) -> ListEnvelope[RegistrationOut]:
    rows, next_cursor = await service.list_registrations(
        session,
        principal,
        status=status,
        partner_id=partner_id,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(
        data=[RegistrationOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/deal-registrations",
    tags=["partners"],
    operation_id="partners-register-deal",
    summary="Register a deal (a partner key, or a user on a partner's behalf)",
    description="The conflict check runs on submission and is stored: matching "
    "accounts (domain, normalised name), their open deals, and other partners' "
    "active registrations of the same prospect, each with the reason.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def register(
    body: RegistrationCreate, principal: PartnerWriter, session: SessionDep, response: Response
) -> RegistrationOut:
    registration = await service.submit(session, principal, body)
    set_etag(response, registration.version)
    response.headers["Location"] = f"/v1/deal-registrations/{registration.id}"
    return RegistrationOut.model_validate(registration)


@router.get(
    "/deal-registrations/{registration_id}",
    tags=["partners"],
    operation_id="partners-get-registration",
    summary="Get a deal registration",
    responses=errors(404),
)
async def get_registration(
    registration_id: uuid.UUID, principal: PartnerReader, session: SessionDep, response: Response
) -> RegistrationOut:
    registration = await service.get_registration(session, principal, registration_id)
    set_etag(response, registration.version)
    return RegistrationOut.model_validate(registration)


@router.post(
    "/deal-registrations/{registration_id}/approve",
    tags=["partners"],
    operation_id="partners-approve-registration",
    summary="Approve: open the deal with the partner and protect the prospect",
    description="Creates or links the account, opens the deal (source partner, the "
    "partner attached, a default commission split) and protects the prospect for "
    "the org's `partner_protection_days` (default 90). Refused (409) while another "
    "partner's registration protects it.",
    responses=errors(404, 409, 412),
)
async def approve(
    registration_id: uuid.UUID,
    principal: Decider,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> RegistrationOut:
    registration = await service.approve(session, principal, registration_id, expected)
    set_etag(response, registration.version)
    return RegistrationOut.model_validate(registration)


@router.post(
    "/deal-registrations/{registration_id}/reject",
    tags=["partners"],
    operation_id="partners-reject-registration",
    summary="Reject a registration (a reason is required)",
    responses=errors(404, 409, 412, 422),
)
async def reject(
    registration_id: uuid.UUID,
    body: RejectIn,
    principal: Decider,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> RegistrationOut:
    registration = await service.reject(session, principal, registration_id, body.reason, expected)
    set_etag(response, registration.version)
    return RegistrationOut.model_validate(registration)


@router.get(
    "/partner/pipeline",
    tags=["partners"],
    operation_id="partners-joint-pipeline",
    summary="A partner's registered deals: stage and amount, nothing internal",
    responses=errors(404),
)
async def joint_pipeline(
    principal: PartnerReader,
    session: SessionDep,
    partner_id: Annotated[
        uuid.UUID | None, Query(description="For internal users; a partner key sees its own")
    ] = None,
) -> ListEnvelope[JointPipelineItem]:
    target = principal.partner_id or partner_id
    if target is None:
        raise BadRequest(
            "Name the partner (partner_id)",
            code="invalid_parameter",
            errors=[{"field": "query.partner_id", "code": "missing"}],
        )
    if principal.partner_id is None:
        await service.get_partner(session, target)
    items = await service.joint_pipeline(session, target)
    return ListEnvelope(data=[JointPipelineItem.model_validate(i) for i in items], next_cursor=None)
