"""Organizations, users (the management hierarchy) and teams."""

from __future__ import annotations

import uuid
import zoneinfo
from dataclasses import dataclass

from sqlalchemy import func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.api_keys.service import issue_key
from app.core.concurrency import check_version, lock_tenant_topic
from app.core.errors import Conflict, RuleViolation, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import ensure_active_user, get_or_404
from app.core.tenancy import Actor, bind_tenant, tenant_id
from app.models import ApiKey, Organization, Team, User
from app.nurture.service import create_default_programs
from app.pipelines.service import create_default_pipeline
from app.users.schemas import (
    SETTINGS_FIELDS,
    OrganizationUpdate,
    TeamCreate,
    TeamUpdate,
    UserCreate,
    UserUpdate,
)

USER_SORT = {"created_at": User.created_at, "name": User.name, "email": User.email}
TEAM_SORT = {"created_at": Team.created_at, "name": Team.name}
MAX_MANAGEMENT_DEPTH = 32


# --- organization -------------------------------------------------------------------------


async def get_organization(session: AsyncSession, *, for_update: bool = False) -> Organization:
    stmt = select(Organization).where(Organization.id == tenant_id(session))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one()


async def update_organization(
    session: AsyncSession, data: OrganizationUpdate, expected_version: int | None
) -> Organization:
    org = await get_organization(session, for_update=True)
    check_version("organization", org.version, expected_version)
    sent = data.model_fields_set
    if "timezone" in sent and data.timezone is not None:
        try:
            zoneinfo.ZoneInfo(data.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise invalid_reference("timezone", data.timezone, "a known IANA time zone") from exc
    for field in ("name", "currency", "fiscal_year_start_month", "timezone"):
        value = getattr(data, field)
        if field in sent and value is not None:
            setattr(org, field, value)
    if "customer_success_owner_id" in sent:
        await ensure_active_user(
            session, "customer_success_owner_id", data.customer_success_owner_id
        )
    if sent & set(SETTINGS_FIELDS):
        settings = dict(org.settings)
        values = data.model_dump(mode="json", include=set(SETTINGS_FIELDS) & sent)
        for key, value in values.items():
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
        org.settings = settings
    await session.flush()
    return org


async def create_organization(
    session: AsyncSession,
    *,
    name: str,
    admin_email: str,
    admin_name: str | None = None,
    currency: str = "TRY",
    fiscal_year_start_month: int = 1,
    timezone: str = "Europe/Istanbul",
) -> tuple[Organization, User, str]:
    """A new tenant with its first admin and that admin's all-scopes API key.

    Binds ``session`` to the new tenant.
    """
    org = Organization(
        id=new_id(),
        name=name,
        currency=currency,
        fiscal_year_start_month=fiscal_year_start_month,
        timezone=timezone,
        settings={},
    )
    session.add(org)
    await session.flush()
    bind_tenant(session, org.id, Actor())
    admin = User(
        id=new_id(),
        email=admin_email.lower(),
        name=admin_name or admin_email.split("@")[0],
        role="admin",
        is_active=True,
    )
    session.add(admin)
    await session.flush()
    await create_default_pipeline(session)
    await create_default_programs(session)
    _, token = await issue_key(
        session,
        organization_id=org.id,
        user_id=admin.id,
        name="initial admin key",
        scopes=["*"],
        created_by_id=admin.id,
    )
    return org, admin, token


# --- users --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserFilters:
    role: str | None = None
    team_id: uuid.UUID | None = None
    manager_id: uuid.UUID | None = None
    is_active: bool | None = None
    email: str | None = None


async def list_users(
    session: AsyncSession,
    filters: UserFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[User], str | None]:
    stmt = select(User)
    for column, value in (
        (User.role, filters.role),
        (User.team_id, filters.team_id),
        (User.manager_id, filters.manager_id),
        (User.is_active, filters.is_active),
        (User.email, filters.email.lower() if filters.email else None),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    keys = parse_sort(sort, USER_SORT, default="created_at", id_column=User.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_user(session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> User:
    return await get_or_404(session, User, user_id, "user", for_update=for_update)


async def _check_team(session: AsyncSession, team_id: uuid.UUID | None) -> None:
    if (
        team_id is not None
        and await session.scalar(select(Team.id).where(Team.id == team_id)) is None
    ):
        raise invalid_reference("team_id", team_id, "a team")


async def _check_email_free(session: AsyncSession, email: str) -> None:
    existing = await session.scalar(select(User.id).where(User.email == email))
    if existing is not None:
        raise Conflict(
            f"A user with the e-mail {email!r} already exists",
            code="duplicate_email",
            extra={"existing_id": str(existing)},
        )


async def management_chain(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The user and their managers up to the top, nearest first."""
    org = tenant_id(session)
    chain = (
        select(User.id, User.manager_id, literal(0).label("depth"))
        .where(User.id == user_id, User.organization_id == org)
        .cte("chain", recursive=True)
    )
    manager = aliased(User)
    chain = chain.union_all(
        select(manager.id, manager.manager_id, chain.c.depth + 1).where(
            manager.organization_id == org,
            manager.id == chain.c.manager_id,
            chain.c.depth < MAX_MANAGEMENT_DEPTH,
        )
    )
    return [row[0] for row in await session.execute(select(chain.c.id).order_by(chain.c.depth))]


async def create_user(session: AsyncSession, data: UserCreate) -> User:
    email = data.email.lower()
    await _check_email_free(session, email)
    await ensure_active_user(session, "manager_id", data.manager_id)
    await _check_team(session, data.team_id)
    user = User(
        id=new_id(),
        email=email,
        name=data.name.strip(),
        role=data.role,
        manager_id=data.manager_id,
        team_id=data.team_id,
        approval_max_discount_pct=data.approval_max_discount_pct,
        approval_groups=sorted(set(data.approval_groups)),
        is_active=True,
    )
    session.add(user)
    await session.flush()
    return user


async def _ensure_other_admin(session: AsyncSession, user: User) -> None:
    # Serialised per tenant: two admins demoting each other at once must not both pass.
    await lock_tenant_topic(session, user.organization_id, "users.admins")
    others = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == "admin", User.is_active.is_(True), User.id != user.id)
    )
    if not others:
        raise RuleViolation(
            "The organization must keep at least one active admin",
            code="last_admin",
            unmet=[{"code": "last_admin", "detail": "promote another admin first"}],
        )


async def update_user(
    session: AsyncSession, user_id: uuid.UUID, data: UserUpdate, expected_version: int | None
) -> User:
    user = await get_user(session, user_id, for_update=True)
    check_version("user", user.version, expected_version)
    sent = data.model_fields_set
    if "name" in sent and data.name is not None:
        user.name = data.name.strip()
    if "role" in sent and data.role is not None and data.role != user.role:
        if user.role == "admin":
            await _ensure_other_admin(session, user)
        user.role = data.role
    if "manager_id" in sent and data.manager_id != user.manager_id:
        if data.manager_id is not None:
            await lock_tenant_topic(session, user.organization_id, "users.hierarchy")
            await ensure_active_user(session, "manager_id", data.manager_id)
            if user.id in await management_chain(session, data.manager_id):
                raise RuleViolation(
                    "The new manager reports (directly or not) to this user",
                    code="hierarchy_cycle",
                    unmet=[{"code": "hierarchy_cycle", "detail": "manager_id would loop"}],
                )
        user.manager_id = data.manager_id
    if "team_id" in sent:
        await _check_team(session, data.team_id)
        user.team_id = data.team_id
    if "approval_max_discount_pct" in sent:
        user.approval_max_discount_pct = data.approval_max_discount_pct
    if "approval_groups" in sent and data.approval_groups is not None:
        user.approval_groups = sorted(set(data.approval_groups))
    await session.flush()
    return user


async def deactivate_user(
    session: AsyncSession, user_id: uuid.UUID, expected_version: int | None
) -> User:
    """Users are never deleted (history points at them): deactivate and revoke their keys."""
    user = await get_user(session, user_id, for_update=True)
    check_version("user", user.version, expected_version)
    if not user.is_active:
        return user
    if user.role == "admin":
        await _ensure_other_admin(session, user)
    user.is_active = False
    await session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return user


# --- teams --------------------------------------------------------------------------------


async def list_teams(
    session: AsyncSession, *, sort: str | None, limit: int, cursor: str | None
) -> tuple[list[Team], str | None]:
    keys = parse_sort(sort, TEAM_SORT, default="name", id_column=Team.id)
    return await paginate(session, select(Team), keys, limit=limit, cursor=cursor)


async def get_team(session: AsyncSession, team_id: uuid.UUID, *, for_update: bool = False) -> Team:
    return await get_or_404(session, Team, team_id, "team", for_update=for_update)


async def _check_team_name_free(
    session: AsyncSession, name: str, except_id: uuid.UUID | None = None
) -> None:
    stmt = select(Team.id).where(Team.name == name)
    if except_id is not None:
        stmt = stmt.where(Team.id != except_id)
    if (existing := await session.scalar(stmt)) is not None:
        raise Conflict(
            f"A team named {name!r} already exists",
            code="duplicate_team",
            extra={"existing_id": str(existing)},
        )


async def create_team(session: AsyncSession, data: TeamCreate) -> Team:
    name = data.name.strip()
    await _check_team_name_free(session, name)
    await ensure_active_user(session, "manager_id", data.manager_id)
    team = Team(id=new_id(), name=name, manager_id=data.manager_id)
    session.add(team)
    await session.flush()
    return team


async def update_team(
    session: AsyncSession, team_id: uuid.UUID, data: TeamUpdate, expected_version: int | None
) -> Team:
    team = await get_team(session, team_id, for_update=True)
    check_version("team", team.version, expected_version)
    if "name" in data.model_fields_set and data.name is not None:
        await _check_team_name_free(session, data.name.strip(), team.id)
        team.name = data.name.strip()
    if "manager_id" in data.model_fields_set:
        await ensure_active_user(session, "manager_id", data.manager_id)
        team.manager_id = data.manager_id
    await session.flush()
    return team


async def delete_team(
    session: AsyncSession, team_id: uuid.UUID, expected_version: int | None
) -> None:
    team = await get_team(session, team_id, for_update=True)
    check_version("team", team.version, expected_version)
    members = await session.scalar(
        select(func.count()).select_from(User).where(User.team_id == team.id)
    )
    if members:
        raise RuleViolation(
            "The team still has members; move them first",
            code="team_has_members",
            unmet=[{"code": "team_has_members", "detail": f"{members} member(s)"}],
        )
    await session.delete(team)
    await session.flush()
