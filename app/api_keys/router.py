from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.api_keys import service
from app.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from app.core.auth import Principal
from app.core.deps import PageDep, SessionDep, require, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors

router = APIRouter(
    prefix="/api-keys", tags=["api-keys"], route_class=DealbaseRoute, responses=COMMON_ERRORS
)
# Everyone manages their own keys; admins see and revoke all of the organization's.
Reader = Annotated[Principal, Depends(require("api_keys:read"))]
Writer = Annotated[Principal, Depends(require("api_keys:write"))]


@router.get(
    "",
    operation_id="api-keys-list",
    summary="List API keys (yours; all of them for admins)",
)
async def list_keys(
    principal: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("created_at, name", "-created_at")] = None,
    user_id: uuid.UUID | None = None,
) -> ListEnvelope[ApiKeyOut]:
    rows, next_cursor = await service.list_keys(
        session, principal, user_id=user_id, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[ApiKeyOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "",
    operation_id="api-keys-create",
    summary="Create an API key (the token is shown once)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def create_key(
    body: ApiKeyCreate, principal: Writer, session: SessionDep, response: Response
) -> ApiKeyCreated:
    key, token = await service.create_key(
        session,
        principal,
        name=body.name,
        scopes=body.scopes,
        user_id=body.user_id,
        expires_at=body.expires_at,
    )
    response.headers["Location"] = f"/v1/api-keys/{key.id}"
    return ApiKeyCreated.model_validate(
        {**ApiKeyOut.model_validate(key).model_dump(), "token": token}
    )


@router.get(
    "/{key_id}", operation_id="api-keys-get", summary="Get an API key", responses=errors(404)
)
async def get_key(key_id: uuid.UUID, principal: Reader, session: SessionDep) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await service.get_key(session, principal, key_id))


@router.delete(
    "/{key_id}",
    operation_id="api-keys-revoke",
    summary="Revoke an API key",
    responses=errors(404),
)
async def revoke_key(key_id: uuid.UUID, principal: Writer, session: SessionDep) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await service.revoke_key(session, principal, key_id))
