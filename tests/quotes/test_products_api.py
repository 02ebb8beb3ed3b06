"""Products, price books (standard and customer-specific) and their entries through HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from tests.factories import Tenant, assert_problem, create, create_account, key_for

TIERS = [
    {"up_to": "10", "unit_price": "100"},
    {"up_to": "50", "unit_price": "80"},
    {"up_to": None, "unit_price": "60"},
]


async def _product(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Loom controller", **fields}
    return await create(client, "/v1/products", tenant.headers, body)


async def _book(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"name": f"Book {uuid.uuid4().hex[:6]}", "currency": "TRY", **fields}
    return await create(client, "/v1/price-books", tenant.headers, body)


async def _put_entry(
    client: AsyncClient, tenant: Tenant, book: dict[str, Any], body: dict[str, Any]
) -> Any:
    return await client.put(
        f"/v1/price-books/{book['id']}/entries", json=body, headers=tenant.headers
    )


async def test_product_crud(client: AsyncClient, tenant: Tenant) -> None:
    created = await client.post(
        "/v1/products",
        json={
            "sku": "LOOM-CTRL-PRO",
            "name": "Loom controller Pro",
            "family": "automation",
            "unit": "seat",
        },
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    product = created.json()
    assert created.headers["Location"] == f"/v1/products/{product['id']}"
    assert created.headers["ETag"] == '"1"'
    assert product["sku"] == "LOOM-CTRL-PRO"
    assert product["family"] == "automation"
    assert product["unit"] == "seat"
    assert product["active"] is True
    assert product["description"] is None

    fetched = await client.get(f"/v1/products/{product['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert fetched.json()["name"] == "Loom controller Pro"

    # The SKU is unique within the organization.
    duplicate = await client.post(
        "/v1/products", json={"sku": "LOOM-CTRL-PRO", "name": "Again"}, headers=tenant.headers
    )
    problem = assert_problem(duplicate, 409, "duplicate_sku")
    assert problem["existing_id"] == product["id"]

    bad_sku = await client.post(
        "/v1/products", json={"sku": "has spaces", "name": "X"}, headers=tenant.headers
    )
    assert_problem(bad_sku, 422, "validation_failed")

    # Products are deactivated, never deleted.
    patched = await client.patch(
        f"/v1/products/{product['id']}",
        json={"active": False, "family": None},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["active"] is False
    assert patched.json()["family"] is None
    assert patched.json()["version"] == 2
    stale = await client.patch(
        f"/v1/products/{product['id']}",
        json={"name": "Renamed"},
        headers={**tenant.headers, "If-Match": '"1"'},
    )
    assert_problem(stale, 412)

    other = await _product(client, tenant, sku="AAA-1", family="services")
    active = (await client.get("/v1/products?active=true", headers=tenant.headers)).json()
    assert [p["id"] for p in active["data"]] == [other["id"]]
    inactive = (await client.get("/v1/products?active=false", headers=tenant.headers)).json()
    assert [p["id"] for p in inactive["data"]] == [product["id"]]
    by_sku = (await client.get("/v1/products", headers=tenant.headers)).json()
    assert [p["sku"] for p in by_sku["data"]] == ["AAA-1", "LOOM-CTRL-PRO"]
    family = (await client.get("/v1/products?family=services", headers=tenant.headers)).json()
    assert [p["id"] for p in family["data"]] == [other["id"]]


async def test_reps_and_viewers_cannot_manage_the_catalogue(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    product = await _product(client, tenant)
    book = await _book(client, tenant)
    rep = await key_for(app, tenant, scopes=["*"], role="rep")
    refused = await client.post("/v1/products", json={"sku": "REP-1", "name": "Mine"}, headers=rep)
    assert_problem(refused, 403, "role_not_allowed")
    refused = await client.patch(
        f"/v1/products/{product['id']}", json={"active": False}, headers=rep
    )
    assert_problem(refused, 403, "role_not_allowed")
    refused = await client.post(
        "/v1/price-books", json={"name": "Rep book", "currency": "EUR"}, headers=rep
    )
    assert_problem(refused, 403, "role_not_allowed")
    refused = await client.put(
        f"/v1/price-books/{book['id']}/entries",
        json={"product_id": product["id"], "unit_price": "1"},
        headers=rep,
    )
    assert_problem(refused, 403, "role_not_allowed")
    # Reps read the catalogue.
    assert (await client.get("/v1/products", headers=rep)).status_code == 200
    assert (await client.get(f"/v1/price-books/{book['id']}", headers=rep)).status_code == 200

    # A manager may create products.
    manager = await key_for(app, tenant, scopes=["*"], role="manager")
    created = await client.post(
        "/v1/products", json={"sku": "MGR-1", "name": "Manager's"}, headers=manager
    )
    assert created.status_code == 201, created.text

    reader = await key_for(app, tenant, scopes=["products:read"])
    refused = await client.post(
        "/v1/products", json={"sku": "RO-1", "name": "Read only"}, headers=reader
    )
    assert_problem(refused, 403, "missing_scope")


async def test_one_active_standard_book_per_currency(client: AsyncClient, tenant: Tenant) -> None:
    standard = await _book(client, tenant, name="Standard TRY")
    assert standard["account_id"] is None and standard["active"] is True

    clash = await client.post(
        "/v1/price-books", json={"name": "Second TRY", "currency": "TRY"}, headers=tenant.headers
    )
    problem = assert_problem(clash, 409, "price_book_conflict")
    assert problem["existing_id"] == standard["id"]

    # Another currency, or an inactive book, does not clash.
    euro = await _book(client, tenant, name="Standard EUR", currency="EUR")
    spare = await _book(client, tenant, name="Spare TRY", active=False)
    assert spare["active"] is False
    # …but activating it does.
    activate = await client.patch(
        f"/v1/price-books/{spare['id']}", json={"active": True}, headers=tenant.headers
    )
    assert_problem(activate, 409, "price_book_conflict")
    # Deactivate the old one first, then the spare may take over.
    off = await client.patch(
        f"/v1/price-books/{standard['id']}", json={"active": False}, headers=tenant.headers
    )
    assert off.status_code == 200, off.text
    on = await client.patch(
        f"/v1/price-books/{spare['id']}", json={"active": True}, headers=tenant.headers
    )
    assert on.status_code == 200, on.text
    assert on.json()["active"] is True

    duplicate_name = await client.post(
        "/v1/price-books",
        json={"name": "Standard EUR", "currency": "USD"},
        headers=tenant.headers,
    )
    assert_problem(duplicate_name, 409, "duplicate_price_book")
    bad_currency = await client.post(
        "/v1/price-books", json={"name": "Lower", "currency": "try"}, headers=tenant.headers
    )
    assert_problem(bad_currency, 422, "validation_failed")

    books = (await client.get("/v1/price-books", headers=tenant.headers)).json()["data"]
    assert [b["id"] for b in books] == [euro["id"], spare["id"], standard["id"]]


async def test_customer_specific_book(client: AsyncClient, tenant: Tenant) -> None:
    account = await create_account(client, tenant.headers)
    await _book(client, tenant, name="Standard")
    # A customer book coexists with the standard book of the same currency.
    special = await _book(client, tenant, name="Acme prices", account_id=account["id"])
    assert special["account_id"] == account["id"]
    assert special["currency"] == "TRY"
    # One active book per account and currency.
    clash = await client.post(
        "/v1/price-books",
        json={"name": "Acme again", "currency": "TRY", "account_id": account["id"]},
        headers=tenant.headers,
    )
    assert_problem(clash, 409, "price_book_conflict")
    # Another account may have its own.
    other_account = await create_account(client, tenant.headers)
    await _book(client, tenant, name="Other prices", account_id=other_account["id"])
    unknown = await client.post(
        "/v1/price-books",
        json={"name": "Ghost", "currency": "TRY", "account_id": str(uuid.uuid4())},
        headers=tenant.headers,
    )
    assert_problem(unknown, 422, "validation_failed")


async def test_entries_flat_volume_graduated(client: AsyncClient, tenant: Tenant) -> None:
    book = await _book(client, tenant)
    seat = await _product(client, tenant, sku="SEAT")
    loom = await _product(client, tenant, sku="LOOM")
    sensor = await _product(client, tenant, sku="SENSOR")

    flat = await _put_entry(client, tenant, book, {"product_id": seat["id"], "unit_price": "99.90"})
    assert flat.status_code == 200, flat.text
    assert flat.json()["pricing_model"] == "flat"
    assert flat.json()["unit_price"] == "99.90"
    assert flat.json()["tiers"] == []
    assert flat.json()["price_book_id"] == book["id"]

    volume = await _put_entry(
        client,
        tenant,
        book,
        {"product_id": loom["id"], "pricing_model": "volume", "tiers": TIERS},
    )
    assert volume.status_code == 200, volume.text
    assert [(t["up_to"], t["unit_price"]) for t in volume.json()["tiers"]] == [
        ("10", "100"),
        ("50", "80"),
        (None, "60"),
    ]

    graduated = await _put_entry(
        client,
        tenant,
        book,
        {
            "product_id": sensor["id"],
            "pricing_model": "graduated",
            "tiers": [{"up_to": "5", "unit_price": "20", "flat_fee": "15"}, {"unit_price": "10"}],
            "min_quantity": "2",
        },
    )
    assert graduated.status_code == 200, graduated.text
    body = graduated.json()
    assert body["min_quantity"] == "2"
    assert body["tiers"] == [
        {"up_to": "5", "unit_price": "20", "flat_fee": "15"},
        {"up_to": None, "unit_price": "10", "flat_fee": "0"},
    ]

    # PUT replaces the product's entry in the book (same row, new price).
    again = await _put_entry(client, tenant, book, {"product_id": seat["id"], "unit_price": "89"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == flat.json()["id"]
    assert again.json()["unit_price"] == "89"

    listed = (
        await client.get(f"/v1/price-books/{book['id']}/entries", headers=tenant.headers)
    ).json()["data"]
    assert {e["product_id"]: e["pricing_model"] for e in listed} == {
        seat["id"]: "flat",
        loom["id"]: "volume",
        sensor["id"]: "graduated",
    }

    # DELETE an entry.
    gone = await client.delete(
        f"/v1/price-books/{book['id']}/entries/{volume.json()['id']}", headers=tenant.headers
    )
    assert gone.status_code == 204
    listed = (
        await client.get(f"/v1/price-books/{book['id']}/entries", headers=tenant.headers)
    ).json()["data"]
    assert {e["product_id"] for e in listed} == {seat["id"], sensor["id"]}
    again = await client.delete(
        f"/v1/price-books/{book['id']}/entries/{volume.json()['id']}", headers=tenant.headers
    )
    assert_problem(again, 404, "not_found")
    # An entry is addressed through its own book only.
    other_book = await _book(client, tenant, currency="EUR")
    wrong_book = await client.delete(
        f"/v1/price-books/{other_book['id']}/entries/{flat.json()['id']}", headers=tenant.headers
    )
    assert_problem(wrong_book, 404, "not_found")


async def test_invalid_entries_are_refused(client: AsyncClient, tenant: Tenant) -> None:
    book = await _book(client, tenant)
    product = await _product(client, tenant)
    cases: list[dict[str, Any]] = [
        {"pricing_model": "flat"},  # no unit price
        {"pricing_model": "volume", "tiers": []},  # no tiers
        {"pricing_model": "graduated", "tiers": [{"unit_price": "5"}, {"unit_price": "4"}]},
        {
            "pricing_model": "volume",
            "tiers": [{"up_to": "50", "unit_price": "5"}, {"up_to": "10", "unit_price": "4"}],
        },
        {
            "pricing_model": "graduated",
            "tiers": [{"up_to": "10", "unit_price": "5"}, {"up_to": "10", "unit_price": "4"}],
        },
    ]
    for case in cases:
        refused = await _put_entry(client, tenant, book, {"product_id": product["id"], **case})
        problem = assert_problem(refused, 422, "validation_failed")
        assert problem["errors"][0]["code"] == "invalid_price", (case, problem)
    for case in (
        {"pricing_model": "tiered", "unit_price": "1"},
        {"unit_price": "-1"},
        {"pricing_model": "volume", "tiers": [{"up_to": "0", "unit_price": "1"}]},
        {"pricing_model": "volume", "tiers": [{"unit_price": "-2"}]},
        {"unit_price": "1", "min_quantity": "0"},
    ):
        refused = await _put_entry(client, tenant, book, {"product_id": product["id"], **case})
        assert_problem(refused, 422, "validation_failed")
    unknown = await _put_entry(
        client, tenant, book, {"product_id": str(uuid.uuid4()), "unit_price": "1"}
    )
    problem = assert_problem(unknown, 422, "validation_failed")
    assert problem["errors"][0]["field"] == "body.product_id"
    missing_book = await client.put(
        f"/v1/price-books/{uuid.uuid4()}/entries",
        json={"product_id": product["id"], "unit_price": "1"},
        headers=tenant.headers,
    )
    assert_problem(missing_book, 404, "not_found")
    # Nothing was stored.
    listed = await client.get(f"/v1/price-books/{book['id']}/entries", headers=tenant.headers)
    assert listed.json()["data"] == []


async def test_other_tenant_gets_404(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    product = await _product(client, tenant, sku="MINE")
    book = await _book(client, tenant)
    entry = (
        await _put_entry(client, tenant, book, {"product_id": product["id"], "unit_price": "5"})
    ).json()
    theirs = other_tenant.headers

    for response in (
        await client.get(f"/v1/products/{product['id']}", headers=theirs),
        await client.patch(f"/v1/products/{product['id']}", json={"name": "X"}, headers=theirs),
        await client.get(f"/v1/price-books/{book['id']}", headers=theirs),
        await client.patch(f"/v1/price-books/{book['id']}", json={"name": "X"}, headers=theirs),
        await client.get(f"/v1/price-books/{book['id']}/entries", headers=theirs),
        await client.put(
            f"/v1/price-books/{book['id']}/entries",
            json={"product_id": product["id"], "unit_price": "1"},
            headers=theirs,
        ),
        await client.delete(f"/v1/price-books/{book['id']}/entries/{entry['id']}", headers=theirs),
    ):
        assert_problem(response, 404, "not_found")
    assert (await client.get("/v1/products", headers=theirs)).json()["data"] == []
    assert (await client.get("/v1/price-books", headers=theirs)).json()["data"] == []

    # The same SKU and book name are free in the other organization, and its own book may
    # not price this organization's product.
    await _product(client, other_tenant, sku="MINE")
    their_book = await create(
        client, "/v1/price-books", theirs, {"name": book["name"], "currency": "TRY"}
    )
    foreign = await client.put(
        f"/v1/price-books/{their_book['id']}/entries",
        json={"product_id": product["id"], "unit_price": "1"},
        headers=theirs,
    )
    assert_problem(foreign, 422, "validation_failed")
    # …and a customer book may not name this organization's account.
    account = await create_account(client, tenant.headers)
    foreign = await client.post(
        "/v1/price-books",
        json={"name": "Foreign", "currency": "EUR", "account_id": account["id"]},
        headers=theirs,
    )
    assert_problem(foreign, 422, "validation_failed")
    # Nothing changed for the owner.
    mine = await client.get(f"/v1/price-books/{book['id']}/entries", headers=tenant.headers)
    assert [e["unit_price"] for e in mine.json()["data"]] == ["5"]
