"""Leads (kept apart from opportunities), their status history, scoring rules, territories
and import jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import utcnow
from app.models.base import (
    Base,
    SoftDeleteMixin,
    TenantMixin,
    TimestampMixin,
    VersionedMixin,
    tenant_fk,
)

LEAD_STATUSES = ("new", "mql", "sal", "sql", "converted", "disqualified", "recycled")


class Territory(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """Assignment rules on geography, industry and segment; first match by priority wins.
    Members get the territory's new leads round-robin."""

    __tablename__ = "territories"
    __resource_type__ = "territory"

    name: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer)
    countries: Mapped[list[str]] = mapped_column(ARRAY(String(2)), default=list)
    cities: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    industries: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    segments: Mapped[list[str]] = mapped_column(ARRAY(String(16)), default=list)
    member_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), default=list)
    # Round-robin position: the index of the member who got the last lead.
    last_assigned_index: Mapped[int] = mapped_column(Integer, default=-1)

    __table_args__ = (UniqueConstraint("organization_id", "name"),)


class TerritoryAssignment(TenantMixin, Base):
    """History of territory changes of leads and accounts (creation and realignment)."""

    __tablename__ = "territory_assignments"

    record_type: Mapped[str] = mapped_column(String(16))
    record_id: Mapped[uuid.UUID] = mapped_column()
    from_territory_id: Mapped[uuid.UUID | None] = mapped_column()
    to_territory_id: Mapped[uuid.UUID | None] = mapped_column()
    reason: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column()

    __table_args__ = (
        Index("ix_territory_assignments_record", "organization_id", "record_type", "record_id"),
    )


class LeadScoringRule(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "lead_scoring_rules"
    __resource_type__ = "lead_scoring_rule"

    name: Mapped[str] = mapped_column(String(200))
    # fit | engagement
    category: Mapped[str] = mapped_column(String(16))
    # fit: the lead field; engagement: activity_count | recency
    field: Mapped[str] = mapped_column(String(64))
    operator: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any] = mapped_column(JSONB)
    points: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        CheckConstraint("category IN ('fit', 'engagement')", name="category"),
    )


class ImportJob(TenantMixin, TimestampMixin, Base):
    __tablename__ = "import_jobs"
    __resource_type__ = "import_job"
    __audit_ignore__ = ("processed_rows", "errors", "error_count", "created_count", "status")

    kind: Mapped[str] = mapped_column(String(32), default="leads")
    # queued | running | completed | failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    created_count: Mapped[int] = mapped_column(Integer, default=0)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    # The first errors (row, field, message); error_count has them all.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    failure: Mapped[str | None] = mapped_column(Text)


LEAD_KPI_COLUMNS = ["owner_id", "territory_id", "segment", "source", "sal_at"]


