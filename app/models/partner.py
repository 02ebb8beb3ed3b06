"""Channel partners, their deal registrations, and webhook delivery."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
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
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, tenant_fk


class Partner(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "partners"
    __resource_type__ = "partner"

    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(16), default="registered")
    domain: Mapped[str | None] = mapped_column(String(255))
    commission_rate_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(10))
    status: Mapped[str] = mapped_column(String(16), default="active")

    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        CheckConstraint("status IN ('active', 'inactive')", name="status"),
        CheckConstraint("commission_rate_pct BETWEEN 0 AND 100", name="commission"),
    )


class DealRegistration(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "deal_registrations"
    __resource_type__ = "deal_registration"

    partner_id: Mapped[uuid.UUID] = mapped_column()
    company_name: Mapped[str] = mapped_column(String(300))
    # company_key / normalised domain: the conflict-matching keys.
    company_key: Mapped[str] = mapped_column(String(300))
    domain: Mapped[str | None] = mapped_column(String(255))
    country: Mapped[str | None] = mapped_column(String(2))
    contact_name: Mapped[str | None] = mapped_column(String(200))
    contact_email: Mapped[str | None] = mapped_column(String(320))
    contact_title: Mapped[str | None] = mapped_column(String(200))
    expected_amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))
    currency: Mapped[str] = mapped_column(String(3))
    expected_close_date: Mapped[date | None] = mapped_column(Date)
    products: Mapped[list[str]] = mapped_column(ARRAY(String(200)), default=list)
    notes: Mapped[str | None] = mapped_column(Text)
    # submitted | approved | rejected | converted | expired
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    conflicts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    protected_until: Mapped[date | None] = mapped_column(Date)
    account_id: Mapped[uuid.UUID | None] = mapped_column()
    opportunity_id: Mapped[uuid.UUID | None] = mapped_column()
    submitted_by_user_id: Mapped[uuid.UUID | None] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        tenant_fk("partner_id", "partners"),
        tenant_fk("account_id", "accounts"),
        tenant_fk("opportunity_id", "opportunities"),
        CheckConstraint(
            "status IN ('submitted', 'approved', 'rejected', 'converted', 'expired')",
            name="status",
        ),
        Index("ix_deal_registrations_partner", "organization_id", "partner_id", "created_at"),
        Index("ix_deal_registrations_company_key", "organization_id", "company_key"),
        Index("ix_deal_registrations_domain", "organization_id", "domain"),
    )


class WebhookEndpoint(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "webhook_endpoints"
    __resource_type__ = "webhook_endpoint"
    __audit_ignore__ = ("secret",)

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(300))
    # Empty: every event type.
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(100)), default=list)
    # The signing secret ("whsec_…"); shown once, kept to sign deliveries.
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # A partner's endpoint receives only events about that partner's registrations/deals.
    partner_id: Mapped[uuid.UUID | None] = mapped_column()

    __table_args__ = (tenant_fk("partner_id", "partners"),)


class WebhookDelivery(TenantMixin, TimestampMixin, Base):
    """One event to one endpoint: retried with backoff until delivered or given up."""

    __tablename__ = "webhook_deliveries"

    endpoint_id: Mapped[uuid.UUID] = mapped_column()
    event_id: Mapped[uuid.UUID] = mapped_column()
    # The event's resource: deliveries of one resource go out in event order.
    resource_id: Mapped[uuid.UUID | None] = mapped_column()
    # pending | delivered | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("organization_id", "endpoint_id", "event_id"),
        tenant_fk("endpoint_id", "webhook_endpoints"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "organization_id", "endpoint_id", "created_at"),
    )


class WebhookAttempt(TenantMixin, Base):
    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column()
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        tenant_fk("delivery_id", "webhook_deliveries"),
        Index("ix_webhook_attempts_delivery", "organization_id", "delivery_id", "attempted_at"),
    )
