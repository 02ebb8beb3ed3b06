"""Audit log and field history, recorded automatically for every audited model.

Any model with a ``__resource_type__`` is audited: on flush, each created, changed or
(soft-)deleted row gets an ``audit_log`` row (actor, key, action, changed fields) and each
changed field a ``field_history`` row (old and new value). Doing it in one flush listener
means no service can forget it, and it commits or rolls back with the change itself.
Hot paths that insert rows without the ORM (``insert_rows``) call ``record_created``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.core.repository import insert_rows
from app.core.tenancy import Actor, actor_of
from app.models.base import SoftDeleteMixin, TenantMixin
from app.models.organization import Organization
from app.models.platform import AuditLog, FieldHistory

# Bookkeeping columns never reported as changes.
IGNORED_FIELDS = frozenset({"id", "organization_id", "created_at", "updated_at", "version"})


def to_json_value(value: Any) -> Any:
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    return value


def _resource_type(obj: object) -> str:
    return getattr(type(obj), "__resource_type__", "")


def _organization_of(obj: object) -> uuid.UUID:
    if isinstance(obj, Organization):
        return obj.id
    assert isinstance(obj, TenantMixin)
    return obj.organization_id


def _ignored(model: type[Any]) -> frozenset[str]:
    return IGNORED_FIELDS | frozenset(getattr(model, "__audit_ignore__", ()))


def _changes(obj: object) -> dict[str, tuple[Any, Any]]:
    """Changed column attributes of a dirty object: name → (old, new)."""
    state = inspect(obj)
    ignored = _ignored(type(obj))
    changes: dict[str, tuple[Any, Any]] = {}
    for attr in state.mapper.column_attrs:
        if attr.key in ignored:
            continue
        hist = state.attrs[attr.key].history
        if not hist.has_changes():
            continue
        old = hist.deleted[0] if hist.deleted else None
        new = hist.added[0] if hist.added else None
        if old != new:
            changes[attr.key] = (old, new)
    return changes


def changed_fields(obj: object) -> list[str]:
    """Names of the fields of ``obj`` changed since it was loaded (before flush)."""
    return sorted(_changes(obj))


def _audit_row(session: Session, obj: Any, action: str, fields: list[str]) -> AuditLog:
    return AuditLog(
        **audit_values(
            actor_of(session), _organization_of(obj), _resource_type(obj), obj.id, action, fields
        )
    )


def audit_values(
    actor: Actor,
    organization_id: uuid.UUID,
    resource_type: str,
    resource_id: uuid.UUID,
    action: str,
    fields: Iterable[str],
) -> dict[str, Any]:
    return {
        "organization_id": organization_id,
        "action": f"{resource_type}.{action}",
        "resource_type": resource_type,
        "resource_id": resource_id,
        "changed_fields": sorted(fields),
        "actor_user_id": actor.user_id,
        "actor_partner_id": actor.partner_id,
        "api_key_id": actor.api_key_id,
        "request_id": actor.request_id,
    }


async def record_created(session: AsyncSession, model: type[Any], values: dict[str, Any]) -> None:
    """The audit row of a ``model`` row inserted without the ORM (``insert_rows``), the
    same as the flush listener below writes for a new object."""
    ignored = _ignored(model)
    fields = (name for name, value in values.items() if name not in ignored and value is not None)
    row = audit_values(
        actor_of(session),
        values["organization_id"],
        model.__resource_type__,
        values["id"],
        "created",
        fields,
    )
    await insert_rows(session, AuditLog, [row])


@event.listens_for(Session, "before_flush")
def _record_audit(session: Session, _context: Any, _instances: Any) -> None:
    actor = actor_of(session)
    records: list[Any] = []
    for obj in session.new:
        if _resource_type(obj):
            ignored = _ignored(type(obj))
            state = inspect(obj)
            fields = [
                a.key
                for a in state.mapper.column_attrs
                if a.key not in ignored and getattr(obj, a.key) is not None
            ]
            records.append(_audit_row(session, obj, "created", fields))
    for obj in session.dirty:
        if not _resource_type(obj) or not session.is_modified(obj, include_collections=False):
            continue
        changes = _changes(obj)
        if not changes:
            continue
        deleted = (
            isinstance(obj, SoftDeleteMixin)
            and "deleted_at" in changes
            and (changes["deleted_at"][0] is None)
        )
        records.append(_audit_row(session, obj, "deleted" if deleted else "updated", list(changes)))
        for field, (old, new) in changes.items():
            records.append(
                FieldHistory(
                    organization_id=_organization_of(obj),
                    resource_type=_resource_type(obj),
                    resource_id=obj.id,
                    field=field,
                    old_value=to_json_value(old),
                    new_value=to_json_value(new),
                    actor_user_id=actor.user_id,
                    actor_partner_id=actor.partner_id,
                    api_key_id=actor.api_key_id,
                    request_id=actor.request_id,
                )
            )
    for obj in session.deleted:
        if _resource_type(obj):
            records.append(_audit_row(session, obj, "deleted", []))
    session.add_all(records)
