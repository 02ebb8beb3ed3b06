from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.core.auth import Principal
from app.core.deps import ADMIN, IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.errors import Forbidden
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, UtcDatetime, errors
from app.models import OutboxEvent, WebhookEndpoint
from app.webhooks import service
from app.webhooks.schemas import (
    DeliveryStatus,
    EventOut,
    RedeliverIn,
    RedeliveryOut,
    WebhookDeliveryOut,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
)

router = APIRouter(tags=["webhooks"], route_class=DealbaseRoute, responses=COMMON_ERRORS)


def partner_only(scope: str) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A partner key (only): the operations under /v1/partner/webhook-endpoints."""
    principal_with = require(scope, partners=True)

    async def dependency(request: Request) -> Principal:
        principal = await principal_with(request)
        if principal.partner_id is None:
            raise Forbidden(
                "Only partner keys use /v1/partner/webhook-endpoints; "
                "organization keys use /v1/webhook-endpoints",
                code="partner_key_required",
            )
        return principal

    dependency.partner_access = True  # type: ignore[attr-defined]
    return dependency


Reader = Annotated[Principal, Depends(require("webhooks:read"))]
Admin = Annotated[Principal, Depends(require("webhooks:write", roles=ADMIN))]
EventReader = Annotated[Principal, Depends(require("events:read"))]
PartnerReader = Annotated[Principal, Depends(partner_only("webhooks:read"))]
PartnerWriter = Annotated[Principal, Depends(partner_only("webhooks:write"))]

SIGNATURE_DOC = (
    "Each event is POSTed as JSON `{id, type, timestamp, organization_id, resource_type, "
    "resource_id, data}` with the Standard Webhooks headers `webhook-id` (the event id, the "
    "same on every retry: deduplicate on it), `webhook-timestamp` (Unix seconds) and "
    "`webhook-signature` (`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}."
    "{body}` keyed with the base64-decoded part of the secret after `whsec_`). Any 2xx "
    "within 10 s acknowledges it; otherwise it is retried with exponential backoff and "
    "jitter (10 s, 20 s, … at most 1 h apart) for about 24 hours. Delivery is at-least-once "
    "and in order per resource."
)


def _endpoint_out(endpoint: WebhookEndpoint, response: Response) -> WebhookEndpointOut:
    set_etag(response, endpoint.version)
    return WebhookEndpointOut.model_validate(endpoint)


def _created(endpoint: WebhookEndpoint, response: Response, path: str) -> WebhookEndpointCreated:
    set_etag(response, endpoint.version)
    response.headers["Location"] = f"{path}/{endpoint.id}"
    return WebhookEndpointCreated.model_validate(
        {**WebhookEndpointOut.model_validate(endpoint).model_dump(), "secret": endpoint.secret}
    )


def _deliveries(views: list[service.DeliveryView]) -> list[WebhookDeliveryOut]:
    return [WebhookDeliveryOut.model_validate(v.as_dict()) for v in views]


def _event_out(event: OutboxEvent) -> EventOut:
    return EventOut(
        id=event.id,
        type=event.event_type,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        occurred_at=event.occurred_at,
        data=event.payload,
        actor_user_id=event.actor_user_id,
        partner_id=event.partner_id,
        request_id=event.request_id,
        dispatched_at=event.dispatched_at,
    )


# -- the organization's endpoints ---------------------------------------------------------


@router.get(
    "/webhook-endpoints",
    operation_id="webhooks-list-endpoints",
    summary="Webhook endpoints (the organization's and its partners')",
)
async def list_endpoints(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("created_at, url", "-created_at")] = None,
    active: bool | None = None,
    partner_id: Annotated[
        uuid.UUID | None, Query(description="Only this partner's endpoints")
    ] = None,
) -> ListEnvelope[WebhookEndpointOut]:
    rows, next_cursor = await service.list_endpoints(
        session,
        partner_id=partner_id,
        active=active,
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(
        data=[WebhookEndpointOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/webhook-endpoints",
    operation_id="webhooks-create-endpoint",
    summary="Register a webhook endpoint (admins); the signing secret is shown once",
    description=SIGNATURE_DOC,
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def create_endpoint(
    body: WebhookEndpointCreate, _: Admin, session: SessionDep, response: Response
) -> WebhookEndpointCreated:
    endpoint = await service.create_endpoint(session, body, partner_id=None)
    return _created(endpoint, response, "/v1/webhook-endpoints")


@router.get(
    "/webhook-endpoints/{endpoint_id}",
    operation_id="webhooks-get-endpoint",
    summary="Get a webhook endpoint (never its secret)",
    responses=errors(404),
)
async def get_endpoint(
    endpoint_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> WebhookEndpointOut:
    endpoint = await service.get_endpoint(session, endpoint_id, partner_id=None)
    return _endpoint_out(endpoint, response)


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    operation_id="webhooks-update-endpoint",
    summary="Change a webhook endpoint: URL, event types, active (admins)",
    responses=errors(404, 412, 422),
)
async def update_endpoint(
    endpoint_id: uuid.UUID,
    body: WebhookEndpointUpdate,
    _: Admin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> WebhookEndpointOut:
    endpoint = await service.update_endpoint(session, endpoint_id, body, expected, partner_id=None)
    return _endpoint_out(endpoint, response)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    operation_id="webhooks-delete-endpoint",
    summary="Delete a webhook endpoint and its delivery log (admins)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_endpoint(
    endpoint_id: uuid.UUID, _: Admin, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_endpoint(session, endpoint_id, expected, partner_id=None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries",
    operation_id="webhooks-list-deliveries",
    summary="An endpoint's deliveries with every attempt (status code, latency, error)",
    responses=errors(404),
)
async def list_deliveries(
    endpoint_id: uuid.UUID,
    _: Reader,
    session: SessionDep,
    page: PageDep,
    status: DeliveryStatus | None = None,
    event_id: uuid.UUID | None = None,
) -> ListEnvelope[WebhookDeliveryOut]:
    views, next_cursor = await service.list_deliveries(
        session,
        endpoint_id,
        partner_id=None,
        status=status,
        event_id=event_id,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(data=_deliveries(views), next_cursor=next_cursor)


# -- the event log ------------------------------------------------------------------------


@router.get(
    "/events",
    operation_id="webhooks-list-events",
    summary="The event log: every event of the organization, newest first",
)
async def list_events(
    _: EventReader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("occurred_at", "-occurred_at")] = None,
    event_type: Annotated[str | None, Query(examples=["quote.approved"])] = None,
    resource_type: Annotated[str | None, Query(examples=["quote"])] = None,
    resource_id: uuid.UUID | None = None,
    since: Annotated[
        UtcDatetime | None, Query(description="Events that occurred at or after this")
    ] = None,
) -> ListEnvelope[EventOut]:
    rows, next_cursor = await service.list_events(
        session,
        service.EventFilters(event_type, resource_type, resource_id, since),
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(data=[_event_out(e) for e in rows], next_cursor=next_cursor)


@router.get(
    "/events/{event_id}",
    operation_id="webhooks-get-event",
    summary="Get an event",
    responses=errors(404),
)
async def get_event(event_id: uuid.UUID, _: EventReader, session: SessionDep) -> EventOut:
    return _event_out(await service.get_event(session, event_id))


@router.post(
    "/events/{event_id}/redeliver",
    operation_id="webhooks-redeliver-event",
    summary="Deliver an event again (admins)",
    description="Queues the event again to one endpoint (`endpoint_id`) or to every active "
    "endpoint that receives it: an existing delivery is reset (pending, due now, backoff "
    "restarted, its attempts kept), a missing one is created. The dispatcher sends it "
    "within seconds; the receiver gets the same `webhook-id` as before.",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(404, 409, 422),
)
async def redeliver(
    event_id: uuid.UUID, _: Admin, session: SessionDep, body: RedeliverIn | None = None
) -> RedeliveryOut:
    views = await service.redeliver(session, event_id, body.endpoint_id if body else None)
    return RedeliveryOut(event_id=event_id, deliveries=_deliveries(views))


# -- a partner's own endpoints ------------------------------------------------------------


@router.get(
    "/partner/webhook-endpoints",
    operation_id="webhooks-partner-list-endpoints",
    summary="Your webhook endpoints (partner keys)",
)
async def partner_list_endpoints(
    principal: PartnerReader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("created_at, url", "-created_at")] = None,
    active: bool | None = None,
) -> ListEnvelope[WebhookEndpointOut]:
    rows, next_cursor = await service.list_endpoints(
        session,
        partner_id=principal.partner_id,
        active=active,
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(
        data=[WebhookEndpointOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/partner/webhook-endpoints",
    operation_id="webhooks-partner-create-endpoint",
    summary="Register a webhook endpoint for your registrations and deals (partner keys)",
    description="The endpoint receives only events about your own deal registrations and "
    "deals (`deal_registration.submitted|approved|rejected|…`). " + SIGNATURE_DOC,
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def partner_create_endpoint(
    body: WebhookEndpointCreate, principal: PartnerWriter, session: SessionDep, response: Response
) -> WebhookEndpointCreated:
    endpoint = await service.create_endpoint(session, body, partner_id=principal.partner_id)
    return _created(endpoint, response, "/v1/partner/webhook-endpoints")


@router.get(
    "/partner/webhook-endpoints/{endpoint_id}",
    operation_id="webhooks-partner-get-endpoint",
    summary="Get one of your webhook endpoints (partner keys)",
    responses=errors(404),
)
async def partner_get_endpoint(
    endpoint_id: uuid.UUID, principal: PartnerReader, session: SessionDep, response: Response
) -> WebhookEndpointOut:
    endpoint = await service.get_endpoint(session, endpoint_id, partner_id=principal.partner_id)
    return _endpoint_out(endpoint, response)


@router.patch(
    "/partner/webhook-endpoints/{endpoint_id}",
    operation_id="webhooks-partner-update-endpoint",
    summary="Change one of your webhook endpoints (partner keys)",
    responses=errors(404, 412, 422),
)
async def partner_update_endpoint(
    endpoint_id: uuid.UUID,
    body: WebhookEndpointUpdate,
    principal: PartnerWriter,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> WebhookEndpointOut:
    endpoint = await service.update_endpoint(
        session, endpoint_id, body, expected, partner_id=principal.partner_id
    )
    return _endpoint_out(endpoint, response)


@router.delete(
    "/partner/webhook-endpoints/{endpoint_id}",
    operation_id="webhooks-partner-delete-endpoint",
    summary="Delete one of your webhook endpoints (partner keys)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def partner_delete_endpoint(
    endpoint_id: uuid.UUID, principal: PartnerWriter, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_endpoint(session, endpoint_id, expected, partner_id=principal.partner_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/partner/webhook-endpoints/{endpoint_id}/deliveries",
    operation_id="webhooks-partner-list-deliveries",
    summary="Deliveries to one of your endpoints, with every attempt (partner keys)",
    responses=errors(404),
)
async def partner_list_deliveries(
    endpoint_id: uuid.UUID,
    principal: PartnerReader,
    session: SessionDep,
    page: PageDep,
    status: DeliveryStatus | None = None,
    event_id: uuid.UUID | None = None,
) -> ListEnvelope[WebhookDeliveryOut]:
    views, next_cursor = await service.list_deliveries(
        session,
        endpoint_id,
        partner_id=principal.partner_id,
        status=status,
        event_id=event_id,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(data=_deliveries(views), next_cursor=next_cursor)