class Lead(TenantMixin, TimestampMixin, VersionedMixin, SoftDeleteMixin, Base):
    __tablename__ = "leads"
    __resource_type__ = "lead"
    __audit_ignore__ = ("score", "score_breakdown")

    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    # Lower-cased: the duplicate-detection key.
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    title: Mapped[str | None] = mapped_column(String(200))
    seniority: Mapped[str | None] = mapped_column(String(32))
    company_name: Mapped[str | None] = mapped_column(String(300))
    domain: Mapped[str | None] = mapped_column(String(255))
    industry: Mapped[str | None] = mapped_column(String(100))
    employee_count: Mapped[int | None] = mapped_column(Integer)
    annual_revenue: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))
    country: Mapped[str | None] = mapped_column(String(2))
    city: Mapped[str | None] = mapped_column(String(100))
    segment: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="other")
    campaign: Mapped[str | None] = mapped_column(String(200))
    # The source campaign (attribution); ``campaign`` stays the free-text label.
    campaign_id: Mapped[uuid.UUID | None] = mapped_column()
    owner_id: Mapped[uuid.UUID | None] = mapped_column()
    territory_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="new")
    score: Mapped[int] = mapped_column(Integer, default=0)
    score_breakdown: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # BANT: {"budget": {"value": "...", "confirmed": true}, "authority": …}
    bant: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    disqualified_reason_code: Mapped[str | None] = mapped_column(String(64))
    disqualified_reason: Mapped[str | None] = mapped_column(Text)
    mql_at: Mapped[datetime | None] = mapped_column()
    sal_at: Mapped[datetime | None] = mapped_column()
    sql_at: Mapped[datetime | None] = mapped_column()
    converted_at: Mapped[datetime | None] = mapped_column()
    disqualified_at: Mapped[datetime | None] = mapped_column()
    recycled_at: Mapped[datetime | None] = mapped_column()
    converted_account_id: Mapped[uuid.UUID | None] = mapped_column()
    converted_contact_id: Mapped[uuid.UUID | None] = mapped_column()
    converted_opportunity_id: Mapped[uuid.UUID | None] = mapped_column()
    import_job_id: Mapped[uuid.UUID | None] = mapped_column()
    last_activity_at: Mapped[datetime | None] = mapped_column()
    # Set when the person's data was erased (KVKK / GDPR); the record stays for the deals.
    erased_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        tenant_fk("owner_id", "users"),
        tenant_fk("territory_id", "territories"),
        tenant_fk("converted_account_id", "accounts"),
        tenant_fk("converted_contact_id", "contacts"),
        tenant_fk("converted_opportunity_id", "opportunities"),
        tenant_fk("import_job_id", "import_jobs"),
        tenant_fk("campaign_id", "campaigns"),
        CheckConstraint(
            "status IN ('new', 'mql', 'sal', 'sql', 'converted', 'disqualified', 'recycled')",
            name="status",
        ),
        # Pages by creation, and the leads created in a KPI period (an index-only scan).
        Index(
            "ix_leads_organization_id_created_at",
            "organization_id",
            "created_at",
            "id",
            postgresql_include=["converted_at", "deleted_at"],
        ),
        Index("ix_leads_organization_id_email", "organization_id", "email"),
        Index("ix_leads_organization_id_status", "organization_id", "status"),
        Index("ix_leads_organization_id_owner_id", "organization_id", "owner_id"),
        Index("ix_leads_organization_id_territory_id", "organization_id", "territory_id"),
        Index(
            "ix_leads_organization_id_converted_account_id",
            "organization_id",
            "converted_account_id",
        ),
        Index("ix_leads_organization_id_import_job_id", "organization_id", "import_job_id"),
        Index("ix_leads_organization_id_campaign_id", "organization_id", "campaign_id"),
        # Deals sourced by a campaign: the live campaign leads are hashed from this small
        # index alone, not fetched from the table.
        Index(
            "ix_leads_campaign_sourced",
            "organization_id",
            "id",
            postgresql_where=text("campaign_id IS NOT NULL AND deleted_at IS NULL"),
        ),
        Index("ix_leads_organization_id_score", "organization_id", "score", "id"),
        # The funnel KPIs read the leads that reached a status in a period.
        *(
            Index(
                f"ix_leads_kpi_{column}",
                "organization_id",
                column,
                postgresql_include=[
                    *LEAD_KPI_COLUMNS,
                    *(["sql_at", "converted_opportunity_id"] if column == "mql_at" else []),
                ],
                postgresql_where=text(f"{column} IS NOT NULL AND deleted_at IS NULL"),
            )
            for column in ("mql_at", "sql_at")
        ),
    )


class LeadStatusHistory(TenantMixin, Base):
    __tablename__ = "lead_status_history"

    lead_id: Mapped[uuid.UUID] = mapped_column()
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column()
    # user | system (automatic promotion by score)
    actor_type: Mapped[str] = mapped_column(String(16), default="user")
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        tenant_fk("lead_id", "leads"),
        Index("ix_lead_status_history_lead", "organization_id", "lead_id", "at"),
        Index("ix_lead_status_history_organization_id_at", "organization_id", "to_status", "at"),
    )
