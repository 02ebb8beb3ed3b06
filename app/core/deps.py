"""FastAPI dependencies shared by every router: session, principal, If-Match, ETag."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from sqlalchemy import and_, event, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from app.core.auth import Principal, VerifiedKeys, parse_token, token_matches
from app.core.errors import BadRequest, Forbidden, RateLimited, Unauthorized
from app.core.ids import utcnow
from app.core.tenancy import UNSCOPED, Actor, bind_tenant
from app.models import ApiKey, User

# last_used_at is written at most this often per key, to keep reads write-free.
LAST_USED_RESOLUTION_SECONDS = 60


def request_session(request: Request) -> AsyncSession:
    """The request's session, created on first use; committed once by ``DealbaseRoute``.

    Operations that only read get an autocommit session (``DealbaseRoute`` decides).
    """
    session: AsyncSession | None = getattr(request.state, "db_session", None)
    if session is None:
        state = request.app.state
        reads = getattr(request.state, "reads_only", False)
        session = state.read_sessionmaker() if reads else state.sessionmaker()
        request.state.db_session = session
    return session


# Dependencies are ``async def`` even where they never await: FastAPI runs a plain ``def``
# dependency in its thread pool, a hand-off on every request.
async def get_session(request: Request) -> AsyncSession:
    return request_session(request)


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def authenticate(request: Request) -> Principal:
    """The caller's principal, from the Bearer key; binds the request's session to its tenant.

    A key verified in the last ``api_key_cache_seconds`` is taken from this worker's
    ``VerifiedKeys``; otherwise it is looked up (and its ``last_used_at`` written) in a short
    transaction of its own, never in the request's: the request holds no connection or row
    lock while it waits for another (an Idempotency-Key claim takes one of its own), and
    concurrent requests with one key do not queue behind each other's ``last_used_at``
    update.
    """
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send an API key as 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    token = token.strip()
    verified_keys: VerifiedKeys = request.app.state.verified_keys
    principal = verified_keys.get(token, utcnow())
    if principal is None:
        principal, expires_at = await _verify(request, token)
        verified_keys.put(token, principal, expires_at)
    retry_after = request.app.state.rate_limiter.acquire(principal.api_key_id)
    if retry_after is not None:
        raise RateLimited(retry_after)
    bind_tenant(
        request_session(request),
        principal.organization_id,
        Actor(
            user_id=principal.user_id,
            partner_id=principal.partner_id,
            api_key_id=principal.api_key_id,
            request_id=request_id(request),
        ),
    )
    request.state.principal = principal
    return principal


async def _verify(request: Request, token: str) -> tuple[Principal, datetime | None]:
    """Look the key up and check it: the principal and the key's expiry, or 401."""
    invalid = Unauthorized("The API key is invalid, revoked or expired", code="invalid_api_key")
    ids = parse_token(token)
    if ids is None:
        raise invalid
    organization_id, key_id = ids
    async with request.app.state.sessionmaker() as session, session.begin():
        row = (
            await session.execute(
                select(ApiKey, User.role, User.is_active)
                .outerjoin(
                    User,
                    and_(User.organization_id == ApiKey.organization_id, User.id == ApiKey.user_id),
                )
                .where(ApiKey.organization_id == organization_id, ApiKey.id == key_id)
                .execution_options(**UNSCOPED)
            )
        ).first()
        key, role, user_active = row if row is not None else (None, None, None)
        # Hash and compare even when no key was found: timing does not reveal existence.
        if not token_matches(token, key.key_hash if key else None) or key is None:
            raise invalid
        now = utcnow()
        if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
            raise invalid
        if key.user_id is not None and not user_active:
            raise invalid
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > (
            LAST_USED_RESOLUTION_SECONDS
        ):
            await session.execute(
                update(ApiKey)
                .where(
                    ApiKey.organization_id == organization_id,
                    ApiKey.id == key.id,
                    or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now),
                )
                .values(last_used_at=now)
                .execution_options(synchronize_session=False, **UNSCOPED)
            )
    principal = Principal(
        organization_id=organization_id,
        api_key_id=key.id,
        user_id=key.user_id,
        partner_id=key.partner_id,
        role=role,
        scopes=frozenset(key.scopes),
    )
    return principal, key.expires_at


# A committed change to a key or a user invalidates this process's verified keys.
_AUTH_CHANGED = "auth_changed"


def _touches_auth(objects: Any) -> bool:
    return any(isinstance(obj, ApiKey | User) for obj in objects)


@event.listens_for(Session, "after_flush")
def _note_auth_flush(session: Session, _context: Any) -> None:
    if _touches_auth(session.dirty) or _touches_auth(session.deleted):
        session.info[_AUTH_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_auth_statement(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
        mapper.class_ in (ApiKey, User) for mapper in state.all_mappers
    ):
        state.session.info[_AUTH_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _forget_verified_keys(session: Session) -> None:
    if session.info.pop(_AUTH_CHANGED, False):
        VerifiedKeys.forget_all()


def require(
    scope: str, *, roles: frozenset[str] | None = None, partners: bool = False
) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """Dependency: an authenticated principal holding ``scope`` (and one of ``roles``).

    Viewers are read-only whatever their key's scopes say. Partner keys reach only the
    operations declared with ``partners=True``.
    """

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if principal.partner_id is not None:
            if not partners:
                raise Forbidden(
                    "Partner keys cannot call this operation", code="partner_not_allowed"
                )
            return principal
        if not principal.has_scope(scope):
            raise Forbidden(f"The API key lacks the scope {scope!r}", code="missing_scope")
        if principal.role == "viewer" and not scope.endswith(":read"):
            raise Forbidden("Viewers have read-only access", code="role_not_allowed")
        if roles is not None and principal.role not in roles:
            raise Forbidden(
                f"This operation needs the role {' or '.join(sorted(roles))}",
                code="role_not_allowed",
            )
        return principal

    # Read by the OpenAPI builder, which marks the operation ``x-partner-access``.
    dependency.partner_access = partners  # type: ignore[attr-defined]
    return dependency


ADMIN = frozenset({"admin"})
_IF_MATCH = re.compile(r'^\s*(?:W/)?"(\d+)"\s*$')


async def if_match(request: Request) -> int | None:
    """The version the client expects, from ``If-Match: "<version>"``; None means any."""
    value = request.headers.get("if-match")
    if value is None or value.strip() == "*":
        return None
    match = _IF_MATCH.match(value)
    if not match:
        raise BadRequest(
            'If-Match must be a quoted version, e.g. If-Match: "3"', code="invalid_if_match"
        )
    return int(match.group(1))


IfMatch = Annotated[int | None, Depends(if_match)]


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


@dataclass(frozen=True, slots=True)
class Page:
    """``limit`` and ``cursor`` query parameters of every list endpoint."""

    limit: int
    cursor: str | None


async def page_query(
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Page:
    return Page(limit, cursor)


PageDep = Annotated[Page, Depends(page_query)]


def sort_query(fields: str, default: str) -> Any:
    return Query(
        description=f"Comma-separated fields, `-` for descending. Fields: {fields}. "
        f"Default `{default}`.",
        examples=[default],
    )
