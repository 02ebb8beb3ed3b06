"""Inputs of the metrics: exchange rates, quotas per rep and period, sales & marketing spend."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, Index, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, tenant_fk


class ExchangeRate(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """1 ``from_currency`` = ``rate`` ``to_currency`` on ``date`` (and after, until the
    next rate of the pair)."""

    __tablename__ = "exchange_rates"
    __resource_type__ = "exchange_rate"

    date: Mapped[dt.date] = mapped_column(Date)
    from_currency: Mapped[str] = mapped_column(String(3))
    to_currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[Decimal] = mapped_column(Numeric(20, 10))

    __table_args__ = (
        UniqueConstraint("organization_id", "date", "from_currency", "to_currency"),
        Index(
            "ix_exchange_rates_pair_date",
            "organization_id",
            "from_currency",
            "to_currency",
            "date",
        ),
        CheckConstraint("rate > 0", name="rate_positive"),
        CheckConstraint("from_currency <> to_currency", name="distinct_currencies"),
    )


class Quota(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """A rep's quota for a period (``2026``, ``2026-Q3``, ``2026-07``)."""

    __tablename__ = "quotas"
    __resource_type__ = "quota"

    user_id: Mapped[uuid.UUID] = mapped_column()
    period: Mapped[str] = mapped_column(String(16))
    start: Mapped[dt.date] = mapped_column(Date)
    end: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    currency: Mapped[str] = mapped_column(String(3))

    __table_args__ = (
        UniqueConstraint("organization_id", "user_id", "period"),
        tenant_fk("user_id", "users"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint('"end" > start', name="range"),
    )


class Spend(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """Sales or marketing spend in a period: the numerator of CAC."""

    __tablename__ = "spend"
    __resource_type__ = "spend"

    period: Mapped[str] = mapped_column(String(16))
    start: Mapped[dt.date] = mapped_column(Date)
    end: Mapped[dt.date] = mapped_column(Date)
    category: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    currency: Mapped[str] = mapped_column(String(3))

    __table_args__ = (
        UniqueConstraint("organization_id", "period", "category"),
        CheckConstraint("category IN ('sales', 'marketing')", name="category"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint('"end" > start', name="range"),
    )
