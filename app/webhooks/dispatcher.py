"""The webhook dispatcher: outbox events → deliveries → signed HTTP POSTs.

It runs inside ``serve`` (``run_dispatcher``, every ``DEALBASE_WEBHOOK_INTERVAL_SECONDS``)
and as ``dealbase jobs run webhooks`` (``dispatch_all``). Any number of dispatchers may
run at once, in any number of processes. Each pass has two steps, each working on all
tenants through a system session that names the organization in every join and update:

1. **Fan-out.** Undispatched outbox events are taken in batches ``FOR UPDATE SKIP
   LOCKED``; every active endpoint of the event's organization that receives it (its event
   types; a partner's endpoint only that partner's events) gets one pending delivery
   (``ON CONFLICT DO NOTHING`` on (organization, endpoint, event)), and the event is marked
   ``dispatched_at`` in the same transaction: an event is fanned out exactly once.

2. **Send.** Due pending deliveries are *claimed* in a short transaction ``FOR UPDATE SKIP
   LOCKED``: the claim moves ``next_attempt_at`` to a lease (now + twice the attempt's
   deadline, ``DEALBASE_WEBHOOK_TIMEOUT_SECONDS``) and commits,
   so no other dispatcher sees them as due. The HTTP calls then run **outside any
   transaction** (no row lock or connection is held while a receiver is slow), and a
   second short transaction records one attempt per call and settles the delivery —
   only if it still carries this dispatcher's lease (a manual redelivery meanwhile wins).
   A dispatcher that dies mid-call leaves its lease to expire, and the delivery is sent
   again (at-least-once; receivers deduplicate on ``webhook-id``, the event id).

Ordering per resource: a delivery is not due while the same endpoint has an older pending
delivery of the same resource, or an older event of that resource is not fanned out yet
(event ids are time-ordered). So a later event of a resource waits behind an earlier one
that keeps failing, until that one is delivered or given up.

Retries: after a failure (non-2xx, timeout, refused connection) the next attempt is due
after ``min(5 s × 2^failures, 1 h)`` with ±20 % jitter; after ``MAX_ATTEMPTS`` failures
(about 24 hours of retrying) the delivery is ``failed``. Redelivery through the API
queues it again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, exists, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from app.core.ids import new_id, utcnow
from app.core.tenancy import UNSCOPED, mark_system
from app.models import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.service import SECRET_PREFIX, active_endpoints, receives

log = logging.getLogger("dealbase.webhooks")

FAN_OUT_BATCH = 200
SEND_BATCH = 50
# Rows per INSERT of deliveries (asyncpg allows 32767 parameters per statement).
INSERT_CHUNK = 1000
TIMEOUT_SECONDS = 10.0
# httpx's timeout bounds each phase (connect, write, each read); this bounds the whole call
# (the default of ``DEALBASE_WEBHOOK_TIMEOUT_SECONDS``).
DEADLINE_SECONDS = 30.0


def lease_for(deadline: float) -> timedelta:
    """How long a claimed delivery is not due again: well above the call's deadline, so
    only a dispatcher that died mid-call (or a stalled one) lets its lease run out."""
    return timedelta(seconds=2 * deadline)


LEASE = lease_for(DEADLINE_SECONDS)
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 3600.0
JITTER = (0.8, 1.2)
RETRY_WINDOW = timedelta(hours=24)
USER_AGENT = "dealbase-webhooks/1"


def backoff_seconds(failures: int) -> float:
    """The nominal wait after the ``failures``-th consecutive failure (before jitter)."""
    return min(BACKOFF_BASE_SECONDS * 2.0 ** min(failures, 30), BACKOFF_CAP_SECONDS)


def _max_attempts() -> int:
    """Failures after which a delivery is given up: the first at which the waits so far
    add up to the retry window (32: the last attempt is about 23.5 hours after the first)."""
    failures, waited = 0, 0.0
    while waited < RETRY_WINDOW.total_seconds():
        failures += 1
        waited += backoff_seconds(failures)
    return failures


MAX_ATTEMPTS = _max_attempts()


def retry_delay(failures: int, rng: random.Random | None = None) -> timedelta:
    jitter = (rng or random).uniform(*JITTER)
    return timedelta(seconds=backoff_seconds(failures) * jitter)


# -- signing ------------------------------------------------------------------------------


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature header value: ``v1,`` + base64 HMAC-SHA256 of
    ``{msg_id}.{timestamp}.{body}`` keyed with the base64-decoded secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_body(event: OutboxEvent) -> bytes:
    """The JSON body POSTed for an event (the same for every endpoint and attempt)."""
    document = {
        "id": str(event.id),
        "type": event.event_type,
        "timestamp": _rfc3339(event.occurred_at),
        "organization_id": str(event.organization_id),
        "resource_type": event.resource_type,
        "resource_id": str(event.resource_id) if event.resource_id else None,
        "data": event.payload,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(secret: str, msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


# -- 1. fan-out ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FanOutResult:
    events: int = 0
    deliveries: int = 0


async def fan_out(
    sessionmaker: async_sessionmaker[AsyncSession], *, batch_size: int = FAN_OUT_BATCH
) -> FanOutResult:
    """Fan one batch of undispatched events out to the endpoints that receive them."""
    async with sessionmaker() as session, session.begin():
        mark_system(session)
        events = list(
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.dispatched_at.is_(None))
                .order_by(OutboxEvent.occurred_at, OutboxEvent.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
                .execution_options(**UNSCOPED)
            )
        )
        if not events:
            return FanOutResult()
        organizations = {e.organization_id for e in events}
        endpoints: dict[uuid.UUID, list[WebhookEndpoint]] = defaultdict(list)
        for endpoint in await session.scalars(
            active_endpoints()
            .where(WebhookEndpoint.organization_id.in_(organizations))
            .execution_options(**UNSCOPED)
        ):
            endpoints[endpoint.organization_id].append(endpoint)
        now = utcnow()
        rows = [
            {
                "organization_id": event.organization_id,
                "id": new_id(),
                "endpoint_id": endpoint.id,
                "event_id": event.id,
                "resource_id": event.resource_id,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for event in events
            for endpoint in endpoints[event.organization_id]
            if receives(endpoint, event)
        ]
        created = 0
        for start in range(0, len(rows), INSERT_CHUNK):
            inserted = await session.scalars(
                insert(WebhookDelivery)
                .values(rows[start : start + INSERT_CHUNK])
                .on_conflict_do_nothing(
                    index_elements=["organization_id", "endpoint_id", "event_id"]
                )
                .returning(WebhookDelivery.id)
            )
            created += len(list(inserted))
        await session.execute(
            update(OutboxEvent)
            .where(
                tuple_(OutboxEvent.organization_id, OutboxEvent.id).in_(
                    [(e.organization_id, e.id) for e in events]
                )
            )
            .values(dispatched_at=now)
            .execution_options(synchronize_session=False, **UNSCOPED)
        )
        return FanOutResult(len(events), created)


# -- 2. send ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    organization_id: uuid.UUID
    delivery_id: uuid.UUID
    lease_until: datetime
    url: str
    secret: str
    msg_id: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class SendResult:
    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def _due(now: datetime) -> Any:
    """Pending deliveries due at ``now`` that no older event of their resource holds up."""
    older = aliased(WebhookDelivery)
    earlier_event = aliased(OutboxEvent)
    waits_for_delivery = exists(
        select(literal(1)).where(
            older.organization_id == WebhookDelivery.organization_id,
            older.endpoint_id == WebhookDelivery.endpoint_id,
            older.resource_id == WebhookDelivery.resource_id,
            older.status == "pending",
            older.event_id < WebhookDelivery.event_id,
        )
    )
    waits_for_fan_out = exists(
        select(literal(1)).where(
            earlier_event.organization_id == WebhookDelivery.organization_id,
            earlier_event.resource_id == WebhookDelivery.resource_id,
            earlier_event.dispatched_at.is_(None),
            earlier_event.id < WebhookDelivery.event_id,
        )
    )
    return and_(
        WebhookDelivery.status == "pending",
        WebhookDelivery.next_attempt_at <= now,
        ~waits_for_delivery,
        ~waits_for_fan_out,
    )


async def claim_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    now: datetime | None = None,
    batch_size: int = SEND_BATCH,
    lease: timedelta = LEASE,
) -> list[Claim]:
    """Lease a batch of due deliveries to this dispatcher (a short transaction)."""
    now = now or utcnow()
    lease_until = now + lease
    async with sessionmaker() as session, session.begin():
        mark_system(session)
        rows = (
            await session.execute(
                select(WebhookDelivery, WebhookEndpoint, OutboxEvent)
                .join(
                    WebhookEndpoint,
                    and_(
                        WebhookEndpoint.organization_id == WebhookDelivery.organization_id,
                        WebhookEndpoint.id == WebhookDelivery.endpoint_id,
                    ),
                )
                .join(
                    OutboxEvent,
                    and_(
                        OutboxEvent.organization_id == WebhookDelivery.organization_id,
                        OutboxEvent.id == WebhookDelivery.event_id,
                    ),
                )
                .where(_due(now), WebhookEndpoint.active)
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_id)
                .limit(batch_size)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
                .execution_options(**UNSCOPED)
            )
        ).all()
        claims = [
            Claim(
                organization_id=delivery.organization_id,
                delivery_id=delivery.id,
                lease_until=lease_until,
                url=endpoint.url,
                secret=endpoint.secret,
                msg_id=str(event.id),
                body=event_body(event),
            )
            for delivery, endpoint, event in rows
        ]
        if claims:
            await session.execute(
                update(WebhookDelivery)
                .where(
                    tuple_(WebhookDelivery.organization_id, WebhookDelivery.id).in_(
                        [(c.organization_id, c.delivery_id) for c in claims]
                    )
                )
                .values(next_attempt_at=lease_until)
                .execution_options(synchronize_session=False, **UNSCOPED)
            )
    return claims


async def post(
    client: httpx.AsyncClient, claim: Claim, *, deadline: float = DEADLINE_SECONDS
) -> Outcome:
    """One signed POST; never raises (every failure becomes the outcome's error)."""
    attempted_at = utcnow()
    headers = signed_headers(claim.secret, claim.msg_id, claim.body, int(time.time()))
    started = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(deadline):
            # Streamed and closed unread: a receiver's response body is never downloaded.
            async with client.stream(
                "POST", claim.url, content=claim.body, headers=headers
            ) as response:
                status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except httpx.TimeoutException as exc:
        error = f"timeout ({type(exc).__name__})"
    except TimeoutError:
        error = f"timeout (no response within {deadline:g} s)"
    except Exception as exc:  # refused, DNS, TLS, invalid URL: a failed attempt
        error = f"{type(exc).__name__}: {exc}"[:500]
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Outcome(attempted_at, status_code, latency_ms, error)


async def settle(
    sessionmaker: async_sessionmaker[AsyncSession],
    results: Sequence[tuple[Claim, Outcome]],
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> SendResult:
    """Record the attempts and settle the deliveries still under these leases."""
    now = now or utcnow()
    delivered = retrying = failed = 0
    async with sessionmaker() as session, session.begin():
        mark_system(session)
        locked = {
            (d.organization_id, d.id): d
            for d in await session.scalars(
                select(WebhookDelivery)
                .where(
                    tuple_(WebhookDelivery.organization_id, WebhookDelivery.id).in_(
                        [(c.organization_id, c.delivery_id) for c, _ in results]
                    )
                )
                .order_by(WebhookDelivery.organization_id, WebhookDelivery.id)
                .with_for_update()
                .execution_options(**UNSCOPED)
            )
        }
        for claim, outcome in results:
            delivery = locked.get((claim.organization_id, claim.delivery_id))
            if delivery is None:
                continue  # its endpoint was deleted meanwhile
            session.add(
                WebhookAttempt(
                    organization_id=claim.organization_id,
                    id=new_id(),
                    delivery_id=claim.delivery_id,
                    attempted_at=outcome.attempted_at,
                    status_code=outcome.status_code,
                    latency_ms=outcome.latency_ms,
                    error=outcome.error,
                )
            )
            if delivery.status != "pending" or delivery.next_attempt_at != claim.lease_until:
                continue  # redelivered (or re-leased after expiry) meanwhile: not ours
            delivery.last_status_code = outcome.status_code
            delivery.last_error = outcome.error
            if outcome.ok:
                delivery.status = "delivered"
                delivery.delivered_at = now
                delivered += 1
                continue
            delivery.attempts += 1
            if delivery.attempts >= MAX_ATTEMPTS:
                delivery.status = "failed"
                failed += 1
            else:
                delivery.next_attempt_at = now + retry_delay(delivery.attempts, rng)
                retrying += 1
        await session.flush()
    return SendResult(len(results), delivered, retrying, failed)


async def send_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    *,
    now: datetime | None = None,
    batch_size: int = SEND_BATCH,
    rng: random.Random | None = None,
    deadline: float = DEADLINE_SECONDS,
) -> SendResult:
    """Claim a batch of due deliveries, POST them concurrently, settle them."""
    claims = await claim_due(
        sessionmaker, now=now, batch_size=batch_size, lease=lease_for(deadline)
    )
    if not claims:
        return SendResult()
    outcomes = await asyncio.gather(*(post(client, claim, deadline=deadline) for claim in claims))
    return await settle(sessionmaker, list(zip(claims, outcomes, strict=True)), now=now, rng=rng)


# -- passes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DispatchResult:
    events: int = 0
    deliveries_created: int = 0
    sent: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def __add__(self, other: DispatchResult) -> DispatchResult:
        mine, theirs = asdict(self), asdict(other)
        return DispatchResult(**{name: mine[name] + theirs[name] for name in mine})


async def dispatch_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    *,
    deadline: float = DEADLINE_SECONDS,
) -> tuple[DispatchResult, bool]:
    """Fan out every undispatched event, then send one batch. Also says whether more
    deliveries may be due right away (the batch was full)."""
    events = created = 0
    while True:
        fanned = await fan_out(sessionmaker)
        events, created = events + fanned.events, created + fanned.deliveries
        if fanned.events < FAN_OUT_BATCH:
            break
    sent = await send_due(sessionmaker, client, deadline=deadline)
    result = DispatchResult(
        events, created, sent.claimed, sent.delivered, sent.retrying, sent.failed
    )
    return result, sent.claimed >= SEND_BATCH


