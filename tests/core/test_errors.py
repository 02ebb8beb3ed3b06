"""Every error is an RFC 9457 problem document with a stable code and the request id."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from app.core.config import Settings
from app.main import create_app
from tests.factories import Tenant, assert_problem, create_account, key_for

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code", "request_id"}


def full_problem(response: Response, status: int, code: str) -> dict[str, Any]:
    """assert_problem plus the request id (body and header agree) and no leaked internals."""
    body = assert_problem(response, status, code)
    assert set(body) >= PROBLEM_MEMBERS, body
    assert body["type"] == "https://dealbase.dev/problems/" + code.replace("_", "-")
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    for leak in ("Traceback", "sqlalchemy", "asyncpg", 'File "'):
        assert leak not in response.text
    return body


@asynccontextmanager
async def extra_app(settings: Settings, **overrides: Any) -> AsyncIterator[FastAPI]:
    """A separate app on the test database with other settings; its engine is disposed."""
    values = {"database_url": settings.database_url, "log_level": "WARNING", "log_json": False}
    application = create_app(Settings(**{**values, **overrides}))
    try:
        yield application
    finally:
        await application.state.engine.dispose()


@asynccontextmanager
async def client_for(application: FastAPI, **transport: Any) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        transport=ASGITransport(app=application, **transport), base_url="http://test"
    ) as c:
        yield c


# --- 400 ----------------------------------------------------------------------------------


async def test_malformed_json_is_400(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/accounts",
        content=b'{"name": "Acme",',
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    body = full_problem(response, 400, "malformed_json")
    assert body["title"] == "Malformed JSON"
    listed = await client.get("/v1/accounts", headers=tenant.headers)
    assert listed.json()["data"] == []


async def test_unknown_query_parameter_is_400(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get(
        "/v1/accounts", params={"colour": "red", "nmae": "x"}, headers=tenant.headers
    )
    body = full_problem(response, 400, "unknown_query_parameter")
    assert [e["field"] for e in body["errors"]] == ["query.colour", "query.nmae"]
    assert "colour" in body["detail"]


async def test_unknown_query_parameter_on_a_get_by_id(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    response = await client.get(
        f"/v1/accounts/{account['id']}", params={"expand": "owner"}, headers=tenant.headers
    )
    full_problem(response, 400, "unknown_query_parameter")


async def test_invalid_limit_is_400(client: AsyncClient, tenant: Tenant) -> None:
    for limit in ("0", "201", "-1", "ten"):
        response = await client.get("/v1/accounts", params={"limit": limit}, headers=tenant.headers)
        body = full_problem(response, 400, "invalid_parameter")
        assert [e["field"] for e in body["errors"]] == ["query.limit"], limit
    for limit in ("1", "200"):
        ok = await client.get("/v1/accounts", params={"limit": limit}, headers=tenant.headers)
        assert ok.status_code == 200, ok.text


async def test_invalid_path_id_is_400(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/accounts/not-a-uuid", headers=tenant.headers)
    body = full_problem(response, 400, "invalid_parameter")
    assert body["errors"][0]["field"] == "path.account_id"


async def test_invalid_sort_is_400(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get("/v1/users", params={"sort": "password"}, headers=tenant.headers)
    body = full_problem(response, 400, "invalid_sort")
    assert "password" in body["detail"]


async def test_invalid_cursor_is_400(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.get(
        "/v1/users", params={"cursor": "not-a-cursor!"}, headers=tenant.headers
    )
    full_problem(response, 400, "invalid_cursor")


async def test_malformed_if_match_is_400(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.patch(
        "/v1/organization",
        json={"name": "X"},
        headers={**tenant.headers, "If-Match": "version-1"},
    )
    full_problem(response, 400, "invalid_if_match")


# --- 404 / 405 ----------------------------------------------------------------------------


async def test_unknown_id_is_404(client: AsyncClient, tenant: Tenant) -> None:
    for path in ("accounts", "users", "teams", "api-keys"):
        response = await client.get(f"/v1/{path}/{uuid.uuid4()}", headers=tenant.headers)
        body = full_problem(response, 404, "not_found")
        assert body["title"] == "Not found"


async def test_unknown_route_is_404(client: AsyncClient, tenant: Tenant) -> None:
    for path in ("/v1/nope", "/v2/accounts", "/"):
        response = await client.get(path, headers=tenant.headers)
        full_problem(response, 404, "not_found")
    # Unknown routes do not need a key to answer 404.
    full_problem(await client.get("/v1/does-not-exist"), 404, "not_found")


async def test_wrong_method_is_405(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.put("/v1/accounts", json={}, headers=tenant.headers)
    body = full_problem(response, 405, "method_not_allowed")
    assert body["title"] == "Method not allowed"
    assert "allow" in response.headers
    response = await client.post("/healthz")
    full_problem(response, 405, "method_not_allowed")


# --- 409 / 412 / 422 ----------------------------------------------------------------------


async def test_conflict_is_409(client: AsyncClient, tenant: Tenant) -> None:
    first = await client.post("/v1/teams", json={"name": "Enterprise"}, headers=tenant.headers)
    assert first.status_code == 201, first.text
    response = await client.post("/v1/teams", json={"name": "Enterprise"}, headers=tenant.headers)
    body = full_problem(response, 409, "duplicate_team")
    assert body["existing_id"] == first.json()["id"]


async def test_rule_violation_is_409_with_errors(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.delete(f"/v1/users/{tenant.admin_id}", headers=tenant.headers)
    body = full_problem(response, 409, "last_admin")
    assert body["errors"] and body["errors"][0]["code"] == "last_admin"


async def test_stale_if_match_is_412(client: AsyncClient, tenant: Tenant) -> None:
    team = await client.post("/v1/teams", json={"name": "Inside"}, headers=tenant.headers)
    team_id = team.json()["id"]
    ok = await client.patch(
        f"/v1/teams/{team_id}",
        json={"name": "Inside sales"},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["etag"] == '"2"'
    stale = await client.patch(
        f"/v1/teams/{team_id}",
        json={"name": "Lost update"},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    body = full_problem(stale, 412, "version_mismatch")
    assert body["current_version"] == 2
    got = await client.get(f"/v1/teams/{team_id}", headers=tenant.headers)
    assert got.json()["name"] == "Inside sales"


async def test_body_validation_is_422_with_field_paths(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/accounts",
        json={"name": "", "employee_count": -3, "country": "turkey", "colour": "red"},
        headers=tenant.headers,
    )
    body = full_problem(response, 422, "validation_failed")
    fields = {e["field"] for e in body["errors"]}
    assert {"body.name", "body.employee_count", "body.country", "body.colour"} <= fields
    for error in body["errors"]:
        assert error["code"] and error["detail"]


async def test_missing_required_field_is_422(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post("/v1/teams", json={}, headers=tenant.headers)
    body = full_problem(response, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["body.name"]
    assert body["errors"][0]["code"] == "missing"


async def test_money_must_not_be_garbage(client: AsyncClient, tenant: Tenant) -> None:
    response = await client.post(
        "/v1/accounts", json={"name": "Acme", "annual_revenue": "lots"}, headers=tenant.headers
    )
    body = full_problem(response, 422, "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["body.annual_revenue"]


# --- 413 / 429 / 500 (separate apps) ------------------------------------------------------


async def test_body_over_the_limit_is_413(settings: Settings, tenant: Tenant) -> None:
    async with extra_app(settings, max_body_bytes=100) as application, client_for(application) as c:
        small = await c.post("/v1/accounts", json={"name": "Small"}, headers=tenant.headers)
        assert small.status_code == 201, small.text
        response = await c.post("/v1/accounts", json={"name": "x" * 200}, headers=tenant.headers)
        body = full_problem(response, 413, "payload_too_large")
        assert "100" in body["detail"]
        listed = await c.get("/v1/accounts", headers=tenant.headers)
        assert [a["name"] for a in listed.json()["data"]] == ["Small"]


async def test_streamed_body_over_the_limit_is_413(settings: Settings, tenant: Tenant) -> None:
    """Without Content-Length (chunked upload) the limit is enforced while reading."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 20
        yield b'"}'

    async with extra_app(settings, max_body_bytes=100) as application, client_for(application) as c:
        response = await c.post(
            "/v1/accounts",
            content=chunks(),
            headers={**tenant.headers, "Content-Type": "application/json"},
        )
        assert "content-length" not in response.request.headers
        full_problem(response, 413, "payload_too_large")
        listed = await c.get("/v1/accounts", headers=tenant.headers)
        assert listed.json()["data"] == []


