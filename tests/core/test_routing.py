"""Routing: a route is ruled out by its literal prefix before its pattern is tried, which
must not change what matches, also behind a proxy that mounts the API under a root path."""

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

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
