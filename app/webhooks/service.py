"""Webhook endpoints, the event log, delivery logs and manual redelivery.

An endpoint receives the outbox events of its organization whose type it subscribes to
(none listed: every type). A partner's endpoint receives only the events whose
``partner_id`` is that partner (its registrations and deals). Delivery itself is the
dispatcher's job (``app/webhooks/dispatcher.py``); this module only queues deliveries.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.concurrency import check_version
from app.core.errors import Conflict, NotFound, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.tenancy import tenant_id
from app.models import OutboxEvent, Partner, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate

SECRET_PREFIX = "whsec_"
ENDPOINT_SORT = {"created_at": WebhookEndpoint.created_at, "url": WebhookEndpoint.url}
EVENT_SORT = {"occurred_at": OutboxEvent.occurred_at}
DELIVERY_SORT = {"created_at": WebhookDelivery.created_at}
# Attempts shown per delivery in the delivery log (newest first).
ATTEMPTS_SHOWN = 50


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def subscribes(event_types: list[str], event_type: str) -> bool:
    if not event_types:
        return True
    resource = event_type.partition(".")[0]
    return event_type in event_types or f"{resource}.*" in event_types


def receives(endpoint: WebhookEndpoint, event: OutboxEvent) -> bool:
    """Whether the (active) endpoint gets this event: its types, and for a partner's
    endpoint only that partner's events."""
    if endpoint.partner_id is not None and endpoint.partner_id != event.partner_id:
        return False
    return subscribes(list(endpoint.event_types), event.event_type)


def active_endpoints() -> Select[WebhookEndpoint]:
    """Active endpoints, leaving out those of inactive partners."""
    return (
        select(WebhookEndpoint)
        .outerjoin(
            Partner,
            and_(
                Partner.organization_id == WebhookEndpoint.organization_id,
                Partner.id == WebhookEndpoint.partner_id,
            ),
        )
        .where(
            WebhookEndpoint.active,
            or_(WebhookEndpoint.partner_id.is_(None), Partner.status == "active"),
        )
    )


# -- endpoints ----------------------------------------------------------------------------
# ``partner_id`` None is the organization's view (every endpoint, its partners' included);
# a partner id confines every operation to that partner's endpoints.


async def list_endpoints(
    session: AsyncSession,
    *,
    partner_id: uuid.UUID | None,
    active: bool | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[WebhookEndpoint], str | None]:
    keys = parse_sort(sort, ENDPOINT_SORT, default="-created_at", id_column=WebhookEndpoint.id)
    stmt = select(WebhookEndpoint)
    if partner_id is not None:
        stmt = stmt.where(WebhookEndpoint.partner_id == partner_id)
    if active is not None:
        stmt = stmt.where(WebhookEndpoint.active.is_(active))
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_endpoint(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    partner_id: uuid.UUID | None,
    for_update: bool = False,
) -> WebhookEndpoint:
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if partner_id is not None:
        stmt = stmt.where(WebhookEndpoint.partner_id == partner_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    endpoint = (await session.execute(stmt)).scalar_one_or_none()
    if endpoint is None:
        raise NotFound("webhook endpoint")
    return endpoint


async def create_endpoint(
    session: AsyncSession, data: WebhookEndpointCreate, *, partner_id: uuid.UUID | None
) -> WebhookEndpoint:
    """A new endpoint with a fresh signing secret (the caller shows it once)."""
    endpoint = WebhookEndpoint(
        id=new_id(),
        url=data.url,
        description=data.description,
        event_types=data.event_types,
        active=data.active,
        secret=new_secret(),
        partner_id=partner_id,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    data: WebhookEndpointUpdate,
    expected_version: int | None,
    *,
    partner_id: uuid.UUID | None,
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, endpoint_id, partner_id=partner_id, for_update=True)
    check_version("webhook endpoint", endpoint.version, expected_version)
    for field in data.model_fields_set:
        value = getattr(data, field)
        if value is not None or field in WebhookEndpointUpdate.nullable:
            setattr(endpoint, field, value)
    await session.flush()
    return endpoint


async def delete_endpoint(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    expected_version: int | None,
    *,
    partner_id: uuid.UUID | None,
) -> None:
    """Delete the endpoint with its delivery log (pending deliveries are dropped)."""
    endpoint = await get_endpoint(session, endpoint_id, partner_id=partner_id, for_update=True)
    check_version("webhook endpoint", endpoint.version, expected_version)
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
    # Lock them first: a dispatcher settling one of them meanwhile either finishes before
    # (and its attempt is deleted below) or finds it gone.
    await session.execute(deliveries.with_for_update())
    await session.execute(
        delete(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(deliveries.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .execution_options(synchronize_session=False)
    )
    await session.delete(endpoint)
    await session.flush()


# -- delivery log -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryView:
    delivery: WebhookDelivery
    event_type: str | None
    attempts: list[WebhookAttempt]

    def as_dict(self) -> dict[str, Any]:
        d = self.delivery
        return {
            "id": d.id,
            "created_at": d.created_at,
            "updated_at": d.updated_at,
            "endpoint_id": d.endpoint_id,
            "event_id": d.event_id,
            "event_type": self.event_type,
            "resource_id": d.resource_id,
            "status": d.status,
            "failed_attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at if d.status == "pending" else None,
            "last_status_code": d.last_status_code,
            "last_error": d.last_error,
            "delivered_at": d.delivered_at,
            "attempts": self.attempts,
        }


async def _views(
    session: AsyncSession, rows: list[tuple[WebhookDelivery, str | None]]
) -> list[DeliveryView]:
    ids = [delivery.id for delivery, _ in rows]
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = defaultdict(list)
    if ids:
        for attempt in await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(ids))
            .order_by(WebhookAttempt.attempted_at.desc(), WebhookAttempt.id.desc())
        ):
            if len(attempts[attempt.delivery_id]) < ATTEMPTS_SHOWN:
                attempts[attempt.delivery_id].append(attempt)
    return [DeliveryView(d, event_type, attempts[d.id]) for d, event_type in rows]


def _with_event_type() -> Any:  # Select of (WebhookDelivery, event type)
    return select(WebhookDelivery, OutboxEvent.event_type).outerjoin(
        OutboxEvent,
        and_(
            OutboxEvent.organization_id == WebhookDelivery.organization_id,
            OutboxEvent.id == WebhookDelivery.event_id,
        ),
    )


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    partner_id: uuid.UUID | None,
    status: str | None,
    event_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[DeliveryView], str | None]:
    """An endpoint's deliveries, newest first, each with its attempts."""
    endpoint = await get_endpoint(session, endpoint_id, partner_id=partner_id)
    keys = parse_sort(None, DELIVERY_SORT, default="-created_at", id_column=WebhookDelivery.id)
    stmt = _with_event_type().where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    if event_id is not None:
        stmt = stmt.where(WebhookDelivery.event_id == event_id)
    rows, next_cursor = await paginate(
        session, stmt, keys, limit=limit, cursor=cursor, rows="tuples"
    )
    return await _views(session, [(d, t) for d, t in rows]), next_cursor