def new_client(timeout: float = TIMEOUT_SECONDS) -> httpx.AsyncClient:
    # Redirects are not followed: a 3xx is a failed attempt, like any non-2xx.
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), follow_redirects=False)


async def dispatch_all(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    http_timeout: float = TIMEOUT_SECONDS,
    deadline: float = DEADLINE_SECONDS,
) -> DispatchResult:
    """Everything due now, once (``dealbase jobs run webhooks``)."""
    total = DispatchResult()
    async with new_client(min(http_timeout, deadline)) as client:
        while True:
            result, more = await dispatch_once(sessionmaker, client, deadline=deadline)
            total += result
            if not more:
                return total


async def run_dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession],
    interval: float,
    *,
    http_timeout: float = TIMEOUT_SECONDS,
    deadline: float = DEADLINE_SECONDS,
) -> None:
    """Dispatch every ``interval`` seconds (at once while there is a backlog); never
    raises: a failed pass is logged and the next one tries again. ``deadline`` bounds each
    delivery attempt (and sets the lease, see ``lease_for``)."""
    while True:
        try:
            async with new_client(min(http_timeout, deadline)) as client:
                while True:
                    more = False
                    try:
                        result, more = await dispatch_once(sessionmaker, client, deadline=deadline)
                        if result.events or result.sent:
                            log.info("webhooks dispatched", extra=asdict(result))
                    except Exception:
                        log.exception("webhook dispatch failed")
                    if not more:
                        await asyncio.sleep(interval)
        except Exception:  # the client itself failed: start over with a new one
            log.exception("webhook dispatcher restarting")
            await asyncio.sleep(interval)
