"""Engagement signals: product usage and marketing events sent in by other systems."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import utcnow
from app.models.base import Base, TenantMixin, tenant_fk

SIGNAL_TYPES = (
    "trial_started",
    "feature_used",
    "seats_added",
    "active_users",
    "web_visit",
    "email_opened",
    "content_downloaded",
    "other",
)


class Signal(TenantMixin, Base):
    """One event about a lead, contact or account (at least one of them). Immutable; a
    resent event (same source and external id) is stored once."""

    __tablename__ = "signals"
    __resource_type__ = "signal"

    type: Mapped[str] = mapped_column(String(32))
    lead_id: Mapped[uuid.UUID | None] = mapped_column()
    contact_id: Mapped[uuid.UUID | None] = mapped_column()
    account_id: Mapped[uuid.UUID | None] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column()
    # E.g. the active user count or the seats added.
    value: Mapped[int | None] = mapped_column(Integer)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    source: Mapped[str] = mapped_column(String(64))
    # The sender's event id: the idempotency key, with the source.
    external_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())

    __table_args__ = (
        tenant_fk("lead_id", "leads"),
        tenant_fk("contact_id", "contacts"),
        tenant_fk("account_id", "accounts"),
        UniqueConstraint("organization_id", "source", "external_id"),
        CheckConstraint(
            "type IN ('trial_started', 'feature_used', 'seats_added', 'active_users', "
            "'web_visit', 'email_opened', 'content_downloaded', 'other')",
            name="type",
        ),
        CheckConstraint(
            "lead_id IS NOT NULL OR contact_id IS NOT NULL OR account_id IS NOT NULL",
            name="subject",
        ),
        Index("ix_signals_organization_id_lead_id", "organization_id", "lead_id", "occurred_at"),
        Index(
            "ix_signals_organization_id_account_id", "organization_id", "account_id", "occurred_at"
        ),
        Index(
            "ix_signals_organization_id_contact_id", "organization_id", "contact_id", "occurred_at"
        ),
        Index("ix_signals_organization_id_occurred_at", "organization_id", "occurred_at", "id"),
    )
