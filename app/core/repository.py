"""Loading one row of the caller's tenant by id, or a 404; inserting rows without the ORM."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import JSON, ColumnDefault, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.driver import DIALECT, execute_records, run
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


@dataclass(frozen=True, slots=True)
class _PreparedInsert:
    """An INSERT of one key set, as asyncpg runs it: SQL with positional parameters, their
    column names in order, the Python defaults of the columns the rows leave out, and the
    positions of the JSON columns (SQLAlchemy's codecs on the connection take JSON as text
    and decode it)."""

    sql: str
    names: tuple[str, ...]
    defaults: tuple[tuple[str, ColumnDefault], ...]
    json_positions: tuple[int, ...]

    def record(self, row: dict[str, Any]) -> list[Any]:
        if self.defaults:
            row = row | {name: _value_of(default) for name, default in self.defaults}
        record = [row[name] for name in self.names]
        for position in self.json_positions:
            record[position] = orjson.dumps(record[position]).decode()
        return record


def _value_of(default: ColumnDefault) -> Any:
    # SQLAlchemy wraps a callable default to take the execution context (unused by ours).
    return default.arg(None) if default.is_callable else default.arg


@functools.cache
def _prepared(table: Table, keys: tuple[str, ...], returning: tuple[str, ...]) -> _PreparedInsert:
    stmt = insert(table)
    if returning:
        stmt = stmt.returning(*(table.c[name] for name in returning))
    compiled = stmt.compile(dialect=DIALECT, column_keys=list(keys))
    names = tuple(compiled.positiontup or ())
    json_columns = {c.name for c in table.c if isinstance(c.type, JSON)}
    defaults = []
    for name in names:
        if name not in keys:
            default = table.c[name].default
            assert isinstance(default, ColumnDefault), name  # SQL-expression defaults: none
            defaults.append((name, default))
    return _PreparedInsert(
        sql=compiled.string,
        names=names,
        defaults=tuple(defaults),
        json_positions=tuple(i for i, name in enumerate(names) if name in json_columns),
    )


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
    session's) in the session's transaction, as a prepared statement sent by asyncpg.

    For hot write paths: the ORM's unit of work (instance state, flush ordering, its event
    hooks), and even SQLAlchemy Core's per-execution parameter handling, cost several times
    the statement itself (bench/README.md). So these rows get no ``before_flush`` audit:
    the caller records what the audit listener would (``app.core.audit.record_created``).
    Columns left out take their Python or server defaults, as with the ORM."""
    if not rows:
        return
    prepared = _prepared(_checked_table(session, model, rows), tuple(rows[0]), ())
    await execute_records(session, prepared.sql, [prepared.record(row) for row in rows])


async def insert_returning(
    session: AsyncSession, model: type[Any], row: dict[str, Any], columns: tuple[str, ...]
) -> dict[str, Any]:
    """``insert_rows`` for one row, answering the stored row's ``columns`` (defaults
    filled in)."""
    prepared = _prepared(_checked_table(session, model, [row]), tuple(row), columns)
    sql, record = prepared.sql, prepared.record(row)
    return dict(await run(session, sql, lambda driver: driver.fetchrow(sql, *record)))
