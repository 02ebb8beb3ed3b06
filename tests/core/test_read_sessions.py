"""Reads (GET) run on autocommit sessions that refuse writes; other operations, and the
KPI reports, run in one transaction, statements sent on the driver included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import ORMExecuteState, Session

from app.core.driver import prepared_rows
from app.core.repository import insert_rows
from app.core.tenancy import READ_ONLY_KEY, Actor, ReadOnlySession, bind_tenant
from app.models import Account
from tests.factories import Tenant, create_account


@pytest.fixture
def read_only_flags() -> Iterator[list[bool]]:
    """Whether each ORM statement executed meanwhile ran on a read session."""
    seen: list[bool] = []

    def record(state: ORMExecuteState) -> None:
        seen.append(bool(state.session.info.get(READ_ONLY_KEY)))

    event.listen(Session, "do_orm_execute", record)
    yield seen
    event.remove(Session, "do_orm_execute", record)


async def test_get_runs_on_a_read_session_and_post_does_not(
    client: AsyncClient, tenant: Tenant, read_only_flags: list[bool]
) -> None:
    account = await create_account(client, tenant.headers)
    assert read_only_flags and not any(read_only_flags)

    read_only_flags.clear()
    assert (await client.get(f"/v1/accounts/{account['id']}", headers=tenant.headers)).is_success
    assert (await client.get("/v1/accounts", headers=tenant.headers)).is_success
    assert read_only_flags and all(read_only_flags)

    # The KPI queries raise work_mem with SET LOCAL, which needs a transaction.
    read_only_flags.clear()
    summary = await client.get(
        "/v1/metrics/summary", params={"period": "2026-Q3"}, headers=tenant.headers
    )
    assert summary.status_code == 200, summary.text
    assert read_only_flags and not any(read_only_flags)


async def test_a_read_session_refuses_writes(app: FastAPI, tenant: Tenant) -> None:
    async with app.state.read_sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        session.add(Account(name="Written on a read"))
        with pytest.raises(ReadOnlySession):
            await session.flush()
    async with app.state.read_sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        with pytest.raises(ReadOnlySession):
            await session.execute(update(Account).values(name="Renamed"))
        row = {"organization_id": tenant.organization_id, "name": "Inserted on a read"}
        with pytest.raises(ReadOnlySession):
            await insert_rows(session, Account, [row])


async def test_statements_on_the_driver_are_part_of_the_session_transaction(
    app: FastAPI, tenant: Tenant
) -> None:
    """Hot paths send statements straight to asyncpg (``app.core.driver``). Sent before any
    through SQLAlchemy, they used to run in autocommit, each committed alone: rolled back,
    the session must keep none of them."""
    row = {
        "organization_id": tenant.organization_id,
        "name": "Never committed",
        "segment": "smb",
        "version": 1,
    }
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        await insert_rows(session, Account, [row])
        written = select(func.count()).select_from(Account).where(Account.name == row["name"])
        assert await session.scalar(written) == 1  # seen inside the transaction
        await session.rollback()
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        assert await session.scalar(written) == 0


# Built once: prepared_rows compiles a statement at its first run only.
_ACCOUNT_NAMES = select(Account.id, Account.name)


async def test_a_read_session_holds_at_most_one_connection_and_gives_it_back(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    """A read session's statements on the driver take a pooled connection of its own (not
    a SQLAlchemy connection, ~100 µs a request): the ORM's first statement, and ``close``,
    give it back, so a request never holds two connections, and none is kept."""
    await create_account(client, tenant.headers, name="Read on the driver")
    pool = app.state.engine.pool
    before = pool.checkedout()
    async with app.state.read_sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        rows = await prepared_rows(session, _ACCOUNT_NAMES)
        assert [row.name for row in rows] == ["Read on the driver"]
        assert pool.checkedout() == before + 1
        assert session.sync_session.get_transaction() is None  # no SQLAlchemy connection

        assert await session.scalar(select(func.count()).select_from(Account)) == 1
        assert pool.checkedout() == before + 1  # the ORM's, the driver's given back
        # Now the driver sends on the ORM's connection.
        assert len(await prepared_rows(session, _ACCOUNT_NAMES)) == 1
        assert pool.checkedout() == before + 1
    assert pool.checkedout() == before

    async with app.state.read_sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        assert len(await prepared_rows(session, _ACCOUNT_NAMES)) == 1
        assert pool.checkedout() == before + 1
    assert pool.checkedout() == before
