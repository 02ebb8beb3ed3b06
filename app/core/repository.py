"""Loading one row of the caller's tenant by id, or a 404; inserting rows without the ORM."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Insert, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, invalid_reference
from app.core.tenancy import READ_ONLY_KEY, ReadOnlySession, TenantScopeMissing, tenant_id
from app.metrics.report_cache import counts_as_change, record_change
from app.models import User

Row = TypeVar("Row")


async def get_or_404(
    session: AsyncSession,
    model: type[Row],
    row_id: uuid.UUID,
    resource: str,
    *,
    for_update: bool = False,
) -> Row:
    """The row (tenant-scoped like every query), or NotFound.

    ``for_update`` locks it and refreshes an instance already in the session: the locked
    row is the truth (another transaction may have changed it since it was loaded)."""
    column: Any = getattr(model, "id")  # noqa: B009 - the mixin's id, typed per model
    stmt = select(model).where(column == row_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(resource)
    return row


async def ensure_active_user(session: AsyncSession, field: str, user_id: uuid.UUID | None) -> None:
    """A body field naming a user must name an active user of this tenant (else 422)."""
    if user_id is not None and not await session.scalar(
        select(User.is_active).where(User.id == user_id)
    ):
        raise invalid_reference(field, user_id, "an active user")


@functools.cache
def _insert(table: Table, returning: tuple[str, ...] = ()) -> Insert:
    stmt = insert(table)
    return stmt.returning(*(table.c[name] for name in returning)) if returning else stmt


def _checked_table(
    session: AsyncSession, model: type[Any], rows: Sequence[dict[str, Any]]
) -> Table:
    if session.info.get(READ_ONLY_KEY):
        raise ReadOnlySession("insert on a read session")
    organization_id = tenant_id(session)
    if any(row["organization_id"] != organization_id for row in rows):
        raise TenantScopeMissing(f"new {model.__name__} row of another organization")
    table = cast(Table, model.__table__)
    if counts_as_change(table.name):  # the ORM's change counting sees only its own writes
        record_change(session, organization_id)
    return table


async def insert_rows(
    session: AsyncSession, model: type[Any], rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT ``rows`` of ``model`` (dicts with the same keys, ``organization_id`` the
    session's) in the session's transaction, as one Core statement built once.

    For hot write paths: the ORM's unit of work (instance state, flush ordering, its event
    hooks) costs several times the statement itself. So these rows get no ``before_flush``
    audit: the caller records what the audit listener would (``app.core.audit.record``).
    Columns left out take their defaults, as with the ORM."""
    if rows:
        table = _checked_table(session, model, rows)
        connection = await session.connection()
        await connection.execute(_insert(table), list(rows))


async def insert_returning(
    session: AsyncSession, model: type[Any], row: dict[str, Any], columns: tuple[str, ...]
) -> dict[str, Any]:
    """``insert_rows`` for one row, answering the stored row's ``columns`` (defaults
    filled in)."""
    table = _checked_table(session, model, [row])
    connection = await session.connection()
    return dict((await connection.execute(_insert(table, columns), row)).mappings().one())
