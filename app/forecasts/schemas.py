from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from app.core.schemas import TWO_PLACES, Decimal2, DecimalString, Resource, Schema

AdjustmentCategory = Literal["commit", "best_case"]
TrendGroup = Literal["stage", "category", "owner"]
PeriodLabel = Annotated[
    str,
    Field(
        min_length=4,
        max_length=16,
        examples=["2026-Q3"],
        description="`YYYY` (fiscal year), `YYYY-Qn` (fiscal quarter) or `YYYY-MM` "
        "(calendar month), resolved with the organization's fiscal year start.",
    ),
]
Amount = Annotated[Decimal2, Field(ge=0, max_digits=20, examples=["250000.00"])]
# An output amount: always exactly two decimals ("1250.00").
Money = Annotated[DecimalString, AfterValidator(lambda v: v.quantize(TWO_PLACES))]
Note = Annotated[str | None, Field(default=None, max_length=2000)]


class PeriodOut(Schema):
    label: str = Field(examples=["2026-Q3"])
    start: date = Field(description="First day of the period")
    end: date = Field(description="Day after the last day of the period (exclusive)")


# --- roll-up --------------------------------------------------------------------------


class UserRef(Schema):
    id: uuid.UUID
    name: str
    role: str
    is_active: bool


class Figures(Schema):
    """Deals closing in the period (by close date), in the corporate currency."""

    closed_won: Money = Field(description="Σ amount of won deals")
    commit: Money = Field(description="Σ amount of open deals in the commit category")
    best_case: Money = Field(description="commit + Σ amount of open best-case deals")
    pipeline: Money = Field(description="Σ amount of open deals, every category but omitted")
    weighted_pipeline: Money = Field(description="Σ amount × stage probability / 100")
    closed_won_count: int
    commit_count: int
    best_case_count: int
    pipeline_count: int
    unconverted_count: int = Field(
        description="Deals left out because no exchange rate to the corporate currency is "
        "known (won deals: on their close date; open deals: today)"
    )


class AdjustmentOut(Resource):
    user_id: uuid.UUID = Field(description="Whose number is adjusted")
    period: str
    period_start: date
    period_end: date = Field(description="Exclusive")
    category: AdjustmentCategory
    amount: Money = Field(description="The adjusted figure")
    currency: str
    adjusted_by_id: uuid.UUID
    adjusted_by_name: str
    note: str | None


class ForecastNode(Schema):
    user: UserRef
    manager_id: uuid.UUID | None
    own: Figures = Field(description="Deals owned by this user")
    total: Figures = Field(description="This user and everyone under them")
    quota: Money | None = Field(
        description="The user's own quota for the period if recorded, else the sum of "
        "their direct reports' (rolled) quotas; null when neither exists"
    )
    quota_source: Literal["own", "subordinates"] | None
    unconverted_quota_count: int = Field(
        description="Quotas left out of `quota`: no exchange rate known on their start day"
    )
    gap: Money | None = Field(
        description="quota − (total.closed_won + total.commit); null without a quota"
    )
    adjustments: list[AdjustmentOut] = Field(
        description="Effective adjustments of this user's number (the latest per category "
        "and adjusting manager, newest first), shown beside the computed figures"
    )
    children: list[ForecastNode] = Field(description="Direct reports, by name")


class ForecastOut(ForecastNode):
    period: PeriodOut
    currency: str = Field(description="The corporate currency of every amount")
    as_of: date = Field(description="Open deals are converted at this day's rates (UTC)")


# --- adjustments ----------------------------------------------------------------------


class AdjustmentCreate(Schema):
    user_id: uuid.UUID = Field(description="Whose number is adjusted")
    period: PeriodLabel
    category: AdjustmentCategory
    amount: Amount = Field(description="The adjusted figure, in the corporate currency")
    note: Note


# --- submissions ----------------------------------------------------------------------


class SubmissionCreate(Schema):
    period: PeriodLabel
    commit: Amount
    best_case: Amount = Field(description="At least `commit` (best case includes commit)")
    note: Note
    user_id: uuid.UUID | None = Field(
        default=None,
        description="Whose forecast; default: yours. Managers submit for people under "
        "them, admins for anyone.",
    )

    @model_validator(mode="after")
    def _best_case_covers_commit(self) -> SubmissionCreate:
        if self.best_case < self.commit:
            raise ValueError("best_case must be at least commit")
        return self


class SubmissionOut(Resource):
    user_id: uuid.UUID
    period: str
    period_start: date
    period_end: date = Field(description="Exclusive")
    commit: Money
    best_case: Money
    currency: str
    submitted_at: datetime
    submitted_by_id: uuid.UUID | None
    note: str | None


# --- pipeline snapshots and trend -----------------------------------------------------


class SnapshotRowOut(Schema):
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    forecast_category: str
    owner_id: uuid.UUID | None
    deal_count: int
    amount: Money
    weighted_amount: Money
    unconverted_count: int


class SnapshotOut(Schema):
    snapshot_date: date
    currency: str
    deal_count: int
    amount: Money
    weighted_amount: Money
    unconverted_count: int
    rows: list[SnapshotRowOut] = Field(
        description="Open deals per pipeline, stage, forecast category and owner"
    )


class TrendPoint(Schema):
    date: date
    value: Money = Field(description="Σ amount")
    weighted_value: Money = Field(description="Σ amount × stage probability / 100")
    count: int = Field(description="Number of open deals")


class TrendSeries(Schema):
    key: str | None = Field(
        description="Stage id, forecast category or owner id (null: deals without owner)"
    )
    label: str
    pipeline_id: uuid.UUID | None = Field(description="The stage's pipeline (group_by=stage)")
    points: list[TrendPoint] = Field(description="One per date of `dates`, zeros included")


class TrendOut(Schema):
    from_date: date = Field(alias="from", description="First day of the range")
    to_date: date = Field(alias="to", description="Last day of the range (inclusive)")
    group_by: TrendGroup
    currency: str
    dates: list[date] = Field(description="The days with a snapshot in the range, in order")
    series: list[TrendSeries]
    totals: list[TrendPoint] = Field(description="All groups together, per date")
