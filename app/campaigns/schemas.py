from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from app.core.schemas import (
    Decimal2,
    DecimalString,
    PatchSchema,
    Schema,
    VersionedResource,
)
from app.leads.schemas import LeadSource, LeadStatus, Segment

CampaignType = Literal["webinar", "event", "content", "email", "paid", "partner"]
CampaignStatus = Literal["planned", "active", "completed", "cancelled"]
MemberStatus = Literal["sent", "responded", "attended", "registered", "no_show", "unsubscribed"]


class CampaignCreate(Schema):
    name: str = Field(min_length=1, max_length=200, examples=["Q3 FinOps webinar"])
    type: CampaignType
    channel: str | None = Field(default=None, max_length=100, examples=["linkedin"])
    start_date: date | None = None
    end_date: date | None = None
    budget: Decimal2 | None = Field(default=None, ge=0, max_digits=20)
    actual_cost: Decimal2 = Field(default=Decimal("0.00"), ge=0, max_digits=20)
    currency: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="Default: the org's corporate currency"
    )
    status: CampaignStatus = "planned"
    description: str | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _period(self) -> CampaignCreate:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class CampaignUpdate(PatchSchema):
    nullable = frozenset({"channel", "start_date", "end_date", "budget", "description"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    type: CampaignType | None = None
    channel: str | None = Field(default=None, max_length=100)
    start_date: date | None = None
    end_date: date | None = None
    budget: Decimal2 | None = Field(default=None, ge=0, max_digits=20)
    actual_cost: Decimal2 | None = Field(default=None, ge=0, max_digits=20)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    status: CampaignStatus | None = None
    description: str | None = Field(default=None, max_length=10_000)


class CampaignOut(VersionedResource):
    name: str
    type: CampaignType
    channel: str | None
    start_date: date | None
    end_date: date | None
    budget: DecimalString | None
    actual_cost: DecimalString
    currency: str
    status: CampaignStatus
    description: str | None


class MemberCreate(Schema):
    lead_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    status: MemberStatus = "sent"

    @model_validator(mode="after")
    def _one(self) -> MemberCreate:
        if (self.lead_id is None) == (self.contact_id is None):
            raise ValueError("send lead_id or contact_id (exactly one)")
        return self


class MemberUpdate(Schema):
    status: MemberStatus


class MemberOut(VersionedResource):
    campaign_id: uuid.UUID
    lead_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    status: MemberStatus
    responded_at: datetime | None = Field(
        description="When the member first responded, attended or registered"
    )


class LeadFilter(Schema):
    status: LeadStatus | None = None
    segment: Segment | None = None
    source: LeadSource | None = None
    owner_id: uuid.UUID | None = None
    territory_id: uuid.UUID | None = None
    min_score: int | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


class ContactFilter(Schema):
    account_id: uuid.UUID | None = None
    account_segment: Segment | None = None


class BulkAddIn(Schema):
    leads: LeadFilter | None = Field(default=None, description="Add the leads matching these")
    contacts: ContactFilter | None = Field(
        default=None, description="Add the contacts matching these"
    )
    status: MemberStatus = "sent"

    @model_validator(mode="after")
    def _some(self) -> BulkAddIn:
        if self.leads is None and self.contacts is None:
            raise ValueError("send a leads filter, a contacts filter, or both")
        return self


class BulkAddOut(Schema):
    added: int
    already_members: int


class InfluenceOut(Schema):
    campaign_id: uuid.UUID
    currency: str = Field(description="The org's corporate currency: every amount is in it")
    leads_created: int
    opportunities_sourced: int
    opportunities_influenced: int
    won_revenue_sourced: DecimalString
    won_revenue_influenced: DecimalString
    won_revenue_first_touch: DecimalString
    won_revenue_last_touch: DecimalString
    cost: DecimalString | None = Field(
        description="actual_cost in the corporate currency (null: no exchange rate)"
    )
    roi: DecimalString | None = Field(description="won_revenue_sourced / cost")
    roi_reason: Literal["no_cost", "no_exchange_rate"] | None = None
    unconverted_deals: int = Field(
        description="Won deals left out of the revenue figures: no exchange rate on the close day"
    )
