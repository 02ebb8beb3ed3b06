from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from app.core.schemas import (
    Decimal2,
    DecimalString,
    PatchSchema,
    Resource,
    Schema,
    VersionedResource,
)
from app.pipelines.schemas import ForecastCategory, StageKindName

OpportunityType = Literal["new_business", "expansion", "renewal"]
Source = Literal["web_form", "event", "outbound", "partner", "referral", "paid", "inbound", "other"]
WonReason = Literal["price", "product_fit", "relationship", "partner", "service", "other"]
LostReason = Literal[
    "lost_to_competitor",
    "no_budget",
    "no_decision",
    "timing",
    "price",
    "product_fit",
    "went_dark",
    "other",
]
Currency = Field(default=None, pattern=r"^[A-Z]{3}$", examples=["TRY"])


# --- opportunities ------------------------------------------------------------------------


class Competitor(Schema):
    name: str = Field(min_length=1, max_length=200)
    strength: Literal["weak", "medium", "strong"] | None = None
    status: Literal["active", "eliminated", "won"] = "active"


class Reason(Schema):
    code: str
    text: str | None = Field(default=None, max_length=2000)


class WonReasonIn(Reason):
    code: WonReason


class LostReasonIn(Reason):
    code: LostReason


class OpportunityFields(Schema):
    owner_id: uuid.UUID | None = None
    amount: Decimal2 | None = Field(default=None, ge=0, max_digits=20, examples=["250000.00"])
    currency: str | None = Currency
    close_date: date | None = None
    source: Source | None = None
    competitors: list[Competitor] | None = None
    next_step: str | None = Field(default=None, max_length=2000)
    forecast_category: ForecastCategory | None = Field(
        default=None, description="Override the stage's category (open deals only)"
    )
    custom_fields: dict[str, Any] | None = None


class OpportunityCreate(OpportunityFields):
    account_id: uuid.UUID
    name: str = Field(min_length=1, max_length=300, examples=["Bursa plant: 40 looms"])
    pipeline_id: uuid.UUID | None = Field(default=None, description="Default: org default")
    stage: str | None = Field(
        default=None, description="Start stage (default: the first); its requirements apply"
    )
    type: OpportunityType = "new_business"


class OpportunityUpdate(OpportunityFields, PatchSchema):
    """Stage, won/lost reasons and the account move only through actions."""

    nullable = frozenset(
        {"owner_id", "amount", "close_date", "source", "next_step", "forecast_category"}
    )

    name: str | None = Field(default=None, min_length=1, max_length=300)
    type: OpportunityType | None = None


class StageMove(Schema):
    stage: str = Field(examples=["negotiation"])
    reason: str | None = Field(
        default=None, max_length=2000, description="Required when moving backward"
    )
    won_reason: WonReasonIn | None = None
    lost_reason: LostReasonIn | None = None
    competitor: str | None = Field(
        default=None, max_length=200, description="Who won, when lost to a competitor"
    )
    close_date: date | None = Field(
        default=None,
        description="When closing (won or lost): the day the deal really closed, not after "
        "today. Default today. The deal's close_date becomes this day, so revenue lands in "
        "the period it was won.",
    )


class Reopen(Schema):
    stage: str | None = Field(
        default=None, description="Open stage to reopen into (default: the one before closing)"
    )
    reason: str = Field(min_length=1, max_length=2000)


class ReasonOut(Schema):
    code: str
    text: str | None


class OpportunityOut(VersionedResource):
    account_id: uuid.UUID
    name: str
    owner_id: uuid.UUID | None
    pipeline_id: uuid.UUID
    stage: str
    stage_id: uuid.UUID
    stage_kind: StageKindName
    probability: DecimalString
    amount: DecimalString | None
    currency: str
    close_date: date | None
    type: OpportunityType
    source: str | None
    lead_id: uuid.UUID | None
    partner_id: uuid.UUID | None
    competitors: list[Competitor]
    next_step: str | None
    forecast_category: ForecastCategory
    forecast_category_source: Literal["stage", "owner"]
    won_reason: ReasonOut | None
    lost_reason: ReasonOut | None
    custom_fields: dict[str, Any]
    stage_entered_at: datetime
    closed_at: datetime | None
    last_touch_at: datetime | None
    is_stale: bool
    stale_since: datetime | None


class UnmetOut(Schema):
    code: str
    detail: str


class StageHistoryOut(Schema):
    id: uuid.UUID
    from_stage: str | None
    to_stage: str
    direction: str
    is_backward: bool
    moved_at: datetime
    actor_user_id: uuid.UUID | None
    reason: str | None
    days_in_previous_stage: DecimalString | None
    amount: DecimalString | None
    currency: str
    probability: DecimalString
    forecast_category: str


class SplitIn(Schema):
    user_id: uuid.UUID
    percent: Decimal2 = Field(gt=0, le=100, max_digits=5)
    split_type: Literal["revenue", "commission"] = "revenue"


class SplitsIn(Schema):
    splits: list[SplitIn] = Field(
        description="The complete set; each split_type present must sum to exactly 100"
    )


class SplitOut(Resource):
    user_id: uuid.UUID | None
    partner_id: uuid.UUID | None
    percent: DecimalString
    split_type: str


class SplitsOut(Schema):
    opportunity_id: uuid.UUID
    splits: list[SplitOut]


class FollowUpRunOut(Schema):
    stale_marked: int
    tasks_created: int = Field(description="Follow-up tasks for stale deals")
    cross_sell_fired: int = Field(description="Cross-sell rules fired for won deals")
    organizations: int
