from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import EmailStr, Field

from app.core.schemas import DecimalString, PatchSchema, Schema, UtcDatetime, VersionedResource

Seniority = Literal["c_level", "vp", "director", "manager", "individual_contributor"]
ContactStatus = Literal["active", "left_company"]
RelationshipKind = Literal["influences", "trusts", "blocks", "reports_to"]
CommitteeRole = Literal[
    "decision_maker",
    "economic_buyer",
    "champion",
    "influencer",
    "technical_evaluator",
    "legal",
    "procurement",
    "end_user",
    "blocker",
]
Stance = Literal["supporter", "neutral", "opponent", "unknown"]
LinkedIn = Field(default=None, max_length=500, pattern=r"^https://([a-z]{2,3}\.)?linkedin\.com/")


# --- contacts -----------------------------------------------------------------------------


class ContactFields(Schema):
    title: str | None = Field(default=None, max_length=200, examples=["Satın Alma Müdürü"])
    department: str | None = Field(default=None, max_length=100)
    seniority: Seniority | None = None
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=50)
    linkedin_url: str | None = LinkedIn
    reports_to_id: uuid.UUID | None = Field(
        default=None, description="Their manager: a contact of the same account"
    )
    owner_id: uuid.UUID | None = None


class ContactCreate(ContactFields):
    account_id: uuid.UUID
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)


class ContactUpdate(ContactFields, PatchSchema):
    nullable = frozenset(ContactFields.model_fields)

    first_name: str | None = Field(default=None, min_length=1, max_length=100)
    last_name: str | None = Field(default=None, min_length=1, max_length=100)


class ContactStatusChange(Schema):
    status: ContactStatus
    at: UtcDatetime | None = Field(default=None, description="When they left (default now)")


class ContactOut(VersionedResource):
    account_id: uuid.UUID
    first_name: str
    last_name: str
    title: str | None
    department: str | None
    seniority: Seniority | None
    email: str | None
    phone: str | None
    linkedin_url: str | None
    reports_to_id: uuid.UUID | None
    status: ContactStatus
    left_at: datetime | None
    erased_at: datetime | None = Field(description="When the person's data was erased")
    owner_id: uuid.UUID | None


class OrgChartNode(Schema):
    id: uuid.UUID
    name: str
    title: str | None
    department: str | None
    status: ContactStatus
    reports_to_id: uuid.UUID | None
    children: list[OrgChartNode]


class OrgChart(Schema):
    account_id: uuid.UUID
    total_contacts: int
    roots: list[OrgChartNode] = Field(description="Contacts with no manager, with their reports")


# --- influence map ------------------------------------------------------------------------


class RelationshipCreate(Schema):
    to_contact_id: uuid.UUID
    kind: RelationshipKind
    strength: int = Field(ge=1, le=5)
    notes: str | None = Field(default=None, max_length=2000)


class RelationshipUpdate(PatchSchema):
    nullable = frozenset({"notes"})

    strength: int | None = Field(default=None, ge=1, le=5)
    notes: str | None = Field(default=None, max_length=2000)


class RelationshipOut(VersionedResource):
    from_contact_id: uuid.UUID
    to_contact_id: uuid.UUID
    kind: RelationshipKind
    strength: int
    notes: str | None


class MapNode(Schema):
    id: uuid.UUID
    name: str
    title: str | None
    status: ContactStatus
    roles: list[CommitteeRole] = Field(default_factory=list)
    stance: Stance | None = None
    influence: int | None = None


class MapEdge(Schema):
    id: uuid.UUID | None = Field(description="The relationship's id; null for org-chart edges")
    source: uuid.UUID
    target: uuid.UUID
    kind: RelationshipKind
    strength: int
    origin: Literal["relationship", "org_chart"]


class InfluenceMap(Schema):
    account_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    nodes: list[MapNode]
    edges: list[MapEdge]


# --- buying committee ---------------------------------------------------------------------


class StakeholderCreate(Schema):
    contact_id: uuid.UUID
    roles: list[CommitteeRole] = Field(min_length=1, examples=[["champion", "influencer"]])
    influence: int = Field(default=3, ge=1, le=5)
    stance: Stance = "unknown"
    notes: str | None = Field(default=None, max_length=2000)


class StakeholderUpdate(PatchSchema):
    nullable = frozenset({"notes"})

    roles: list[CommitteeRole] | None = Field(default=None, min_length=1)
    influence: int | None = Field(default=None, ge=1, le=5)
    stance: Stance | None = None
    notes: str | None = Field(default=None, max_length=2000)


class StakeholderOut(VersionedResource):
    opportunity_id: uuid.UUID
    contact_id: uuid.UUID
    roles: list[CommitteeRole]
    influence: int
    stance: Stance
    notes: str | None


class MemberHealthOut(Schema):
    score: DecimalString
    recency: DecimalString
    frequency: DecimalString
    stance: DecimalString
    last_touch_at: datetime | None
    touches_90d: int
    engaged_30d: bool


class CommitteeMemberOut(StakeholderOut):
    contact_name: str
    contact_title: str | None
    contact_status: ContactStatus
    health: MemberHealthOut


class CommitteeHealthOut(Schema):
    score: DecimalString
    member_average: DecimalString = Field(description="Influence-weighted member health")
    coverage: DecimalString
    engaged_share: DecimalString = Field(description="% of members engaged in 30 days")
    key_roles_present: dict[str, bool]


class CommitteeOut(Schema):
    opportunity_id: uuid.UUID
    members: list[CommitteeMemberOut]
    committee_health: CommitteeHealthOut
    gaps: list[str]
    formula: str
