from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    Base,
    SoftDeleteMixin,
    TenantMixin,
    TimestampMixin,
    VersionedMixin,
    tenant_fk,
)

SEGMENTS = ("smb", "mid_market", "enterprise")
LIFECYCLES = ("prospect", "customer", "former_customer")


class Account(TenantMixin, TimestampMixin, VersionedMixin, SoftDeleteMixin, Base):
    __tablename__ = "accounts"
    __resource_type__ = "account"

    name: Mapped[str] = mapped_column(String(300))
    # ``rules.company_key(name)``: finds the account behind a lead's company name.
    name_key: Mapped[str] = mapped_column(String(300), default="")
    # Normalised (lower case, no scheme, no "www."): the duplicate-detection key.
    domain: Mapped[str | None] = mapped_column(String(255))
    industry: Mapped[str | None] = mapped_column(String(100))
    employee_count: Mapped[int | None] = mapped_column(Integer)
    annual_revenue: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))
    country: Mapped[str | None] = mapped_column(String(2))
    city: Mapped[str | None] = mapped_column(String(100))
    segment: Mapped[str] = mapped_column(String(16))
    # True when a user set the segment; false when it is derived from the size rules.
    segment_is_manual: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    lifecycle: Mapped[str] = mapped_column(String(16), default="prospect")
    became_customer_at: Mapped[datetime | None] = mapped_column()
    churned_at: Mapped[datetime | None] = mapped_column()
    owner_id: Mapped[uuid.UUID | None] = mapped_column()
    parent_account_id: Mapped[uuid.UUID | None] = mapped_column()
    territory_id: Mapped[uuid.UUID | None] = mapped_column()

    __table_args__ = (
        CheckConstraint("segment IN ('smb', 'mid_market', 'enterprise')", name="segment"),
        CheckConstraint(
            "lifecycle IN ('prospect', 'customer', 'former_customer')", name="lifecycle"
        ),
        CheckConstraint("parent_account_id IS DISTINCT FROM id", name="not_own_parent"),
        tenant_fk("owner_id", "users"),
        tenant_fk("parent_account_id", "accounts"),
        tenant_fk("territory_id", "territories"),
        Index(
            "uq_accounts_organization_id_domain",
            "organization_id",
            "domain",
            unique=True,
            postgresql_where=text("deleted_at IS NULL AND domain IS NOT NULL"),
        ),
        Index(
            "ix_accounts_organization_id_parent_account_id", "organization_id", "parent_account_id"
        ),
        # Customer KPIs (churn, retention, CAC, CLTV) read only accounts that became one.
        Index(
            "ix_accounts_kpi_customers",
            "organization_id",
            "became_customer_at",
            postgresql_include=["churned_at", "owner_id", "segment", "territory_id"],
            postgresql_where=text("became_customer_at IS NOT NULL AND deleted_at IS NULL"),
        ),
        Index("ix_accounts_organization_id_owner_id", "organization_id", "owner_id"),
        Index("ix_accounts_organization_id_created_at", "organization_id", "created_at", "id"),
        Index("ix_accounts_organization_id_name", "organization_id", "name", "id"),
        Index("ix_accounts_organization_id_name_key", "organization_id", "name_key"),
    )
