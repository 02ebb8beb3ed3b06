from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from app.core.schemas import Decimal2, DecimalString, PatchSchema, Schema, VersionedResource

ForecastCategory = Literal["pipeline", "best_case", "commit", "closed", "omitted"]
StageKindName = Literal["open", "won", "lost"]
Key = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", examples=["negotiation"])


# --- pipelines ----------------------------------------------------------------------------


class StageIn(Schema):
    key: str = Key
    name: str = Field(min_length=1, max_length=200)
    kind: StageKindName = "open"
    probability: Decimal2 = Field(ge=0, le=100, max_digits=5)
    forecast_category: ForecastCategory
    expected_days: int | None = Field(default=None, ge=0, le=3650)
    rotting_days: int | None = Field(
        default=None, ge=1, le=3650, description="Days without a touch before a deal is stale"
    )
    requirements: list[str] = Field(
        default_factory=list,
        description="Entry requirements; see GET /v1/pipelines/requirements",
        examples=[["amount_set", "close_date_set"]],
    )


class PipelineCreate(Schema):
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Required unless a template gives it",
    )
    description: str | None = Field(default=None, max_length=2000)
    is_default: bool = False
    stages: list[StageIn] | None = Field(
        default=None,
        description="Open stages in order, one won and one lost stage. Omit with ?template=.",
    )


class PipelineUpdate(PatchSchema):
    nullable = frozenset({"description"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    is_default: Literal[True] | None = Field(
        default=None, description="Make this the default (the previous default stops being)"
    )
    stages: list[StageIn] | None = Field(
        default=None,
        description="The full new stage list, matched by key. Stages in use cannot be "
        "removed; new keys are added; order is list order.",
    )


class StageOut(Schema):
    id: uuid.UUID
    key: str
    name: str
    position: int
    kind: StageKindName
    probability: DecimalString
    forecast_category: ForecastCategory
    expected_days: int | None
    rotting_days: int | None
    requirements: list[str]


class PipelineOut(VersionedResource):
    name: str
    description: str | None
    is_default: bool
    template: str | None
    stages: list[StageOut]


class RequirementOut(Schema):
    code: str
    description: str


class TemplateOut(Schema):
    key: str
    name: str
    description: str
    stages: list[str]


# --- custom fields ------------------------------------------------------------------------


FieldType = Literal["text", "number", "date", "boolean", "select"]


class CustomFieldCreate(Schema):
    key: str = Key
    label: str = Field(min_length=1, max_length=200)
    field_type: FieldType
    allowed_values: list[str] | None = Field(default=None, min_length=1)
    required_from_stage: str | None = Field(
        default=None, description="Stage key from which on the field must be set"
    )


class CustomFieldUpdate(PatchSchema):
    nullable = frozenset({"allowed_values", "required_from_stage"})

    label: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_values: list[str] | None = Field(default=None, min_length=1)
    required_from_stage: str | None = None


class CustomFieldOut(VersionedResource):
    entity: str
    key: str
    label: str
    field_type: FieldType
    allowed_values: list[str] | None
    required_from_stage: str | None
