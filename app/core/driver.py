"""Statements sent straight to asyncpg, on the session's connection and in its transaction.

For the hot paths: SQLAlchemy's per-execution work (the session's connection lookup, the
greenlet hand-off, parameter and result handling) costs several times what asyncpg does
with a statement already prepared (bench/README.md). A statement built once is compiled
once, with SQLAlchemy's own compiler, tenant criteria and type processors, so it sends the
same SQL and gives the same values as ``Session.execute`` would.

Errors are raised as SQLAlchemy wraps asyncpg's, which the API answers: a constraint
violation 409, a lost connection 503. A connection found lost is invalidated, as
SQLAlchemy does on its own executions, so the pool replaces it instead of handing it out
again.
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import PoolProxiedConnection

from app.core.tenancy import TENANT_PARAM, TenantScopeMissing, scoped, tenant_id

T = TypeVar("T")

# SQLSTATEs after which a connection is gone: class 08 (connection exception) and 57P01-57P03
# (the server shut down, crashed, or does not take connections: starting or stopping).
DISCONNECT_SQLSTATES = ("08", "57P01", "57P02", "57P03")

DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
_HANDLE = "driver_handle"  # session info


@dataclass(frozen=True, slots=True)
class _Handle:
    """The asyncpg connection statements are sent on, with what holds it: the session's
    transaction and SQLAlchemy connection, or, for a read session the ORM has not connected,
    none of them (``connection`` None: a pooled connection of the session's own)."""

    transaction: SessionTransaction | None
    connection: AsyncConnection | None
    pooled: PoolProxiedConnection
    adapter: Any  # sqlalchemy.dialects.postgresql.asyncpg.AsyncAdapt_asyncpg_connection
    driver: asyncpg.Connection

    @classmethod
    def of(
        cls,
        transaction: SessionTransaction | None,
        connection: AsyncConnection | None,
        pooled: PoolProxiedConnection,
    ) -> _Handle:
        return cls(
            transaction, connection, pooled, pooled.dbapi_connection, pooled.driver_connection
        )


async def _handle(session: AsyncSession) -> _Handle:
    # Kept for the transaction: asking the session for its connection each time (a
    # greenlet hand-off and two proxies) cost more than the statements it ran.
    handle: _Handle | None = session.info.get(_HANDLE)
    transaction = session.sync_session.get_transaction()
    if handle is not None and handle.transaction is transaction:
        return handle
    if transaction is None and isinstance(session, ReadSession):
        # Straight from the pool: a session's connection (its transaction, a Connection,
        # their events and state changes) cost ~100 µs to take and give back, an eighth of
        # a GET of one deal. Nothing here needs it: reads in autocommit have no transaction.
        assert isinstance(session.bind, AsyncEngine)
        handle = _Handle.of(None, None, await session.bind.raw_connection())
    else:
        connection = await session.connection()  # begins the transaction if none is
        transaction = session.sync_session.get_transaction()
        assert transaction is not None
        handle = _Handle.of(transaction, connection, await connection.get_raw_connection())
    session.info[_HANDLE] = handle
    return handle


def _give_back_own_connection(info: dict[str, Any]) -> None:
    """Return a read session's own pooled connection, if it holds one. No I/O: in
    autocommit there is no transaction to roll back."""
    handle: _Handle | None = info.get(_HANDLE)
    if handle is not None and handle.connection is None:  # (an invalidated one is gone)
        del info[_HANDLE]
        handle.pooled.close()


class _ReadSyncSession(Session):
    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        # Asked before the ORM takes its connection: the driver's own goes back first, so a
        # request never holds two (a pool emptied by requests that each wait for a second
        # connection would leave them all waiting).
        _give_back_own_connection(self.info)
        return super().get_bind(*args, **kwargs)


class ReadSession(AsyncSession):
    """The session of reads in autocommit (``database.create_read_sessionmaker``): statements
    sent on the driver before the ORM connects take a pooled connection of their own, which
    the ORM's first statement or ``close`` gives back."""

    sync_session_class = _ReadSyncSession

    async def close(self) -> None:
        _give_back_own_connection(self.info)
        sync = self.sync_session
        if sync.get_transaction() is None and not (sync.identity_map or sync.new):
            return  # nothing to end or let go: spare the greenlet hand-off (~20 µs)
        await super().close()


async def _begin(adapter: Any) -> None:
    """Send ``BEGIN`` as SQLAlchemy's asyncpg adapter does before its first statement of a
    transaction, and hand the transaction to the adapter, which ends it when the session
    commits or rolls back. The adapter begins lazily, on its own statements only: without
    this, statements sent here before any through SQLAlchemy ran in autocommit, each
    committed alone, and a request that failed halfway kept what it had written."""
    transaction = adapter._connection.transaction(
        isolation=adapter.isolation_level,
        readonly=adapter.readonly,
        deferrable=adapter.deferrable,
    )
    await transaction.start()
    adapter._transaction = transaction


async def run(
    session: AsyncSession, statement: str, call: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    """``call`` on the asyncpg connection of the session's transaction (begun if it was
    not), its errors raised as SQLAlchemy's (``statement`` names what it sends)."""
    handle = await _handle(session)
    try:
        # Not begun yet: neither by a statement of SQLAlchemy's nor by an earlier one here.
        # (Autocommit reads have no transaction to begin: neither a read session's own
        # connection nor one of its ORM's, set to autocommit.)
        adapter = handle.adapter
        begun = adapter._transaction is not None or adapter.autocommit
        if handle.connection is not None and not begun:
            await _begin(adapter)
        return await call(handle.driver)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as error:
        # InternalClientError: the protocol is out of step with the server, as when the
        # server ended the session while the connection sat in the pool (its message came
        # unasked): the connection cannot be used again.
        lost = (
            handle.driver.is_closed()
            or isinstance(error, asyncpg.InternalClientError)
            or _sqlstate_lost(error)
        )
        if lost:
            # What SQLAlchemy does on a disconnect: the pool replaces every connection
            # opened before this one (a restarted server ended them all), and this one.
            assert session.bind is not None
            session.bind.sync_engine.pool._invalidate(handle.pooled, error, _checkin=False)
            if handle.connection is None:
                del session.info[_HANDLE]
                handle.pooled.invalidate(error)  # and returned to the pool, to be replaced
            else:
                await handle.connection.invalidate(error)
        raise translated(statement, error, lost=lost) from error


async def execute_records(
    session: AsyncSession, sql: str, records: Sequence[Sequence[Any]]
) -> None:
    """Run ``sql`` once per record (positional arguments) on the session's connection."""
    if len(records) == 1:  # asyncpg's executemany costs several times execute for one row
        await run(session, sql, lambda driver: driver.execute(sql, *records[0]))
    else:
        await run(session, sql, lambda driver: driver.executemany(sql, records))


def _sqlstate_lost(error: Exception) -> bool:
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(DISCONNECT_SQLSTATES)


def translated(statement: str, error: Exception, *, lost: bool) -> DBAPIError:
    """asyncpg's ``error`` as SQLAlchemy wraps it (``lost``: the connection is gone)."""
    if isinstance(error, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(statement, None, error)
    return DBAPIError(statement, None, error, connection_invalidated=lost)


# --- selects ----------------------------------------------------------------------------


@dataclass(slots=True)
class _PreparedSelect:
    """A SELECT as asyncpg runs it: its SQL, where each positional argument comes from
    (a parameter given with the call, or a value the statement holds) and its bind
    processor, the row type, and the result processors (found at the first run: they
    depend on the types the server reports)."""

    sql: str
    arguments: tuple[tuple[str, bool, Any, Callable[[Any], Any] | None], ...]
    row: type[tuple[Any, ...]]
    column_types: tuple[Any, ...]
    processors: tuple[Callable[[Any], Any] | None, ...] | None = field(default=None)

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, given, fixed, process in self.arguments:
            value = params[name] if given else fixed
            values.append(process(value) if process is not None and value is not None else value)
        return values

    def rows(self, records: list[asyncpg.Record]) -> Rows:
        processors = self.processors
        assert processors is not None
        make = self.row._make  # type: ignore[attr-defined]
        if not any(processors):
            return Rows(make(record) for record in records)
        return Rows(
            make(
                value if process is None or value is None else process(value)
                for process, value in zip(processors, record, strict=True)
            )
            for record in records
        )


class Rows(list[Any]):
    """Rows of a select (named tuples: by position or by column name), with the few
    ``Result`` methods its callers use."""

    def first(self) -> Any:
        return self[0] if self else None

    def scalar(self) -> Any:
        return self[0][0] if self else None


_SELECTS: weakref.WeakKeyDictionary[Any, _PreparedSelect] = weakref.WeakKeyDictionary()


def _prepared_select(statement: Select[Any]) -> _PreparedSelect:
    prepared = _SELECTS.get(statement)
    if prepared is not None:
        return prepared
    compiled = statement.compile(dialect=DIALECT)
    given = {bind.key for bind in compiled.binds.values() if bind.required}
    if any(bind.expanding for bind in compiled.binds.values() if bind.required):
        raise ValueError("prepared selects take no list parameters (IN takes fixed values)")
    # Expanded once: the statement's own IN lists have fixed lengths.
    expanded = compiled.construct_expanded_state(dict.fromkeys(given))
    processors: dict[str, Any] = {**(compiled._bind_processors or {}), **expanded.processors}
    arguments = tuple(
        (name, name in given, expanded.parameters[name], processors.get(name))
        for name in expanded.positiontup or ()
    )
    columns = compiled._result_columns
    prepared = _SELECTS[statement] = _PreparedSelect(
        sql=expanded.statement,
        arguments=arguments,
        row=namedtuple("Row", [column.keyname for column in columns]),
        column_types=tuple(column.type for column in columns),
    )
    return prepared


async def prepared_rows(
    session: AsyncSession, statement: Select[Any], params: Mapping[str, Any] | None = None
) -> Rows:
    """``tenancy.scoped_rows`` for a statement built once (module-level or
    ``functools.cache``): scoped the same way, compiled at its first run only, and its rows
    as named tuples. (A statement built per call would be compiled on every call.)"""
    if statement._propagate_attrs.get("compile_state_plugin") != "orm":
        raise TenantScopeMissing("prepared_rows needs a statement of mapped attributes")
    params = {**(params or {}), TENANT_PARAM: tenant_id(session)}
    prepared = _prepared_select(scoped(statement, include_deleted=False))
    values = prepared.values(params)
    if prepared.processors is None:
        attributes = (
            await run(session, prepared.sql, lambda driver: driver.prepare(prepared.sql))
        ).get_attributes()
        prepared.processors = tuple(
            column_type._cached_result_processor(DIALECT, attribute.type.oid)
            for column_type, attribute in zip(prepared.column_types, attributes, strict=True)
        )
    records = await run(session, prepared.sql, lambda driver: driver.fetch(prepared.sql, *values))
    return prepared.rows(records)
