"""Reading the audit log and field history (writing is automatic: app/core/audit.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate, parse_sort
from app.models import AuditLog, FieldHistory

HISTORY_SORT = {"changed_at": FieldHistory.changed_at}
AUDIT_SORT = {"at": AuditLog.at}


async def field_history(
    session: AsyncSession,
    resource_type: str,
    resource_id: uuid.UUID,
    *,
    field: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[FieldHistory], str | None]:
    keys = parse_sort(None, HISTORY_SORT, default="-changed_at", id_column=FieldHistory.id)
    stmt = select(FieldHistory).where(
        FieldHistory.resource_type == resource_type, FieldHistory.resource_id == resource_id
    )
    if field is not None:
        stmt = stmt.where(FieldHistory.field == field)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


@dataclass(frozen=True, slots=True)
class AuditFilters:
    action: str | None = None
    resource_type: str | None = None
    resource_id: uuid.UUID | None = None
    actor_user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None


async def audit_log(
    session: AsyncSession,
    filters: AuditFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[AuditLog], str | None]:
    keys: list[SortKey] = parse_sort(sort, AUDIT_SORT, default="-at", id_column=AuditLog.id)
    stmt = select(AuditLog)
    for column, value in (
        (AuditLog.action, filters.action),
        (AuditLog.resource_type, filters.resource_type),
        (AuditLog.resource_id, filters.resource_id),
        (AuditLog.actor_user_id, filters.actor_user_id),
        (AuditLog.api_key_id, filters.api_key_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.since is not None:
        stmt = stmt.where(AuditLog.at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(AuditLog.at < filters.until)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)
