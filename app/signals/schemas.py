from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from app.core.schemas import Schema, UtcDatetime

SignalType = Literal[
    "trial_started",
    "feature_used",
    "seats_added",
    "active_users",
    "web_visit",
    "email_opened",
    "content_downloaded",
    "other",
]
MAX_BATCH = 1000


class SignalIn(Schema):
    type: SignalType
    lead_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    occurred_at: UtcDatetime
    value: int | None = Field(
        default=None,
        ge=0,
        le=2_147_483_647,
        description="A measure, e.g. the active user count or the seats added",
    )
    properties: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(min_length=1, max_length=64, examples=["product", "website"])
    external_id: str = Field(
        min_length=1,
        max_length=200,
        description="The sender's event id: with `source`, what makes a resend a duplicate",
    )

    @model_validator(mode="after")
    def _has_subject(self) -> SignalIn:
        if self.lead_id is None and self.contact_id is None and self.account_id is None:
            raise ValueError("a signal needs lead_id, contact_id or account_id")
        return self


class SignalBatch(Schema):
    signals: list[SignalIn] = Field(min_length=1, max_length=MAX_BATCH)


class SignalBatchOut(Schema):
    accepted: int = Field(description="Signals stored by this call")
    duplicates: int = Field(description="Signals already stored (same source and external_id)")
    ids: list[uuid.UUID] = Field(
        description="The stored signal of every item, in request order (for a duplicate, "
        "the one stored first)"
    )
    duplicate_indexes: list[int] = Field(description="Which items were duplicates")


class SignalOut(Schema):
    id: uuid.UUID
    type: SignalType
    lead_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    account_id: uuid.UUID | None
    occurred_at: datetime
    value: int | None
    properties: dict[str, Any]
    source: str
    external_id: str
    received_at: datetime
