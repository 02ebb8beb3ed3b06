"""Cross-tenant reads and writes answer 404; lists never show another tenant's rows."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from app.core.tenancy import TenantScopeMissing
from app.models import Account
from tests.factories import Tenant, assert_problem, create_account


async def test_other_tenant_gets_404_for_every_account_operation(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers, name="Secret Co", domain="secret.co")
    base = f"/v1/accounts/{account['id']}"
    b = other_tenant.headers
    for method, path, body in (
        ("GET", base, None),
        ("PATCH", base, {"name": "hijacked"}),
        ("DELETE", base, None),
        ("POST", f"{base}/lifecycle", {"lifecycle": "customer"}),
        ("GET", f"{base}/hierarchy", None),
        ("GET", f"{base}/rollup", None),
        ("GET", f"{base}/history", None),
    ):
        response = await client.request(method, path, json=body, headers=b)
        assert_problem(response, 404, "not_found")

    listed = await client.get("/v1/accounts", headers=b)
    assert listed.json()["data"] == []
    by_domain = await client.get("/v1/accounts", params={"domain": "secret.co"}, headers=b)
    assert by_domain.json()["data"] == []

    # Nothing changed for the owner.
    mine = await client.get(base, headers=tenant.headers)
    assert mine.status_code == 200
    assert mine.json()["name"] == "Secret Co"
    assert mine.json()["version"] == 1


async def test_cannot_reference_another_tenants_rows(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await create_account(client, other_tenant.headers)
    response = await client.post(
        "/v1/accounts",
        json={"name": "Child", "parent_account_id": theirs["id"]},
        headers=tenant.headers,
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["field"] == "body.parent_account_id"
    response = await client.post(
        "/v1/accounts",
        json={"name": "Owned", "owner_id": str(other_tenant.admin_id)},
        headers=tenant.headers,
    )
    assert_problem(response, 422, "validation_failed")


async def test_same_domain_is_allowed_in_two_tenants(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await create_account(client, tenant.headers, domain="shared.com")
    await create_account(client, other_tenant.headers, domain="shared.com")


async def test_token_with_forged_organization_is_rejected(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    # Swap the organization part of A's token for B's: the key id no longer resolves.
    forged = "dlb_" + other_tenant.organization_id.hex + tenant.token[4 + 32 :]
    response = await client.get("/v1/accounts", headers={"Authorization": f"Bearer {forged}"})
    assert_problem(response, 401, "invalid_api_key")


async def test_unbound_session_refuses_orm_queries(app: FastAPI) -> None:
    async with app.state.sessionmaker() as session:
        with pytest.raises(TenantScopeMissing):
            await session.execute(select(Account).where(Account.id == uuid.uuid4()))


async def test_bound_session_only_sees_its_tenant(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    from app.core.tenancy import Actor, bind_tenant

    await create_account(client, tenant.headers, name="A1")
    await create_account(client, other_tenant.headers, name="B1")
    async with app.state.sessionmaker() as session:
        bind_tenant(session, other_tenant.organization_id, Actor())
        names = (await session.scalars(select(Account.name))).all()
    assert names == ["B1"]


async def test_a_statement_built_once_is_scoped_by_each_sessions_tenant(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """The scoped copy of a statement is cached (per statement object) and the tenant is a
    parameter of each execution: one statement object serves every organization."""
    from sqlalchemy import update

    from app.core.tenancy import Actor, bind_tenant

    await create_account(client, tenant.headers, name="A1")
    await create_account(client, other_tenant.headers, name="B1")
    names = select(Account.name)
    rename = update(Account).values(name=Account.name + " (renamed)")
    seen = {}
    for who in (tenant, other_tenant, tenant):
        async with app.state.sessionmaker() as session, session.begin():
            bind_tenant(session, who.organization_id, Actor())
            seen[who.organization_id] = (await session.scalars(names)).all()
    assert seen == {tenant.organization_id: ["A1"], other_tenant.organization_id: ["B1"]}

    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, other_tenant.organization_id, Actor())
        await session.execute(rename.execution_options(synchronize_session=False))
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        assert (await session.scalars(names)).all() == ["A1"]
        bind_tenant(session, other_tenant.organization_id, Actor())
        assert (await session.scalars(names)).all() == ["B1 (renamed)"]


async def test_rows_read_by_columns_are_scoped_like_orm_statements(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """``scoped_rows`` (column read models, e.g. GET of a deal) applies the same criteria:
    the session's organization only, soft-deleted rows hidden; a Core table select, which
    the criteria cannot reach, is refused."""
    from app.core.tenancy import Actor, bind_tenant, scoped_rows

    await create_account(client, tenant.headers, name="A1")
    gone = await create_account(client, tenant.headers, name="A2")
    await create_account(client, other_tenant.headers, name="B1")
    assert (
        await client.delete(f"/v1/accounts/{gone['id']}", headers=tenant.headers)
    ).status_code == 204
    names = select(Account.name, Account.id).order_by(Account.name)
    async with app.state.read_sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        assert [row.name for row in await scoped_rows(session, names)] == ["A1"]
        bind_tenant(session, other_tenant.organization_id, Actor())
        assert [row.name for row in await scoped_rows(session, names)] == ["B1"]
        with pytest.raises(TenantScopeMissing):
            await scoped_rows(session, select(Account.__table__.c.name))
    async with app.state.read_sessionmaker() as session:
        with pytest.raises(TenantScopeMissing):
            await scoped_rows(session, names)


async def test_rows_inserted_without_the_orm_belong_to_the_session_organization(
    app: FastAPI, tenant: Tenant, other_tenant: Tenant
) -> None:
    """``insert_rows`` (hot write paths) refuses a row of another organization, and one
    written on a session bound to none; the rows it writes are the session's tenant's,
    with the columns' defaults (id, timestamps) filled in."""
    from app.core.repository import insert_returning, insert_rows
    from app.core.tenancy import Actor, bind_tenant

    def account(organization: Tenant, name: str) -> dict[str, object]:
        return {"organization_id": organization.organization_id, "name": name, "segment": "smb"}

    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        with pytest.raises(TenantScopeMissing):
            await insert_rows(session, Account, [account(tenant, "A"), account(other_tenant, "B")])
        with pytest.raises(TenantScopeMissing):
            await insert_returning(session, Account, account(other_tenant, "B"), ("id",))
        await insert_rows(session, Account, [account(tenant, "A1"), account(tenant, "A2")])
        stored = await insert_returning(session, Account, account(tenant, "A3"), ("id", "name"))
        assert stored["name"] == "A3" and isinstance(stored["id"], uuid.UUID)
    async with app.state.sessionmaker() as session:
        with pytest.raises(TenantScopeMissing):
            await insert_rows(session, Account, [account(tenant, "A4")])
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        assert (await session.scalars(select(Account.name).order_by(Account.name))).all() == [
            "A1",
            "A2",
            "A3",
        ]
        # A constraint violation is SQLAlchemy's IntegrityError, which the API answers 409.
        with pytest.raises(IntegrityError):
            await insert_rows(session, Account, [{**account(tenant, "A4"), "id": stored["id"]}])


