from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import EmailStr, Field, StringConstraints, model_validator

from app.core.schemas import Decimal2, DecimalString, PatchSchema, Schema, VersionedResource

Role = Literal["admin", "manager", "rep", "viewer"]
ApprovalGroup = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Percent = Field(default=None, ge=0, le=100, max_digits=5)


class UserCreate(Schema):
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    role: Role = "rep"
    manager_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    approval_max_discount_pct: Decimal2 | None = Percent
    approval_groups: list[ApprovalGroup] = Field(
        default_factory=list, description="Approver groups (e.g. finance, legal)"
    )


class UserUpdate(PatchSchema):
    nullable = frozenset({"manager_id", "team_id", "approval_max_discount_pct"})
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    manager_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    approval_max_discount_pct: Decimal2 | None = Percent
    approval_groups: list[ApprovalGroup] | None = None


class UserOut(VersionedResource):
    email: str
    name: str
    role: Role
    manager_id: uuid.UUID | None
    team_id: uuid.UUID | None
    approval_max_discount_pct: DecimalString | None
    approval_groups: list[str]
    is_active: bool


class TeamCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    manager_id: uuid.UUID | None = None


class TeamUpdate(PatchSchema):
    nullable = frozenset({"manager_id"})
    name: str | None = Field(default=None, min_length=1, max_length=200)
    manager_id: uuid.UUID | None = None


class TeamOut(VersionedResource):
    name: str
    manager_id: uuid.UUID | None


class SegmentRulesIn(Schema):
    mid_market_min_employees: int = Field(ge=0)
    enterprise_min_employees: int = Field(ge=0)
    mid_market_min_revenue: DecimalString = Field(ge=0)
    enterprise_min_revenue: DecimalString = Field(ge=0)

    @model_validator(mode="after")
    def _enterprise_above_mid_market(self) -> SegmentRulesIn:
        if (
            self.enterprise_min_employees < self.mid_market_min_employees
            or self.enterprise_min_revenue < self.mid_market_min_revenue
        ):
            raise ValueError("enterprise thresholds must not be below mid-market thresholds")
        return self


class OnboardingTask(Schema):
    title: str = Field(min_length=1, max_length=300)
    due_in_days: int = Field(default=0, ge=0, le=365)


class PlgRule(Schema):
    """Product-led growth: a lead (or its account) whose signal of this type reaches
    ``min_value`` within ``within_days`` becomes an MQL, or gets a follow-up task."""

    signal_type: Literal[
        "trial_started",
        "feature_used",
        "seats_added",
        "active_users",
        "web_visit",
        "email_opened",
        "content_downloaded",
        "other",
    ] = "active_users"
    min_value: int = Field(ge=0, le=2_147_483_647)
    within_days: int = Field(default=7, ge=1, le=365)
    action: Literal["promote_to_mql", "create_task"]


# Org settings kept in ``organizations.settings``; null restores the default.
SETTINGS_FIELDS = (
    "segment_rules",
    "mql_score_threshold",
    "require_bant_for_sql",
    "allow_convert_from_sal",
    "touch_activity_kinds",
    "onboarding_tasks",
    "customer_success_owner_id",
    "plg_rule",
)


class OrganizationUpdate(PatchSchema):
    nullable = frozenset(SETTINGS_FIELDS)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    fiscal_year_start_month: int | None = Field(default=None, ge=1, le=12)
    timezone: str | None = Field(default=None, max_length=64)
    segment_rules: SegmentRulesIn | None = None
    mql_score_threshold: int | None = Field(
        default=None,
        ge=0,
        le=100000,
        description="A new lead scoring at least this becomes an MQL automatically",
    )
    require_bant_for_sql: bool | None = Field(
        default=None, description="Moving a lead to sql needs BANT confirmed (default true)"
    )
    allow_convert_from_sal: bool | None = Field(
        default=None, description="Leads in sal may be converted (default false)"
    )
    touch_activity_kinds: (
        list[Literal["email", "call", "meeting", "linkedin", "demo", "note"]] | None
    ) = Field(
        default=None,
        description="Activity kinds that count as a touch on a deal (rotting policy); "
        "default: all but note",
    )
    onboarding_tasks: list[OnboardingTask] | None = Field(
        default=None, description="Tasks created for customer success when a deal is won"
    )
    customer_success_owner_id: uuid.UUID | None = Field(
        default=None, description="Who gets the onboarding tasks (default: the deal owner)"
    )
    plg_rule: PlgRule | None = Field(
        default=None,
        description="When an arriving signal promotes a new lead to MQL or creates a "
        "follow-up task for its owner (once per lead and rule)",
    )


class OrganizationOut(VersionedResource):
    name: str
    currency: str
    fiscal_year_start_month: int
    timezone: str
    settings: dict[str, object]
