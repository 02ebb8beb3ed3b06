"""Forecasting: submitted forecast calls, managers' adjustments, daily pipeline snapshots."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import (
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
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import utcnow
from app.models.base import Base, TenantMixin, TimestampMixin, tenant_fk

ADJUSTMENT_CATEGORIES = ("commit", "best_case")


class ForecastSubmission(TenantMixin, TimestampMixin, Base):
    """A user's forecast call for a period at a point in time. Never changed: a new call
    is a new row, so forecast accuracy can compare the latest call with what was won."""

    __tablename__ = "forecast_submissions"
    __resource_type__ = "forecast_submission"

    user_id: Mapped[uuid.UUID] = mapped_column()
    period: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[dt.date] = mapped_column(Date)
    # Exclusive: the day after the period's last day.
    period_end: Mapped[dt.date] = mapped_column(Date)
    commit: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    best_case: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    currency: Mapped[str] = mapped_column(String(3))
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    submitted_by_id: Mapped[uuid.UUID | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        tenant_fk("user_id", "users"),
        tenant_fk("submitted_by_id", "users"),
        CheckConstraint("commit >= 0 AND best_case >= commit", name="amounts"),
        CheckConstraint("period_end > period_start", name="period_range"),
        Index(
            "ix_forecast_submissions_user_period",
            "organization_id",
            "user_id",
            "period",
            "submitted_at",
        ),
        Index(
            "ix_forecast_submissions_organization_id_submitted_at",
            "organization_id",
            "submitted_at",
            "id",
        ),
    )


class ForecastAdjustment(TenantMixin, TimestampMixin, Base):
    """A manager's adjusted figure for someone's commit or best case in a period.

    Append-only: the history is kept; the latest row per (user, period, category,
    adjusted_by) is the effective one. Shown beside the computed figures, never instead."""

    __tablename__ = "forecast_adjustments"
    __resource_type__ = "forecast_adjustment"

    user_id: Mapped[uuid.UUID] = mapped_column()
    period: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    currency: Mapped[str] = mapped_column(String(3))
    adjusted_by_id: Mapped[uuid.UUID] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        tenant_fk("user_id", "users"),
        tenant_fk("adjusted_by_id", "users"),
        CheckConstraint("category IN ('commit', 'best_case')", name="category"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint("period_end > period_start", name="period_range"),
        Index(
            "ix_forecast_adjustments_user_period",
            "organization_id",
            "user_id",
            "period_start",
            "period_end",
            "category",
            "created_at",
        ),
    )


class PipelineSnapshot(TenantMixin, Base):
    """Open pipeline on a day, per (pipeline, stage, forecast category, owner), in the
    corporate currency converted on that day. One set of rows per organization and day."""

    __tablename__ = "pipeline_snapshots"

    snapshot_date: Mapped[dt.date] = mapped_column(Date)
    pipeline_id: Mapped[uuid.UUID] = mapped_column()
    stage_id: Mapped[uuid.UUID] = mapped_column()
    forecast_category: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[uuid.UUID | None] = mapped_column()
    deal_count: Mapped[int] = mapped_column(Integer)
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    weighted_amount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    currency: Mapped[str] = mapped_column(String(3))
    # Deals of the group left out of the amounts: no exchange rate known on that day.
    unconverted_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, server_default=func.now(), nullable=False
    )

    __table_args__ = (
        # Also the index of trend reads: it leads with (organization_id, snapshot_date).
        UniqueConstraint(
            "organization_id",
            "snapshot_date",
            "pipeline_id",
            "stage_id",
            "forecast_category",
            "owner_id",
            name="uq_pipeline_snapshots_group",
            postgresql_nulls_not_distinct=True,
        ),
        tenant_fk("pipeline_id", "pipelines"),
        tenant_fk("stage_id", "pipeline_stages"),
        tenant_fk("owner_id", "users"),
        CheckConstraint(
            "forecast_category IN ('pipeline', 'best_case', 'commit', 'closed', 'omitted')",
            name="forecast_category",
        ),
        CheckConstraint("deal_count >= 0 AND unconverted_count >= 0", name="counts"),
    )
