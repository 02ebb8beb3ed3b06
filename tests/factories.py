"""Small async helpers that create test data through the services or the HTTP API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient, Response

from app.api_keys.service import issue_key
from app.core.tenancy import Actor, bind_tenant
from app.users.service import create_organization


@dataclass
class Tenant:
    organization_id: uuid.UUID
    admin_id: uuid.UUID
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def new_tenant(app: FastAPI, name: str) -> Tenant:
    async with app.state.sessionmaker() as session, session.begin():
        org, admin, token = await create_organization(
            session, name=name, admin_email=f"admin@{uuid.uuid4().hex[:8]}.test"
        )
    return Tenant(org.id, admin.id, token)


async def key_for(
    app: FastAPI,
    tenant: Tenant,
    *,
    scopes: list[str],
    role: str | None = None,
    user_id: uuid.UUID | None = None,
) -> dict[str, str]:
    """Auth headers for a new key; with ``role``, for a new user of that role."""
    from app.models import User

    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        owner = user_id or tenant.admin_id
        if role is not None:
            user = User(
                organization_id=tenant.organization_id,
                id=uuid.uuid4(),
                email=f"{role}-{uuid.uuid4().hex[:8]}@example.test",
                name=f"A {role}",
                role=role,
                is_active=True,
            )
            session.add(user)
            await session.flush()
            owner = user.id
        _, token = await issue_key(
            session,
            organization_id=tenant.organization_id,
            user_id=owner,
            name="test key",
            scopes=scopes,
        )
    return {"Authorization": f"Bearer {token}"}


async def create(
    client: AsyncClient, path: str, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_account(
    client: AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    body = {"name": f"Account {uuid.uuid4().hex[:6]}", **fields}
    return await create(client, "/v1/accounts", headers, body)


async def create_user(
    client: AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    body = {"email": f"user-{uuid.uuid4().hex[:8]}@example.com", "name": "Some User", **fields}
    return await create(client, "/v1/users", headers, body)


async def create_team(
    client: AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    return await create(
        client, "/v1/teams", headers, {"name": f"Team {uuid.uuid4().hex[:6]}", **fields}
    )


def assert_problem(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = dict(response.json())
    for member in ("type", "title", "status", "detail", "code"):
        assert member in body, body
    assert body["status"] == status
    assert body["type"].startswith("https://dealbase.dev/problems/")
    if code is not None:
        assert body["code"] == code, body
    return body
