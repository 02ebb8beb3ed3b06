from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.core.auth import Principal
from app.core.deps import ADMIN, IfMatch, SessionDep, require, set_etag
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.territories import rules, service
from app.territories.schemas import (
    RealignmentOut,
    TerritoryCreate,
    TerritoryMove,
    TerritoryOut,
    TerritoryUpdate,
)

router = APIRouter(
    prefix="/territories",
    tags=["territories"],
    route_class=DealbaseRoute,
    responses=COMMON_ERRORS,
)
Reader = Annotated[Principal, Depends(require("territories:read"))]
Admin = Annotated[Principal, Depends(require("territories:write", roles=ADMIN))]


@router.get(
    "",
    operation_id="territories-list",
    summary="Territories, by priority",
    description=rules.__doc__ or "",
)
async def list_territories(_: Reader, session: SessionDep) -> ListEnvelope[TerritoryOut]:
    rows = await service.list_territories(session)
    return ListEnvelope(data=[TerritoryOut.model_validate(t) for t in rows], next_cursor=None)


@router.post(
    "",
    operation_id="territories-create",
    summary="Create a territory (admins)",
    description="Refused (409 `territory_conflict`) when a territory at the same priority "
    "could match the same records.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_territory(
    body: TerritoryCreate, _: Admin, session: SessionDep, response: Response
) -> TerritoryOut:
    territory = await service.create_territory(session, body)
    set_etag(response, territory.version)
    response.headers["Location"] = f"/v1/territories/{territory.id}"
    return TerritoryOut.model_validate(territory)


@router.post(
    "/realign",
    operation_id="territories-realign",
    summary="Re-evaluate every open lead and account against the rules (admins)",
    description="With `dry_run=true` (the default) it previews the moves; with "
    "`dry_run=false` it applies them in one transaction and records their history.",
)
async def realign(_: Admin, session: SessionDep, dry_run: bool = True) -> RealignmentOut:
    total, moves = await service.realign(session, dry_run=dry_run)
    return RealignmentOut(
        dry_run=dry_run, total_moves=total, moves=[TerritoryMove.model_validate(m) for m in moves]
    )


@router.get(
    "/{territory_id}",
    operation_id="territories-get",
    summary="Get a territory",
    responses=errors(404),
)
async def get_territory(
    territory_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> TerritoryOut:
    territory = await service.get_territory(session, territory_id)
    set_etag(response, territory.version)
    return TerritoryOut.model_validate(territory)


@router.patch(
    "/{territory_id}",
    operation_id="territories-update",
    summary="Change a territory (admins)",
    description="Existing records move only by realignment.",
    responses=errors(404, 409, 412, 422),
)
async def update_territory(
    territory_id: uuid.UUID,
    body: TerritoryUpdate,
    _: Admin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> TerritoryOut:
    territory = await service.update_territory(session, territory_id, body, expected)
    set_etag(response, territory.version)
    return TerritoryOut.model_validate(territory)


@router.delete(
    "/{territory_id}",
    operation_id="territories-delete",
    summary="Delete a territory; its records go to the default queue (admins)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_territory(
    territory_id: uuid.UUID, _: Admin, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_territory(session, territory_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
