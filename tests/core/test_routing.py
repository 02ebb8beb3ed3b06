"""Routing: a route is ruled out by its literal prefix before its pattern is tried, which
must not change what matches, also behind a proxy that mounts the API under a root path."""

import re

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from starlette.routing import BaseRoute, Match

from app.core.routing import DealbaseRoute, RouteIndex
from tests.factories import Tenant, assert_problem, create_account


async def test_routes_sharing_a_prefix_resolve_as_declared(
    client: AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    account = await create_account(client, h, name="Prefix A.Ş.")
    assert (await client.get("/v1/accounts", headers=h)).status_code == 200
    got = await client.get(f"/v1/accounts/{account['id']}", headers=h)
    assert got.json()["name"] == "Prefix A.Ş."
    assert (
        await client.get(f"/v1/accounts/{account['id']}/timeline", headers=h)
    ).status_code == 200
    assert_problem(await client.put("/v1/accounts", headers=h), 405)
    assert_problem(await client.get("/v1/accountsx", headers=h), 404)


async def test_routes_match_under_a_root_path(app: FastAPI, tenant: Tenant) -> None:
    transport = ASGITransport(app=app, root_path="/crm")
    async with AsyncClient(transport=transport, base_url="http://test") as proxied:
        account = await create_account(proxied, tenant.headers, name="Mounted")
        got = await proxied.get(f"/crm/v1/accounts/{account['id']}", headers=tenant.headers)
    assert got.status_code == 200, got.text


def _first_full_match(routes: list[BaseRoute], scope: dict[str, object]) -> BaseRoute | None:
    for route in routes:
        match, child_scope = route.matches(scope)
        if match is Match.FULL:
            return child_scope.get("route", route)  # type: ignore[return-value]
    return None


def test_the_route_index_picks_the_route_starlettes_loop_would(app: FastAPI) -> None:
    index, *routes = app.router.routes
    assert isinstance(index, RouteIndex)
    checked = 0
    for route in routes:
        if not isinstance(route, DealbaseRoute):  # /v1; the operational routes fall through
            continue
        path = re.sub(r"\{[^}]+\}", "0192f7a0-0000-7000-8000-000000000001", route.path)
        for method in route.methods:
            scope = {"type": "http", "path": path, "method": method, "root_path": ""}
            match, child_scope = index.matches(scope)
            assert match is Match.FULL, (method, path)
            assert child_scope["route"] is _first_full_match(routes, scope), (method, path)
            checked += 1
    assert checked > 250
    # What the index does not resolve falls through to the loop: 404, 405, a root path.
    for path, method in (("/v1/accountsx", "GET"), ("/v1/accounts", "PUT"), ("/healthz", "GET")):
        scope = {"type": "http", "path": path, "method": method, "root_path": ""}
        assert index.matches(scope)[0] is Match.NONE
    scope = {"type": "http", "path": "/crm/v1/accounts", "method": "GET", "root_path": "/crm"}
    assert index.matches(scope)[0] is Match.NONE
