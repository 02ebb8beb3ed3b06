from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Literal

from pydantic import Field

from app.core.schemas import DecimalString, PatchSchema, Schema, VersionedResource

PricingModel = Literal["flat", "volume", "graduated"]


class ProductCreate(Schema):
    sku: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._/-]+$", examples=["LOOM-CTRL-PRO"]
    )
    name: str = Field(min_length=1, max_length=300)
    family: str | None = Field(default=None, max_length=100, examples=["automation"])
    unit: str = Field(default="unit", max_length=32, examples=["seat", "license", "unit"])
    description: str | None = Field(default=None, max_length=5000)
    active: bool = True


class ProductUpdate(PatchSchema):
    nullable = frozenset({"family", "description"})

    name: str | None = Field(default=None, min_length=1, max_length=300)
    family: str | None = Field(default=None, max_length=100)
    unit: str | None = Field(default=None, max_length=32)
    description: str | None = Field(default=None, max_length=5000)
    active: bool | None = None


class ProductOut(VersionedResource):
    sku: str
    name: str
    family: str | None
    unit: str
    description: str | None
    active: bool


class PriceBookCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["TRY"])
    account_id: uuid.UUID | None = Field(
        default=None,
        description="Customer-specific: overrides the standard book for this "
        "account's quotes in this currency",
    )
    active: bool = True


class PriceBookUpdate(PatchSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    active: bool | None = None


class PriceBookOut(VersionedResource):
    name: str
    currency: str
    account_id: uuid.UUID | None
    active: bool


class TierIn(Schema):
    up_to: Decimal | None = Field(default=None, gt=0, description="Inclusive; null = no limit")
    unit_price: Decimal = Field(ge=0)
    flat_fee: Decimal = Field(default=Decimal(0), ge=0)


class EntryIn(Schema):
    product_id: uuid.UUID
    pricing_model: PricingModel = "flat"
    unit_price: Decimal | None = Field(default=None, ge=0, description="For flat pricing")
    tiers: list[TierIn] = Field(default_factory=list, description="For volume and graduated")
    min_quantity: Decimal | None = Field(default=None, gt=0)


class TierOut(Schema):
    up_to: DecimalString | None
    unit_price: DecimalString
    flat_fee: DecimalString


class EntryOut(VersionedResource):
    price_book_id: uuid.UUID
    product_id: uuid.UUID
    pricing_model: PricingModel
    unit_price: DecimalString | None
    tiers: list[TierOut]
    min_quantity: DecimalString | None
