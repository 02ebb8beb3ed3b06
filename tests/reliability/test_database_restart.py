"""PostgreSQL restarted under a running ``dealbase serve --workers 2``: while it is down,
requests fail fast and cleanly (503 problem+json with Retry-After, never a 500 or a hang);
once it is back, the same API processes serve again, without being restarted.

The database is a private embedded PostgreSQL started for this test alone: the machine's
shared server is never touched."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import psutil
import pytest

from tests.factories import Tenant
from tests.reliability.harness import PrivatePostgres, Server, new_org, running_server

REQUEST_TIMEOUT = 15.0  # no answer within this is a hang (a failure)
RECOVERY_TIMEOUT = 60.0


@dataclass
class Outcome:
    phase: str
    what: str
    status: int | None
    content_type: str = ""
    retry_after: str | None = None
    code: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Traffic:
    """A few clients sending reads, creates and readiness probes until stopped."""

    api: httpx.AsyncClient
    org: Tenant
    phase: str = "up"
    outcomes: list[Outcome] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def one(self, what: str) -> Outcome:
        phase = self.phase
        started = time.monotonic()
        try:
            if what == "read":
                response = await self.api.get("/v1/accounts", headers=self.org.headers)
            elif what == "create":
                response = await self.api.post(
                    "/v1/accounts",
                    json={"name": f"Outage {uuid.uuid4().hex[:8]}"},
                    headers={**self.org.headers, "Idempotency-Key": str(uuid.uuid4())},
                )
            else:
                response = await self.api.get("/readyz")
        except httpx.HTTPError as exc:
            outcome = Outcome(phase, what, None, error=f"{type(exc).__name__}: {exc}")
        else:
            content_type = response.headers.get("content-type", "")
            code = response.json().get("code") if "json" in content_type else None
            outcome = Outcome(
                phase,
                what,
                response.status_code,
                content_type,
                response.headers.get("retry-after"),
                code,
            )
        outcome.seconds = time.monotonic() - started
        self.outcomes.append(outcome)
        return outcome

    async def run(self, clients: int = 4) -> None:
        async def client(first: int) -> None:
            kinds = ("read", "create", "ready")
            n = first
            while not self.stopped.is_set():
                await self.one(kinds[n % len(kinds)])
                n += 1
                await asyncio.sleep(0.01)

        await asyncio.gather(*(client(n) for n in range(clients)))


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    database = PrivatePostgres.create()
    try:
        yield database
    finally:
        database.destroy()


@pytest.fixture
def api_server(private_postgres: PrivatePostgres) -> Iterator[Server]:
    with running_server(private_postgres.url) as server:
        yield server


@pytest.fixture
async def api(api_server: Server) -> AsyncIterator[httpx.AsyncClient]:
    # No kept-alive connections: each request may reach either worker.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=api_server.base_url, timeout=REQUEST_TIMEOUT, limits=limits
    ) as client:
        yield client


def _processes(server: Server) -> set[int]:
    assert server.process is not None
    master = psutil.Process(server.process.pid)
    return {master.pid, *(child.pid for child in master.children(recursive=True))}


async def test_postgres_restart_503_while_down_and_recovery_without_restarting_the_api(
    private_postgres: PrivatePostgres, api_server: Server, api: httpx.AsyncClient
) -> None:
    org = await new_org(private_postgres.url, "Outage")
    traffic = Traffic(api, org)
    for what in ("read", "create", "ready"):
        assert (await traffic.one(what)).status in (200, 201)
    processes = _processes(api_server)

    background = asyncio.create_task(traffic.run())
    try:
        await asyncio.sleep(0.5)
        traffic.phase = "stopping"
        await asyncio.to_thread(private_postgres.stop)
        traffic.phase = "down"
        # Down for a while: requests keep failing, cleanly and quickly.
        down = [await traffic.one(what) for what in ("read", "create", "ready") * 5]
        traffic.phase = "starting"
        await asyncio.to_thread(private_postgres.start)
        traffic.phase = "recovering"
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while (await traffic.one("read")).status != 200:
            assert time.monotonic() < deadline, "the API did not recover"
            await asyncio.sleep(0.2)
        traffic.phase = "up again"
        await asyncio.sleep(0.5)
    finally:
        traffic.stopped.set()
        await background

    # Back: reads, creates and readiness succeed on both workers (several fresh connections).
    after = [await traffic.one(what) for what in ("read", "create", "ready") * 4]
    assert [o.status for o in after] == [200, 201, 200] * 4, after
    # The very same processes: nothing was restarted.
    assert _processes(api_server) == processes

    # While down: every request answered 503 problem+json with Retry-After (the readiness
    # probe 503 not_ready); at no time a 500, another error or a hang.
    for outcome in down:
        assert outcome.status == 503, outcome
        assert outcome.seconds < 10, outcome  # fails fast, no waiting on the dead database
        assert outcome.content_type.startswith("application/problem+json"), outcome
        if outcome.what == "ready":
            assert outcome.code == "not_ready", outcome
        else:
            assert (outcome.code, outcome.retry_after) == ("service_unavailable", "2"), outcome
    for outcome in traffic.outcomes:
        assert outcome.error is None, outcome
        assert outcome.status in (200, 201, 503), outcome
        if outcome.status == 503:
            assert outcome.content_type.startswith("application/problem+json"), outcome
