from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from app.core.schemas import PatchSchema, Resource, Schema, VersionedResource

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*\.([a-z][a-z0-9_]*|\*)$"
EventType = Annotated[
    str,
    Field(
        max_length=100,
        pattern=EVENT_TYPE_PATTERN,
        description="An event type (`quote.approved`) or every type of a resource (`quote.*`)",
    ),
]
DeliveryStatus = Literal["pending", "delivered", "failed"]

_URL_FIELD = Field(
    min_length=1,
    max_length=2000,
    description="Where events are POSTed (http or https)",
    examples=["https://example.com/hooks/dealbase"],
)
_EVENT_TYPES_DESCRIPTION = (
    "The event types to receive; empty means every type. `resource.*` matches every "
    "type of a resource."
)


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http or https URL")
    return value


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class WebhookEndpointCreate(Schema):
    url: str = _URL_FIELD
    description: str | None = Field(default=None, max_length=300, examples=["ERP sync"])
    event_types: list[EventType] = Field(
        default_factory=list,
        max_length=100,
        description=_EVENT_TYPES_DESCRIPTION,
        examples=[["quote.approved", "opportunity.*"]],
    )
    active: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return _dedupe(value)


class WebhookEndpointUpdate(PatchSchema):
    nullable = frozenset({"description"})

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    description: str | None = Field(default=None, max_length=300)
    event_types: list[EventType] | None = Field(
        default=None, max_length=100, description=_EVENT_TYPES_DESCRIPTION
    )
    active: bool | None = Field(
        default=None, description="Inactive endpoints receive nothing; pending deliveries wait"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _dedupe(value)


class WebhookEndpointOut(VersionedResource):
    url: str
    description: str | None
    event_types: list[str] = Field(description="Empty: every event type")
    active: bool
    partner_id: uuid.UUID | None = Field(
        description="Set for a partner's endpoint: it receives only that partner's events"
    )


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(
        description="The signing secret (`whsec_…`, Standard Webhooks). Shown only in this "
        "response: store it to verify the `webhook-signature` header.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookAttemptOut(Schema):
    id: uuid.UUID
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null if none")
    latency_ms: int | None
    error: str | None = Field(description="Why the attempt failed (timeout, refused, HTTP 500)")


class WebhookDeliveryOut(Resource):
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str | None
    resource_id: uuid.UUID | None
    status: DeliveryStatus = Field(
        description="`pending` (retried with backoff), `delivered` (2xx) or `failed` "
        "(given up after about a day)"
    )
    failed_attempts: int = Field(
        description="Failed attempts since it was queued or redelivered; drives the backoff"
    )
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt")
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    attempts: list[WebhookAttemptOut] = Field(description="Every attempt, newest first")


class EventOut(Schema):
    id: uuid.UUID = Field(description="Also the `webhook-id` of its deliveries")
    type: str = Field(examples=["quote.approved"])
    resource_type: str
    resource_id: uuid.UUID | None
    occurred_at: datetime
    data: dict[str, Any]
    actor_user_id: uuid.UUID | None
    partner_id: uuid.UUID | None = Field(description="Set when the event concerns a partner")
    request_id: str | None
    dispatched_at: datetime | None = Field(description="When it was queued for the endpoints")


class RedeliverIn(Schema):
    endpoint_id: uuid.UUID | None = Field(
        default=None,
        description="Only to this endpoint; default: every active endpoint that receives the event",
    )


class RedeliveryOut(Schema):
    event_id: uuid.UUID
    deliveries: list[WebhookDeliveryOut]
