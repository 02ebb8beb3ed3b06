"""Idempotency-Key for POST requests.

1. ``claim`` inserts an ``in_flight`` record in its own, immediately committed transaction,
   so a concurrent request with the same key sees it (→ 409) while the first one runs.
2. The handler runs; ``complete`` stores the response in the request's own transaction, so
   the stored response exists exactly when the change it describes committed.
3. If the request fails, ``release`` deletes the claim so the client can retry.

Same key and same request → the stored response is replayed (``Idempotent-Replayed: true``);
same key and another request → 422. Records expire after ``idempotency_ttl_hours``; a claim
left behind by a crashed worker is taken over after ``idempotency_stale_seconds``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from starlette.responses import Response

from app.core.errors import BadRequest, Conflict, ValidationFailed
from app.core.ids import utcnow
from app.core.tenancy import UNSCOPED
from app.models.platform import IdempotencyRecord

REPLAYED_HEADER = "Idempotent-Replayed"
# Response headers worth replaying (content headers are recomputed by the Response).
STORED_HEADERS = ("etag", "location", "content-type")
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Claim:
    organization_id: uuid.UUID
    api_key_id: uuid.UUID
    key: str


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _record_filter(claim: Claim) -> tuple[ColumnElement[bool], ...]:
    return (
        IdempotencyRecord.organization_id == claim.organization_id,
        IdempotencyRecord.api_key_id == claim.api_key_id,
        IdempotencyRecord.key == claim.key,
    )


async def claim(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    organization_id: uuid.UUID,
    api_key_id: uuid.UUID,
    key: str,
    fingerprint: str,
    ttl_hours: int,
    stale_seconds: int,
) -> Claim | Response:
    """Claim the key, or return the stored response to replay. Raises on misuse."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters",
            code="invalid_idempotency_key",
        )
    this = Claim(organization_id, api_key_id, key)
    now = utcnow()
    async with sessionmaker() as session, session.begin():
        inserted = await session.execute(
            insert(IdempotencyRecord)
            .values(
                organization_id=organization_id,
                api_key_id=api_key_id,
                key=key,
                request_hash=fingerprint,
                state="in_flight",
                created_at=now,
                expires_at=now + timedelta(hours=ttl_hours),
            )
            .on_conflict_do_nothing()
            .returning(IdempotencyRecord.key)
        )
        if inserted.first() is not None:
            return this
        record = (
            await session.execute(
                select(IdempotencyRecord)
                .where(*_record_filter(this))
                .with_for_update()
                .execution_options(**UNSCOPED)
            )
        ).scalar_one()
        expired = record.expires_at <= now
        abandoned = record.state == "in_flight" and (
            (now - record.created_at).total_seconds() > stale_seconds
        )
        if expired or abandoned:
            record.request_hash = fingerprint
            record.state = "in_flight"
            record.created_at = now
            record.expires_at = now + timedelta(hours=ttl_hours)
            record.response_status = record.response_body = record.response_headers = None
            return this
        if record.request_hash != fingerprint:
            raise ValidationFailed(
                "This Idempotency-Key was already used with a different request",
                code="idempotency_key_reused",
            )
        if record.state == "in_flight":
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry later",
                code="idempotency_key_in_flight",
            )
        headers = dict(record.response_headers or {})
        headers[REPLAYED_HEADER] = "true"
        return Response(
            content=record.response_body,
            status_code=record.response_status or 200,
            headers=headers,
        )


async def complete(session: AsyncSession, claim: Claim, response: Response) -> None:
    """Store the response in the request's transaction (commits with the change)."""
    headers = {k: v for k, v in response.headers.items() if k.lower() in STORED_HEADERS}
    await session.execute(
        update(IdempotencyRecord)
        .where(*_record_filter(claim))
        .values(
            state="completed",
            response_status=response.status_code,
            response_headers=headers,
            response_body=bytes(response.body),
        )
        .execution_options(synchronize_session=False, **UNSCOPED)
    )


async def release(sessionmaker: async_sessionmaker[AsyncSession], claim: Claim) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(IdempotencyRecord)
            .where(*_record_filter(claim), IdempotencyRecord.state == "in_flight")
            .execution_options(synchronize_session=False, **UNSCOPED)
        )
