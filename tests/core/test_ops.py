"""Operational endpoints (/healthz, /readyz, /metrics) and request ids."""

from __future__ import annotations

import gc
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.core.config import Settings
from app.core.driver import translated
from app.core.logging import configure_logging
from app.core.migrate import head_revision
from app.core.problems import _is_unavailable
from app.main import create_app
from tests.factories import Tenant, assert_problem

UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/x"


@asynccontextmanager
async def unreachable_app() -> AsyncIterator[AsyncClient]:
    application = create_app(
        Settings(database_url=UNREACHABLE_DATABASE, log_level="CRITICAL", log_json=False)
    )
    try:
        async with AsyncClient(
            transport=ASGITransport(app=application), base_url="http://test"
        ) as c:
            yield c
    finally:
        await application.state.engine.dispose()


async def test_healthz(client: AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-type"].startswith("application/json")


async def test_healthz_needs_no_database() -> None:
    async with unreachable_app() as c:
        response = await c.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_migration_at_head(app: FastAPI, client: AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    head = head_revision()
    assert head is not None
    assert body == {"status": "ready", "database": "ok", "migration": head}
    assert app.state.head_revision == head


async def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    async with unreachable_app() as c:
        response = await c.get("/readyz", headers={"X-Request-ID": "ready-check-1"})
    body = assert_problem(response, 503, "not_ready")
    assert body["title"] == "Not ready"
    assert "unreachable" in body["detail"]
    assert body["request_id"] == "ready-check-1"
    assert "127.0.0.1" not in response.text
    assert "Traceback" not in response.text


async def test_readyz_is_503_when_migrations_are_behind(app: FastAPI, client: AsyncClient) -> None:
    real_head = app.state.head_revision
    app.state.head_revision = "ffffffffffff"
    try:
        response = await client.get("/readyz")
    finally:
        app.state.head_revision = real_head
    body = assert_problem(response, 503, "not_ready")
    assert "ffffffffffff" in body["detail"]
    assert (await client.get("/readyz")).status_code == 200


async def test_api_is_503_problem_when_the_database_is_unreachable(tenant: Tenant) -> None:
    async with unreachable_app() as c:
        response = await c.get("/v1/accounts", headers=tenant.headers)
    body = assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"].isdigit()
    assert body["request_id"] == response.headers["x-request-id"]
    for leak in ("Traceback", "asyncpg", "127.0.0.1", "Connection refused"):
        assert leak not in response.text


async def test_request_id_is_generated_and_echoed(client: AsyncClient, tenant: Tenant) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    for response in (first, second):
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    # Errors carry the same id in the body.
    problem = await client.get("/v1/accounts")
    assert problem.json()["request_id"] == problem.headers["x-request-id"]
    assert len(problem.headers.get_list("x-request-id")) == 1


async def test_callers_request_id_is_echoed(client: AsyncClient, tenant: Tenant) -> None:
    for rid in ("abc-123", "req_2024.11.22-XYZ", "a" * 64):
        response = await client.get("/v1/accounts", headers={**tenant.headers, "X-Request-ID": rid})
        assert response.status_code == 200
        assert response.headers["x-request-id"] == rid
        assert response.headers.get_list("x-request-id") == [rid]
    problem = await client.get("/v1/nope", headers={"X-Request-ID": "trace-me"})
    assert problem.headers["x-request-id"] == "trace-me"
    assert problem.json()["request_id"] == "trace-me"


async def test_insane_request_id_is_replaced(client: AsyncClient) -> None:
    for rid in ("has spaces", "a" * 65, "semi;colon", "<script>", "../../etc"):
        response = await client.get("/healthz", headers={"X-Request-ID": rid})
        echoed = response.headers["x-request-id"]
        assert echoed != rid
        assert re.fullmatch(r"[0-9a-f]{32}", echoed)


async def test_metrics_exposes_request_counter(client: AsyncClient, tenant: Tenant) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/v1/accounts", headers=tenant.headers)).status_code == 200
    assert (await client.get("/v1/accounts")).status_code == 401

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE dealbase_http_requests_total counter" in text
    assert "dealbase_http_request_duration_seconds_bucket" in text
    samples = [line for line in text.splitlines() if line.startswith("dealbase_http_requests")]
    assert any('operation="operations-healthz"' in s and 'status="200"' in s for s in samples)
    assert any('operation="accounts-list"' in s and 'status="200"' in s for s in samples)
    assert any('operation="accounts-list"' in s and 'status="401"' in s for s in samples)


async def test_metrics_labels_unknown_paths_with_bounded_cardinality(
    client: AsyncClient,
) -> None:
    for i in range(3):
        assert (await client.get(f"/no/such/path/{i}")).status_code == 404
    text = (await client.get("/metrics")).text
    assert "/no/such/path" not in text
    assert 'operation="unmatched"' in text


async def test_ops_endpoints_need_no_key(client: AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200, path


class _DriverError(Exception):
    """A driver error as SQLAlchemy's asyncpg adapter raises it: with a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def test_database_unavailable_is_told_from_a_bug_by_sqlstate() -> None:
    def wrapped(sqlstate: str) -> DBAPIError:
        return DBAPIError("SELECT 1", None, _DriverError(sqlstate))

    # Restarting or stopping (57P01 terminated, 57P03 starting up / shutting down), the
    # connection gone (08…), too many connections (53300), no pooled connection free: 503.
    for sqlstate in ("57P01", "57P03", "08006", "08003", "53300"):
        assert _is_unavailable(wrapped(sqlstate)), sqlstate
    assert _is_unavailable(PoolTimeout("QueuePool limit reached"))
    assert _is_unavailable(ConnectionRefusedError())
    # A deadlock, a constraint, a syntax error: bugs (500), not outages.
    for sqlstate in ("40P01", "23505", "42601"):
        assert not _is_unavailable(wrapped(sqlstate)), sqlstate


async def test_access_log_is_one_json_line_per_request(
    client: AsyncClient, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", json_logs=True)  # as `serve` runs; the tests log as text
    try:
        response = await client.get(
            "/v1/accounts", headers={**tenant.headers, "X-Request-ID": "access-1"}
        )
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        # uvicorn's own access line would repeat ours; with no handler it is not even built.
        assert not logging.getLogger("uvicorn.access").hasHandlers()
    finally:
        configure_logging("WARNING", json_logs=False)
    assert response.status_code == 200
    [line] = [entry for entry in lines if entry.get("logger") == "dealbase.access"]
    assert list(line) == [
        "event",
        "request_id",
        "level",
        "logger",
        "method",
        "path",
        "operation",
        "status",
        "duration_ms",
        "timestamp",
    ]
    assert line["event"] == "request"
    assert line["request_id"] == "access-1"
    assert line["level"] == "info"
    assert (line["method"], line["path"], line["operation"], line["status"]) == (
        "GET",
        "/v1/accounts",
        "accounts-list",
        200,
    )
    assert line["duration_ms"] > 0
    assert datetime.fromisoformat(line["timestamp"]).tzinfo == UTC


async def test_startup_leaves_the_built_app_out_of_garbage_collection(
    settings: Settings,
) -> None:
    application = create_app(settings.model_copy(update={"jobs_interval_seconds": 0}))
    gc.unfreeze()
    try:
        async with application.router.lifespan_context(application):
            # Full collections would walk the routes, models and schemas on every pass.
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_errors_of_statements_sent_by_asyncpg_directly_are_answered_like_sqlalchemys() -> None:
    """Hot paths send some statements on the driver (``app/core/driver.py``): their errors
    reach the API wrapped as SQLAlchemy wraps them."""

    def raised(error: Exception, *, lost: bool = False) -> DBAPIError:
        return translated("INSERT …", error, lost=lost)

    violation = raised(asyncpg.UniqueViolationError("duplicate key"))
    assert isinstance(violation, IntegrityError) and not _is_unavailable(violation)
    closed = asyncpg.ConnectionDoesNotExistError("connection was closed")
    assert _is_unavailable(raised(closed, lost=True))
    assert _is_unavailable(raised(asyncpg.AdminShutdownError("terminating connection")))
    assert not _is_unavailable(raised(asyncpg.DataError("value too long")))


async def test_a_connection_lost_under_a_statement_sent_by_asyncpg_is_replaced(
    settings: Settings, database_url: str, tenant: Tenant
) -> None:
    """A GET of one deal reads on the driver, on an autocommit connection (no BEGIN through
    SQLAlchemy to find the connection dead first): the request that finds it lost answers
    503, and the pool replaces it, so the next request succeeds."""
    application = create_app(settings.model_copy(update={"jobs_interval_seconds": 0}))
    engine = application.state.engine
    missing = f"/v1/opportunities/{uuid.uuid4()}"
    try:
        async with AsyncClient(
            transport=ASGITransport(app=application), base_url="http://test"
        ) as api:
            assert (await api.get(missing, headers=tenant.headers)).status_code == 404
            assert engine.pool.checkedin() == 1  # the one connection both requests used
            async with engine.connect() as connection:
                pid = await connection.scalar(text("SELECT pg_backend_pid()"))
            admin = await asyncpg.connect(database_url)
            try:
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await admin.close()

            lost = await api.get(missing, headers=tenant.headers)
            assert_problem(lost, 503, "service_unavailable")
            assert (await api.get(missing, headers=tenant.headers)).status_code == 404
    finally:
        await engine.dispose()
        await application.state.aggregates_engine.dispose()
