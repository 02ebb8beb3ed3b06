"""Products and price books, versioned quotes, discount approvals, contracts."""

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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import utcnow
from app.models.base import Base, TenantMixin, TimestampMixin, VersionedMixin, tenant_fk

QUOTE_STATUSES = (
    "draft",
    "pending_approval",
    "approved",
    "sent",
    "accepted",
    "rejected",
    "expired",
    "recalled",
)


class Product(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "products"
    __resource_type__ = "product"

    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))
    family: Mapped[str | None] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(32), default="unit")
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    __table_args__ = (UniqueConstraint("organization_id", "sku"),)


class PriceBook(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """A currency's list prices; ``account_id`` makes it customer-specific."""

    __tablename__ = "price_books"
    __resource_type__ = "price_book"

    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    account_id: Mapped[uuid.UUID | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        tenant_fk("account_id", "accounts"),
        # One active standard book per currency, one active book per account and currency.
        Index(
            "uq_price_books_standard_currency",
            "organization_id",
            "currency",
            unique=True,
            postgresql_where=text("active AND account_id IS NULL"),
        ),
        Index(
            "uq_price_books_account_currency",
            "organization_id",
            "account_id",
            "currency",
            unique=True,
            postgresql_where=text("active AND account_id IS NOT NULL"),
        ),
    )


class PriceBookEntry(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "price_book_entries"
    __resource_type__ = "price_book_entry"

    price_book_id: Mapped[uuid.UUID] = mapped_column()
    product_id: Mapped[uuid.UUID] = mapped_column()
    pricing_model: Mapped[str] = mapped_column(String(16), default="flat")
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric())
    # [{"up_to": "10" | null, "unit_price": "100", "flat_fee": "0"}], ordered
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    min_quantity: Mapped[Decimal | None] = mapped_column(Numeric())

    __table_args__ = (
        UniqueConstraint("organization_id", "price_book_id", "product_id"),
        tenant_fk("price_book_id", "price_books"),
        tenant_fk("product_id", "products"),
        CheckConstraint("pricing_model IN ('flat', 'volume', 'graduated')", name="model"),
    )


class Quote(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "quotes"
    __resource_type__ = "quote"

    opportunity_id: Mapped[uuid.UUID] = mapped_column()
    number: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    currency: Mapped[str] = mapped_column(String(3))
    price_book_id: Mapped[uuid.UUID] = mapped_column()
    created_by_id: Mapped[uuid.UUID | None] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column()
    accepted_version: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("organization_id", "number"),
        tenant_fk("opportunity_id", "opportunities"),
        tenant_fk("price_book_id", "price_books"),
        CheckConstraint(
            "status IN ('draft', 'pending_approval', 'approved', 'sent', 'accepted', "
            "'rejected', 'expired', 'recalled')",
            name="status",
        ),
        # Only one accepted quote per opportunity.
        Index(
            "uq_quotes_accepted_per_opportunity",
            "organization_id",
            "opportunity_id",
            unique=True,
            postgresql_where=text("status = 'accepted'"),
        ),
        Index("ix_quotes_opportunity", "organization_id", "opportunity_id"),
        Index("ix_quotes_organization_id_created_at", "organization_id", "created_at", "id"),
    )


class QuoteVersion(TenantMixin, TimestampMixin, Base):
    """One version of a quote: immutable once submitted; totals stored as priced."""

    __tablename__ = "quote_versions"
    __resource_type__ = "quote_version"

    quote_id: Mapped[uuid.UUID] = mapped_column()
    number: Mapped[int] = mapped_column(Integer)
    valid_until: Mapped[date | None] = mapped_column(Date)
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    term_months: Mapped[int | None] = mapped_column(Integer)
    annual_uplift_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))
    notes: Mapped[str | None] = mapped_column(Text)
    subtotal: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=Decimal(0))
    discount_total: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=Decimal(0))
    net_total: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=Decimal(0))
    effective_discount_pct: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal(0))
    acv: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=Decimal(0))
    tcv: Mapped[Decimal] = mapped_column(Numeric(20, 2), default=Decimal(0))
    submitted_at: Mapped[datetime | None] = mapped_column()
    # The approval decision for exactly this version: none_needed | approved | None
    approval: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        UniqueConstraint("organization_id", "quote_id", "number"),
        tenant_fk("quote_id", "quotes"),
    )


