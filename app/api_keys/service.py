"""API keys: issue (token shown once), list, revoke."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import ALL_SCOPES, Principal, issue_token
from app.core.errors import Forbidden, NotFound, ValidationFailed
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import ensure_active_user
from app.models import ApiKey

SORTABLE = {"created_at": ApiKey.created_at, "name": ApiKey.name}


def _validate_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise ValidationFailed(
            f"Unknown scope(s): {', '.join(unknown)}",
            errors=[
                {"field": f"body.scopes.{scopes.index(s)}", "code": "unknown_scope", "detail": s}
                for s in unknown
            ],
        )
    return sorted(set(scopes))


async def issue_key(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID | None,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    created_by_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
) -> tuple[ApiKey, str]:
    """A new key (for a user, or with ``partner_id`` for a partner) and its token."""
    issued = issue_token(organization_id, new_id())
    key = ApiKey(
        id=issued.id,
        organization_id=organization_id,
        name=name,
        user_id=user_id,
        partner_id=partner_id,
        prefix=issued.prefix,
        key_hash=issued.key_hash,
        scopes=_validate_scopes(scopes),
        expires_at=expires_at,
        created_by_id=created_by_id,
    )
    session.add(key)
    await session.flush()
    return key, issued.token


async def create_key(
    session: AsyncSession,
    principal: Principal,
    *,
    name: str,
    scopes: list[str],
    user_id: uuid.UUID | None,
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    """A key never grants more than the key that creates it."""
    owner_id = user_id or principal.user_id
    if owner_id != principal.user_id and not principal.is_admin:
        raise Forbidden("Only admins can create keys for other users", code="role_not_allowed")
    await ensure_active_user(session, "user_id", owner_id)
    exceeding = [s for s in _validate_scopes(scopes) if not _grants(principal, s)]
    if exceeding:
        raise Forbidden(
            f"A key cannot grant scopes its creator lacks: {', '.join(exceeding)}",
            code="scope_escalation",
        )
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationFailed(
            "expires_at must be in the future",
            errors=[{"field": "body.expires_at", "code": "in_past"}],
        )
    return await issue_key(
        session,
        organization_id=principal.organization_id,
        user_id=owner_id,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        created_by_id=principal.user_id,
    )


def _grants(principal: Principal, scope: str) -> bool:
    if scope == "*":
        return "*" in principal.scopes
    return principal.has_scope(scope)


async def list_keys(
    session: AsyncSession,
    principal: Principal,
    *,
    user_id: uuid.UUID | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ApiKey], str | None]:
    stmt = select(ApiKey)
    if not principal.is_admin:
        stmt = stmt.where(ApiKey.user_id == principal.user_id)
    if user_id is not None:
        stmt = stmt.where(ApiKey.user_id == user_id)
    keys = parse_sort(sort, SORTABLE, default="-created_at", id_column=ApiKey.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_key(
    session: AsyncSession, principal: Principal, key_id: uuid.UUID, *, for_update: bool = False
) -> ApiKey:
    stmt = select(ApiKey).where(ApiKey.id == key_id)
    if not principal.is_admin:
        stmt = stmt.where(ApiKey.user_id == principal.user_id)
    if for_update:
        stmt = stmt.with_for_update()
    key = (await session.execute(stmt)).scalar_one_or_none()
    if key is None:
        raise NotFound("api key")
    return key


async def revoke_key(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> ApiKey:
    key = await get_key(session, principal, key_id, for_update=True)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.flush()
    return key
