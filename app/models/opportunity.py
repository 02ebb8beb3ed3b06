"""Pipelines and their stages, opportunities, stage history, splits, custom fields, tasks."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import utcnow
from app.models.base import (
    Base,
    SoftDeleteMixin,
    TenantKeyMixin,
    TenantMixin,
    TimestampMixin,
    VersionedMixin,
    tenant_fk,
)

FORECAST_CATEGORIES = ("pipeline", "best_case", "commit", "closed", "omitted")
STAGE_KINDS = ("open", "won", "lost")
OPPORTUNITY_TYPES = ("new_business", "expansion", "renewal")


class Pipeline(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "pipelines"
    __resource_type__ = "pipeline"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # The template it was made from (b2b, manufacturing, …), for reference only.
    template: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        Index(
            "uq_pipelines_organization_id_default",
            "organization_id",
            unique=True,
            postgresql_where=text("is_default"),
        ),
    )


class PipelineStage(TenantMixin, TimestampMixin, Base):
    __tablename__ = "pipeline_stages"
    __resource_type__ = "pipeline_stage"

    pipeline_id: Mapped[uuid.UUID] = mapped_column()
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8), default="open")
    probability: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    forecast_category: Mapped[str] = mapped_column(String(16))
    expected_days: Mapped[int | None] = mapped_column(Integer)
    rotting_days: Mapped[int | None] = mapped_column(Integer)
    requirements: Mapped[list[str]] = mapped_column(ARRAY(String(128)), default=list)

    __table_args__ = (
        UniqueConstraint("organization_id", "pipeline_id", "key"),
        tenant_fk("pipeline_id", "pipelines"),
        CheckConstraint("kind IN ('open', 'won', 'lost')", name="kind"),
        CheckConstraint("probability BETWEEN 0 AND 100", name="probability"),
        CheckConstraint(
            "forecast_category IN ('pipeline', 'best_case', 'commit', 'closed', 'omitted')",
            name="forecast_category",
        ),
    )

    @property
    def is_closed(self) -> bool:
        return self.kind != "open"


class CustomFieldDefinition(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """An org-defined field on opportunities, validated on every write."""

    __tablename__ = "custom_field_definitions"
    __resource_type__ = "custom_field"

    entity: Mapped[str] = mapped_column(String(32), default="opportunity")
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    # text | number | date | boolean | select
    field_type: Mapped[str] = mapped_column(String(16))
    allowed_values: Mapped[list[str] | None] = mapped_column(ARRAY(String(200)))
    # Stage key from which on the field must be set (checked when entering that stage or a
    # later one of the same pipeline).
    required_from_stage: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("organization_id", "entity", "key"),
        CheckConstraint(
            "field_type IN ('text', 'number', 'date', 'boolean', 'select')", name="field_type"
        ),
    )


KPI_COLUMNS = [
    "stage_id",
    "stage_kind",
    "amount",
    "currency",
    "type",
    "source",
    "owner_id",
    "account_id",
    "pipeline_id",
    "lead_id",
    "forecast_category_override",
]


class Opportunity(TenantMixin, TimestampMixin, VersionedMixin, SoftDeleteMixin, Base):
    __tablename__ = "opportunities"
    __resource_type__ = "opportunity"
    # Kept by the stage engine and the follow-ups job; their own history says more.
    __audit_ignore__ = ("stage_entered_at", "last_touch_at")

    account_id: Mapped[uuid.UUID] = mapped_column()
    name: Mapped[str] = mapped_column(String(300))
    owner_id: Mapped[uuid.UUID | None] = mapped_column()
    pipeline_id: Mapped[uuid.UUID] = mapped_column()
    stage_id: Mapped[uuid.UUID] = mapped_column()
    # The stage's kind (open / won / lost), kept with the stage by the stage engine (a
    # used stage cannot change kind): won deals get their own index for revenue KPIs.
    stage_kind: Mapped[str] = mapped_column(String(8), server_default=text("'open'"))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))
    currency: Mapped[str] = mapped_column(String(3))
    close_date: Mapped[date | None] = mapped_column(Date)
    type: Mapped[str] = mapped_column(String(16), default="new_business")
    source: Mapped[str | None] = mapped_column(String(32))
    lead_id: Mapped[uuid.UUID | None] = mapped_column()
    partner_id: Mapped[uuid.UUID | None] = mapped_column()
    competitors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    next_step: Mapped[str | None] = mapped_column(Text)
    forecast_category_override: Mapped[str | None] = mapped_column(String(16))
    won_reason_code: Mapped[str | None] = mapped_column(String(64))
    won_reason_text: Mapped[str | None] = mapped_column(Text)
    lost_reason_code: Mapped[str | None] = mapped_column(String(64))
    lost_reason_text: Mapped[str | None] = mapped_column(Text)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    stage_entered_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column()
    last_touch_at: Mapped[datetime | None] = mapped_column()
    is_stale: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    stale_since: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        tenant_fk("account_id", "accounts"),
        tenant_fk("owner_id", "users"),
        tenant_fk("pipeline_id", "pipelines"),
        tenant_fk("stage_id", "pipeline_stages"),
        tenant_fk("lead_id", "leads", use_alter=True),  # leads ↔ opportunities
        CheckConstraint("type IN ('new_business', 'expansion', 'renewal')", name="type"),
        CheckConstraint("stage_kind IN ('open', 'won', 'lost')", name="stage_kind"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="amount_not_negative"),
        Index("ix_opportunities_organization_id_created_at", "organization_id", "created_at", "id"),
        Index("ix_opportunities_organization_id_account_id", "organization_id", "account_id"),
        Index("ix_opportunities_organization_id_owner_id", "organization_id", "owner_id"),
        Index("ix_opportunities_organization_id_stage_id", "organization_id", "stage_id"),
        Index("ix_opportunities_organization_id_close_date", "organization_id", "close_date", "id"),
        # Covering (for the KPIs' index-only scans of a period): deals closing in it and
        # deals created in it, with every column the aggregates and filters read.
        Index(
            "ix_opportunities_kpi_close_date",
            "organization_id",
            "close_date",
            postgresql_include=[*KPI_COLUMNS, "created_at"],
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "ix_opportunities_kpi_won",
            "organization_id",
            "close_date",
            postgresql_include=[*KPI_COLUMNS, "created_at"],
            postgresql_where=text("stage_kind = 'won' AND deleted_at IS NULL"),
        ),
        Index(
            "ix_opportunities_kpi_created_at",
            "organization_id",
            "created_at",
            postgresql_include=[*KPI_COLUMNS, "close_date"],
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # Paying customers over a window: the won deals in account order, so counting the
        # accounts needs no sort.
        Index(
            "ix_opportunities_won_account",
            "organization_id",
            "account_id",
            postgresql_include=["close_date"],
            postgresql_where=text("stage_kind = 'won' AND deleted_at IS NULL"),
        ),
        Index("ix_opportunities_organization_id_amount", "organization_id", "amount", "id"),
        Index("ix_opportunities_organization_id_updated_at", "organization_id", "updated_at", "id"),
    )


class StageHistory(TenantMixin, Base):
    """Every stage move, with what the deal looked like at that moment."""

    __tablename__ = "opportunity_stage_history"

    opportunity_id: Mapped[uuid.UUID] = mapped_column()
    from_stage_id: Mapped[uuid.UUID | None] = mapped_column()
    to_stage_id: Mapped[uuid.UUID] = mapped_column()
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    # forward | backward | won | lost | reopen | created
    direction: Mapped[str] = mapped_column(String(16))
    is_backward: Mapped[bool] = mapped_column(Boolean, default=False)
    moved_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    days_in_previous_stage: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))
    currency: Mapped[str] = mapped_column(String(3))
    probability: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    forecast_category: Mapped[str] = mapped_column(String(16))
    # How the deal left the stage this row entered (the next move's direction and time);
    # NULL while it is still there. Stage conversion reads it without a self-join.
    exit_direction: Mapped[str | None] = mapped_column(String(16))
    exited_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        tenant_fk("opportunity_id", "opportunities"),
        tenant_fk("from_stage_id", "pipeline_stages"),
        tenant_fk("to_stage_id", "pipeline_stages"),
        Index("ix_stage_history_opportunity", "organization_id", "opportunity_id", "moved_at"),
        # Covering: stage conversion and time in stage are index-only scans of a period.
        Index(
            "ix_stage_history_organization_id_moved_at",
            "organization_id",
            "moved_at",
            postgresql_include=[
                "opportunity_id",
                "to_stage_id",
                "from_stage_id",
                "direction",
                "days_in_previous_stage",
                "exit_direction",
            ],
        ),
    )


# Time in stage of an unfiltered period finds its median's whole-day bucket from
# StageExitRollup, then reads only that bucket's moves of the period through this index.
Index(
    "ix_stage_history_exit_duration",
    StageHistory.organization_id,
    StageHistory.from_stage_id,
    func.floor(StageHistory.days_in_previous_stage),
    StageHistory.moved_at,
    postgresql_include=["days_in_previous_stage"],
    postgresql_where=text("days_in_previous_stage IS NOT NULL AND direction <> 'reopen'"),
)


class StageEntryRollup(TenantKeyMixin, Base):
    """Per UTC day and stage: the moves into it other than closing ones (``entered``) and
    how many of those later left it forward (``advanced``). Stage conversion of an
    unfiltered period sums these rows instead of scanning its history; kept with the
    history by ``app/metrics/rollups.py``."""

    __tablename__ = "stage_entry_rollups"

    day: Mapped[date] = mapped_column(primary_key=True)
    stage_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    entered: Mapped[int] = mapped_column(Integer, default=0)
    advanced: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (tenant_fk("stage_id", "pipeline_stages"),)


class StageExitRollup(TenantKeyMixin, Base):
    """Per UTC day, stage left and whole days spent in it: the exits counted for time in
    stage (every move but a reopen) and their durations summed in hundredths of a day."""

    __tablename__ = "stage_exit_rollups"

    day: Mapped[date] = mapped_column(primary_key=True)
    stage_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    whole_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    exits: Mapped[int] = mapped_column(Integer, default=0)
    hundredths: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        tenant_fk("stage_id", "pipeline_stages"),
        # A quarter is ~72,000 rows at 1M deals: summed from this index alone, not from
        # the table's pages (time in stage's buckets 44 → 21 ms). Counting an exit is no
        # longer a heap-only update then: each stage move writes index entries.
        Index(
            "ix_stage_exit_rollups_kpi",
            "organization_id",
            "day",
            postgresql_include=["stage_id", "whole_days", "exits", "hundredths"],
        ),
    )


class OpportunityCloseRollup(TenantKeyMixin, Base):
    """Per close date, stage, type, currency and forecast category override (``''`` for
    none): the live deals with that close date, how many have an amount, their amounts
    summed and, for won stages, their sales cycles summed in days (close date minus the
    UTC day of first contact: the source lead's creation, else the deal's). Deals closing,
    won revenue and their parts of an unfiltered period sum these rows instead of the
    period's deals; the stage is kept (not its kind or category) so that editing a
    stage's forecast category needs no recount. Kept with the deals by
    ``app/metrics/rollups.py``."""

    __tablename__ = "deal_close_rollups"

    day: Mapped[date] = mapped_column(primary_key=True)
    stage_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    category_override: Mapped[str] = mapped_column(String(16), primary_key=True)
    deals: Mapped[int] = mapped_column(Integer, default=0)
    priced: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[Decimal] = mapped_column(Numeric(28, 2), default=0)
    cycle_days: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (tenant_fk("stage_id", "pipeline_stages"),)


class OpportunityCreatedRollup(TenantKeyMixin, Base):
    """Per UTC day of creation, currency and whether won: the live deals created, how many
    have an amount and their amounts summed (the pipeline generated in a period)."""

    __tablename__ = "deal_created_rollups"

    day: Mapped[date] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    won: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    deals: Mapped[int] = mapped_column(Integer, default=0)
    priced: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[Decimal] = mapped_column(Numeric(28, 2), default=0)


class OpportunitySplit(TenantMixin, TimestampMixin, Base):
    __tablename__ = "opportunity_splits"
    __resource_type__ = "opportunity_split"

    opportunity_id: Mapped[uuid.UUID] = mapped_column()
    # revenue | commission: each type's splits sum to exactly 100.
    split_type: Mapped[str] = mapped_column(String(16), default="revenue")
    user_id: Mapped[uuid.UUID | None] = mapped_column()
    partner_id: Mapped[uuid.UUID | None] = mapped_column()
    percent: Mapped[Decimal] = mapped_column(Numeric(5, 2))

    __table_args__ = (
        tenant_fk("opportunity_id", "opportunities"),
        tenant_fk("user_id", "users"),
        CheckConstraint("percent > 0 AND percent <= 100", name="percent"),
        CheckConstraint("split_type IN ('revenue', 'commission')", name="split_type"),
        CheckConstraint("(user_id IS NULL) <> (partner_id IS NULL)", name="one_party"),
        Index("ix_opportunity_splits_opportunity", "organization_id", "opportunity_id"),
    )


class Task(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "tasks"
    __resource_type__ = "task"

    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column()
    assignee_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="open")
    # manual | follow_up | handover | cross_sell
    source: Mapped[str] = mapped_column(String(16), default="manual")
    account_id: Mapped[uuid.UUID | None] = mapped_column()
    opportunity_id: Mapped[uuid.UUID | None] = mapped_column()
    lead_id: Mapped[uuid.UUID | None] = mapped_column()
    contact_id: Mapped[uuid.UUID | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column()
    # Jobs create a task at most once per key (e.g. one follow-up per stale spell).
    dedupe_key: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        tenant_fk("assignee_id", "users"),
        tenant_fk("account_id", "accounts"),
        tenant_fk("opportunity_id", "opportunities"),
        tenant_fk("lead_id", "leads"),
        tenant_fk("contact_id", "contacts"),
        CheckConstraint("status IN ('open', 'done', 'cancelled')", name="status"),
        CheckConstraint(
            "source IN ('manual', 'follow_up', 'handover', 'cross_sell')", name="source"
        ),
        Index(
            "uq_tasks_organization_id_dedupe_key",
            "organization_id",
            "dedupe_key",
            unique=True,
            postgresql_where=text("dedupe_key IS NOT NULL"),
        ),
        Index("ix_tasks_organization_id_assignee_id", "organization_id", "assignee_id", "status"),
        Index("ix_tasks_organization_id_opportunity_id", "organization_id", "opportunity_id"),
        Index("ix_tasks_organization_id_created_at", "organization_id", "created_at", "id"),
    )
