from httpx import AsyncClient

from tests.factories import Tenant, create_account


async def test_create_and_get_account(client: AsyncClient, tenant: Tenant) -> None:
    created = await create_account(client, tenant.headers, name="Acme")
    got = await client.get(f"/v1/accounts/{created['id']}", headers=tenant.headers)
    assert got.status_code == 200
    assert got.json()["name"] == "Acme"
