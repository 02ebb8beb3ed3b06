from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from app.core.schemas import Decimal2, DecimalString, PatchSchema, Schema, VersionedResource

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
PeriodLabel = Annotated[
    str,
    Field(
        min_length=4,
        max_length=16,
        examples=["2026-Q3"],
        description="`YYYY` (fiscal year), `YYYY-Qn` (fiscal quarter) or `YYYY-MM` "
        "(calendar month). A fiscal year is named after the calendar year in which it "
        "starts: with an April start, `2026` = 2026-04-01 … 2027-03-31 and `2026-Q1` = "
        "April–June 2026.",
    ),
]
Amount = Annotated[Decimal2, Field(ge=0, max_digits=20, examples=["250000.00"])]
Rate = Annotated[
    DecimalString,
    Field(gt=0, max_digits=20, decimal_places=10, examples=["0.0285000000"]),
    # Normalised to ten places, as NUMERIC(20, 10) stores it.
    AfterValidator(lambda v: v.quantize(Decimal("1E-10"))),
]
SpendCategory = Literal["sales", "marketing"]


class ExchangeRateUpsert(Schema):
    date: date
    from_currency: CurrencyCode
    to_currency: CurrencyCode
    rate: Rate = Field(description="1 `from_currency` = `rate` `to_currency`")


class ExchangeRateOut(VersionedResource):
    date: date
    from_currency: str
    to_currency: str
    rate: DecimalString


class QuotaCreate(Schema):
    user_id: uuid.UUID
    period: PeriodLabel
    amount: Amount
    currency: CurrencyCode | None = Field(
        default=None, description="Defaults to the organization's corporate currency"
    )


class QuotaUpdate(PatchSchema):
    amount: Amount | None = None


class QuotaOut(VersionedResource):
    user_id: uuid.UUID
    period: str
    start: date = Field(description="First day of the period")
    end: date = Field(description="Day after the last day of the period (exclusive)")
    amount: DecimalString
    currency: str


class SpendCreate(Schema):
    period: PeriodLabel
    category: SpendCategory
    amount: Amount
    currency: CurrencyCode | None = Field(
        default=None, description="Defaults to the organization's corporate currency"
    )


class SpendUpdate(PatchSchema):
    amount: Amount | None = None


class SpendOut(VersionedResource):
    period: str
    start: date = Field(description="First day of the period")
    end: date = Field(description="Day after the last day of the period (exclusive)")
    category: SpendCategory
    amount: DecimalString
    currency: str


# --- KPI reports --------------------------------------------------------------------

MetricValue = int | DecimalString | dict[str, Any] | None
MetricUnit = Literal["currency", "percent", "ratio", "count", "days", "currency_per_day", "mixed"]


class PeriodOut(Schema):
    label: str = Field(examples=["2026-Q3"])
    start: date = Field(description="First day of the period")
    end: date = Field(description="Day after the last day of the period (exclusive)")


class MetricResult(Schema):
    value: MetricValue = Field(
        description='Money and percentages as decimal strings (`"25.00"` is 25 %), '
        "counts as integers; `four_vs` is an object. `null` when the denominator is zero: "
        "`reason` says why."
    )
    unit: MetricUnit
    reason: str | None = Field(description="Why the value is null")
    inputs: dict[str, Any] = Field(
        description="What the value is computed from (numerator, denominator, …)"
    )


class SummaryMetric(MetricResult):
    ignored_filters: list[str] = Field(
        description="Given filters that some input of this metric cannot be narrowed by"
    )


class MetricReport(MetricResult):
    name: str = Field(examples=["win_rate"])
    title: str
    definition: str
    period: PeriodOut
    currency: str = Field(description="Corporate currency every amount is converted to")
    filters: dict[str, Any]
    ignored_filters: list[str] = Field(
        description="Given filters that some input of this metric cannot be narrowed by"
    )


class MetricGroup(MetricResult):
    group: str | None = Field(description="Owner or team id, segment or month; null: none")
    label: str | None


class MetricGroupReport(Schema):
    name: str
    title: str
    definition: str
    period: PeriodOut
    currency: str
    filters: dict[str, Any]
    ignored_filters: list[str]
    group_by: Literal["owner", "team", "segment", "month"]
    groups: list[MetricGroup]


class SeriesPoint(MetricResult):
    period: PeriodOut


class MetricSeries(Schema):
    name: str
    title: str
    definition: str
    currency: str
    filters: dict[str, Any]
    ignored_filters: list[str]
    interval: Literal["month", "quarter"]
    points: list[SeriesPoint]


class MetricsSummary(Schema):
    period: PeriodOut
    currency: str
    filters: dict[str, Any]
    metrics: dict[str, SummaryMetric]


class MetricDefinition(Schema):
    name: str
    path: str = Field(examples=["/v1/metrics/win-rate"])
    title: str
    unit: MetricUnit
    definition: str
    filters: list[str] = Field(description="Filters every input of the metric honours")
    group_by: list[str]


class MetricCatalogue(Schema):
    data: list[MetricDefinition]
