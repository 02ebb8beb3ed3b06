"""Record domain events in the same transaction as the change (transactional outbox).

Every domain calls ``emit``; delivery to webhooks reads ``outbox_events`` later, so an
event exists if and only if its change committed.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.audit import to_json_value
from app.core.repository import insert_rows
from app.core.tenancy import actor_of, tenant_id
from app.models.platform import OutboxEvent


def emit(
    session: AsyncSession,
    event_type: str,
    *,
    resource_type: str,
    resource_id: uuid.UUID | None,
    data: dict[str, Any],
    partner_id: uuid.UUID | None = None,
) -> OutboxEvent:
    event = OutboxEvent(
        **event_values(session, event_type, resource_type, resource_id, data, partner_id)
    )
    session.add(event)
    return event


async def emit_now(session: AsyncSession, events: list[dict[str, Any]]) -> None:
    """Write ``events`` (``event_values``) at once, in one statement, without the ORM: for
    paths that insert their rows with ``insert_rows``."""
    await insert_rows(session, OutboxEvent, events)


def event_values(
    session: AsyncSession,
    event_type: str,
    resource_type: str,
    resource_id: uuid.UUID | None,
    data: dict[str, Any],
    partner_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """The columns of an event (``emit`` adds it to the session, ``emit_now`` writes it)."""
    actor = actor_of(session)
    if partner_id is None and isinstance(data.get("partner_id"), uuid.UUID):
        partner_id = data["partner_id"]  # events about a partner's deal reach that partner
    return {
        "organization_id": tenant_id(session),
        "event_type": event_type,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "payload": to_json_value(data),
        "actor_user_id": actor.user_id,
        "partner_id": partner_id,
        "request_id": actor.request_id,
    }
