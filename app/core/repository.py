"""Loading one row of the caller's tenant by id, or a 404."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import NotFound, invalid_reference
from app.models import User

Row = TypeVar("Row")


async def get_or_404(
    session: AsyncSession,
    model: type[Row],
    row_id: uuid.UUID,
    resource: str,
    *,
    for_update: bool = False,
) -> Row:
    """The row (tenant-scoped like every query), or NotFound.

    ``for_update`` locks it and refreshes an instance already in the session: the locked
    row is the truth (another transaction may have changed it since it was loaded)."""
    column: Any = getattr(model, "id")  # noqa: B009 - the mixin's id, typed per model
    stmt = select(model).where(column == row_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(resource)
    return row


async def ensure_active_user(session: AsyncSession, field: str, user_id: uuid.UUID | None) -> None:
    """A body field naming a user must name an active user of this tenant (else 422)."""
    if user_id is not None and not await session.scalar(
        select(User.is_active).where(User.id == user_id)
    ):
        raise invalid_reference(field, user_id, "an active user")
