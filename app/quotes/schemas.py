from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
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

QuoteStatus = Literal[
    "draft",
    "pending_approval",
    "approved",
    "sent",
    "accepted",
    "rejected",
    "expired",
    "recalled",
]


class LineItemIn(Schema):
    product_id: uuid.UUID
    quantity: Decimal = Field(gt=0, max_digits=20, decimal_places=4)
    description: str | None = Field(default=None, max_length=2000)
    discount_pct: Decimal2 | None = Field(default=None, ge=0, le=100)
    discount_amount: Decimal2 | None = Field(default=None, ge=0)
    year_quantities: list[Decimal] = Field(
        default_factory=list, description="Ramp: quantity per year of the term (year 1, 2, …)"
    )


class LineItemUpdate(PatchSchema):
    nullable = frozenset({"description", "discount_pct", "discount_amount"})

    quantity: Decimal | None = Field(default=None, gt=0, max_digits=20, decimal_places=4)
    description: str | None = Field(default=None, max_length=2000)
    discount_pct: Decimal2 | None = Field(default=None, ge=0, le=100)
    discount_amount: Decimal2 | None = Field(default=None, ge=0)
    year_quantities: list[Decimal] | None = None


class TermsIn(Schema):
    valid_until: date | None = None
    payment_terms_days: int = Field(default=30, ge=0, le=365)
    term_months: int | None = Field(
        default=None, ge=1, le=120, description="Multi-year term; omit for a one-off quote"
    )
    annual_uplift_pct: Decimal2 = Field(default=Decimal("0.00"), ge=0, le=100)
    notes: str | None = Field(default=None, max_length=5000)


class QuoteCreate(TermsIn):
    opportunity_id: uuid.UUID
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="Default: the deal's currency"
    )
    price_book_id: uuid.UUID | None = Field(
        default=None, description="Default: the account's own book, else the standard one"
    )
    line_items: list[LineItemIn] = Field(default_factory=list)


class QuoteUpdate(PatchSchema):
    """Changing terms of a quote past draft makes a new draft version."""

    nullable = frozenset({"valid_until", "term_months", "notes"})

    valid_until: date | None = None
    payment_terms_days: int | None = Field(default=None, ge=0, le=365)
    term_months: int | None = Field(default=None, ge=1, le=120)
    annual_uplift_pct: Decimal2 | None = Field(default=None, ge=0, le=100)
    notes: str | None = Field(default=None, max_length=5000)


class YearOut(Schema):
    year: int
    months: int
    quantity: DecimalString
    list_amount: DecimalString
    discount: DecimalString
    net_amount: DecimalString


class LineItemOut(Resource):
    position: int
    product_id: uuid.UUID
    description: str | None
    quantity: DecimalString
    year_quantities: list[DecimalString]
    discount_pct: DecimalString | None
    discount_amount: DecimalString | None
    price_snapshot: dict[str, Any]
    list_amount: DecimalString
    discount: DecimalString
    net_amount: DecimalString
    years: list[YearOut]


class VersionOut(Resource):
    number: int
    valid_until: date | None
    payment_terms_days: int
    term_months: int | None
    annual_uplift_pct: DecimalString
    notes: str | None
    subtotal: DecimalString
    discount_total: DecimalString
    net_total: DecimalString
    effective_discount_pct: DecimalString
    acv: DecimalString
    tcv: DecimalString
    submitted_at: datetime | None
    approval: Literal["none_needed", "approved"] | None = Field(
        description="The approval that holds for exactly this version"
    )
    line_items: list[LineItemOut]


class QuoteOut(VersionedResource):
    opportunity_id: uuid.UUID
    number: str
    status: QuoteStatus
    currency: str
    price_book_id: uuid.UUID
    current_version: int
    accepted_version: int | None
    sent_at: datetime | None
    accepted_at: datetime | None
    version: int
    current: VersionOut = Field(description="The current version with its lines and totals")


class DeclineIn(Schema):
    reason: str | None = Field(default=None, max_length=2000)
