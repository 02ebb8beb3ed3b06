"""Nurture programs (who should get which sequence, when) and their enrollments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, tenant_fk


class NurtureProgram(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """An entry rule over leads, deals or accounts and an ordered list of steps."""

    __tablename__ = "nurture_programs"
    __resource_type__ = "nurture_program"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # lead | opportunity | account: what the rule matches and who gets enrolled.
    target: Mapped[str] = mapped_column(String(16))
    # {"statuses": [...], "min_score": 40, "segments": [...], "pipeline_id": …,
    #  "stages": [...], "lifecycles": [...], "min_days_since_touch": 14}
    entry_rule: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # [{"content_key": "case-study-textile", "wait_days": 7}, …]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        CheckConstraint("target IN ('lead', 'opportunity', 'account')", name="target"),
    )


class NurtureEnrollment(TenantMixin, TimestampMixin, Base):
    """One record in one program: at most once, ever (a unique key per record column)."""

    __tablename__ = "nurture_enrollments"
    __resource_type__ = "nurture_enrollment"

    program_id: Mapped[uuid.UUID] = mapped_column()
    lead_id: Mapped[uuid.UUID | None] = mapped_column()
    opportunity_id: Mapped[uuid.UUID | None] = mapped_column()
    account_id: Mapped[uuid.UUID | None] = mapped_column()
    # active | completed (steps ran out) | exited (stopped matching)
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Index of the next step to fall due; len(steps) once completed.
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    next_due_at: Mapped[datetime | None] = mapped_column()
    enrolled_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    exit_reason: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        tenant_fk("program_id", "nurture_programs"),
        tenant_fk("lead_id", "leads"),
        tenant_fk("opportunity_id", "opportunities"),
        tenant_fk("account_id", "accounts"),
        CheckConstraint("num_nonnulls(lead_id, opportunity_id, account_id) = 1", name="one_record"),
        CheckConstraint("status IN ('active', 'completed', 'exited')", name="status"),
        # At most once per program and record, ever.
        UniqueConstraint("organization_id", "program_id", "lead_id", name="uq_nurture_lead"),
        UniqueConstraint(
            "organization_id", "program_id", "opportunity_id", name="uq_nurture_opportunity"
        ),
        UniqueConstraint("organization_id", "program_id", "account_id", name="uq_nurture_account"),
        Index(
            "ix_nurture_enrollments_due",
            "organization_id",
            "next_due_at",
            postgresql_where=text("status = 'active'"),
        ),
    )
