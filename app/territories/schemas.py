from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from app.core.schemas import PatchSchema, Schema, VersionedResource

Segment = Literal["smb", "mid_market", "enterprise"]


class TerritoryFields(Schema):
    countries: list[str] = Field(
        default_factory=list, description="ISO codes; empty means any", examples=[["TR"]]
    )
    cities: list[str] = Field(default_factory=list, examples=[["İstanbul", "Kocaeli"]])
    industries: list[str] = Field(default_factory=list, examples=[["textile"]])
    segments: list[Segment] = Field(default_factory=list)
    member_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Users who get its new leads, round-robin"
    )


class TerritoryCreate(TerritoryFields):
    name: str = Field(min_length=1, max_length=200, examples=["Marmara enterprise"])
    priority: int = Field(ge=0, le=100000, description="Lower is tried first")


class TerritoryUpdate(PatchSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    priority: int | None = Field(default=None, ge=0, le=100000)
    countries: list[str] | None = None
    cities: list[str] | None = None
    industries: list[str] | None = None
    segments: list[Segment] | None = None
    member_ids: list[uuid.UUID] | None = None


class TerritoryOut(VersionedResource):
    name: str
    priority: int
    countries: list[str]
    cities: list[str]
    industries: list[str]
    segments: list[Segment]
    member_ids: list[uuid.UUID]


class TerritoryMove(Schema):
    record_type: Literal["lead", "account"]
    record_id: uuid.UUID
    from_territory_id: uuid.UUID | None
    to_territory_id: uuid.UUID | None


class RealignmentOut(Schema):
    dry_run: bool
    total_moves: int
    moves: list[TerritoryMove] = Field(description="The first 1,000 moves")
