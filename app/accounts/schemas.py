from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, computed_field

from app.core.schemas import (
    Decimal2,
    DecimalString,
    PatchSchema,
    Schema,
    UtcDatetime,
    VersionedResource,
)

Segment = Literal["smb", "mid_market", "enterprise"]
Lifecycle = Literal["prospect", "customer", "former_customer"]
CountryCode = Field(default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")


class AccountFields(Schema):
    domain: str | None = Field(default=None, max_length=255, examples=["acme.com.tr"])
    industry: str | None = Field(default=None, max_length=100, examples=["manufacturing"])
    employee_count: int | None = Field(default=None, ge=0, le=10_000_000)
    annual_revenue: Decimal2 | None = Field(
        default=None, ge=0, max_digits=20, examples=["12500000.00"]
    )
    country: str | None = CountryCode
    city: str | None = Field(default=None, max_length=100)
    owner_id: uuid.UUID | None = None
    parent_account_id: uuid.UUID | None = None


class AccountCreate(AccountFields):
    name: str = Field(min_length=1, max_length=300, examples=["Acme Tekstil A.Ş."])
    segment: Segment | None = Field(
        default=None, description="Set to override the segment derived from size rules."
    )
    lifecycle: Lifecycle = "prospect"


class AccountUpdate(AccountFields, PatchSchema):
    """Only the fields sent are changed; ``segment: null`` returns to the derived segment."""

    nullable = frozenset(AccountFields.model_fields) | {"segment"}

    name: str | None = Field(default=None, min_length=1, max_length=300)
    segment: Segment | None = None


class LifecycleChange(Schema):
    lifecycle: Lifecycle
    at: UtcDatetime | None = Field(
        default=None,
        description="When it happened (default now); sets became_customer_at or churned_at.",
    )


class AccountOut(VersionedResource):
    name: str
    domain: str | None
    industry: str | None
    employee_count: int | None
    annual_revenue: DecimalString | None
    country: str | None
    city: str | None
    segment: Segment
    segment_is_manual: bool = Field(exclude=True)
    lifecycle: Lifecycle
    became_customer_at: datetime | None
    churned_at: datetime | None
    owner_id: uuid.UUID | None
    parent_account_id: uuid.UUID | None
    territory_id: uuid.UUID | None = Field(description="Set by the territory rules")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def segment_source(self) -> Literal["derived", "manual"]:
        return "manual" if self.segment_is_manual else "derived"


class AccountTreeNode(Schema):
    id: uuid.UUID
    name: str
    segment: Segment
    lifecycle: Lifecycle
    parent_account_id: uuid.UUID | None
    depth: int
    children: list[AccountTreeNode]


class AccountHierarchy(Schema):
    account_id: uuid.UUID = Field(description="The account asked for")
    root_id: uuid.UUID
    total_accounts: int
    tree: AccountTreeNode


class MoneyTotal(Schema):
    currency: str
    amount: DecimalString


class AccountRollup(Schema):
    account_id: uuid.UUID
    accounts: int = Field(description="The account and all its descendants")
    descendants: int
    max_depth: int = Field(description="Levels below the account")
    customers: int
    prospects: int
    former_customers: int
    employee_count: int
    annual_revenue: DecimalString = Field(description="Sum over the subtree")
    open_opportunities: int
    won_opportunities: int
    open_pipeline: list[MoneyTotal] = Field(description="Open deal amounts, per currency")
    won_revenue: list[MoneyTotal] = Field(description="Won deal amounts, per currency")
