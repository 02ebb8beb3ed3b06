"""Quotes end to end through HTTP: pricing (totals computed by hand in the comments),
customer price books, versions, the approval gate, send / accept / decline, the deal's
stage requirements and tenant isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient, Response

from tests.factories import (
    Tenant,
    assert_problem,
    create,
    create_account,
    create_user,
    key_for,
)

Headers = dict[str, str]


async def _catalogue(client: AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """A standard TRY book: SEAT flat 100; LOOM volume 100 (≤10) / 80 (≤50) / 60;
    SENSOR graduated 100 + a 50 fee (≤10) / 80 (≤50) / 60."""
    headers = tenant.headers
    book = await create(
        client, "/v1/price-books", headers, {"name": "Standard TRY", "currency": "TRY"}
    )
    ids = {}
    for sku in ("SEAT", "LOOM", "SENSOR"):
        ids[sku] = (
            await create(client, "/v1/products", headers, {"sku": sku, "name": sku.title()})
        )["id"]
    tiers: list[dict[str, Any]] = [
        {"up_to": "10", "unit_price": "100"},
        {"up_to": "50", "unit_price": "80"},
        {"up_to": None, "unit_price": "60"},
    ]
    entries = [
        {"product_id": ids["SEAT"], "unit_price": "100"},
        {"product_id": ids["LOOM"], "pricing_model": "volume", "tiers": tiers},
        {
            "product_id": ids["SENSOR"],
            "pricing_model": "graduated",
            "tiers": [{**tiers[0], "flat_fee": "50"}, *tiers[1:]],
        },
    ]
    for entry in entries:
        put = await client.put(f"/v1/price-books/{book['id']}/entries", json=entry, headers=headers)
        assert put.status_code == 200, put.text
    return {"book": book, **ids}


async def _deal(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    if "account_id" not in fields:
        fields["account_id"] = (await create_account(client, tenant.headers))["id"]
    return await create(client, "/v1/opportunities", tenant.headers, {"name": "Deal", **fields})


async def _quote(
    client: AsyncClient,
    headers: Headers,
    deal: dict[str, Any],
    lines: list[dict[str, Any]],
    **terms: Any,
) -> dict[str, Any]:
    body = {"opportunity_id": deal["id"], "line_items": lines, **terms}
    return await create(client, "/v1/quotes", headers, body)


async def _post(client: AsyncClient, headers: Headers, quote: dict[str, Any], action: str) -> Any:
    return await client.post(f"/v1/quotes/{quote['id']}/{action}", headers=headers)


async def _ok(response: Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def _totals(version: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        version[k]
        for k in ("subtotal", "discount_total", "net_total", "effective_discount_pct", "acv", "tcv")
    )


def _line_amounts(version: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(li["list_amount"], li["discount"], li["net_amount"]) for li in version["line_items"]]


def _year() -> int:
    return datetime.now(UTC).year


# --- creating and pricing -----------------------------------------------------------------


async def test_create_prices_flat_volume_and_graduated_lines(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    cat = await _catalogue(client, tenant)
    deal = await _deal(client, tenant)
    created = await client.post(
        "/v1/quotes",
        json={
            "opportunity_id": deal["id"],
            "valid_until": "2030-01-31",
            "line_items": [
                {"product_id": cat["SEAT"], "quantity": "3", "discount_pct": "10"},
                {"product_id": cat["LOOM"], "quantity": "20", "discount_amount": "100"},
                {"product_id": cat["SENSOR"], "quantity": "20", "description": "Sensors"},
            ],
        },
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    quote = created.json()
    assert created.headers["Location"] == f"/v1/quotes/{quote['id']}"
    assert quote["number"] == f"Q-{_year()}-00001"
    assert quote["status"] == "draft"
    assert quote["current_version"] == 1
    assert quote["opportunity_id"] == deal["id"]
    assert quote["currency"] == "TRY"  # the deal's currency (the organization's)
    assert quote["price_book_id"] == cat["book"]["id"]
    assert quote["accepted_version"] is None and quote["sent_at"] is None
    current = quote["current"]
    assert current["number"] == 1
    assert current["approval"] is None and current["submitted_at"] is None
    assert current["payment_terms_days"] == 30
    assert current["valid_until"] == "2030-01-31"
    # SEAT   flat 3 × 100 = 300.00, 10 % off = 30.00            → 270.00
    # LOOM   volume: 20 units reach the ≤50 tier: 20 × 80 = 1600.00, 100.00 off → 1500.00
    # SENSOR graduated: 10 × 100 + 50 fee + 10 × 80 = 1850.00     → 1850.00
    assert _line_amounts(current) == [
        ("300.00", "30.00", "270.00"),
        ("1600.00", "100.00", "1500.00"),
        ("1850.00", "0.00", "1850.00"),
    ]
    # subtotal 3750.00, discount 130.00, net 3620.00; 130 / 3750 = 3.4666… % → 3.47;
    # a one-off quote is one 12-month period: ACV = TCV = net.
    assert _totals(current) == ("3750.00", "130.00", "3620.00", "3.47", "3620.00", "3620.00")
    seat, loom, sensor = current["line_items"]
    assert [li["position"] for li in current["line_items"]] == [1, 2, 3]
    assert seat["description"] == "Seat"  # defaults to the product's name
    assert sensor["description"] == "Sensors"
    assert Decimal(seat["quantity"]) == 3
    assert seat["discount_pct"] == "10.00" and seat["discount_amount"] is None
    assert loom["discount_amount"] == "100.00"
    assert seat["price_snapshot"]["pricing_model"] == "flat"
    assert seat["price_snapshot"]["unit_price"] == "100"
    assert seat["price_snapshot"]["product_sku"] == "SEAT"
    assert loom["price_snapshot"]["pricing_model"] == "volume"
    assert sensor["price_snapshot"]["pricing_model"] == "graduated"
    assert [(y["year"], y["months"], y["net_amount"]) for y in loom["years"]] == [
        (1, 12, "1500.00")
    ]

    # GET answers the same; the numbers count up per organization.
    fetched = await client.get(f"/v1/quotes/{quote['id']}", headers=tenant.headers)
    assert fetched.status_code == 200
    assert _totals(fetched.json()["current"]) == _totals(current)
    second = await _quote(client, tenant.headers, deal, [])
    assert second["number"] == f"Q-{_year()}-00002"
    assert _totals(second["current"]) == ("0.00", "0.00", "0.00", "0.00", "0.00", "0.00")
    theirs = await _catalogue(client, other_tenant)
    their_deal = await _deal(client, other_tenant)
    first_of_theirs = await _quote(
        client,
        other_tenant.headers,
        their_deal,
        [{"product_id": theirs["SEAT"], "quantity": "1"}],
    )
    assert first_of_theirs["number"] == f"Q-{_year()}-00001"

    listed = (
        await client.get(f"/v1/quotes?opportunity_id={deal['id']}", headers=tenant.headers)
    ).json()["data"]
    assert [q["number"] for q in listed] == [second["number"], quote["number"]]
    assert listed[1]["current"]["net_total"] == "3620.00"


async def test_multi_year_term_with_ramp_and_uplift(client: AsyncClient, tenant: Tenant) -> None:
    cat = await _catalogue(client, tenant)
    deal = await _deal(client, tenant)
    quote = await _quote(
        client,
        tenant.headers,
        deal,
        [
            {
                "product_id": cat["SEAT"],
                "quantity": "10",
                "year_quantities": ["10", "20", "30"],
                "discount_pct": "10",
            },
            {"product_id": cat["LOOM"], "quantity": "5", "discount_amount": "120"},
        ],
        term_months=30,
        annual_uplift_pct="5",
    )
    current = quote["current"]
    assert current["term_months"] == 30 and current["annual_uplift_pct"] == "5.00"
    seat, loom = current["line_items"]
    years = [
        (y["year"], y["months"], y["list_amount"], y["discount"], y["net_amount"])
        for y in seat["years"]
    ]
    # 30 months = two full years and a 6-month third; list × 1.05^(year − 1) × months / 12.
    # Y1 10 × 100 = 1000.00, 10 % = 100.00
    # Y2 20 × 100 × 1.05 = 2100.00, 210.00
    # Y3 30 × 100 × 1.1025 × 6/12 = 1653.75, 165.375 → 165.38 (half up)
    assert years == [
        (1, 12, "1000.00", "100.00", "900.00"),
        (2, 12, "2100.00", "210.00", "1890.00"),
        (3, 6, "1653.75", "165.38", "1488.37"),
    ]
    assert [Decimal(y["quantity"]) for y in seat["years"]] == [10, 20, 30]
    assert (seat["list_amount"], seat["discount"], seat["net_amount"]) == (
        "4753.75",
        "475.38",
        "4278.37",
    )
    # LOOM volume 5 units → 100 each every year; the 120.00 amount discount is per year,
    # prorated in the short year: Y1 500.00 − 120; Y2 525.00 − 120; Y3 500 × 1.1025 / 2 =
    # 275.625 → 275.63 − 60.00.
    assert [(y["list_amount"], y["discount"], y["net_amount"]) for y in loom["years"]] == [
        ("500.00", "120.00", "380.00"),
        ("525.00", "120.00", "405.00"),
        ("275.63", "60.00", "215.63"),
    ]
    assert (loom["list_amount"], loom["discount"], loom["net_amount"]) == (
        "1300.63",
        "300.00",
        "1000.63",
    )
    # subtotal 4753.75 + 1300.63 = 6054.38; discount 775.38; net = TCV 5279.00;
    # 775.38 / 6054.38 = 12.8069… % → 12.81; ACV = 5279.00 / 2.5 years = 2111.60.
    assert _totals(current) == ("6054.38", "775.38", "5279.00", "12.81", "2111.60", "5279.00")

    # Dropping the term reprices as a one-off: year 1 only, no uplift.
    # SEAT 10 × 100 − 10 % = 900.00; LOOM 500.00 − 120.00 = 380.00;
    # subtotal 1500.00, discount 220.00 (14.666… → 14.67 %), net 1280.00.
    patched = await client.patch(
        f"/v1/quotes/{quote['id']}", json={"term_months": None}, headers=tenant.headers
    )
    current = (await _ok(patched))["current"]
    assert current["term_months"] is None
    assert _line_amounts(current) == [
        ("1000.00", "100.00", "900.00"),
        ("500.00", "120.00", "380.00"),
    ]
    assert _totals(current) == ("1500.00", "220.00", "1280.00", "14.67", "1280.00", "1280.00")


async def test_line_validation(client: AsyncClient, tenant: Tenant) -> None:
    cat = await _catalogue(client, tenant)
    deal = await _deal(client, tenant)
    headers = tenant.headers
    for line in (
        {"product_id": cat["SEAT"], "quantity": "0"},
        {"product_id": cat["SEAT"], "quantity": "1", "discount_pct": "101"},
        {"product_id": cat["SEAT"], "quantity": "1", "discount_pct": "5", "discount_amount": "1"},
        {"product_id": str(uuid.uuid4()), "quantity": "1"},
    ):
        refused = await client.post(
            "/v1/quotes", json={"opportunity_id": deal["id"], "line_items": [line]}, headers=headers
        )
        assert_problem(refused, 422, "validation_failed")
    unknown_deal = await client.post(
        "/v1/quotes", json={"opportunity_id": str(uuid.uuid4())}, headers=headers
    )
    assert_problem(unknown_deal, 422, "validation_failed")
    # A deactivated product cannot be quoted.
    off = await client.patch(
        f"/v1/products/{cat['SENSOR']}", json={"active": False}, headers=headers
    )
    assert off.status_code == 200
    refused = await client.post(
        "/v1/quotes",
        json={
            "opportunity_id": deal["id"],
            "line_items": [{"product_id": cat["SENSOR"], "quantity": "1"}],
        },
        headers=headers,
    )
    problem = assert_problem(refused, 422, "validation_failed")
    assert problem["errors"][0]["field"] == "body.product_id"
    # A currency without a price book.
    no_book = await client.post(
        "/v1/quotes", json={"opportunity_id": deal["id"], "currency": "USD"}, headers=headers
    )
    assert_problem(no_book, 409, "no_price_book")
    # Nothing was created.
    assert (await client.get("/v1/quotes", headers=headers)).json()["data"] == []


async def test_customer_book_overrides_the_standard_book(
    client: AsyncClient, tenant: Tenant
) -> None:
    cat = await _catalogue(client, tenant)
    headers = tenant.headers
    acme = await create_account(client, headers, name="Acme")
    special = await create(
        client,
        "/v1/price-books",
        headers,
        {"name": "Acme prices", "currency": "TRY", "account_id": acme["id"]},
    )
    put = await client.put(
        f"/v1/price-books/{special['id']}/entries",
        json={"product_id": cat["SEAT"], "unit_price": "90"},
        headers=headers,
    )
    assert put.status_code == 200, put.text
    lines = [
        {"product_id": cat["SEAT"], "quantity": "2"},
        {"product_id": cat["LOOM"], "quantity": "5"},
    ]

    acme_quote = await _quote(
        client, headers, await _deal(client, tenant, account_id=acme["id"]), lines
    )
    assert acme_quote["price_book_id"] == special["id"]
    seat, loom = acme_quote["current"]["line_items"]
    # SEAT from Acme's book: 2 × 90 = 180.00; LOOM is not in it: the standard 5 × 100.
    assert seat["net_amount"] == "180.00"
    assert seat["price_snapshot"]["price_book_id"] == special["id"]
    assert seat["price_snapshot"]["unit_price"] == "90"
    assert loom["net_amount"] == "500.00"
    assert loom["price_snapshot"]["price_book_id"] == cat["book"]["id"]
    assert acme_quote["current"]["net_total"] == "680.00"

    # Any other account gets the standard price: 2 × 100.
    other_quote = await _quote(client, headers, await _deal(client, tenant), lines)
    assert other_quote["price_book_id"] == cat["book"]["id"]
    assert other_quote["current"]["line_items"][0]["net_amount"] == "200.00"
    assert other_quote["current"]["net_total"] == "700.00"

    # A product priced in neither book is refused.
    unpriced = await create(client, "/v1/products", headers, {"sku": "GHOST", "name": "Ghost"})
    refused = await client.post(
        f"/v1/quotes/{acme_quote['id']}/line-items",
        json={"product_id": unpriced["id"], "quantity": "1"},
        headers=headers,
    )
    assert_problem(refused, 422, "validation_failed")

    # An explicit book wins over the account's; a book in another currency is refused.
    explicit = await _quote(
        client,
        headers,
        await _deal(client, tenant, account_id=acme["id"]),
        lines,
        price_book_id=cat["book"]["id"],
    )
    assert explicit["price_book_id"] == cat["book"]["id"]
    assert explicit["current"]["net_total"] == "700.00"
    euro = await create(client, "/v1/price-books", headers, {"name": "EUR", "currency": "EUR"})
    refused = await client.post(
        "/v1/quotes",
        json={"opportunity_id": acme_quote["opportunity_id"], "price_book_id": euro["id"]},
        headers=headers,
    )
    assert_problem(refused, 422, "validation_failed")

    # A later price change does not touch existing quotes (the price is snapshotted).
    await client.put(
        f"/v1/price-books/{special['id']}/entries",
        json={"product_id": cat["SEAT"], "unit_price": "1"},
        headers=headers,
    )
    again = (await client.get(f"/v1/quotes/{acme_quote['id']}", headers=headers)).json()
    assert again["current"]["net_total"] == "680.00"


# --- versions -----------------------------------------------------------------------------


async def test_draft_edits_stay_in_version_one(client: AsyncClient, tenant: Tenant) -> None:
    cat = await _catalogue(client, tenant)
    headers = tenant.headers
    quote = await _quote(
        client, headers, await _deal(client, tenant), [{"product_id": cat["SEAT"], "quantity": "1"}]
    )
    url = f"/v1/quotes/{quote['id']}"

    terms = await _ok(
        await client.patch(url, json={"payment_terms_days": 45, "notes": "net 45"}, headers=headers)
    )
    assert terms["current"]["payment_terms_days"] == 45
    assert terms["current"]["notes"] == "net 45"

    added = await client.post(
        f"{url}/line-items", json={"product_id": cat["LOOM"], "quantity": "5"}, headers=headers
    )
    assert added.status_code == 201, added.text
    seat, loom = added.json()["current"]["line_items"]
    assert loom["position"] == 2
    assert added.json()["current"]["net_total"] == "600.00"  # 100 + 5 × 100

    # SEAT: 2 × 100 = 200.00, 5 % off = 10.00 → 190.00; with LOOM 500.00 → 690.00.
    changed = await _ok(
        await client.patch(
            f"{url}/line-items/{seat['id']}",
            json={"quantity": "2", "discount_pct": "5"},
            headers=headers,
        )
    )
    assert _line_amounts(changed["current"]) == [
        ("200.00", "10.00", "190.00"),
        ("500.00", "0.00", "500.00"),
    ]
    both = await client.patch(
        f"{url}/line-items/{seat['id']}", json={"discount_amount": "3"}, headers=headers
    )
    assert_problem(both, 422, "validation_failed")
    # Switching from a percentage to an amount: clear one, set the other.
    switched = await _ok(
        await client.patch(
            f"{url}/line-items/{seat['id']}",
            json={"discount_pct": None, "discount_amount": "25"},
            headers=headers,
        )
    )
    assert switched["current"]["line_items"][0]["net_amount"] == "175.00"

    removed = await _ok(await client.delete(f"{url}/line-items/{loom['id']}", headers=headers))
    assert [li["id"] for li in removed["current"]["line_items"]] == [seat["id"]]
    # 200.00 − 25.00 = 175.00; 25 / 200 = 12.50 %.
    assert _totals(removed["current"]) == ("200.00", "25.00", "175.00", "12.50", "175.00", "175.00")
    missing = await client.delete(f"{url}/line-items/{loom['id']}", headers=headers)
    assert_problem(missing, 404, "not_found")
    missing = await client.patch(
        f"{url}/line-items/{uuid.uuid4()}", json={"quantity": "1"}, headers=headers
    )
    assert_problem(missing, 404, "not_found")

    assert removed["current_version"] == 1 and removed["status"] == "draft"
    versions = (await client.get(f"{url}/versions", headers=headers)).json()["data"]
    assert [v["number"] for v in versions] == [1]

    # Stale If-Match is refused.
    stale = await client.patch(
        url, json={"notes": "x"}, headers={**headers, "If-Match": f'"{quote["version"]}"'}
    )
    assert_problem(stale, 412)


async def test_submitted_version_is_immutable(client: AsyncClient, tenant: Tenant) -> None:
    cat = await _catalogue(client, tenant)
    headers = tenant.headers
    quote = await _quote(
        client,
        headers,
        await _deal(client, tenant),
        [{"product_id": cat["SEAT"], "quantity": "10", "discount_pct": "10"}],
    )
    url = f"/v1/quotes/{quote['id']}"
    seat_id = quote["current"]["line_items"][0]["id"]
    # 10 % is within the policy's "none needed": approved at once.
    submitted = await _ok(await _post(client, headers, quote, "submit"))
    assert submitted["status"] == "approved"
    assert submitted["current"]["approval"] == "none_needed"
    assert submitted["current"]["submitted_at"] is not None
    again = await _post(client, headers, quote, "submit")
    assert_problem(again, 409, "not_draft")
    v1 = (await client.get(f"{url}/versions/1", headers=headers)).json()

    # Editing the approved quote (by the old line id) makes version 2, a draft.
    edited = await _ok(
        await client.patch(f"{url}/line-items/{seat_id}", json={"quantity": "12"}, headers=headers)
    )
    assert edited["status"] == "draft"
    assert edited["current_version"] == 2
    assert edited["current"]["number"] == 2
    assert edited["current"]["approval"] is None
    assert edited["current"]["submitted_at"] is None
    assert edited["current"]["net_total"] == "1080.00"  # 12 × 100 − 10 %
    assert edited["current"]["line_items"][0]["id"] != seat_id
    # Further edits stay in version 2.
    edited = await _ok(await client.patch(url, json={"notes": "v2"}, headers=headers))
    assert edited["current_version"] == 2

    versions = (await client.get(f"{url}/versions", headers=headers)).json()["data"]
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[1] == v1
    assert v1["net_total"] == "900.00"
    assert v1["approval"] == "none_needed"
    assert v1["notes"] is None
    assert Decimal(v1["line_items"][0]["quantity"]) == 10
    assert (await client.get(f"{url}/versions/3", headers=headers)).status_code == 404

    # Version 2 has no approval yet: it is neither sent nor accepted.
    assert_problem(await _post(client, headers, quote, "send"), 409, "approval_required")
    assert_problem(await _post(client, headers, quote, "accept"), 409, "approval_required")
    assert (await _ok(await _post(client, headers, quote, "submit")))["status"] == "approved"
    sent = await _ok(await _post(client, headers, quote, "send"))
    assert sent["status"] == "sent" and sent["sent_at"] is not None
    # Editing a sent quote makes version 3.
    edited = await _ok(await client.patch(url, json={"payment_terms_days": 14}, headers=headers))
    assert (edited["status"], edited["current_version"]) == ("draft", 3)
    v2 = (await client.get(f"{url}/versions/2", headers=headers)).json()
    assert v2["payment_terms_days"] == 30 and v2["approval"] == "none_needed"


async def _rep_with_manager(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> tuple[dict[str, Any], Headers]:
    manager = await create_user(
        client, tenant.headers, role="manager", approval_max_discount_pct="20"
    )
    rep = await create_user(client, tenant.headers, role="rep", manager_id=manager["id"])
    return manager, await key_for(app, tenant, scopes=["*"], user_id=uuid.UUID(rep["id"]))


async def test_editing_a_pending_quote_supersedes_its_approval(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    cat = await _catalogue(client, tenant)
    _, rep = await _rep_with_manager(app, client, tenant)
    quote = await _quote(
        client,
        rep,
        await _deal(client, tenant),
        [{"product_id": cat["SEAT"], "quantity": "10", "discount_pct": "15"}],
    )
    url = f"/v1/quotes/{quote['id']}"
    submitted = await _ok(await _post(client, rep, quote, "submit"))
    assert submitted["status"] == "pending_approval"
    assert submitted["current"]["approval"] is None
    # Without the approval it is neither sent nor accepted nor declined.
    assert_problem(await _post(client, rep, quote, "send"), 409, "approval_required")
    assert_problem(await _post(client, rep, quote, "accept"), 409, "approval_required")
    decline = await client.post(f"{url}/decline", json={}, headers=rep)
    assert_problem(decline, 409, "not_sent")
    [request] = (await client.get(f"/v1/approvals?quote_id={quote['id']}", headers=rep)).json()[
        "data"
    ]
    assert request["status"] == "pending" and request["quote_version"] == 1

    edited = await _ok(await client.patch(url, json={"notes": "better terms"}, headers=rep))
    assert (edited["status"], edited["current_version"]) == ("draft", 2)
    [request] = (await client.get(f"/v1/approvals?quote_id={quote['id']}", headers=rep)).json()[
        "data"
    ]
    assert request["status"] == "superseded"
    assert request["decided_at"] is not None
    assert {s["status"] for s in request["steps"]} == {"cancelled"}
    # The new version goes through approval again.
    resubmitted = await _ok(await _post(client, rep, quote, "submit"))
    assert resubmitted["status"] == "pending_approval"
    requests = (await client.get(f"/v1/approvals?quote_id={quote['id']}", headers=rep)).json()[
        "data"
    ]
    assert sorted((r["quote_version"], r["status"]) for r in requests) == [
        (1, "superseded"),
        (2, "pending"),
    ]


# --- send, accept, decline ----------------------------------------------------------------


async def test_send_accept_and_decline(client: AsyncClient, tenant: Tenant) -> None:
    cat = await _catalogue(client, tenant)
    headers = tenant.headers
    deal = await _deal(client, tenant, amount="50000", close_date="2030-06-30")
    # SEAT 10 × 100 = 1000.00 − 5 % = 950.00; LOOM 12 units → 12 × 80 = 960.00; TCV 1910.00.
    lines = [
        {"product_id": cat["SEAT"], "quantity": "10", "discount_pct": "5"},
        {"product_id": cat["LOOM"], "quantity": "12"},
    ]
    first = await _quote(client, headers, deal, lines)
    second = await _quote(client, headers, deal, lines)
    assert first["current"]["tcv"] == "1910.00"
    # A draft can be neither sent nor accepted.
    assert_problem(await _post(client, headers, first, "send"), 409, "approval_required")
    assert_problem(await _post(client, headers, first, "accept"), 409, "approval_required")

    approved = await _ok(await _post(client, headers, first, "submit"))
    assert (approved["status"], approved["current"]["approval"]) == ("approved", "none_needed")
    # Only a sent quote is declined.
    assert_problem(
        await client.post(f"/v1/quotes/{first['id']}/decline", json={}, headers=headers),
        409,
        "not_sent",
    )
    sent = await _ok(await _post(client, headers, first, "send"))
    assert sent["status"] == "sent"
    assert_problem(await _post(client, headers, first, "send"), 409, "approval_required")
    accepted = await _ok(await _post(client, headers, first, "accept"))
    assert accepted["status"] == "accepted"
    assert accepted["accepted_version"] == 1
    assert accepted["accepted_at"] is not None
    # Accepting synced the deal's amount to the quote's TCV.
    synced = (await client.get(f"/v1/opportunities/{deal['id']}", headers=headers)).json()
    assert Decimal(synced["amount"]) == Decimal("1910.00")
    assert synced["currency"] == "TRY"

    # Only one accepted quote per deal.
    await _ok(await _post(client, headers, second, "submit"))
    assert_problem(await _post(client, headers, second, "accept"), 409, "already_accepted")
    await _ok(await _post(client, headers, second, "send"))
    assert_problem(await _post(client, headers, second, "accept"), 409, "already_accepted")
    declined = await _ok(
        await client.post(
            f"/v1/quotes/{second['id']}/decline", json={"reason": "went with v1"}, headers=headers
        )
    )
    assert declined["status"] == "rejected"
    listed = await client.get(
        f"/v1/quotes?opportunity_id={deal['id']}&status=rejected", headers=headers
    )
    assert [q["id"] for q in listed.json()["data"]] == [second["id"]]

    # Closed quotes cannot change any more.
    for closed in (first, second):
        url = f"/v1/quotes/{closed['id']}"
        line_id = closed["current"]["line_items"][0]["id"]
        for response in (
            await client.patch(url, json={"notes": "late"}, headers=headers),
            await client.post(
                f"{url}/line-items",
                json={"product_id": cat["SEAT"], "quantity": "1"},
                headers=headers,
            ),
            await client.patch(
                f"{url}/line-items/{line_id}", json={"quantity": "1"}, headers=headers
            ),
            await client.delete(f"{url}/line-items/{line_id}", headers=headers),
        ):
            assert_problem(response, 409, "quote_closed")
        assert_problem(await _post(client, headers, closed, "submit"), 409, "not_draft")
    assert_problem(await _post(client, headers, first, "accept"), 409, "approval_required")
    # A quote of another deal can still be accepted.
    other_deal = await _deal(client, tenant)
    third = await _quote(client, headers, other_deal, lines)
    await _ok(await _post(client, headers, third, "submit"))
    assert (await _ok(await _post(client, headers, third, "accept")))["status"] == "accepted"


async def test_an_empty_quote_is_not_submitted(client: AsyncClient, tenant: Tenant) -> None:
    cat = await _catalogue(client, tenant)
    quote = await _quote(client, tenant.headers, await _deal(client, tenant), [])
    refused = await _post(client, tenant.headers, quote, "submit")
    problem = assert_problem(refused, 409, "empty_quote")
    assert [e["code"] for e in problem["errors"]] == ["empty_quote"]
    still = (await client.get(f"/v1/quotes/{quote['id']}", headers=tenant.headers)).json()
    assert (still["status"], still["current"]["submitted_at"]) == ("draft", None)
    # With a line it is.
    await client.post(
        f"/v1/quotes/{quote['id']}/line-items",
        json={"product_id": cat["SEAT"], "quantity": "1"},
        headers=tenant.headers,
    )
    assert (await _ok(await _post(client, tenant.headers, quote, "submit")))["status"] == "approved"


async def test_quotes_satisfy_the_deal_stage_requirements(
    client: AsyncClient, tenant: Tenant
) -> None:
    cat = await _catalogue(client, tenant)
    headers = tenant.headers
    deal = await _deal(client, tenant, amount="10000", close_date="2030-06-30")

    async def move(stage: str) -> Any:
        return await client.post(
            f"/v1/opportunities/{deal['id']}/stage", json={"stage": stage}, headers=headers
        )

    assert (await move("proposal")).status_code == 200
    refused = assert_problem(await move("presentation"), 409, "stage_requirements_unmet")
    assert [e["code"] for e in refused["errors"]] == ["quote_exists"]
    quote = await _quote(client, headers, deal, [{"product_id": cat["SEAT"], "quantity": "2"}])
    moved = await move("presentation")
    assert moved.status_code == 200, moved.text
    # Negotiation needs an approved quote (or one needing no approval); a draft is not.
    refused = assert_problem(await move("negotiation"), 409, "stage_requirements_unmet")
    assert [e["code"] for e in refused["errors"]] == ["quote_approved"]
    await _ok(await _post(client, headers, quote, "submit"))
    moved = await move("negotiation")
    assert moved.status_code == 200, moved.text
    assert moved.json()["stage"] == "negotiation"


async def test_a_pending_quote_does_not_open_negotiation(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    cat = await _catalogue(client, tenant)
    _, rep = await _rep_with_manager(app, client, tenant)
    deal = await _deal(client, tenant, amount="10000", close_date="2030-06-30", stage="proposal")
    quote = await _quote(
        client, rep, deal, [{"product_id": cat["SEAT"], "quantity": "1", "discount_pct": "15"}]
    )
    moved = await client.post(
        f"/v1/opportunities/{deal['id']}/stage", json={"stage": "presentation"}, headers=rep
    )
    assert moved.status_code == 200, moved.text
    assert (await _ok(await _post(client, rep, quote, "submit")))["status"] == "pending_approval"
    refused = await client.post(
        f"/v1/opportunities/{deal['id']}/stage", json={"stage": "negotiation"}, headers=rep
    )
    problem = assert_problem(refused, 409, "stage_requirements_unmet")
    assert [e["code"] for e in problem["errors"]] == ["quote_approved"]


# --- tenancy ------------------------------------------------------------------------------


async def test_every_quote_endpoint_is_tenant_scoped(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    cat = await _catalogue(client, tenant)
    deal = await _deal(client, tenant)
    quote = await _quote(
        client, tenant.headers, deal, [{"product_id": cat["SEAT"], "quantity": "1"}]
    )
    url = f"/v1/quotes/{quote['id']}"
    line_id = quote["current"]["line_items"][0]["id"]
    theirs = other_tenant.headers
    their_cat = await _catalogue(client, other_tenant)

    for response in (
        await client.get(url, headers=theirs),
        await client.patch(url, json={"notes": "x"}, headers=theirs),
        await client.get(f"{url}/versions", headers=theirs),
        await client.get(f"{url}/versions/1", headers=theirs),
        await client.post(
            f"{url}/line-items",
            json={"product_id": their_cat["SEAT"], "quantity": "1"},
            headers=theirs,
        ),
        await client.patch(f"{url}/line-items/{line_id}", json={"quantity": "2"}, headers=theirs),
        await client.delete(f"{url}/line-items/{line_id}", headers=theirs),
        await client.get(f"{url}/approval-plan", headers=theirs),
        await client.post(f"{url}/submit", headers=theirs),
        await client.post(f"{url}/recall", headers=theirs),
        await client.post(f"{url}/send", headers=theirs),
        await client.post(f"{url}/accept", headers=theirs),
        await client.post(f"{url}/decline", json={}, headers=theirs),
    ):
        assert_problem(response, 404, "not_found")
    assert (await client.get("/v1/quotes", headers=theirs)).json()["data"] == []
    listed = await client.get(f"/v1/quotes?opportunity_id={deal['id']}", headers=theirs)
    assert listed.json()["data"] == []

    # Another organization's deal, price book or product cannot be named.
    their_deal = await _deal(client, other_tenant)
    for body in (
        {"opportunity_id": deal["id"]},
        {"opportunity_id": their_deal["id"], "price_book_id": cat["book"]["id"]},
        {
            "opportunity_id": their_deal["id"],
            "line_items": [{"product_id": cat["SEAT"], "quantity": "1"}],
        },
    ):
        refused = await client.post("/v1/quotes", json=body, headers=theirs)
        assert_problem(refused, 422, "validation_failed")

    # The owner's quote is untouched.
    mine = (await client.get(url, headers=tenant.headers)).json()
    assert (mine["status"], mine["current_version"], mine["current"]["net_total"]) == (
        "draft",
        1,
        "100.00",
    )
    assert len(mine["current"]["line_items"]) == 1


async def test_an_old_line_id_addresses_its_own_copy_only(
    client: AsyncClient, tenant: Tenant
) -> None:
    cat = await _catalogue(client, tenant)
    headers = tenant.headers
    quote = await _quote(
        client,
        headers,
        await _deal(client, tenant),
        [
            {"product_id": cat["SEAT"], "quantity": "1"},
            {"product_id": cat["LOOM"], "quantity": "1"},
        ],
    )
    url = f"/v1/quotes/{quote['id']}"
    _, old_loom = quote["current"]["line_items"]
    await _ok(await _post(client, headers, quote, "submit"))
    # Version 2 drops LOOM (addressed by its version-1 id) and adds SENSOR.
    dropped = await _ok(await client.delete(f"{url}/line-items/{old_loom['id']}", headers=headers))
    assert dropped["current_version"] == 2
    assert [li["product_id"] for li in dropped["current"]["line_items"]] == [cat["SEAT"]]
    added = await _ok(
        await client.post(
            f"{url}/line-items",
            json={"product_id": cat["SENSOR"], "quantity": "1"},
            headers=headers,
        )
    )
    sensor = added["current"]["line_items"][1]
    assert sensor["product_id"] == cat["SENSOR"]
    # The version-1 LOOM id names a line no longer in the quote: it must not edit SENSOR.
    stale = await client.patch(
        f"{url}/line-items/{old_loom['id']}", json={"quantity": "7"}, headers=headers
    )
    assert_problem(stale, 404, "not_found")
    current = (await client.get(url, headers=headers)).json()["current"]
    assert [Decimal(li["quantity"]) for li in current["line_items"]] == [1, 1]
