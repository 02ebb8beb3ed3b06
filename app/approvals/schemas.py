from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from app.core.schemas import PatchSchema, Resource, Schema, UtcDatetime, VersionedResource

RejectReason = Literal["discount_too_high", "terms_unacceptable", "margin", "missing_info", "other"]


class PolicyCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    rules: list[dict[str, Any]] = Field(
        description="Ordered rules: {name, when: {discount_pct_gt?, net_total_gt?, "
        "payment_terms_gt?, term_months_gt?}, steps: [{kind: manager_chain | group | user, "
        "group?, user_id?}]}",
    )
    expires_after_days: int = Field(default=7, ge=1, le=90)
    active: bool = True


class PolicyUpdate(PatchSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    rules: list[dict[str, Any]] | None = None
    expires_after_days: int | None = Field(default=None, ge=1, le=90)
    active: bool | None = None


class PolicyOut(VersionedResource):
    name: str
    rules: list[dict[str, Any]]
    expires_after_days: int
    active: bool


class PlannedStepOut(Schema):
    position: int
    kind: str
    rule: str = Field(description="The policy rule that asks for this step")
    label: str
    approver_ids: list[uuid.UUID]
    group: str | None
    resolvable: bool


class PlanOut(Schema):
    quote_id: uuid.UUID
    version: int
    effective_discount_pct: str
    needs_approval: bool
    resolvable: bool
    steps: list[PlannedStepOut]


class StepOut(Schema):
    position: int
    kind: str
    rule: str
    label: str
    approver_ids: list[uuid.UUID]
    status: Literal["waiting", "pending", "approved", "rejected", "cancelled"]
    decided_by_id: uuid.UUID | None
    on_behalf_of_id: uuid.UUID | None
    decided_at: datetime | None
    comment: str | None
    reason_code: str | None


class ApprovalOut(VersionedResource):
    quote_id: uuid.UUID
    quote_version: int
    requested_by_id: uuid.UUID | None
    status: Literal["pending", "approved", "rejected", "recalled", "expired", "superseded"]
    current_step: int
    expires_at: datetime | None
    decided_at: datetime | None
    steps: list[StepOut]


class ApproveIn(Schema):
    comment: str | None = Field(default=None, max_length=2000)


class RejectIn(Schema):
    reason_code: RejectReason
    reason: str = Field(min_length=1, max_length=2000)
    comment: str | None = Field(default=None, max_length=2000)


class DelegationIn(Schema):
    delegate_id: uuid.UUID
    user_id: uuid.UUID | None = Field(
        default=None, description="Whose approvals (admins); default yourself"
    )
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime


class DelegationOut(Resource):
    user_id: uuid.UUID
    delegate_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
