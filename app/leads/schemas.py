from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import EmailStr, Field, StringConstraints

from app.core.schemas import (
    Decimal2,
    DecimalString,
    PatchSchema,
    Schema,
    VersionedResource,
)

LeadStatus = Literal["new", "mql", "sal", "sql", "converted", "disqualified", "recycled"]
LeadSource = Literal["web_form", "event", "outbound", "partner", "referral", "paid", "other"]
Seniority = Literal["c_level", "vp", "director", "manager", "individual_contributor"]
Segment = Literal["smb", "mid_market", "enterprise"]
DisqualifyReason = Literal[
    "no_budget",
    "no_need",
    "no_authority",
    "bad_timing",
    "competitor",
    "unreachable",
    "duplicate",
    "spam",
    "other",
]


class BantItem(Schema):
    value: str | None = Field(default=None, max_length=500)
    confirmed: bool = False


class Bant(Schema):
    budget: BantItem | None = None
    authority: BantItem | None = None
    need: BantItem | None = None
    timeline: BantItem | None = None


class LeadFields(Schema):
    first_name: str | None = Field(default=None, max_length=100)
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=50)
    title: str | None = Field(default=None, max_length=200)
    seniority: Seniority | None = None
    company_name: str | None = Field(default=None, max_length=300)
    domain: str | None = Field(default=None, max_length=255)
    industry: str | None = Field(default=None, max_length=100)
    employee_count: int | None = Field(default=None, ge=0, le=10_000_000)
    annual_revenue: Decimal2 | None = Field(default=None, ge=0, max_digits=20)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    city: str | None = Field(default=None, max_length=100)
    campaign: str | None = Field(default=None, max_length=200)
    campaign_id: uuid.UUID | None = Field(
        default=None, description="The source campaign (attribution); `campaign` is a label"
    )
    owner_id: uuid.UUID | None = None


class LeadCreate(LeadFields):
    last_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
    ]
    source: LeadSource = "other"
    bant: Bant | None = None


class LeadUpdate(LeadFields, PatchSchema):
    """Status moves through POST /status and /convert; BANT items merge."""

    nullable = frozenset(LeadFields.model_fields)

    last_name: str | None = Field(default=None, min_length=1, max_length=100)
    source: LeadSource | None = None
    bant: Bant | None = None


class StatusChange(Schema):
    status: LeadStatus
    reason_code: DisqualifyReason | None = Field(default=None, description="Required to disqualify")
    reason: str | None = Field(default=None, max_length=2000)


class ScoreItem(Schema):
    rule_id: str
    rule: str
    category: Literal["fit", "engagement"]
    points: int


class LeadOut(VersionedResource):
    first_name: str | None
    last_name: str
    email: str | None
    phone: str | None
    title: str | None
    seniority: Seniority | None
    company_name: str | None
    domain: str | None
    industry: str | None
    employee_count: int | None
    annual_revenue: DecimalString | None
    country: str | None
    city: str | None
    segment: Segment
    source: LeadSource
    campaign: str | None
    campaign_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    territory_id: uuid.UUID | None
    status: LeadStatus
    score: int
    score_breakdown: list[ScoreItem]
    bant: dict[str, Any]
    disqualified_reason_code: str | None
    disqualified_reason: str | None
    mql_at: datetime | None
    sal_at: datetime | None
    sql_at: datetime | None
    converted_at: datetime | None
    disqualified_at: datetime | None
    recycled_at: datetime | None
    converted_account_id: uuid.UUID | None
    converted_contact_id: uuid.UUID | None
    converted_opportunity_id: uuid.UUID | None
    import_job_id: uuid.UUID | None
    last_activity_at: datetime | None
    erased_at: datetime | None = Field(description="When the person's data was erased")


class StatusHistoryOut(Schema):
    id: uuid.UUID
    from_status: LeadStatus | None
    to_status: LeadStatus
    at: datetime
    actor_user_id: uuid.UUID | None
    actor_type: Literal["user", "system"]
    reason_code: str | None
    reason: str | None


class ConversionOpportunity(Schema):
    name: str = Field(min_length=1, max_length=300)
    amount: Decimal2 | None = Field(default=None, ge=0, max_digits=20)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    close_date: date | None = None
    pipeline_id: uuid.UUID | None = None


class ConvertIn(Schema):
    account_id: uuid.UUID | None = Field(
        default=None, description="Convert into this account instead of matching one"
    )
    opportunity: ConversionOpportunity | None = Field(
        default=None, description="Also open a deal in the pipeline's first stage"
    )


class AccountCandidate(Schema):
    id: uuid.UUID
    name: str
    domain: str | None
    matched_by: Literal["explicit", "domain", "name"]


class ContactCandidate(Schema):
    id: uuid.UUID
    name: str
    email: str | None
    matched_by: Literal["email"]


class ConversionOut(Schema):
    dry_run: bool
    lead_id: uuid.UUID
    account: AccountCandidate | None = Field(description="The matched account (none: new)")
    contact: ContactCandidate | None = Field(description="The matched contact (none: new)")
    will_create: list[Literal["account", "contact", "opportunity"]]
    account_id: uuid.UUID | None = Field(description="After conversion: what the lead became")
    contact_id: uuid.UUID | None
    opportunity_id: uuid.UUID | None


# --- scoring rules ------------------------------------------------------------------------


class ScoringRuleCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    category: Literal["fit", "engagement"]
    field: str = Field(
        description="fit: a lead field (industry, seniority, employee_count, …); engagement: "
        "activity_count, recency or signal_count (engagement signals of a type in a window)",
        examples=["industry"],
    )
    operator: Literal["equals", "in", "range", "contains", "matches"] = Field(
        description="fit: equals | in | range | contains; engagement: matches"
    )
    value: Any = Field(
        examples=[
            ["textile", "manufacturing"],
            {"min": 100, "max": 1000},
            {"kinds": ["meeting", "demo"], "days": 30, "min": 2},
            {"signal_type": "trial_started", "min_count": 1, "within_days": 14},
        ]
    )
    points: int = Field(ge=-1000, le=1000)
    active: bool = True


class ScoringRuleUpdate(PatchSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    value: Any = None
    points: int | None = Field(default=None, ge=-1000, le=1000)
    active: bool | None = None


class ScoringRuleOut(VersionedResource):
    name: str
    category: Literal["fit", "engagement"]
    field: str
    operator: str
    value: Any
    points: int
    active: bool


class ImportError_(Schema):
    row: int
    field: str | None
    message: str


class ImportJobOut(Schema):
    id: uuid.UUID
    kind: str
    status: Literal["queued", "running", "completed", "failed"]
    total_rows: int
    processed_rows: int
    created_count: int
    error_count: int
    errors: list[ImportError_] = Field(description="The first 1,000 errors")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    failure: str | None
    created_leads: str = Field(description="Where to list the leads it created")
