"""A real HTTP receiver on 127.0.0.1 and helpers to drive the dispatcher step by step."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

from app.api_keys.service import issue_key
from app.core import outbox
from app.core.ids import new_id
from app.core.tenancy import Actor, bind_tenant
from app.models import Partner
from app.webhooks.dispatcher import SendResult, fan_out, send_due
from tests.factories import Tenant, create


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """A tiny HTTP/1.1 server: records every request and answers with the next queued
    status (default 200), or 500 for webhook ids listed in ``failing``."""

    requests: list[Received] = field(default_factory=list)
    statuses: deque[int] = field(default_factory=deque)
    failing: set[str] = field(default_factory=set)
    delay: float = 0.0
    received: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *statuses: int) -> None:
        self.statuses.extend(statuses)

    def ids(self, path: str | None = None) -> list[str]:
        return [r.webhook_id for r in self.requests if path is None or r.path == path]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            if not request_line:
                return
            method, path, _ = request_line.decode().split(" ", 2)
            headers: dict[str, str] = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            received = Received(method, path, headers, body)
            self.requests.append(received)
            self.received.set()
            if self.delay:
                await asyncio.sleep(self.delay)
            if received.headers.get("webhook-id") in self.failing:
                status = 500
            else:
                status = self.statuses.popleft() if self.statuses else 200
            writer.write(
                f"HTTP/1.1 {status} Status\r\ncontent-length: 2\r\n"
                "content-type: text/plain\r\nconnection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def new_endpoint(
    client: AsyncClient, headers: dict[str, str], url: str, **fields: Any
) -> dict[str, Any]:
    return await create(client, "/v1/webhook-endpoints", headers, {"url": url, **fields})


async def emit(
    app: FastAPI,
    tenant: Tenant,
    event_type: str = "opportunity.updated",
    *,
    resource_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    """Write one outbox event, as a service would, and return its id."""
    resource_type = event_type.partition(".")[0]
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor(request_id="test"))
        event = outbox.emit(
            session,
            event_type,
            resource_type=resource_type,
            resource_id=resource_id or new_id(),
            data=data or {"name": "Big deal", "amount": "1200.00"},
            partner_id=partner_id,
        )
        await session.flush()
        return str(event.id)


async def new_partner(app: FastAPI, tenant: Tenant, name: str) -> tuple[uuid.UUID, dict[str, str]]:
    """A partner row and auth headers for one of its keys."""
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        partner = Partner(id=new_id(), name=name)
        session.add(partner)
        await session.flush()
        _, token = await issue_key(
            session,
            organization_id=tenant.organization_id,
            user_id=None,
            partner_id=partner.id,
            name=f"{name} portal",
            scopes=["*"],
        )
    return partner.id, {"Authorization": f"Bearer {token}"}


async def fan_out_all(app: FastAPI) -> int:
    total = 0
    while (result := await fan_out(app.state.sessionmaker)).events:
        total += result.events
    return total


async def dispatch(app: FastAPI, http: httpx.AsyncClient) -> SendResult:
    """One dispatcher pass: fan out every event, then send what is due."""
    await fan_out_all(app)
    return await send_due(app.state.sessionmaker, http)


async def make_due(app: FastAPI) -> None:
    """Fast-forward: every pending delivery is due now (skips the backoff wait)."""
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_deliveries SET next_attempt_at = now() WHERE status = 'pending'")
        )


async def deliveries(
    client: AsyncClient, headers: dict[str, str], endpoint_id: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(
        f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=headers, params=params
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])
