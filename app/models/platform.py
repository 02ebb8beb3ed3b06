"""Cross-cutting tables: field history, audit log, outbox and idempotency records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.ids import utcnow
from app.models.base import Base, TenantMixin


class FieldHistory(TenantMixin, Base):
    """One row per changed field of a tracked resource (old and new value as JSON)."""

    __tablename__ = "field_history"

    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[uuid.UUID] = mapped_column()
    field: Mapped[str] = mapped_column(String(100))
    old_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_partner_id: Mapped[uuid.UUID | None] = mapped_column()
    api_key_id: Mapped[uuid.UUID | None] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(
            "ix_field_history_resource",
            "organization_id",
            "resource_type",
            "resource_id",
            "changed_at",
        ),
    )


class AuditLog(TenantMixin, Base):
    """Who did what through the API: one row per created, changed or deleted resource."""

    __tablename__ = "audit_log"

    at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    action: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[uuid.UUID | None] = mapped_column()
    changed_fields: Mapped[list[str]] = mapped_column(JSONB, default=list)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column()
    actor_partner_id: Mapped[uuid.UUID | None] = mapped_column()
    api_key_id: Mapped[uuid.UUID | None] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_log_organization_id_at", "organization_id", "at", "id"),
        Index("ix_audit_log_resource", "organization_id", "resource_type", "resource_id"),
    )


class OutboxEvent(TenantMixin, Base):
    """An event written in the same transaction as the change it describes.

    Delivery (webhooks) reads this table; ``id`` is time-ordered, so it is also the
    per-tenant event order.
    """

    __tablename__ = "outbox_events"

    event_type: Mapped[str] = mapped_column(String(100))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[uuid.UUID | None] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column()
    # Set when the event concerns one partner's data (partners receive only those).
    partner_id: Mapped[uuid.UUID | None] = mapped_column()
    request_id: Mapped[str | None] = mapped_column(String(64))
    # Set once the dispatcher has fanned the event out to the webhook endpoints.
    dispatched_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_outbox_events_organization_id_event_type", "organization_id", "event_type"),
        Index(
            "ix_outbox_events_undispatched",
            "occurred_at",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        Index("ix_outbox_events_resource", "organization_id", "resource_type", "resource_id"),
    )


class IdempotencyRecord(Base):
    """A POST's Idempotency-Key: claimed before the handler runs, completed with it."""

    __tablename__ = "idempotency_records"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    api_key_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # in_flight | completed
    state: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column()
