"""Delivery to a live receiver: signatures, filtering, partners, retries, ordering,
concurrent dispatchers."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.core.config import Settings
from app.core.ids import new_id, utcnow
from app.main import create_app
from app.models import OutboxEvent, WebhookAttempt
from app.webhooks import dispatcher
from app.webhooks.dispatcher import (
    MAX_ATTEMPTS,
    backoff_seconds,
    dispatch_all,
    fan_out,
    retry_delay,
    run_dispatcher,
    send_due,
)
from tests.factories import Tenant, create_account
from tests.webhooks.helpers import (
    Receiver,
    deliveries,
    dispatch,
    emit,
    fan_out_all,
    free_port,
    make_due,
    new_endpoint,
    new_partner,
)


async def test_a_delivery_is_signed_per_standard_webhooks(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    endpoint = await new_endpoint(client, tenant.headers, f"{receiver.url}/hooks")
    event_id = await emit(app, tenant, "quote.approved", data={"quote_id": "q1", "n": 1})

    result = await dispatch(app, http)

    assert (result.claimed, result.delivered) == (1, 1)
    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == event_id
    assert request.headers["webhook-signature"].startswith("v1,")
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["id"] == event_id
    assert payload["type"] == "quote.approved"
    assert payload["resource_type"] == "quote"
    assert payload["organization_id"] == str(tenant.organization_id)
    assert payload["data"] == {"quote_id": "q1", "n": 1}
    assert payload["timestamp"].endswith("Z")
    # Another secret, or a tampered body, does not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(request.body.replace(b"q1", b"q2"), request.headers)

    [delivery] = await deliveries(client, tenant.headers, endpoint["id"])
    assert delivery["status"] == "delivered" and delivery["event_type"] == "quote.approved"
    assert delivery["next_attempt_at"] is None and delivery["delivered_at"] is not None
    [attempt] = delivery["attempts"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert isinstance(attempt["latency_ms"], int) and attempt["latency_ms"] >= 0
    # The event is dispatched once: another pass sends nothing.
    assert (await dispatch(app, http)).claimed == 0
    assert len(receiver.requests) == 1


async def test_events_from_api_writes_are_delivered(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    endpoint = await new_endpoint(
        client, tenant.headers, receiver.url, event_types=["account.created"]
    )
    account = await create_account(client, tenant.headers, name="Anadolu Tekstil")
    await dispatch(app, http)
    [request] = receiver.requests
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "account.created"
    assert payload["resource_id"] == account["id"]


async def test_endpoints_receive_only_the_event_types_they_subscribe_to(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    await new_endpoint(client, tenant.headers, f"{receiver.url}/a", event_types=["quote.approved"])
    await new_endpoint(client, tenant.headers, f"{receiver.url}/b", event_types=["opportunity.*"])
    await new_endpoint(client, tenant.headers, f"{receiver.url}/all")
    await new_endpoint(client, tenant.headers, f"{receiver.url}/off", active=False)
    quote = await emit(app, tenant, "quote.approved")
    won = await emit(app, tenant, "opportunity.won")
    lead = await emit(app, tenant, "lead.created")
    rejected = await emit(app, tenant, "quote.rejected")

    await dispatch(app, http)

    assert receiver.ids("/a") == [quote]
    assert receiver.ids("/b") == [won]
    assert sorted(receiver.ids("/all")) == sorted([quote, won, lead, rejected])
    assert receiver.ids("/off") == []


async def test_partner_endpoints_receive_only_their_partners_events(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    first, first_headers = await new_partner(app, tenant, "Ege Bilişim")
    second, second_headers = await new_partner(app, tenant, "Marmara Yazılım")
    for headers, path in ((first_headers, "/first"), (second_headers, "/second")):
        response = await client.post(
            "/v1/partner/webhook-endpoints",
            json={"url": f"{receiver.url}{path}"},
            headers=headers,
        )
        assert response.status_code == 201, response.text
    await new_endpoint(client, tenant.headers, f"{receiver.url}/org")
    mine = await emit(app, tenant, "deal_registration.approved", partner_id=first)
    theirs = await emit(app, tenant, "deal_registration.rejected", partner_id=second)
    # emit() takes the partner from the data too, as the services write it.
    via_data = await emit(app, tenant, "opportunity.won", data={"partner_id": first})
    internal = await emit(app, tenant, "opportunity.updated")

    await dispatch(app, http)

    assert sorted(receiver.ids("/first")) == sorted([mine, via_data])
    assert receiver.ids("/second") == [theirs]
    assert sorted(receiver.ids("/org")) == sorted([mine, theirs, via_data, internal])


async def test_a_failed_attempt_is_retried_with_backoff(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    endpoint = await new_endpoint(client, tenant.headers, receiver.url)
    event_id = await emit(app, tenant)
    receiver.answer(500)

    before = utcnow()
    first = await dispatch(app, http)
    assert (first.claimed, first.delivered, first.retrying) == (1, 0, 1)
    [delivery] = await deliveries(client, tenant.headers, endpoint["id"])
    assert delivery["status"] == "pending" and delivery["failed_attempts"] == 1
    assert delivery["last_status_code"] == 500 and delivery["last_error"] == "HTTP 500"
    wait = _seconds_until(delivery["next_attempt_at"], before)
    assert 0.8 * backoff_seconds(1) - 1 <= wait <= 1.2 * backoff_seconds(1) + 1
    # Not due yet: nothing is sent before the backoff is over.
    assert (await dispatch(app, http)).claimed == 0

    await make_due(app)
    second = await dispatch(app, http)
    assert (second.claimed, second.delivered) == (1, 1)

    assert receiver.ids() == [event_id, event_id]  # the same webhook-id on every attempt
    [delivery] = await deliveries(client, tenant.headers, endpoint["id"])
    assert delivery["status"] == "delivered" and delivery["last_status_code"] == 200
    assert [a["status_code"] for a in delivery["attempts"]] == [200, 500]  # newest first
    assert [a["error"] for a in delivery["attempts"]] == [None, "HTTP 500"]
    assert all(isinstance(a["latency_ms"], int) for a in delivery["attempts"])
    for request in receiver.requests:
        Webhook(_secret_of(endpoint)).verify(request.body, request.headers)


async def test_a_receiver_that_is_down_gets_the_event_once_it_is_up(
    app: FastAPI, client: AsyncClient, tenant: Tenant, http: httpx.AsyncClient
) -> None:
    port = free_port()
    endpoint = await new_endpoint(client, tenant.headers, f"http://127.0.0.1:{port}/in")
    event_id = await emit(app, tenant)

    down = await dispatch(app, http)
    assert (down.claimed, down.retrying) == (1, 1)
    [delivery] = await deliveries(client, tenant.headers, endpoint["id"])
    assert delivery["status"] == "pending" and delivery["failed_attempts"] == 1
    assert delivery["last_status_code"] is None
    assert "ConnectError" in delivery["last_error"]
    assert delivery["attempts"][0]["status_code"] is None

    receiver = await Receiver().start(port)
    try:
        assert (await dispatch(app, http)).claimed == 0  # still backing off
        await make_due(app)
        up = await dispatch(app, http)
        assert up.delivered == 1
        assert receiver.ids() == [event_id]
    finally:
        await receiver.stop()
    [delivery] = await deliveries(client, tenant.headers, endpoint["id"])
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [200, None]


async def test_a_slow_receiver_times_out_and_is_retried(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver
) -> None:
    endpoint = await new_endpoint(client, tenant.headers, receiver.url)
    await emit(app, tenant)
    receiver.delay = 1.0
    async with httpx.AsyncClient(timeout=0.2) as impatient:
        result = await dispatch(app, impatient)
    assert result.retrying == 1
    [delivery] = await deliveries(client, tenant.headers, endpoint["id"])
    assert delivery["status"] == "pending"
    assert delivery["last_error"].startswith("timeout")
    assert delivery["attempts"][0]["latency_ms"] >= 150


async def test_a_later_event_of_a_resource_waits_for_an_earlier_failing_one(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    await new_endpoint(client, tenant.headers, receiver.url)
    deal, other_deal = new_id(), new_id()
    earlier = await emit(app, tenant, "opportunity.stage_changed", resource_id=deal)
    later = await emit(app, tenant, "opportunity.won", resource_id=deal)
    unrelated = await emit(app, tenant, "opportunity.updated", resource_id=other_deal)
    receiver.failing.add(earlier)

    await dispatch(app, http)
    assert sorted(receiver.ids()) == sorted([earlier, unrelated])  # `later` waits
    await make_due(app)
    await dispatch(app, http)
    assert receiver.ids()[2:] == [earlier]  # still failing: `later` still waits

    receiver.failing.clear()
    await make_due(app)
    await dispatch(app, http)
    await dispatch(app, http)
    sent = receiver.ids()
    assert sent[3:] == [earlier, later]
    assert sent.count(later) == 1


async def test_an_event_waits_for_an_older_event_of_its_resource_not_yet_fanned_out(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    await new_endpoint(client, tenant.headers, receiver.url)
    deal = new_id()
    earlier = await emit(app, tenant, "opportunity.stage_changed", resource_id=deal)
    later = await emit(app, tenant, "opportunity.won", resource_id=deal)
    # Another dispatcher is fanning out the earlier event (it holds its row lock).
    async with app.state.sessionmaker() as busy, busy.begin():
        await busy.execute(
            text("SELECT 1 FROM outbox_events WHERE id = :id FOR UPDATE"), {"id": earlier}
        )
        assert (await fan_out(app.state.sessionmaker)).events == 1  # only `later`
        assert (await send_due(app.state.sessionmaker, http)).claimed == 0
    await dispatch(app, http)
    await dispatch(app, http)
    assert receiver.ids() == [earlier, later]


async def test_parallel_dispatchers_never_send_an_attempt_twice(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    await new_endpoint(client, tenant.headers, f"{receiver.url}/one")
    await new_endpoint(client, tenant.headers, f"{receiver.url}/two")
    events = [await emit(app, tenant) for _ in range(15)]
    receiver.delay = 0.02
    # Two fan-outs at once: each event is fanned out exactly once.
    fanned = await asyncio.gather(
        fan_out(app.state.sessionmaker, batch_size=8), fan_out(app.state.sessionmaker, batch_size=8)
    )
    assert sum(f.events for f in fanned) == 15 and sum(f.deliveries for f in fanned) == 30
    assert await fan_out_all(app) == 0

    sessionmaker = app.state.sessionmaker

    async def worker(start: asyncio.Event | None) -> int:
        if start is not None:
            await start.wait()  # the first worker's batch is in flight right now
        claimed = 0
        while (result := await send_due(sessionmaker, http, batch_size=4)).claimed:
            claimed += result.claimed
        return claimed

    first, second = await asyncio.gather(worker(None), worker(receiver.received))
    assert first > 0 and second > 0 and first + second == 30
    for path in ("/one", "/two"):
        assert sorted(receiver.ids(path)) == sorted(events)  # each once, none twice
    async with sessionmaker() as session:
        attempts = await session.scalar(
            select(func.count())
            .select_from(WebhookAttempt)
            .execution_options(dealbase_unscoped=True)
        )
    assert attempts == 30


async def test_a_delivery_is_given_up_after_about_a_day(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    total = sum(backoff_seconds(n) for n in range(1, MAX_ATTEMPTS))
    assert total < 24 * 3600 <= total + backoff_seconds(MAX_ATTEMPTS)
    assert total > 20 * 3600  # the last attempt is close to a day after the first
    assert backoff_seconds(1) == 10 and backoff_seconds(40) == 3600
    rng = random.Random(1)
    delays = [retry_delay(3, rng).total_seconds() for _ in range(200)]
    assert 0.8 * 40 <= min(delays) < max(delays) <= 1.2 * 40

    endpoint = await new_endpoint(client, tenant.headers, receiver.url)
    await emit(app, tenant)
    await emit(app, tenant)
    await fan_out_all(app)
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_deliveries SET attempts = :n"), {"n": MAX_ATTEMPTS - 1}
        )
    receiver.answer(503, 503)
    result = await send_due(app.state.sessionmaker, http)
    assert (result.claimed, result.failed) == (2, 2)
    failed = await deliveries(client, tenant.headers, endpoint["id"], status="failed")
    assert len(failed) == 2 and all(d["next_attempt_at"] is None for d in failed)
    assert (await dispatch(app, http)).claimed == 0


async def test_redelivery_resets_or_creates_a_delivery(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    endpoint = await new_endpoint(client, tenant.headers, f"{receiver.url}/first")
    event_id = await emit(app, tenant, "quote.accepted")
    await dispatch(app, http)
    later = await new_endpoint(client, tenant.headers, f"{receiver.url}/later")
    leads_only = await new_endpoint(
        client, tenant.headers, f"{receiver.url}/leads", event_types=["lead.*"]
    )

    again = await client.post(f"/v1/events/{event_id}/redeliver", headers=tenant.headers)
    assert again.status_code == 202, again.text
    queued = {d["endpoint_id"]: d for d in again.json()["deliveries"]}
    assert set(queued) == {endpoint["id"], later["id"]}  # every endpoint receiving it
    assert queued[endpoint["id"]]["status"] == "pending"
    assert queued[endpoint["id"]]["failed_attempts"] == 0
    assert len(queued[endpoint["id"]]["attempts"]) == 1  # the log is kept

    await dispatch(app, http)
    assert receiver.ids("/first") == [event_id, event_id]
    assert receiver.ids("/later") == [event_id]
    [delivery] = await deliveries(client, tenant.headers, endpoint["id"])
    assert delivery["status"] == "delivered" and len(delivery["attempts"]) == 2

    one = await client.post(
        f"/v1/events/{event_id}/redeliver",
        json={"endpoint_id": later["id"]},
        headers=tenant.headers,
    )
    assert one.status_code == 202
    assert [d["endpoint_id"] for d in one.json()["deliveries"]] == [later["id"]]
    await dispatch(app, http)
    assert receiver.ids("/later") == [event_id, event_id]
    assert receiver.ids("/first") == [event_id, event_id]

    refused = await client.post(
        f"/v1/events/{event_id}/redeliver",
        json={"endpoint_id": leads_only["id"]},
        headers=tenant.headers,
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "webhook_endpoint_not_subscribed"
    unknown = await client.post(
        f"/v1/events/{event_id}/redeliver",
        json={"endpoint_id": str(new_id())},
        headers=tenant.headers,
    )
    assert unknown.status_code == 422
    missing = await client.post(f"/v1/events/{new_id()}/redeliver", headers=tenant.headers)
    assert missing.status_code == 404


async def test_redelivery_of_a_partner_event_is_refused_for_other_partners(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver
) -> None:
    partner, _ = await new_partner(app, tenant, "Trakya Bilgi")
    _, other_headers = await new_partner(app, tenant, "Karadeniz Data")
    other = await client.post(
        "/v1/partner/webhook-endpoints", json={"url": receiver.url}, headers=other_headers
    )
    event_id = await emit(app, tenant, "deal_registration.approved", partner_id=partner)
    refused = await client.post(
        f"/v1/events/{event_id}/redeliver",
        json={"endpoint_id": other.json()["id"]},
        headers=tenant.headers,
    )
    assert refused.status_code == 409
    nobody = await client.post(f"/v1/events/{event_id}/redeliver", headers=tenant.headers)
    assert nobody.status_code == 409 and nobody.json()["code"] == "no_webhook_endpoint"


async def test_events_of_other_tenants_never_reach_an_endpoint(
    app: FastAPI,
    client: AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    receiver: Receiver,
    http: httpx.AsyncClient,
) -> None:
    await new_endpoint(client, tenant.headers, f"{receiver.url}/a")
    await new_endpoint(client, other_tenant.headers, f"{receiver.url}/b")
    mine = await emit(app, tenant)
    theirs = await emit(app, other_tenant)
    await dispatch(app, http)
    assert receiver.ids("/a") == [mine]
    assert receiver.ids("/b") == [theirs]


async def test_a_deleted_endpoint_stops_receiving(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    endpoint = await new_endpoint(client, tenant.headers, receiver.url)
    await emit(app, tenant)
    receiver.answer(500)
    await dispatch(app, http)
    deleted = await client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    await emit(app, tenant)
    await make_due(app)
    assert (await dispatch(app, http)).claimed == 0
    assert len(receiver.requests) == 1


async def test_the_serve_loop_survives_failures_and_delivers(
    app: FastAPI,
    client: AsyncClient,
    tenant: Tenant,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await new_endpoint(client, tenant.headers, receiver.url)
    event_id = await emit(app, tenant)
    real = dispatcher.dispatch_once
    calls = 0

    async def flaky(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dispatcher, "dispatch_once", flaky)
    task = asyncio.create_task(run_dispatcher(app.state.sessionmaker, 0.01))
    try:
        await asyncio.wait_for(receiver.received.wait(), 10)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert calls >= 2 and receiver.ids() == [event_id]


async def test_serve_runs_the_dispatcher_in_its_lifespan(
    client: AsyncClient, tenant: Tenant, receiver: Receiver, settings: Settings
) -> None:
    served = create_app(
        settings.model_copy(update={"webhook_interval_seconds": 0.05, "jobs_interval_seconds": 0})
    )
    await new_endpoint(client, tenant.headers, receiver.url)
    event_id = await emit(served, tenant)
    async with served.router.lifespan_context(served):
        await asyncio.wait_for(receiver.received.wait(), 10)
    assert receiver.ids() == [event_id]


async def test_dispatch_all_delivers_everything_due(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver
) -> None:
    await new_endpoint(client, tenant.headers, receiver.url)
    events = [await emit(app, tenant) for _ in range(3)]
    result = await dispatch_all(app.state.sessionmaker)
    assert (result.events, result.deliveries_created, result.delivered) == (3, 3, 3)
    assert sorted(receiver.ids()) == sorted(events)
    async with app.state.sessionmaker() as session:
        undispatched = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.dispatched_at.is_(None))
            .execution_options(dealbase_unscoped=True)
        )
    assert undispatched == 0


async def test_cli_jobs_run_webhooks(
    app: FastAPI, client: AsyncClient, tenant: Tenant, receiver: Receiver, database_url: str
) -> None:
    await new_endpoint(client, tenant.headers, receiver.url)
    event_id = await emit(app, tenant)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "jobs",
        "run",
        "webhooks",
        env={**os.environ, "DATABASE_URL": database_url, "DEALBASE_LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    totals = json.loads(stdout.decode().strip().splitlines()[-1])
    assert totals["delivered"] == 1 and totals["events"] >= 1
    assert receiver.ids() == [event_id]


def _seconds_until(value: str, since: datetime) -> float:
    return (datetime.fromisoformat(value.replace("Z", "+00:00")) - since).total_seconds()


def _secret_of(endpoint: dict[str, object]) -> str:
    secret = endpoint["secret"]
    assert isinstance(secret, str)
    return secret
