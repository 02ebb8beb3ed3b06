"""Tasks: manual to-dos and the ones jobs create (follow-ups, handover, cross-sell)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import outbox
from app.core.auth import Principal
from app.core.concurrency import check_version
from app.core.errors import RuleViolation, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import ensure_active_user, get_or_404
from app.models import Account, Contact, Lead, Opportunity, Task
from app.tasks.schemas import TaskCreate, TaskUpdate

RESOURCE = "task"
SORTABLE = {"created_at": Task.created_at, "due_at": Task.due_at, "updated_at": Task.updated_at}
# Allowed status moves through the actions.
TRANSITIONS = {("open", "done"), ("open", "cancelled"), ("done", "open"), ("cancelled", "open")}


@dataclass(frozen=True, slots=True)
class TaskFilters:
    assignee_id: uuid.UUID | None = None
    status: str | None = None
    source: str | None = None
    account_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    lead_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None


async def list_tasks(
    session: AsyncSession,
    filters: TaskFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Task], str | None]:
    stmt = select(Task)
    for column, value in (
        (Task.assignee_id, filters.assignee_id),
        (Task.status, filters.status),
        (Task.source, filters.source),
        (Task.account_id, filters.account_id),
        (Task.opportunity_id, filters.opportunity_id),
        (Task.lead_id, filters.lead_id),
        (Task.contact_id, filters.contact_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.due_before is not None:
        stmt = stmt.where(Task.due_at < filters.due_before)
    if filters.due_after is not None:
        stmt = stmt.where(Task.due_at >= filters.due_after)
    keys = parse_sort(sort, SORTABLE, default="-created_at", id_column=Task.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_task(session: AsyncSession, task_id: uuid.UUID, *, for_update: bool = False) -> Task:
    return await get_or_404(session, Task, task_id, RESOURCE, for_update=for_update)


LINKS: dict[str, tuple[Any, str]] = {
    "account_id": (Account, "an account"),
    "opportunity_id": (Opportunity, "an opportunity"),
    "lead_id": (Lead, "a lead"),
    "contact_id": (Contact, "a contact"),
}


async def _check_links(
    session: AsyncSession, assignee_id: uuid.UUID | None, **links: uuid.UUID | None
) -> None:
    await ensure_active_user(session, "assignee_id", assignee_id)
    for field, value in links.items():
        model, what = LINKS[field]
        if (
            value is not None
            and await session.scalar(select(model.id).where(model.id == value)) is None
        ):
            raise invalid_reference(field, value, what)


async def create_task(session: AsyncSession, principal: Principal, data: TaskCreate) -> Task:
    assignee = data.assignee_id or principal.user_id
    await _check_links(
        session,
        assignee,
        account_id=data.account_id,
        opportunity_id=data.opportunity_id,
        lead_id=data.lead_id,
        contact_id=data.contact_id,
    )
    task = Task(
        id=new_id(),
        title=data.title,
        description=data.description,
        due_at=data.due_at,
        assignee_id=assignee,
        status="open",
        source="manual",
        account_id=data.account_id,
        opportunity_id=data.opportunity_id,
        lead_id=data.lead_id,
        contact_id=data.contact_id,
    )
    session.add(task)
    await session.flush()
    return task


def add_system_task(
    session: AsyncSession,
    *,
    title: str,
    source: str,
    assignee_id: uuid.UUID | None,
    due_at: datetime | None,
    dedupe_key: str,
    account_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    description: str | None = None,
) -> Task:
    """A task created by the system (jobs, handover); ``dedupe_key`` makes it once-only."""
    task = Task(
        id=new_id(),
        title=title,
        description=description,
        due_at=due_at,
        assignee_id=assignee_id,
        status="open",
        source=source,
        account_id=account_id,
        opportunity_id=opportunity_id,
        dedupe_key=dedupe_key,
    )
    session.add(task)
    outbox.emit(
        session,
        "task.created",
        resource_type=RESOURCE,
        resource_id=task.id,
        data={
            "id": task.id,
            "title": title,
            "source": source,
            "assignee_id": assignee_id,
            "opportunity_id": opportunity_id,
            "due_at": due_at,
        },
    )
    return task


async def update_task(
    session: AsyncSession, task_id: uuid.UUID, data: TaskUpdate, expected_version: int | None
) -> Task:
    task = await get_task(session, task_id, for_update=True)
    check_version(RESOURCE, task.version, expected_version)
    sent = data.model_fields_set
    if "assignee_id" in sent:
        await _check_links(session, data.assignee_id)
        task.assignee_id = data.assignee_id
    if "title" in sent and data.title is not None:
        task.title = data.title
    if "description" in sent:
        task.description = data.description
    if "due_at" in sent:
        task.due_at = data.due_at
    await session.flush()
    return task


async def change_status(
    session: AsyncSession, task_id: uuid.UUID, status: str, expected_version: int | None
) -> Task:
    task = await get_task(session, task_id, for_update=True)
    check_version(RESOURCE, task.version, expected_version)
    if (task.status, status) not in TRANSITIONS:
        raise RuleViolation(
            f"A task cannot go from {task.status} to {status}",
            code="invalid_status_transition",
            unmet=[{"code": "invalid_status_transition", "detail": f"{task.status} → {status}"}],
        )
    task.status = status
    task.completed_at = utcnow() if status == "done" else None
    await session.flush()
    return task
