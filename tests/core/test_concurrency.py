"""Optimistic concurrency: ETag / If-Match on PATCH, DELETE and actions."""

from __future__ import annotations

import asyncio

from httpx import AsyncClient

from tests.factories import Tenant, assert_problem, create_account


async def test_etag_tracks_version_and_stale_if_match_is_412(
    client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    url = f"/v1/accounts/{account['id']}"
    got = await client.get(url, headers=tenant.headers)
    assert got.headers["ETag"] == '"1"'

    ok = await client.patch(
        url, json={"city": "İzmir"}, headers={**tenant.headers, "If-Match": '"1"'}
    )
    assert ok.status_code == 200
    assert ok.headers["ETag"] == '"2"'
    assert ok.json()["version"] == 2

    for method, path, body in (
        ("PATCH", url, {"city": "Bursa"}),
        ("DELETE", url, None),
        ("POST", f"{url}/lifecycle", {"lifecycle": "customer"}),
    ):
        stale = await client.request(
            method, path, json=body, headers={**tenant.headers, "If-Match": '"1"'}
        )
        problem = assert_problem(stale, 412, "version_mismatch")
        assert problem["current_version"] == 2

    unchanged = await client.get(url, headers=tenant.headers)
    assert unchanged.json()["city"] == "İzmir"
    assert unchanged.json()["lifecycle"] == "prospect"


async def test_weak_and_wildcard_if_match(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    url = f"/v1/accounts/{account['id']}"
    weak = await client.patch(
        url, json={"city": "A"}, headers={**tenant.headers, "If-Match": 'W/"1"'}
    )
    assert weak.status_code == 200
    star = await client.patch(url, json={"city": "B"}, headers={**tenant.headers, "If-Match": "*"})
    assert star.status_code == 200
    bad = await client.patch(
        url, json={"city": "C"}, headers={**tenant.headers, "If-Match": "banana"}
    )
    assert_problem(bad, 400, "invalid_if_match")


async def test_two_racing_updates_with_same_version_one_wins(
    client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    url = f"/v1/accounts/{account['id']}"
    headers = {**tenant.headers, "If-Match": '"1"'}
    first, second = await asyncio.gather(
        client.patch(url, json={"city": "Ankara"}, headers=headers),
        client.patch(url, json={"city": "Konya"}, headers=headers),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 412]
    winner = first if first.status_code == 200 else second
    final = await client.get(url, headers=tenant.headers)
    assert final.json()["city"] == winner.json()["city"]
    assert final.json()["version"] == 2
    history = await client.get(f"{url}/history", headers=tenant.headers)
    assert [h["field"] for h in history.json()["data"]] == ["city"]


async def test_updates_without_if_match_never_lose_a_write(
    client: AsyncClient, tenant: Tenant
) -> None:
    account = await create_account(client, tenant.headers)
    url = f"/v1/accounts/{account['id']}"
    responses = await asyncio.gather(
        *(
            client.patch(url, json={"employee_count": n}, headers=tenant.headers)
            for n in range(1, 6)
        )
    )
    assert all(r.status_code == 200 for r in responses)
    final = await client.get(url, headers=tenant.headers)
    assert final.json()["version"] == 6
    history = await client.get(f"{url}/history", params={"limit": 200}, headers=tenant.headers)
    assert len(history.json()["data"]) == 5
