"""Migrations: upgrade → downgrade → upgrade on a fresh database, and models == schema."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.database import to_async_url
from app.core.migrate import downgrade, head_revision, upgrade
from app.models import Base
from tests.conftest import create_database, drop_database


@pytest.fixture
def scratch_database(server_url: str) -> Iterator[str]:
    url = create_database(server_url, "dealbase_migrations")
    yield url
    drop_database(server_url, url)


def _schema_diff(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_async_engine(to_async_url(url), poolclass=pool.NullPool)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}),
                    Base.metadata,
                )
            )
        await engine.dispose()
        return list(diff)

    return asyncio.run(run())


def _tables(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_async_engine(to_async_url(url), poolclass=pool.NullPool)
        async with engine.connect() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            names = {r[0] for r in rows}
        await engine.dispose()
        return names

    return asyncio.run(run())


def test_upgrade_downgrade_upgrade_and_models_match(scratch_database: str) -> None:
    upgrade(scratch_database)
    assert _schema_diff(scratch_database) == []
    downgrade(scratch_database, "base")
    assert _tables(scratch_database) <= {"alembic_version"}
    upgrade(scratch_database)
    assert _schema_diff(scratch_database) == []
    assert set(Base.metadata.tables) <= _tables(scratch_database)


def test_single_head() -> None:
    assert head_revision() is not None


def test_every_business_table_is_tenant_keyed() -> None:
    """Sharding-ready: tenant id leads every primary key and is in every foreign key and
    unique constraint of a business table."""
    from sqlalchemy import ForeignKeyConstraint, Index, UniqueConstraint

    for table in Base.metadata.sorted_tables:
        if table.name == "organizations":
            continue
        assert "organization_id" in table.c, table.name
        assert next(iter(table.primary_key.columns)).name == "organization_id", table.name
        for constraint in table.constraints:
            if isinstance(constraint, ForeignKeyConstraint | UniqueConstraint):
                cols = [c.name for c in constraint.columns]
                assert "organization_id" in cols, (table.name, constraint.name)
        for index in table.indexes:
            if isinstance(index, Index) and index.unique:
                assert "organization_id" in [c.name for c in index.columns], index.name
