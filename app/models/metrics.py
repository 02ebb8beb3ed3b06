"""Inputs of the metrics: exchange rates, quotas per rep and period, sales & marketing spend."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Index,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import (
    Base,
    TenantKeyMixin,
    TenantMixin,
    TimestampMixin,
    VersionedMixin,
    tenant_fk,
)


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


class ChangeCounter(TenantKeyMixin, Base):
    """How many committed transactions changed data the KPIs read: the organization's
    generation is the sum over its slots. Writers add to a random slot, so concurrent
    commits of one organization seldom wait on the same row (``app/metrics/report_cache.py``)."""

    __tablename__ = "change_counters"

    slot: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    changes: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportCache(TenantKeyMixin, Base):
    """A KPI report's JSON as computed at a generation of the organization's data; served
    only while that generation is current."""

    __tablename__ = "report_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the query
    generation: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    computed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
