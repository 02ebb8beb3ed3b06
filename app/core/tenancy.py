"""The one place queries are scoped to the principal's organization.

A session is bound to a tenant with ``bind_tenant``. From then on every ORM SELECT, UPDATE
and DELETE on a tenant table gets ``organization_id = :tenant`` added (and soft-deleted rows
hidden), and every new tenant row is stamped with the tenant, by SQLAlchemy events on the
Session class; read models that select columns run through ``scoped_rows``, which applies
the same criteria. An unbound session refuses ORM statements unless it is explicitly marked as
a system session (used by authentication, the CLI and background jobs, which filter by
organization themselves).
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Result, Select, bindparam, event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from app.models.base import SoftDeleteMixin, TenantKeyMixin

TENANT_KEY = "organization_id"
ACTOR_KEY = "actor"
SYSTEM_KEY = "system"
# Execution option: include soft-deleted rows (history, restore, audit views).
INCLUDE_DELETED = "include_deleted"
# Execution options for the few statements that must cross tenants (API-key lookup before
# the tenant is known, system jobs); they filter by organization themselves.
UNSCOPED: dict[str, Any] = {"dealbase_unscoped": True}
# Session info flag of the autocommit sessions that serve reads (GET).
READ_ONLY_KEY = "read_only"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, recorded on audit, history and outbox rows."""

    user_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    request_id: str | None = None


class TenantScopeMissing(RuntimeError):
    """An ORM statement ran on a session bound to no tenant: a programming error."""


class ReadOnlySession(RuntimeError):
    """A write on a read session (autocommit: it would not be atomic): a programming error;
    the operation must declare that it reads in a transaction."""


def bind_tenant(session: AsyncSession, organization_id: uuid.UUID, actor: Actor) -> None:
    session.info[TENANT_KEY] = organization_id
    session.info[ACTOR_KEY] = actor


def mark_system(session: AsyncSession) -> None:
    """Allow unscoped ORM statements on this session (callers filter by tenant)."""
    session.info[SYSTEM_KEY] = True


def tenant_id(session: AsyncSession | Session) -> uuid.UUID:
    org = session.info.get(TENANT_KEY)
    if org is None:
        raise TenantScopeMissing("session is not bound to an organization")
    return org  # type: ignore[no-any-return]


def actor_of(session: AsyncSession | Session) -> Actor:
    return session.info.get(ACTOR_KEY) or Actor()


@event.listens_for(Session, "do_orm_execute")
def _scope_to_tenant(state: ORMExecuteState) -> None:
    if state.session.info.get(READ_ONLY_KEY) and (
        state.is_insert or state.is_update or state.is_delete
    ):
        raise ReadOnlySession("write statement on a read session")
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # already scoped by the statement that loaded the parent
    if state.execution_options.get("dealbase_unscoped", False):
        return
    org = state.session.info.get(TENANT_KEY)
    if org is None:
        if state.session.info.get(SYSTEM_KEY):
            return
        raise TenantScopeMissing("ORM statement on a session bound to no organization")
    state.statement = scoped(
        state.statement, include_deleted=state.execution_options.get(INCLUDE_DELETED, False)
    )
    params = state.parameters
    if params is None or isinstance(params, Mapping):
        state.parameters = {**(params or {}), TENANT_PARAM: org}
    else:  # executemany
        state.parameters = [{**each, TENANT_PARAM: org} for each in params]


# The organization is a named bound parameter, given with each statement's parameters, so
# the criteria options are built once and hold no value: a closure variable (``== org``)
# made SQLAlchemy extract and match it against the cached statement's parameters on every
# execution (~6 % of a GET's CPU). The lambda spells the name out: SQLAlchemy would track a
# module-level name used inside it as a closure variable.
TENANT_PARAM = "dealbase_tenant_id"
_TENANT_CRITERIA = with_loader_criteria(
    TenantKeyMixin,
    lambda cls: cls.organization_id == bindparam("dealbase_tenant_id"),
    include_aliases=True,
)
_LIVE_CRITERIA = with_loader_criteria(
    SoftDeleteMixin, lambda cls: cls.deleted_at.is_(None), include_aliases=True
)
# Indexed by ``include_deleted``.
_SCOPE_OPTIONS = ((_TENANT_CRITERIA, _LIVE_CRITERIA), (_TENANT_CRITERIA,))

# Statements built once (module-level, ``functools.cache``) are scoped once too: the scoped
# copy keeps its memoized cache key, which SQLAlchemy otherwise recomputes by walking the
# whole statement on every execution (~5 % of a GET's CPU).
_SCOPED: tuple[weakref.WeakKeyDictionary[Any, Any], ...] = (
    weakref.WeakKeyDictionary(),  # live rows only
    weakref.WeakKeyDictionary(),  # soft-deleted rows too
)


def scoped(statement: Any, *, include_deleted: bool) -> Any:
    """``statement`` with the tenant criteria (the tenant given as ``TENANT_PARAM``)."""
    cache = _SCOPED[include_deleted]
    scoped = cache.get(statement)
    if scoped is None:
        scoped = cache[statement] = statement.options(*_SCOPE_OPTIONS[include_deleted])
    return scoped


async def scoped_rows(
    session: AsyncSession, statement: Select[Any], params: Mapping[str, Any] | None = None
) -> Result[Any]:
    """Run a SELECT of mapped columns on the session's connection, scoped exactly as
    ``_scope_to_tenant`` scopes ORM statements (the same criteria, the same tenant
    parameter), and return plain rows.

    For read models that select columns, not entities: the ORM's own execution rebuilds
    the result's metadata and handles every row on each call, ~15 % of a GET of one deal.
    The ORM compiler still applies the criteria, since the statement is ORM-enabled; a
    statement that is not (a Core table select) would escape them and is refused.
    """
    # SQLAlchemy marks statements built from mapped attributes with the ORM compile plugin.
    if statement._propagate_attrs.get("compile_state_plugin") != "orm":
        raise TenantScopeMissing("scoped_rows needs a statement of mapped attributes")
    organization_id = tenant_id(session)
    connection = await session.connection()
    result: Result[Any] = await connection.execute(
        scoped(statement, include_deleted=False),
        {**(params or {}), TENANT_PARAM: organization_id},
        execution_options=_BY_NAME,
    )
    return result


# Rows are read by name or position, never by the statement's column objects: SQLAlchemy
# need not map the columns of a statement built anew (a list page's) onto those of the one
# it compiled and cached, ~10 % of a list page's CPU (hashing annotated columns collides
# and compares them as SQL expressions). The ORM sets this option on its own executions.
_BY_NAME = {"_result_disable_adapt_to_context": True}


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(READ_ONLY_KEY) and (session.new or session.dirty or session.deleted):
        raise ReadOnlySession("flush of changes on a read session")
    org = session.info.get(TENANT_KEY)
    for obj in session.new:
        if not isinstance(obj, TenantKeyMixin):
            continue
        if obj.organization_id is None:
            if org is None:
                raise TenantScopeMissing(f"new {type(obj).__name__} has no organization")
            obj.organization_id = org
        elif org is not None and obj.organization_id != org:
            raise TenantScopeMissing(f"new {type(obj).__name__} belongs to another tenant")