# -- event log ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFilters:
    event_type: str | None = None
    resource_type: str | None = None
    resource_id: uuid.UUID | None = None
    since: datetime | None = None


async def list_events(
    session: AsyncSession,
    filters: EventFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[OutboxEvent], str | None]:
    keys = parse_sort(sort, EVENT_SORT, default="-occurred_at", id_column=OutboxEvent.id)
    stmt = select(OutboxEvent)
    for column, value in (
        (OutboxEvent.event_type, filters.event_type),
        (OutboxEvent.resource_type, filters.resource_type),
        (OutboxEvent.resource_id, filters.resource_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.since is not None:
        stmt = stmt.where(OutboxEvent.occurred_at >= filters.since)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_event(session: AsyncSession, event_id: uuid.UUID) -> OutboxEvent:
    event = await session.scalar(select(OutboxEvent).where(OutboxEvent.id == event_id))
    if event is None:
        raise NotFound("event")
    return event


async def redeliver(
    session: AsyncSession, event_id: uuid.UUID, endpoint_id: uuid.UUID | None
) -> list[DeliveryView]:
    """Queue the event again: to one endpoint, or to every active endpoint receiving it.

    An existing delivery is reset (pending, due now, backoff restarted; its attempts stay
    in the log); an endpoint without one gets a new delivery. The dispatcher sends it on
    its next pass. Redelivery is manual, so it may reach a receiver again (at-least-once).
    """
    event = await get_event(session, event_id)
    if endpoint_id is not None:
        endpoint = await session.scalar(
            select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
        )
        if endpoint is None:
            raise invalid_reference("endpoint_id", endpoint_id, "a webhook endpoint")
        if not endpoint.active:
            raise Conflict(
                "The webhook endpoint is inactive; activate it first",
                code="webhook_endpoint_inactive",
            )
        if not receives(endpoint, event):
            raise Conflict(
                f"The webhook endpoint does not receive {event.event_type} events"
                + (" of this partner" if endpoint.partner_id is not None else ""),
                code="webhook_endpoint_not_subscribed",
            )
        targets = [endpoint]
    else:
        targets = [e for e in await session.scalars(active_endpoints()) if receives(e, event)]
    if not targets:
        raise Conflict("No active webhook endpoint receives this event", code="no_webhook_endpoint")
    now = utcnow()
    stmt = (
        insert(WebhookDelivery)
        .values(
            [
                {
                    "organization_id": tenant_id(session),
                    "id": new_id(),
                    "endpoint_id": target.id,
                    "event_id": event.id,
                    "resource_id": event.resource_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for target in targets
            ]
        )
        .on_conflict_do_update(
            index_elements=["organization_id", "endpoint_id", "event_id"],
            set_={
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "delivered_at": None,
                "updated_at": now,
            },
        )
        .returning(WebhookDelivery.id)
    )
    ids = list(await session.scalars(stmt))
    rows = await session.execute(
        _with_event_type()
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        .execution_options(populate_existing=True)
    )
    return await _views(session, [(d, t) for d, t in rows.all()])
