from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.core.auth import Principal
from app.core.deps import (
    ADMIN,
    IfMatch,
    PageDep,
    SessionDep,
    require,
    set_etag,
    sort_query,
)
from app.core.errors import NotFound
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.users import service
from app.users.schemas import (
    OrganizationOut,
    OrganizationUpdate,
    Role,
    TeamCreate,
    TeamOut,
    TeamUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
)

router = APIRouter(route_class=DealbaseRoute, responses=COMMON_ERRORS)

UserReader = Annotated[Principal, Depends(require("users:read"))]
UserAdmin = Annotated[Principal, Depends(require("users:write", roles=ADMIN))]
TeamReader = Annotated[Principal, Depends(require("teams:read"))]
TeamAdmin = Annotated[Principal, Depends(require("teams:write", roles=ADMIN))]
OrgReader = Annotated[Principal, Depends(require("organization:read"))]
OrgAdmin = Annotated[Principal, Depends(require("organization:write", roles=ADMIN))]


# --- organization -------------------------------------------------------------------------


@router.get(
    "/organization",
    tags=["organization"],
    operation_id="organization-get",
    summary="Your organization and its settings",
)
async def get_organization(
    _: OrgReader, session: SessionDep, response: Response
) -> OrganizationOut:
    org = await service.get_organization(session)
    set_etag(response, org.version)
    return OrganizationOut.model_validate(org)


@router.patch(
    "/organization",
    tags=["organization"],
    operation_id="organization-update",
    summary="Change organization settings (admins)",
    responses=errors(412, 422),
)
async def update_organization(
    body: OrganizationUpdate,
    _: OrgAdmin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> OrganizationOut:
    org = await service.update_organization(session, body, expected)
    set_etag(response, org.version)
    return OrganizationOut.model_validate(org)


# --- users --------------------------------------------------------------------------------


@router.get("/users", tags=["users"], operation_id="users-list", summary="List users")
async def list_users(
    _: UserReader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("created_at, name, email", "created_at")] = None,
    role: Role | None = None,
    team_id: uuid.UUID | None = None,
    manager_id: uuid.UUID | None = None,
    is_active: bool | None = None,
    email: str | None = None,
) -> ListEnvelope[UserOut]:
    rows, next_cursor = await service.list_users(
        session,
        service.UserFilters(role, team_id, manager_id, is_active, email),
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(data=[UserOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/users/me",
    tags=["users"],
    operation_id="users-me",
    summary="The user behind the API key",
    responses=errors(404),
)
async def get_me(principal: UserReader, session: SessionDep, response: Response) -> UserOut:
    if principal.user_id is None:
        raise NotFound("user", detail="This API key belongs to no user")
    user = await service.get_user(session, principal.user_id)
    set_etag(response, user.version)
    return UserOut.model_validate(user)


@router.post(
    "/users",
    tags=["users"],
    operation_id="users-create",
    summary="Create a user (admins)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_user(
    body: UserCreate, _: UserAdmin, session: SessionDep, response: Response
) -> UserOut:
    user = await service.create_user(session, body)
    set_etag(response, user.version)
    response.headers["Location"] = f"/v1/users/{user.id}"
    return UserOut.model_validate(user)


@router.get(
    "/users/{user_id}",
    tags=["users"],
    operation_id="users-get",
    summary="Get a user",
    responses=errors(404),
)
async def get_user(
    user_id: uuid.UUID, _: UserReader, session: SessionDep, response: Response
) -> UserOut:
    user = await service.get_user(session, user_id)
    set_etag(response, user.version)
    return UserOut.model_validate(user)


@router.patch(
    "/users/{user_id}",
    tags=["users"],
    operation_id="users-update",
    summary="Update a user (admins)",
    responses=errors(404, 409, 412, 422),
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    _: UserAdmin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> UserOut:
    user = await service.update_user(session, user_id, body, expected)
    set_etag(response, user.version)
    return UserOut.model_validate(user)


@router.delete(
    "/users/{user_id}",
    tags=["users"],
    operation_id="users-deactivate",
    summary="Deactivate a user and revoke their keys (admins)",
    responses=errors(404, 409, 412),
)
async def deactivate_user(
    user_id: uuid.UUID,
    _: UserAdmin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> UserOut:
    user = await service.deactivate_user(session, user_id, expected)
    set_etag(response, user.version)
    return UserOut.model_validate(user)


# --- teams --------------------------------------------------------------------------------


@router.get("/teams", tags=["teams"], operation_id="teams-list", summary="List teams")
async def list_teams(
    _: TeamReader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("created_at, name", "name")] = None,
) -> ListEnvelope[TeamOut]:
    rows, next_cursor = await service.list_teams(
        session, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[TeamOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/teams",
    tags=["teams"],
    operation_id="teams-create",
    summary="Create a team (admins)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_team(
    body: TeamCreate, _: TeamAdmin, session: SessionDep, response: Response
) -> TeamOut:
    team = await service.create_team(session, body)
    set_etag(response, team.version)
    response.headers["Location"] = f"/v1/teams/{team.id}"
    return TeamOut.model_validate(team)


@router.get(
    "/teams/{team_id}",
    tags=["teams"],
    operation_id="teams-get",
    summary="Get a team",
    responses=errors(404),
)
async def get_team(
    team_id: uuid.UUID, _: TeamReader, session: SessionDep, response: Response
) -> TeamOut:
    team = await service.get_team(session, team_id)
    set_etag(response, team.version)
    return TeamOut.model_validate(team)


@router.patch(
    "/teams/{team_id}",
    tags=["teams"],
    operation_id="teams-update",
    summary="Update a team (admins)",
    responses=errors(404, 409, 412, 422),
)
async def update_team(
    team_id: uuid.UUID,
    body: TeamUpdate,
    _: TeamAdmin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> TeamOut:
    team = await service.update_team(session, team_id, body, expected)
    set_etag(response, team.version)
    return TeamOut.model_validate(team)


@router.delete(
    "/teams/{team_id}",
    tags=["teams"],
    operation_id="teams-delete",
    summary="Delete an empty team (admins)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409, 412),
)
async def delete_team(
    team_id: uuid.UUID, _: TeamAdmin, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_team(session, team_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
