"""Contacts (the org chart), their influence map, buying committees and activities."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
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


class Contact(TenantMixin, TimestampMixin, VersionedMixin, SoftDeleteMixin, Base):
    __tablename__ = "contacts"
    __resource_type__ = "contact"

    account_id: Mapped[uuid.UUID] = mapped_column()
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(100))
    seniority: Mapped[str | None] = mapped_column(String(32))
    # Lower-cased: the matching key (lead conversion, duplicate checks).
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    linkedin_url: Mapped[str | None] = mapped_column(String(500))
    reports_to_id: Mapped[uuid.UUID | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="active")
    left_at: Mapped[datetime | None] = mapped_column()
    owner_id: Mapped[uuid.UUID | None] = mapped_column()
    # Set when the person's data was erased (KVKK / GDPR); the record stays for the deals.
    erased_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        tenant_fk("account_id", "accounts"),
        tenant_fk("reports_to_id", "contacts"),
        tenant_fk("owner_id", "users"),
        CheckConstraint("status IN ('active', 'left_company')", name="status"),
        CheckConstraint("reports_to_id IS DISTINCT FROM id", name="not_own_manager"),
        Index(
            "uq_contacts_organization_id_account_id_email",
            "organization_id",
            "account_id",
            "email",
            unique=True,
            postgresql_where=text("deleted_at IS NULL AND email IS NOT NULL"),
        ),
        Index("ix_contacts_organization_id_account_id", "organization_id", "account_id"),
        Index("ix_contacts_organization_id_email", "organization_id", "email"),
        Index("ix_contacts_organization_id_created_at", "organization_id", "created_at", "id"),
    )


class ContactRelationship(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """A directed edge of the influence map: ``from`` influences/trusts/blocks/reports to
    ``to``."""

    __tablename__ = "contact_relationships"
    __resource_type__ = "contact_relationship"

    from_contact_id: Mapped[uuid.UUID] = mapped_column()
    to_contact_id: Mapped[uuid.UUID] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16))
    strength: Mapped[int] = mapped_column(SmallInteger)
    notes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("organization_id", "from_contact_id", "to_contact_id", "kind"),
        tenant_fk("from_contact_id", "contacts"),
        tenant_fk("to_contact_id", "contacts"),
        CheckConstraint("kind IN ('influences', 'trusts', 'blocks', 'reports_to')", name="kind"),
        CheckConstraint("strength BETWEEN 1 AND 5", name="strength"),
        CheckConstraint("from_contact_id <> to_contact_id", name="no_self_edge"),
        Index("ix_contact_relationships_to", "organization_id", "to_contact_id"),
    )


class OpportunityStakeholder(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """A member of a deal's buying committee."""

    __tablename__ = "opportunity_stakeholders"
    __resource_type__ = "opportunity_stakeholder"

    opportunity_id: Mapped[uuid.UUID] = mapped_column()
    contact_id: Mapped[uuid.UUID] = mapped_column()
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    influence: Mapped[int] = mapped_column(SmallInteger, default=3)
    stance: Mapped[str] = mapped_column(String(16), default="unknown")
    notes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("organization_id", "opportunity_id", "contact_id"),
        tenant_fk("opportunity_id", "opportunities"),
        tenant_fk("contact_id", "contacts"),
        CheckConstraint("influence BETWEEN 1 AND 5", name="influence"),
        CheckConstraint("stance IN ('supporter', 'neutral', 'opponent', 'unknown')", name="stance"),
        Index("ix_opportunity_stakeholders_contact", "organization_id", "contact_id"),
    )


class Activity(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """A touchpoint: e-mail, call, meeting, LinkedIn message, demo or note."""

    __tablename__ = "activities"
    __resource_type__ = "activity"

    kind: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(300))
    # Counts towards "time spent selling".
    selling: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    account_id: Mapped[uuid.UUID | None] = mapped_column()
    opportunity_id: Mapped[uuid.UUID | None] = mapped_column()
    lead_id: Mapped[uuid.UUID | None] = mapped_column()
    owner_id: Mapped[uuid.UUID | None] = mapped_column()

    __table_args__ = (
        tenant_fk("account_id", "accounts"),
        tenant_fk("opportunity_id", "opportunities"),
        tenant_fk("lead_id", "leads"),
        tenant_fk("owner_id", "users"),
        CheckConstraint(
            "kind IN ('email', 'call', 'meeting', 'linkedin', 'demo', 'note')", name="kind"
        ),
        Index("ix_activities_lead", "organization_id", "lead_id", "occurred_at", "id"),
        CheckConstraint("duration_minutes IS NULL OR duration_minutes >= 0", name="duration"),
        Index("ix_activities_account", "organization_id", "account_id", "occurred_at", "id"),
        Index(
            "ix_activities_opportunity", "organization_id", "opportunity_id", "occurred_at", "id"
        ),
        Index(
            "ix_activities_organization_id_occurred_at",
            "organization_id",
            "occurred_at",
            "id",
            # Covering: time spent selling is an index-only scan of a period.
            postgresql_include=["duration_minutes", "selling", "owner_id"],
        ),
        Index("ix_activities_owner", "organization_id", "owner_id", "occurred_at"),
    )


class ActivityRollup(TenantKeyMixin, Base):
    """Per UTC day: the activities that occurred, their minutes (all, and selling ones)
    and how many have no duration. Time spent selling of an unfiltered period sums these
    rows instead of the period's activities; kept with them by ``app/metrics/rollups.py``."""

    __tablename__ = "activity_rollups"

    day: Mapped[date] = mapped_column(primary_key=True)
    activities: Mapped[int] = mapped_column(Integer, default=0)
    logged_minutes: Mapped[int] = mapped_column(BigInteger, default=0)
    selling_minutes: Mapped[int] = mapped_column(BigInteger, default=0)
    without_duration: Mapped[int] = mapped_column(Integer, default=0)


class ActivityParticipant(TenantMixin, Base):
    """Who took part: a contact (the buyer's side) or a user (ours)."""

    __tablename__ = "activity_participants"

    activity_id: Mapped[uuid.UUID] = mapped_column()
    contact_id: Mapped[uuid.UUID | None] = mapped_column()
    user_id: Mapped[uuid.UUID | None] = mapped_column()
    # Copied from the activity so "touches of a contact" is one index range scan.
    occurred_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        tenant_fk("activity_id", "activities"),
        tenant_fk("contact_id", "contacts"),
        tenant_fk("user_id", "users"),
        CheckConstraint("(contact_id IS NULL) <> (user_id IS NULL)", name="one_party"),
        Index("ix_activity_participants_activity", "organization_id", "activity_id"),
        Index("ix_activity_participants_contact", "organization_id", "contact_id", "occurred_at"),
    )