_NAMES = select(Account.name).order_by(Account.name)  # built once, as prepared_rows wants
_NAMED = select(Account.id).where(Account.name == bindparam("name"))
_EVERY_COLUMN = select(
    *(getattr(Account, prop.key) for prop in Account.__mapper__.column_attrs)
).order_by(Account.name)


async def test_prepared_rows_are_scoped_and_typed_as_sqlalchemy_reads_them(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    """``prepared_rows`` (statements built once, sent on the driver) applies the tenant
    criteria of ``scoped_rows`` with each session's own tenant, and gives the same values,
    of the same types, as SQLAlchemy's execution of the same statement."""
    from app.core.driver import prepared_rows
    from app.core.tenancy import Actor, bind_tenant, scoped_rows

    first = await create_account(client, tenant.headers, name="A1", segment="enterprise")
    gone = await create_account(client, tenant.headers, name="A2")
    await create_account(client, other_tenant.headers, name="B1")
    assert (
        await client.delete(f"/v1/accounts/{gone['id']}", headers=tenant.headers)
    ).status_code == 204
    async with app.state.read_sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        assert [row.name for row in await prepared_rows(session, _NAMES)] == ["A1"]
        found = await prepared_rows(session, _NAMED, {"name": "A1"})
        assert found.scalar() == uuid.UUID(first["id"])
        assert (await prepared_rows(session, _NAMED, {"name": "B1"})).first() is None
        driver_rows = await prepared_rows(session, _EVERY_COLUMN)
        orm_rows = (await scoped_rows(session, _EVERY_COLUMN)).all()
        assert [tuple(row) for row in driver_rows] == [tuple(row) for row in orm_rows]
        assert [[type(v) for v in row] for row in driver_rows] == [
            [type(v) for v in row] for row in orm_rows
        ]
        bind_tenant(session, other_tenant.organization_id, Actor())
        assert [row.name for row in await prepared_rows(session, _NAMES)] == ["B1"]

        with pytest.raises(TenantScopeMissing):  # a Core select escapes the criteria
            await prepared_rows(session, select(Account.__table__.c.name))
        with pytest.raises(ValueError, match="list parameters"):
            await prepared_rows(
                session,
                select(Account.id).where(Account.name.in_(bindparam("names", expanding=True))),
                {"names": ["A1"]},
            )
    async with app.state.read_sessionmaker() as session:
        with pytest.raises(TenantScopeMissing):
            await prepared_rows(session, _NAMES)
