"""Idempotency-Key on POST: replay, misuse, concurrency, release on failure."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, update

from app.core.tenancy import UNSCOPED, Actor, bind_tenant
from app.models import Account, IdempotencyRecord, OutboxEvent
from tests.factories import Tenant, assert_problem


async def _count(app: FastAPI, tenant: Tenant, model: type) -> int:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_same_key_same_body_replays_without_writing_twice(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "create-acme-1"}
    body = {"name": "Acme", "domain": "acme.example"}
    first = await client.post("/v1/accounts", json=body, headers=headers)
    second = await client.post("/v1/accounts", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Location"] == first.headers["Location"]
    assert await _count(app, tenant, Account) == 1
    assert await _count(app, tenant, OutboxEvent) == 1


async def test_same_key_different_body_is_422(client: AsyncClient, tenant: Tenant) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "k-2"}
    await client.post("/v1/accounts", json={"name": "One"}, headers=headers)
    response = await client.post("/v1/accounts", json={"name": "Two"}, headers=headers)
    assert_problem(response, 422, "idempotency_key_reused")


async def test_keys_are_scoped_per_api_key(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    for t in (tenant, other_tenant):
        response = await client.post(
            "/v1/accounts", json={"name": "Same"}, headers={**t.headers, "Idempotency-Key": "x"}
        )
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers


async def test_in_flight_key_is_409_and_stale_claim_is_taken_over(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "slow"}
    body = {"name": "Slow"}
    # Another worker holds the key: simulate its committed in-flight claim.
    first = await client.post("/v1/accounts", json=body, headers=headers)
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "slow")
            .values(state="in_flight", response_body=None)
            .execution_options(**UNSCOPED)
        )
    response = await client.post("/v1/accounts", json=body, headers=headers)
    assert_problem(response, 409, "idempotency_key_in_flight")

    # A claim abandoned by a crashed worker is taken over once stale.
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "slow")
            .values(created_at=func.now() - timedelta(minutes=10))
            .execution_options(**UNSCOPED)
        )
    retried = await client.post("/v1/accounts", json=body, headers=headers)
    assert retried.status_code == 201
    assert retried.json()["id"] != first.json()["id"]


async def test_concurrent_requests_with_one_key_write_once(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *(client.post("/v1/accounts", json={"name": "Burst"}, headers=headers) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    created_ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created_ids) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["code"] == "idempotency_key_in_flight"
    assert await _count(app, tenant, Account) == 1


async def test_failed_request_releases_the_key(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": "dup"}
    await client.post("/v1/accounts", json={"name": "A", "domain": "dup.example"})
    first = await client.post(
        "/v1/accounts", json={"name": "A", "domain": "dup.example"}, headers=tenant.headers
    )
    assert first.status_code == 201
    conflict = await client.post(
        "/v1/accounts", json={"name": "B", "domain": "dup.example"}, headers=headers
    )
    assert_problem(conflict, 409, "duplicate_account")
    # The failure stored nothing: the same key can carry a corrected request.
    fixed = await client.post(
        "/v1/accounts", json={"name": "B", "domain": "other.example"}, headers=headers
    )
    assert fixed.status_code == 201
    async with app.state.sessionmaker() as session:
        states = (
            await session.scalars(select(IdempotencyRecord.state).execution_options(**UNSCOPED))
        ).all()
    assert states == ["completed"]


async def test_invalid_key_is_400(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/accounts", json={"name": "A"}, headers={**tenant.headers, "Idempotency-Key": "x" * 300}
    )
    assert_problem(response, 400, "invalid_idempotency_key")
