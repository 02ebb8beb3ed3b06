from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import EmailStr, Field

from app.core.schemas import Decimal2, DecimalString, PatchSchema, Schema, VersionedResource

Tier = Literal["registered", "silver", "gold", "platinum"]
RegistrationStatus = Literal["submitted", "approved", "rejected", "converted", "expired"]


class PartnerCreate(Schema):
    name: str = Field(min_length=1, max_length=200, examples=["Ege Bilişim Çözümleri"])
    tier: Tier = "registered"
    domain: str | None = Field(default=None, max_length=255)
    commission_rate_pct: Decimal2 = Field(default=Decimal("10.00"), ge=0, le=100)


class PartnerUpdate(PatchSchema):
    nullable = frozenset({"domain"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    tier: Tier | None = None
    domain: str | None = Field(default=None, max_length=255)
    commission_rate_pct: Decimal2 | None = Field(default=None, ge=0, le=100)
    status: Literal["active", "inactive"] | None = None


class PartnerOut(VersionedResource):
    name: str
    tier: Tier
    domain: str | None
    commission_rate_pct: DecimalString
    status: Literal["active", "inactive"]


class PartnerKeyCreate(Schema):
    name: str = Field(default="partner portal", min_length=1, max_length=200)


class PartnerKeyOut(Schema):
    id: uuid.UUID
    partner_id: uuid.UUID
    token: str = Field(description="Shown only in this response")


class RegistrationCreate(Schema):
    partner_id: uuid.UUID | None = Field(
        default=None, description="Internal users registering on a partner's behalf"
    )
    company_name: str = Field(min_length=1, max_length=300)
    domain: str | None = Field(default=None, max_length=255)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    contact_name: str | None = Field(default=None, max_length=200)
    contact_email: EmailStr | None = None
    contact_title: str | None = Field(default=None, max_length=200)
    expected_amount: Decimal2 | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    expected_close_date: date | None = None
    products: list[str] = Field(default_factory=list, max_length=50)
    notes: str | None = Field(default=None, max_length=5000)


class Conflict(Schema):
    kind: Literal["account", "opportunity", "registration"]
    id: uuid.UUID
    reason: str
    label: str
    protected_until: date | None = None


class RegistrationOut(VersionedResource):
    partner_id: uuid.UUID
    company_name: str
    domain: str | None
    country: str | None
    contact_name: str | None
    contact_email: str | None
    contact_title: str | None
    expected_amount: DecimalString | None
    currency: str
    expected_close_date: date | None
    products: list[str]
    notes: str | None
    status: RegistrationStatus
    conflicts: list[Conflict]
    rejection_reason: str | None
    protected_until: date | None
    account_id: uuid.UUID | None
    opportunity_id: uuid.UUID | None
    decided_at: datetime | None


class RejectIn(Schema):
    reason: str = Field(min_length=1, max_length=2000)


class JointPipelineItem(Schema):
    """What a partner sees of a deal it registered: stage and amount, nothing internal."""

    registration_id: uuid.UUID
    company_name: str
    registration_status: RegistrationStatus
    protected_until: date | None
    opportunity_id: uuid.UUID | None
    stage: str | None
    amount: DecimalString | None
    currency: str | None
    close_date: date | None


class CommissionOut(Schema):
    partner_id: uuid.UUID
    period: str
    start: date
    end: date
    currency_totals: list[dict[str, Any]] = Field(
        description="Per currency: won revenue of the partner's deals and its commission"
    )
    deals: int
