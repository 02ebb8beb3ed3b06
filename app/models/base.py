"""Declarative base, naming convention and the tenant/timestamp/version mixins.

Sharding-ready by construction: every business table's primary key is
``(organization_id, id)`` and every reference to another business table is a composite
foreign key that includes ``organization_id`` (see ``tenant_fk``), so a distributed
PostgreSQL (Citus) can shard all of them by ``organization_id`` and co-locate a tenant.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, ForeignKey, ForeignKeyConstraint, Integer, MetaData, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from app.core.ids import new_id, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
    }


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now(), nullable=False
    )


class TenantKeyMixin:
    """A row owned by one organization, whose primary key starts with ``organization_id``;
    every tenant-scoped query applies to it (``app/core/tenancy.py``)."""

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(
            ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True, sort_order=-20
        )


class TenantMixin(TenantKeyMixin):
    """A business row: owned by one organization; primary key (organization_id, id)."""

    # The resource name used in audit rows, field history and events ("account", …).
    __resource_type__: ClassVar[str] = ""

    # sort_order puts the key first: primary key (organization_id, id), tenant leading.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id, sort_order=-10)


class VersionedMixin:
    """Optimistic concurrency: ``version`` is bumped by every UPDATE (ETag / If-Match)."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.version}


class SoftDeleteMixin:
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


def tenant_fk(column: str, target: str, *, use_alter: bool = False) -> ForeignKeyConstraint:
    """A foreign key to another tenant table that always includes ``organization_id``.

    ``use_alter`` breaks a cycle between two tables (teams ↔ users). No ON DELETE action:
    business rows are soft-deleted, and a SET NULL would also null the tenant column.
    """
    return ForeignKeyConstraint(
        ["organization_id", column],
        [f"{target}.organization_id", f"{target}.id"],
        use_alter=use_alter,
    )