class QuoteLineItem(TenantMixin, TimestampMixin, Base):
    __tablename__ = "quote_line_items"
    __resource_type__ = "quote_line_item"

    quote_version_id: Mapped[uuid.UUID] = mapped_column()
    position: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID] = mapped_column()
    description: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric())
    # Per-year quantities (ramps); empty: the quantity every year.
    year_quantities: Mapped[list[str]] = mapped_column(JSONB, default=list)
    discount_pct: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    discount_amount: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))
    # The price-book entry as priced (model, unit price, tiers): a version never reprices.
    price_snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB)
    list_amount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    discount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    net_amount: Mapped[Decimal] = mapped_column(Numeric(20, 2))
    years: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)

    __table_args__ = (
        tenant_fk("quote_version_id", "quote_versions"),
        tenant_fk("product_id", "products"),
        Index("ix_quote_line_items_version", "organization_id", "quote_version_id"),
    )


class ApprovalPolicy(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "approval_policies"
    __resource_type__ = "approval_policy"

    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    expires_after_days: Mapped[int] = mapped_column(Integer, default=7)

    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        Index(
            "uq_approval_policies_active",
            "organization_id",
            unique=True,
            postgresql_where=text("active"),
        ),
    )


class ApprovalRequest(TenantMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "approval_requests"
    __resource_type__ = "approval_request"

    quote_id: Mapped[uuid.UUID] = mapped_column()
    quote_version: Mapped[int] = mapped_column(Integer)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column()
    # pending | approved | rejected | recalled | expired
    status: Mapped[str] = mapped_column(String(16), default="pending")
    current_step: Mapped[int] = mapped_column(Integer, default=1)
    expires_at: Mapped[datetime | None] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        tenant_fk("quote_id", "quotes"),
        tenant_fk("requested_by_id", "users"),
        Index("ix_approval_requests_quote", "organization_id", "quote_id"),
        Index("ix_approval_requests_status", "organization_id", "status"),
    )


class ApprovalStep(TenantMixin, TimestampMixin, Base):
    __tablename__ = "approval_steps"
    __resource_type__ = "approval_step"

    request_id: Mapped[uuid.UUID] = mapped_column()
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(200))
    approver_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    # waiting | pending | approved | rejected | cancelled
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column()
    on_behalf_of_id: Mapped[uuid.UUID | None] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()
    comment: Mapped[str | None] = mapped_column(Text)
    reason_code: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        tenant_fk("request_id", "approval_requests"),
        Index("ix_approval_steps_request", "organization_id", "request_id", "position"),
    )


class ApprovalDelegation(TenantMixin, TimestampMixin, Base):
    """While ``user`` is away, ``delegate`` may decide their approvals."""

    __tablename__ = "approval_delegations"
    __resource_type__ = "approval_delegation"

    user_id: Mapped[uuid.UUID] = mapped_column()
    delegate_id: Mapped[uuid.UUID] = mapped_column()
    starts_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    ends_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        tenant_fk("user_id", "users"),
        tenant_fk("delegate_id", "users"),
        CheckConstraint("user_id <> delegate_id", name="not_self"),
        CheckConstraint("ends_at > starts_at", name="period"),
        Index("ix_approval_delegations_delegate", "organization_id", "delegate_id"),
    )


