from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field, model_validator

from app.core.schemas import PatchSchema, Schema, VersionedResource


class CrossSellRuleCreate(Schema):
    name: str = Field(min_length=1, max_length=200, examples=["Looms → maintenance plan"])
    trigger_product_id: uuid.UUID | None = Field(
        default=None, description="Won deals whose accepted quote has this product …"
    )
    trigger_family: str | None = Field(
        default=None, max_length=100, description="… or a product of this family"
    )
    months_after: int = Field(ge=0, le=120, description="Months after the win")
    suggest_product_id: uuid.UUID
    action: Literal["task", "opportunity"] = Field(
        default="task", description="A task for the deal owner, or a draft expansion deal"
    )
    active: bool = True

    @model_validator(mode="after")
    def _one_trigger(self) -> CrossSellRuleCreate:
        if (self.trigger_product_id is None) == (self.trigger_family is None):
            raise ValueError("give trigger_product_id or trigger_family (exactly one)")
        return self


class CrossSellRuleUpdate(PatchSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    months_after: int | None = Field(default=None, ge=0, le=120)
    action: Literal["task", "opportunity"] | None = None
    active: bool | None = None


class CrossSellRuleOut(VersionedResource):
    name: str
    trigger_product_id: uuid.UUID | None
    trigger_family: str | None
    months_after: int
    suggest_product_id: uuid.UUID
    action: Literal["task", "opportunity"]
    active: bool
