from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.activities import service
from app.activities.schemas import (
    ActivityCreate,
    ActivityKind,
    ActivityOut,
    ActivityUpdate,
    TimelineItem,
)
from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors

router = APIRouter(route_class=DealbaseRoute, responses=COMMON_ERRORS)
Reader = Annotated[Principal, Depends(require("activities:read"))]
Writer = Annotated[Principal, Depends(require("activities:write"))]
ACTIVITY_FIELDS = tuple(f for f in ActivityOut.model_fields if f not in ("contact_ids", "user_ids"))


def out(view: service.ActivityView) -> ActivityOut:
    fields = {name: getattr(view.activity, name) for name in ACTIVITY_FIELDS}
    return ActivityOut(**fields, contact_ids=view.contact_ids, user_ids=view.user_ids)


@router.get(
    "/activities", tags=["activities"], operation_id="activities-list", summary="List activities"
)
async def list_activities(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("occurred_at, created_at", "-occurred_at")] = None,
    kind: ActivityKind | None = None,
    account_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    selling: bool | None = None,
    occurred_after: datetime | None = None,
    occurred_before: datetime | None = None,
) -> ListEnvelope[ActivityOut]:
    filters = service.ActivityFilters(
        kind,
        account_id,
        opportunity_id,
        contact_id,
        owner_id,
        selling,
        occurred_after,
        occurred_before,
    )
    views, next_cursor = await service.list_activities(
        session, filters, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[out(v) for v in views], next_cursor=next_cursor)


@router.post(
    "/activities",
    tags=["activities"],
    operation_id="activities-create",
    summary="Log an activity (touchpoint)",
    description="A touch on a deal (by default every kind but `note`; org setting "
    "`touch_activity_kinds`) moves the deal's `last_touch_at` and ends a stale spell.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def create_activity(
    body: ActivityCreate, principal: Writer, session: SessionDep, response: Response
) -> ActivityOut:
    view = await service.create_activity(session, principal, body)
    set_etag(response, view.activity.version)
    response.headers["Location"] = f"/v1/activities/{view.activity.id}"
    return out(view)


@router.get(
    "/activities/{activity_id}",
    tags=["activities"],
    operation_id="activities-get",
    summary="Get an activity",
    responses=errors(404),
)
async def get_activity(
    activity_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> ActivityOut:
    view = await service.get_activity(session, activity_id)
    set_etag(response, view.activity.version)
    return out(view)


@router.patch(
    "/activities/{activity_id}",
    tags=["activities"],
    operation_id="activities-update",
    summary="Update an activity",
    responses=errors(404, 412, 422),
)
async def update_activity(
    activity_id: uuid.UUID,
    body: ActivityUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> ActivityOut:
    view = await service.update_activity(session, activity_id, body, expected)
    set_etag(response, view.activity.version)
    return out(view)


@router.delete(
    "/activities/{activity_id}",
    tags=["activities"],
    operation_id="activities-delete",
    summary="Delete an activity",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_activity(
    activity_id: uuid.UUID, _: Writer, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_activity(session, activity_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _timeline_route(collection: str, subject: str, tag: str) -> None:
    @router.get(
        f"/{collection}/{{subject_id}}/timeline",
        tags=[tag],
        operation_id=f"{tag}-timeline",
        summary=f"The {subject}'s activities and history, newest first",
        responses=errors(404),
    )
    async def timeline(
        subject_id: uuid.UUID, _: Reader, session: SessionDep, page: PageDep
    ) -> ListEnvelope[TimelineItem]:
        await service.require_subject(session, subject, subject_id)
        items, next_cursor = await service.timeline(
            session, subject, subject_id, limit=page.limit, cursor=page.cursor
        )
        return ListEnvelope(
            data=[TimelineItem.model_validate(i) for i in items], next_cursor=next_cursor
        )


for _collection, _subject, _tag in (
    ("accounts", "account", "accounts"),
    ("opportunities", "opportunity", "opportunities"),
    ("contacts", "contact", "stakeholders"),
    ("leads", "lead", "leads"),
):
    _timeline_route(_collection, _subject, _tag)
