"""Marketing campaigns and their members (leads or contacts), for attribution."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, Index, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, tenant_fk

CAMPAIGN_TYPES = ("webinar", "event", "content", "email", "paid", "partner")
CAMPAIGN_STATUSES = ("planned", "active", "completed", "cancelled")
MEMBER_STATUSES = ("sent", "responded", "attended", "registered", "no_show", "unsubscribed")
# A member's first move into one of these is its response (the attribution touch).
RESPONDED_STATUSES = ("responded", "attended", "registered")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Campaign(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "campaigns"
    __resource_type__ = "campaign"

    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(100))
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    budget: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))
    actual_cost: Mapped[Decimal] = mapped_column(
        Numeric(20, 2), default=Decimal(0), server_default=text("0")
    )
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="planned")
    description: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        CheckConstraint(_in("type", CAMPAIGN_TYPES), name="type"),
        CheckConstraint(_in("status", CAMPAIGN_STATUSES), name="status"),
        CheckConstraint("budget IS NULL OR budget >= 0", name="budget_not_negative"),
        CheckConstraint("actual_cost >= 0", name="actual_cost_not_negative"),
        CheckConstraint(
            "end_date IS NULL OR start_date IS NULL OR end_date >= start_date", name="period"
        ),
        Index("ix_campaigns_organization_id_created_at", "organization_id", "created_at", "id"),
    )


class CampaignMember(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """A lead or a contact (exactly one) in a campaign, with its response status."""

    __tablename__ = "campaign_members"
    __resource_type__ = "campaign_member"

    campaign_id: Mapped[uuid.UUID] = mapped_column()
    lead_id: Mapped[uuid.UUID | None] = mapped_column()
    contact_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="sent")
    responded_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        tenant_fk("campaign_id", "campaigns"),
        tenant_fk("lead_id", "leads"),
        tenant_fk("contact_id", "contacts"),
        UniqueConstraint("organization_id", "campaign_id", "lead_id"),
        UniqueConstraint("organization_id", "campaign_id", "contact_id"),
        CheckConstraint("(lead_id IS NULL) <> (contact_id IS NULL)", name="one_member"),
        CheckConstraint(_in("status", MEMBER_STATUSES), name="status"),
        Index("ix_campaign_members_lead", "organization_id", "lead_id"),
        Index("ix_campaign_members_contact", "organization_id", "contact_id"),
        Index(
            "ix_campaign_members_campaign",
            "organization_id",
            "campaign_id",
            "created_at",
            "id",
        ),
    )
