from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.audit import service
from app.audit.schemas import AuditLogOut
from app.core.auth import Principal
from app.core.deps import ADMIN, PageDep, SessionDep, require, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS

router = APIRouter(
    prefix="/audit-log", tags=["audit-log"], route_class=DealbaseRoute, responses=COMMON_ERRORS
)
Auditor = Annotated[Principal, Depends(require("audit_log:read", roles=ADMIN))]


@router.get(
    "",
    operation_id="audit-log-list",
    summary="Who changed what, through which key (admins)",
)
async def list_audit_log(
    _: Auditor,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("at", "-at")] = None,
    action: Annotated[str | None, Query(examples=["account.updated"])] = None,
    resource_type: str | None = None,
    resource_id: uuid.UUID | None = None,
    actor_user_id: uuid.UUID | None = None,
    api_key_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ListEnvelope[AuditLogOut]:
    rows, next_cursor = await service.audit_log(
        session,
        service.AuditFilters(
            action, resource_type, resource_id, actor_user_id, api_key_id, since, until
        ),
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(data=[AuditLogOut.model_validate(r) for r in rows], next_cursor=next_cursor)
