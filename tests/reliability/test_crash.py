"""kill -9 of ``dealbase serve`` (master and both workers) while a bulk lead import runs and
webhook deliveries are in flight, then a restart on the same database:

- the import landed whole or not at all, and the restarted server's jobs mark the
  orphaned job ``failed`` (``fail_interrupted``: its advisory lock died with the process);
- every webhook event is delivered at least once: those in flight at the kill are sent
  again when their lease runs out (receivers deduplicate on ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.leads.imports import BATCH, INTERRUPTED
from tests.factories import Tenant
from tests.reliability.harness import Receiver, Server, connect, new_org

# Four batches: the kill lands after the first is inserted, three before the commit.
IMPORT_ROWS = 4 * BATCH
WAIT = 60.0  # bound of every wait below


@dataclass
class Crash:
    org: Tenant
    server: Server
    job_id: str
    job_at_kill: dict[str, Any]
    delivered_before: list[str]  # event ids delivered before the kill
    in_flight: list[str]  # event ids the receiver held unanswered when the server died
    pending_at_kill: dict[str, str]  # delivery status of the in-flight ones, read after the kill
    receiver: Receiver


async def _until(check: Any, what: str, limit: float = WAIT, every: float = 0.05) -> Any:
    """Poll ``check`` (a function, sync or async) until it returns something truthy."""
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")
        await asyncio.sleep(every)


async def _new_leads(
    api: httpx.AsyncClient, org: Tenant, count: int, database_url: str
) -> list[str]:
    """Create leads through the API; return the ids of their ``lead.created`` events."""
    lead_ids = []
    for n in range(count):
        response = await api.post(
            "/v1/leads",
            json={"last_name": f"Hook {n}", "email": f"hook-{uuid.uuid4().hex[:10]}@example.com"},
            headers=org.headers,
        )
        assert response.status_code == 201, response.text
        lead_ids.append(uuid.UUID(response.json()["id"]))
    conn = await connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id FROM outbox_events WHERE organization_id = $1"
            " AND event_type = 'lead.created' AND resource_id = ANY($2::uuid[])",
            org.organization_id,
            lead_ids,
        )
    finally:
        await conn.close()
    assert len(rows) == count
    return [str(r["id"]) for r in rows]


def _csv(rows: int) -> bytes:
    batch = uuid.uuid4().hex[:8]
    lines = ["first_name,last_name,email,company_name,country"]
    lines += [
        f"Ada,Import {n},imp-{batch}-{n}@example.com,Firma {n % 500} A.Ş.,TR" for n in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


async def _job(database_url: str, org: Tenant, job_id: str) -> dict[str, Any]:
    """The job as committed, and the leads it wrote that are visible (committed)."""
    conn = await connect(database_url)
    try:
        job = await conn.fetchrow(
            "SELECT status, processed_rows, total_rows,"
            " (SELECT count(*) FROM leads l WHERE l.organization_id = j.organization_id"
            "  AND l.import_job_id = j.id) AS visible_leads"
            " FROM import_jobs j WHERE organization_id = $1 AND id = $2",
            org.organization_id,
            uuid.UUID(job_id),
        )
    finally:
        await conn.close()
    assert job is not None
    return dict(job)


@pytest.fixture(scope="module")
async def crash(server: Server) -> AsyncIterator[Crash]:
    if server.process is None or server.process.poll() is not None:
        server.restart()
    url = server.database_url
    org = await new_org(url, "Crash")
    receiver = Receiver().start()
    # A new connection per request, so that one worker busy with the import (its CPU-bound
    # thread holds the GIL most of the time) does not slow every request down.
    fresh = httpx.Limits(max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=WAIT, limits=fresh) as api:
            endpoint = await api.post(
                "/v1/webhook-endpoints",
                json={"url": receiver.url, "event_types": ["lead.created"]},
                headers=org.headers,
            )
            assert endpoint.status_code == 201, endpoint.text

            # Delivered normally before anything goes wrong.
            delivered = await _new_leads(api, org, 3, url)
            await _until(lambda: all(receiver.count(e) for e in delivered), "first deliveries")

            # These reach the receiver, which does not answer: in flight at the kill.
            receiver.hold()
            in_flight = await _new_leads(api, org, 5, url)
            await _until(lambda: all(receiver.count(e) for e in in_flight), "deliveries in flight")

            # A bulk import, killed while it writes: after its first batch of leads was
            # inserted (uncommitted), long before its last.
            posted = await api.post(
                "/v1/leads/import",
                content=_csv(IMPORT_ROWS),
                headers={**org.headers, "Content-Type": "text/csv"},
            )
            assert posted.status_code == 202, posted.text
            job_id = posted.json()["id"]

            async def writing() -> bool:
                job = await _job(url, org, job_id)
                assert job["status"] in ("queued", "running"), job
                return bool(job["processed_rows"] > 0)

            await _until(writing, "the import to write its first batch", every=0.02)
            job_at_kill = await _job(url, org, job_id)

        server.kill()  # SIGKILL to the whole process group: master and both workers
        receiver.release()
        conn = await connect(url)
        try:
            rows = await conn.fetch(
                "SELECT event_id::text AS event_id, status FROM webhook_deliveries"
                " WHERE organization_id = $1",
                org.organization_id,
            )
        finally:
            await conn.close()
        pending_at_kill = {r["event_id"]: r["status"] for r in rows if r["event_id"] in in_flight}
        server.start()
        yield Crash(
            org,
            server,
            job_id,
            job_at_kill,
            delivered,
            in_flight,
            pending_at_kill,
            receiver,
        )
    finally:
        receiver.stop()


async def test_an_import_killed_mid_way_lands_not_at_all_and_is_marked_failed(
    crash: Crash,
) -> None:
    # Killed while writing: some batches inserted (uncommitted, invisible), more to come.
    at_kill = crash.job_at_kill
    assert at_kill["status"] == "running", at_kill
    assert 0 < at_kill["processed_rows"] <= IMPORT_ROWS, at_kill
    assert at_kill["visible_leads"] == 0, at_kill
    url = crash.server.database_url
    async with httpx.AsyncClient(base_url=crash.server.base_url, timeout=WAIT) as api:

        async def failed() -> dict[str, Any] | None:
            response = await api.get(f"/v1/import-jobs/{crash.job_id}", headers=crash.org.headers)
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            assert job["status"] in ("running", "failed"), job  # never "completed"
            return job if job["status"] == "failed" else None

        # The restarted server's periodic jobs (every second here) close the orphan.
        job = await _until(failed, "the interrupted job to be marked failed", every=0.5)
    assert job["failure"] == INTERRUPTED
    assert job["created_count"] == 0 and job["finished_at"] is not None
    conn = await connect(url)
    try:
        leads = await conn.fetchval(
            "SELECT count(*) FROM leads WHERE organization_id = $1 AND import_job_id = $2",
            crash.org.organization_id,
            uuid.UUID(crash.job_id),
        )
        history = await conn.fetchval(
            "SELECT count(*) FROM lead_status_history h JOIN leads l"
            " ON l.organization_id = h.organization_id AND l.id = h.lead_id"
            " WHERE l.organization_id = $1 AND l.email LIKE 'imp-%'",
            crash.org.organization_id,
        )
    finally:
        await conn.close()
    assert (leads, history) == (0, 0)


async def test_webhook_events_in_flight_at_the_kill_are_delivered_after_restart(
    crash: Crash,
) -> None:
    # Nothing held by the receiver was settled as delivered before the kill.
    assert set(crash.pending_at_kill) == set(crash.in_flight)
    assert set(crash.pending_at_kill.values()) == {"pending"}

    every = [*crash.delivered_before, *crash.in_flight]

    async def all_delivered() -> bool:
        conn = await connect(crash.server.database_url)
        try:
            rows = await conn.fetch(
                "SELECT event_id::text AS event_id, status FROM webhook_deliveries"
                " WHERE organization_id = $1",
                crash.org.organization_id,
            )
        finally:
            await conn.close()
        statuses = {r["event_id"]: r["status"] for r in rows}
        assert len(statuses) == len(rows)  # one delivery per event and endpoint
        return all(statuses.get(e) == "delivered" for e in every)

    await _until(all_delivered, "every delivery to be settled as delivered", every=0.5)
    # At least once: each in-flight event reached the receiver again after the restart.
    for event_id in crash.in_flight:
        assert crash.receiver.count(event_id) >= 2, event_id
    for event_id in crash.delivered_before:
        assert crash.receiver.count(event_id) >= 1, event_id
