"""Pure-ASGI middleware: request id, access log, Prometheus metrics, body size limit."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLarge
from app.core.logging import ACCESS_LOGGER

access_log = logging.getLogger(ACCESS_LOGGER)

REQUESTS = Counter(
    "dealbase_http_requests_total", "HTTP requests", ["method", "operation", "status"]
)
LATENCY = Histogram(
    "dealbase_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _header(scope: Scope, name: bytes) -> bytes:
    """The first value of a (lower-case) header, or b"" (ASGI servers lower-case names)."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


class RequestContextMiddleware:
    """Gives every request an id (the caller's X-Request-ID if sane), echoes it, logs and
    measures the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route: Any = scope.get("route")
            # The operation id ("accounts-list") names the endpoint with bounded cardinality.
            template = (
                getattr(route, "operation_id", None) or getattr(route, "path", None) or "unmatched"
            )
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            LATENCY.labels(scope["method"], template).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "operation": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            structlog.contextvars.unbind_contextvars("request_id")


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit (413) by Content-Length, or while streaming. Paths in
    ``larger`` (bulk imports) have their own, larger limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.larger.get(scope["path"], self.default_max_bytes)
        length = _header(scope, b"content-length")
        if length.isdigit() and int(length) > max_bytes:
            await self._reject(scope, send, max_bytes)
            return
        # Read the body (at most max_bytes; the app would buffer it anyway) before the app
        # runs: an exception raised from inside receive() would be turned into a 400 by
        # FastAPI's body parsing, so a streamed (chunked) oversized body is refused here.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > max_bytes:
                await self._reject(scope, send, max_bytes)
                return
            if not message.get("more_body", False):
                break

        async def replay_receive() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay_receive, send)

    async def _reject(self, scope: Scope, send: Send, max_bytes: int) -> None:
        request_id = scope.get("state", {}).get("request_id")
        problem = PayloadTooLarge(f"The request body exceeds {max_bytes} bytes")
        body = json.dumps(problem.to_problem(request_id)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
