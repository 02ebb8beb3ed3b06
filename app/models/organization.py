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
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import new_id
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, tenant_fk

ROLES = ("admin", "manager", "rep", "viewer")


class Organization(TimestampMixin, VersionedMixin, Base):
    """The tenant. The one table keyed by ``id`` alone (a Citus reference table)."""

    __tablename__ = "organizations"
    __resource_type__ = "organization"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="TRY")
    fiscal_year_start_month: Mapped[int] = mapped_column(Integer, default=1)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Istanbul")
    # Free-form, validated org settings (segment thresholds, …); see app/organizations.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)

    __table_args__ = (
        CheckConstraint("fiscal_year_start_month BETWEEN 1 AND 12", name="fiscal_month"),
    )


class Team(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "teams"
    __resource_type__ = "team"

    name: Mapped[str] = mapped_column(String(200))
    manager_id: Mapped[uuid.UUID | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        tenant_fk("manager_id", "users", use_alter=True),
    )


class User(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "users"
    __resource_type__ = "user"

    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    manager_id: Mapped[uuid.UUID | None] = mapped_column()
    team_id: Mapped[uuid.UUID | None] = mapped_column()
    # Highest discount % this user may approve alone (approval authority).
    approval_max_discount_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Named approver groups the user belongs to ("finance", "legal", …).
    approval_groups: Mapped[list[str]] = mapped_column(
        ARRAY(String(64)), default=list, server_default=text("'{}'")
    )

    __table_args__ = (
        UniqueConstraint("organization_id", "email"),
        CheckConstraint("role IN ('admin', 'manager', 'rep', 'viewer')", name="role"),
        tenant_fk("manager_id", "users"),
        tenant_fk("team_id", "teams"),
        Index("ix_users_organization_id_manager_id", "organization_id", "manager_id"),
    )


class ApiKey(TenantMixin, TimestampMixin, Base):
    """A bearer key. Only the SHA-256 of the token is stored; the token is shown once."""

    __tablename__ = "api_keys"
    __resource_type__ = "api_key"
    __audit_ignore__ = ("key_hash", "last_used_at")

    name: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[uuid.UUID | None] = mapped_column()
    # A partner key's principal is the partner (user_id is null then).
    partner_id: Mapped[uuid.UUID | None] = mapped_column()
    # The first characters of the token, to tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("organization_id", "key_hash"),
        tenant_fk("user_id", "users"),
        tenant_fk("partner_id", "partners"),
        tenant_fk("created_by_id", "users"),
    )
