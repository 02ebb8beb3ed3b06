from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status

from app.approvals import policy, service
from app.approvals.schemas import (
    ApprovalOut,
    ApproveIn,
    DelegationIn,
    DelegationOut,
    PolicyCreate,
    PolicyOut,
    PolicyUpdate,
    RejectIn,
    StepOut,
)
from app.core.auth import Principal
from app.core.deps import ADMIN, IfMatch, PageDep, SessionDep, require, set_etag
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.models import ApprovalRequest, ApprovalStep

router = APIRouter(route_class=DealbaseRoute, responses=COMMON_ERRORS)
Reader = Annotated[Principal, Depends(require("approvals:read"))]
Writer = Annotated[Principal, Depends(require("approvals:write"))]
Admin = Annotated[Principal, Depends(require("approvals:write", roles=ADMIN))]


def out(request: ApprovalRequest, steps: list[ApprovalStep]) -> ApprovalOut:
    return ApprovalOut.model_validate(
        {
            **{f: getattr(request, f) for f in ApprovalOut.model_fields if f != "steps"},
            "steps": [StepOut.model_validate(s) for s in steps],
        }
    )


@router.get(
    "/approvals",
    tags=["approvals"],
    operation_id="approvals-list",
    summary="Approval requests; `assignee=me` is your inbox",
)
async def list_approvals(
    principal: Reader,
    session: SessionDep,
    page: PageDep,
    assignee: Annotated[
        Literal["me"] | None,
        Query(
            description="`me`: pending requests whose current step you (or someone who "
            "delegated to you) decide"
        ),
    ] = None,
    status: Literal["pending", "approved", "rejected", "recalled", "expired", "superseded"]
    | None = None,
    quote_id: uuid.UUID | None = None,
) -> ListEnvelope[ApprovalOut]:
    rows, next_cursor = await service.list_requests(
        session,
        principal,
        assignee_me=assignee == "me",
        status=status,
        quote_id=quote_id,
        limit=page.limit,
        cursor=page.cursor,
    )
    steps = await service.steps_of(session, [r.id for r in rows])
    return ListEnvelope(data=[out(r, steps[r.id]) for r in rows], next_cursor=next_cursor)


@router.get(
    "/approvals/{request_id}",
    tags=["approvals"],
    operation_id="approvals-get",
    summary="An approval request with its steps and decisions",
    responses=errors(404),
)
async def get_approval(
    request_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> ApprovalOut:
    request = await service.get_request(session, request_id)
    set_etag(response, request.version)
    return out(request, (await service.steps_of(session, [request.id]))[request.id])


async def _respond(
    session: SessionDep, request: ApprovalRequest, response: Response
) -> ApprovalOut:
    set_etag(response, request.version)
    return out(request, (await service.steps_of(session, [request.id]))[request.id])


@router.post(
    "/approvals/{request_id}/approve",
    tags=["approvals"],
    operation_id="approvals-approve",
    summary="Approve the current step",
    description="By an approver of the step or their delegate; never the requester (403).",
    responses=errors(404, 409, 422),
)
async def approve(
    request_id: uuid.UUID,
    body: ApproveIn,
    principal: Writer,
    session: SessionDep,
    response: Response,
) -> ApprovalOut:
    request = await service.approve(session, principal, request_id, body.comment)
    return await _respond(session, request, response)


@router.post(
    "/approvals/{request_id}/reject",
    tags=["approvals"],
    operation_id="approvals-reject",
    summary="Reject (a reason code and text are required); the quote returns to draft",
    responses=errors(404, 409, 422),
)
async def reject(
    request_id: uuid.UUID,
    body: RejectIn,
    principal: Writer,
    session: SessionDep,
    response: Response,
) -> ApprovalOut:
    request = await service.reject(
        session, principal, request_id, body.reason_code, body.reason, body.comment
    )
    return await _respond(session, request, response)


@router.get(
    "/approval-policies",
    tags=["approvals"],
    operation_id="approvals-list-policies",
    summary="Approval policies (the active one applies; none: the default)",
    description=policy.__doc__ or "",
)
async def list_policies(_: Reader, session: SessionDep) -> ListEnvelope[PolicyOut]:
    rows = await service.list_policies(session)
    return ListEnvelope(data=[PolicyOut.model_validate(r) for r in rows], next_cursor=None)


@router.post(
    "/approval-policies",
    tags=["approvals"],
    operation_id="approvals-create-policy",
    summary="Create an approval policy (admins)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_policy(
    body: PolicyCreate, _: Admin, session: SessionDep, response: Response
) -> PolicyOut:
    row = await service.create_policy(
        session, body.name, body.rules, body.expires_after_days, body.active
    )
    set_etag(response, row.version)
    return PolicyOut.model_validate(row)


@router.patch(
    "/approval-policies/{policy_id}",
    tags=["approvals"],
    operation_id="approvals-update-policy",
    summary="Change a policy (admins)",
    responses=errors(404, 409, 412, 422),
)
async def update_policy(
    policy_id: uuid.UUID,
    body: PolicyUpdate,
    _: Admin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> PolicyOut:
    row = await service.update_policy(
        session, policy_id, body.model_dump(include=body.model_fields_set), expected
    )
    set_etag(response, row.version)
    return PolicyOut.model_validate(row)


@router.get(
    "/approval-delegations",
    tags=["approvals"],
    operation_id="approvals-list-delegations",
    summary="Delegations from and to you (all of them for admins)",
)
async def list_delegations(principal: Reader, session: SessionDep) -> ListEnvelope[DelegationOut]:
    rows = await service.list_delegations(session, principal)
    return ListEnvelope(data=[DelegationOut.model_validate(r) for r in rows], next_cursor=None)


@router.post(
    "/approval-delegations",
    tags=["approvals"],
    operation_id="approvals-create-delegation",
    summary="Let someone decide your approvals for a period",
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def create_delegation(
    body: DelegationIn, principal: Writer, session: SessionDep
) -> DelegationOut:
    row = await service.create_delegation(
        session, principal, body.user_id, body.delegate_id, body.starts_at, body.ends_at
    )
    return DelegationOut.model_validate(row)


@router.delete(
    "/approval-delegations/{delegation_id}",
    tags=["approvals"],
    operation_id="approvals-delete-delegation",
    summary="End a delegation",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404),
)
async def delete_delegation(
    delegation_id: uuid.UUID, principal: Writer, session: SessionDep
) -> Response:
    await service.delete_delegation(session, principal, delegation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
