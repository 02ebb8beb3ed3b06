from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.accounts import service
from app.accounts.schemas import (
    AccountCreate,
    AccountHierarchy,
    AccountOut,
    AccountRollup,
    AccountUpdate,
    Lifecycle,
    LifecycleChange,
    Segment,
)
from app.audit import service as audit_service
from app.audit.schemas import FieldChangeOut
from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors

router = APIRouter(
    prefix="/accounts", tags=["accounts"], route_class=DealbaseRoute, responses=COMMON_ERRORS
)
Reader = Annotated[Principal, Depends(require("accounts:read"))]
Writer = Annotated[Principal, Depends(require("accounts:write"))]


@router.get("", operation_id="accounts-list", summary="List accounts")
async def list_accounts(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[
        str | None,
        sort_query("created_at, updated_at, name, annual_revenue, employee_count", "-created_at"),
    ] = None,
    name: Annotated[str | None, Query(description="Case-insensitive substring")] = None,
    domain: str | None = None,
    industry: str | None = None,
    segment: Segment | None = None,
    lifecycle: Lifecycle | None = None,
    country: str | None = None,
    owner_id: uuid.UUID | None = None,
    parent_account_id: uuid.UUID | None = None,
    territory_id: uuid.UUID | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    updated_since: datetime | None = None,
) -> ListEnvelope[AccountOut]:
    filters = service.AccountFilters(
        name=name,
        domain=domain,
        industry=industry,
        segment=segment,
        lifecycle=lifecycle,
        country=country,
        owner_id=owner_id,
        parent_account_id=parent_account_id,
        territory_id=territory_id,
        created_after=created_after,
        created_before=created_before,
        updated_since=updated_since,
    )
    rows, next_cursor = await service.list_accounts(
        session, filters, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[AccountOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "",
    operation_id="accounts-create",
    summary="Create an account",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_account(
    body: AccountCreate, principal: Writer, session: SessionDep, response: Response
) -> AccountOut:
    account = await service.create_account(session, principal, body)
    set_etag(response, account.version)
    response.headers["Location"] = f"/v1/accounts/{account.id}"
    return AccountOut.model_validate(account)


@router.get(
    "/{account_id}",
    operation_id="accounts-get",
    summary="Get an account",
    responses=errors(404),
)
async def get_account(
    account_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> AccountOut:
    account = await service.get_account(session, account_id)
    set_etag(response, account.version)
    return AccountOut.model_validate(account)


@router.patch(
    "/{account_id}",
    operation_id="accounts-update",
    summary="Update an account",
    description="Only the fields sent change. `segment: null` returns to the derived segment. "
    "Lifecycle moves through `POST /v1/accounts/{id}/lifecycle`.",
    responses=errors(404, 409, 412, 422),
)
async def update_account(
    account_id: uuid.UUID,
    body: AccountUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> AccountOut:
    account = await service.update_account(session, account_id, body, expected)
    set_etag(response, account.version)
    return AccountOut.model_validate(account)


@router.delete(
    "/{account_id}",
    operation_id="accounts-delete",
    summary="Delete an account (soft)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409, 412),
)
async def delete_account(
    account_id: uuid.UUID, _: Writer, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_account(session, account_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{account_id}/lifecycle",
    operation_id="accounts-change-lifecycle",
    summary="Move an account through its lifecycle",
    description="prospect → customer, customer → former_customer (churn), "
    "former_customer → customer (win-back).",
    responses=errors(404, 409, 412, 422),
)
async def change_lifecycle(
    account_id: uuid.UUID,
    body: LifecycleChange,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> AccountOut:
    account = await service.change_lifecycle(session, account_id, body.lifecycle, body.at, expected)
    set_etag(response, account.version)
    return AccountOut.model_validate(account)


@router.get(
    "/{account_id}/hierarchy",
    operation_id="accounts-hierarchy",
    summary="The whole account tree this account belongs to",
    responses=errors(404),
)
async def get_hierarchy(account_id: uuid.UUID, _: Reader, session: SessionDep) -> AccountHierarchy:
    return AccountHierarchy.model_validate(await service.hierarchy(session, account_id))


@router.get(
    "/{account_id}/rollup",
    operation_id="accounts-rollup",
    summary="Totals over the account and all its descendants",
    responses=errors(404),
)
async def get_rollup(account_id: uuid.UUID, _: Reader, session: SessionDep) -> AccountRollup:
    return AccountRollup.model_validate(await service.rollup(session, account_id))


@router.get(
    "/{account_id}/history",
    operation_id="accounts-history",
    summary="Field history of an account, newest first",
    responses=errors(404),
)
async def get_history(
    account_id: uuid.UUID,
    _: Reader,
    session: SessionDep,
    page: PageDep,
    field: Annotated[str | None, Query(description="Only changes of this field")] = None,
) -> ListEnvelope[FieldChangeOut]:
    await service.get_account(session, account_id)
    rows, next_cursor = await audit_service.field_history(
        session, service.RESOURCE, account_id, field=field, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(
        data=[FieldChangeOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )
