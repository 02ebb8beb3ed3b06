"""Optimistic concurrency (If-Match) and per-tenant advisory locks."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import PreconditionFailed


def check_version(resource: str, current: int, expected: int | None) -> None:
    """Refuse the change when the client's If-Match names another version."""
    if expected is not None and expected != current:
        raise PreconditionFailed(
            f"The {resource} changed since you read it (version {expected}, now {current}); "
            "reload it and retry",
            code="version_mismatch",
            extra={"current_version": current},
        )


async def lock_tenant_topic(session: AsyncSession, organization_id: uuid.UUID, topic: str) -> None:
    """Serialise one kind of change within one tenant until the transaction ends."""
    key = func.hashtextextended(f"{topic}:{organization_id}", 0)
    await session.execute(select(func.pg_advisory_xact_lock(key)))