async def test_rate_limit_is_429_with_retry_after(
    app: FastAPI, settings: Settings, tenant: Tenant
) -> None:
    other_headers = await key_for(app, tenant, scopes=["*"])
    async with (
        extra_app(settings, rate_limit_per_minute=2) as application,
        client_for(application) as c,
    ):
        for _ in range(2):
            assert (await c.get("/v1/accounts", headers=tenant.headers)).status_code == 200
        response = await c.get("/v1/accounts", headers=tenant.headers)
        body = full_problem(response, 429, "rate_limited")
        retry_after = int(response.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert str(retry_after) in body["detail"]
        # The bucket is per key: another key of the same tenant is not limited.
        assert (await c.get("/v1/accounts", headers=other_headers)).status_code == 200


async def test_rate_limit_does_not_apply_to_invalid_keys_or_ops(
    settings: Settings, tenant: Tenant
) -> None:
    async with (
        extra_app(settings, rate_limit_per_minute=1) as application,
        client_for(application) as c,
    ):
        for _ in range(3):
            assert (await c.get("/healthz")).status_code == 200
            assert_problem(await c.get("/v1/accounts"), 401, "missing_api_key")
        assert (await c.get("/v1/accounts", headers=tenant.headers)).status_code == 200
        assert_problem(await c.get("/v1/accounts", headers=tenant.headers), 429, "rate_limited")


async def test_unhandled_error_is_500_without_internals(settings: Settings) -> None:
    async with extra_app(settings) as application:

        @application.get("/boom")
        async def boom() -> None:
            raise RuntimeError("secret internal detail: SELECT * FROM api_keys")

        async with client_for(application, raise_app_exceptions=False) as c:
            response = await c.get("/boom", headers={"X-Request-ID": "trace-500"})
    body = assert_problem(response, 500, "internal_error")
    assert body["type"] == "https://dealbase.dev/problems/internal-error"
    assert body["request_id"] == "trace-500"
    assert response.headers.get("x-request-id") == "trace-500"
    for leak in ("RuntimeError", "Traceback", "secret internal detail", "SELECT", "api_keys"):
        assert leak not in response.text
    assert set(body) == {"type", "title", "status", "detail", "code", "request_id"}
