from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.core.schemas import PatchSchema, Schema, UtcDatetime, VersionedResource

ActivityKind = Literal["email", "call", "meeting", "linkedin", "demo", "note"]


class ActivityCreate(Schema):
    kind: ActivityKind
    subject: str = Field(min_length=1, max_length=300, examples=["Demo for the plant managers"])
    occurred_at: UtcDatetime | None = Field(default=None, description="Default: now")
    duration_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    body: str | None = Field(default=None, max_length=20000)
    outcome: str | None = Field(default=None, max_length=300)
    selling: bool | None = Field(
        default=None, description="Counts as selling time (default: every kind but note)"
    )
    account_id: uuid.UUID | None = Field(
        default=None, description="Default: the deal's account, or the contacts' account"
    )
    opportunity_id: uuid.UUID | None = None
    lead_id: uuid.UUID | None = Field(default=None, description="Scores the lead's engagement")
    contact_ids: list[uuid.UUID] = Field(default_factory=list, description="Buyer-side people")
    user_ids: list[uuid.UUID] | None = Field(
        default=None, description="Our people (default: yourself)"
    )


class ActivityUpdate(PatchSchema):
    nullable = frozenset({"duration_minutes", "body", "outcome"})

    subject: str | None = Field(default=None, min_length=1, max_length=300)
    occurred_at: UtcDatetime | None = None
    duration_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    body: str | None = Field(default=None, max_length=20000)
    outcome: str | None = Field(default=None, max_length=300)
    selling: bool | None = None
    contact_ids: list[uuid.UUID] | None = None
    user_ids: list[uuid.UUID] | None = None


class ActivityOut(VersionedResource):
    kind: ActivityKind
    subject: str
    occurred_at: datetime
    duration_minutes: int | None
    body: str | None
    outcome: str | None
    selling: bool
    account_id: uuid.UUID | None
    opportunity_id: uuid.UUID | None
    lead_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    contact_ids: list[uuid.UUID]
    user_ids: list[uuid.UUID]


class TimelineItem(Schema):
    id: uuid.UUID
    type: Literal["activity", "stage_change", "status_change", "field_change", "signal"]
    occurred_at: datetime
    actor_user_id: uuid.UUID | None
    summary: str
    data: dict[str, Any]