class CrossSellRule(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """ "N months after winning a deal with product/family X, suggest product Y"."""

    __tablename__ = "cross_sell_rules"
    __resource_type__ = "cross_sell_rule"

    name: Mapped[str] = mapped_column(String(200))
    trigger_product_id: Mapped[uuid.UUID | None] = mapped_column()
    trigger_family: Mapped[str | None] = mapped_column(String(100))
    months_after: Mapped[int] = mapped_column(Integer)
    suggest_product_id: Mapped[uuid.UUID] = mapped_column()
    # task | opportunity (a draft expansion deal)
    action: Mapped[str] = mapped_column(String(16), default="task")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    __table_args__ = (
        UniqueConstraint("organization_id", "name"),
        tenant_fk("trigger_product_id", "products"),
        tenant_fk("suggest_product_id", "products"),
        CheckConstraint("action IN ('task', 'opportunity')", name="action"),
        CheckConstraint(
            "(trigger_product_id IS NULL) <> (trigger_family IS NULL)", name="one_trigger"
        ),
        CheckConstraint("months_after BETWEEN 0 AND 120", name="months"),
    )


class CrossSellTrigger(TenantMixin, Base):
    """A rule fired for a won deal: at most once (the unique key)."""

    __tablename__ = "cross_sell_triggers"

    rule_id: Mapped[uuid.UUID] = mapped_column()
    opportunity_id: Mapped[uuid.UUID] = mapped_column()
    fired_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    task_id: Mapped[uuid.UUID | None] = mapped_column()
    created_opportunity_id: Mapped[uuid.UUID | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("organization_id", "rule_id", "opportunity_id"),
        tenant_fk("rule_id", "cross_sell_rules"),
        tenant_fk("opportunity_id", "opportunities"),
    )


class Contract(TenantMixin, TimestampMixin, VersionedMixin, Base):
    """An MSA or order form, usually from an accepted quote; signed through an e-signature
    provider; renewed by a renewal deal created ahead of its end."""

    __tablename__ = "contracts"
    __resource_type__ = "contract"

    account_id: Mapped[uuid.UUID] = mapped_column()
    opportunity_id: Mapped[uuid.UUID | None] = mapped_column()
    quote_id: Mapped[uuid.UUID | None] = mapped_column()
    quote_version: Mapped[int | None] = mapped_column(Integer)
    contract_type: Mapped[str] = mapped_column(String(16), default="order_form")
    # draft | sent_for_signature | signed | declined | terminated
    status: Mapped[str] = mapped_column(String(24), default="draft")
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    renewal_term_months: Mapped[int | None] = mapped_column(Integer)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    renewal_notice_days: Mapped[int] = mapped_column(Integer, default=90)
    annual_value: Mapped[Decimal | None] = mapped_column(Numeric(20, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    sla: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    signed_at: Mapped[datetime | None] = mapped_column()
    # Provider event ids already applied (callbacks are retried: apply each once).
    signature_events: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    renewal_opportunity_id: Mapped[uuid.UUID | None] = mapped_column()

    __table_args__ = (
        tenant_fk("account_id", "accounts"),
        tenant_fk("opportunity_id", "opportunities"),
        tenant_fk("quote_id", "quotes"),
        tenant_fk("renewal_opportunity_id", "opportunities"),
        CheckConstraint("contract_type IN ('msa', 'order_form')", name="contract_type"),
        CheckConstraint(
            "status IN ('draft', 'sent_for_signature', 'signed', 'declined', 'terminated')",
            name="status",
        ),
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="period"),
        Index("ix_contracts_account", "organization_id", "account_id"),
        Index("ix_contracts_end_date", "organization_id", "status", "end_date"),
    )


class ContractDocument(TenantMixin, TimestampMixin, Base):
    """A version of a contract's document: metadata and checksum (bytes are optional)."""

    __tablename__ = "contract_documents"
    __resource_type__ = "contract_document"

    contract_id: Mapped[uuid.UUID] = mapped_column()
    number: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    checksum_sha256: Mapped[str] = mapped_column(String(64))
    # none | sent | signed | declined
    e_signature_status: Mapped[str] = mapped_column(String(16), default="none")

    __table_args__ = (
        UniqueConstraint("organization_id", "contract_id", "number"),
        tenant_fk("contract_id", "contracts"),
    )
