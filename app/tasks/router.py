from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.errors import BadRequest
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.tasks import service
from app.tasks.schemas import TaskCreate, TaskOut, TaskSource, TaskStatus, TaskUpdate

router = APIRouter(
    prefix="/tasks", tags=["tasks"], route_class=DealbaseRoute, responses=COMMON_ERRORS
)
Reader = Annotated[Principal, Depends(require("tasks:read"))]
Writer = Annotated[Principal, Depends(require("tasks:write"))]


@router.get("", operation_id="tasks-list", summary="List tasks")
async def list_tasks(
    principal: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("created_at, due_at, updated_at", "-created_at")] = None,
    assignee_id: Annotated[str | None, Query(description="A user id, or `me`")] = None,
    status: TaskStatus | None = None,
    source: TaskSource | None = None,
    account_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    lead_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    due_before: datetime | None = None,
    due_after: datetime | None = None,
) -> ListEnvelope[TaskOut]:
    filters = service.TaskFilters(
        assignee_id=_user_filter(assignee_id, principal),
        status=status,
        source=source,
        account_id=account_id,
        opportunity_id=opportunity_id,
        lead_id=lead_id,
        contact_id=contact_id,
        due_before=due_before,
        due_after=due_after,
    )
    rows, next_cursor = await service.list_tasks(
        session, filters, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[TaskOut.model_validate(r) for r in rows], next_cursor=next_cursor)


def _user_filter(value: str | None, principal: Principal) -> uuid.UUID | None:
    if value is None:
        return None
    if value == "me":
        return principal.user_id
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise BadRequest(
            "assignee_id must be a user id or 'me'",
            code="invalid_parameter",
            errors=[{"field": "query.assignee_id", "code": "uuid_parsing"}],
        ) from exc


@router.post(
    "",
    operation_id="tasks-create",
    summary="Create a task",
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def create_task(
    body: TaskCreate, principal: Writer, session: SessionDep, response: Response
) -> TaskOut:
    task = await service.create_task(session, principal, body)
    set_etag(response, task.version)
    response.headers["Location"] = f"/v1/tasks/{task.id}"
    return TaskOut.model_validate(task)


@router.get("/{task_id}", operation_id="tasks-get", summary="Get a task", responses=errors(404))
async def get_task(
    task_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> TaskOut:
    task = await service.get_task(session, task_id)
    set_etag(response, task.version)
    return TaskOut.model_validate(task)


@router.patch(
    "/{task_id}",
    operation_id="tasks-update",
    summary="Update a task",
    description="Status changes through the complete/cancel/reopen actions.",
    responses=errors(404, 412, 422),
)
async def update_task(
    task_id: uuid.UUID,
    body: TaskUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> TaskOut:
    task = await service.update_task(session, task_id, body, expected)
    set_etag(response, task.version)
    return TaskOut.model_validate(task)


def _status_action(action: str, target: str) -> None:
    @router.post(
        f"/{{task_id}}/{action}",
        operation_id=f"tasks-{action}",
        summary=f"{action.capitalize()} a task",
        responses=errors(404, 409, 412),
    )
    async def change(
        task_id: uuid.UUID,
        _: Writer,
        session: SessionDep,
        expected: IfMatch,
        response: Response,
    ) -> TaskOut:
        task = await service.change_status(session, task_id, target, expected)
        set_etag(response, task.version)
        return TaskOut.model_validate(task)


for _action, _target in (("complete", "done"), ("cancel", "cancelled"), ("reopen", "open")):
    _status_action(_action, _target)
