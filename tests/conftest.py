"""One PostgreSQL database per test session, built by the Alembic migrations; every test
starts from empty tables (truncation). With DATABASE_URL set, the test database is created
on that server; otherwise on an embedded PostgreSQL started for the session."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.core.auth import VerifiedKeys
from app.core.config import Settings
from app.core.database import start_embedded_postgres
from app.core.migrate import upgrade
from app.main import create_app
from app.models import Base
from tests.factories import Tenant, new_tenant


def _server_url() -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    data_dir = Path(tempfile.mkdtemp(prefix="dealbase-test-"))
    return start_embedded_postgres(data_dir, database="postgres", delete_on_exit=True)


async def _admin(url: str, statement: str) -> None:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password or None,
        host=parsed.host or parsed.query.get("host"),
        port=parsed.port,
        database=parsed.database or "postgres",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def server_url() -> str:
    return _server_url()


def create_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    url = create_database(server_url, "dealbase_test")
    upgrade(url)
    yield url
    drop_database(server_url, url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_level="WARNING", log_json=False)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    yield application
    await application.state.engine.dispose()
    await application.state.aggregates_engine.dispose()


TABLES = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "app" in request.fixturenames:
        application: FastAPI = request.getfixturevalue("app")
        async with application.state.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {TABLES} CASCADE"))
        VerifiedKeys.forget_all()  # the keys went with the tables


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
        yield c


@pytest.fixture
async def tenant(app: FastAPI) -> Tenant:
    return await new_tenant(app, "Org A")


@pytest.fixture
async def other_tenant(app: FastAPI) -> Tenant:
    return await new_tenant(app, "Org B")
