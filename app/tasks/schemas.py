from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from app.core.schemas import PatchSchema, Schema, UtcDatetime, VersionedResource

TaskStatus = Literal["open", "done", "cancelled"]
TaskSource = Literal["manual", "follow_up", "handover", "cross_sell"]


class TaskCreate(Schema):
    title: str = Field(min_length=1, max_length=300, examples=["Send the revised quote"])
    description: str | None = Field(default=None, max_length=5000)
    due_at: UtcDatetime | None = None
    assignee_id: uuid.UUID | None = Field(default=None, description="Default: yourself")
    account_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    lead_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None


class TaskUpdate(PatchSchema):
    nullable = frozenset({"description", "due_at", "assignee_id"})

    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=5000)
    due_at: UtcDatetime | None = None
    assignee_id: uuid.UUID | None = None


class TaskOut(VersionedResource):
    title: str
    description: str | None
    due_at: datetime | None
    assignee_id: uuid.UUID | None
    status: TaskStatus
    source: TaskSource
    account_id: uuid.UUID | None
    opportunity_id: uuid.UUID | None
    lead_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    completed_at: datetime | None
