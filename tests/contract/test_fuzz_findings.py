"""What the contract fuzzer (test_openapi_contract.py) found, pinned as plain tests: each
was a 500 or an undocumented answer before it was fixed."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient

from tests.factories import Tenant, assert_problem, create, create_account

TOO_BIG = 2**31  # one past a PostgreSQL INTEGER


async def _lead(client: AsyncClient, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    body = {"last_name": "Yılmaz", "email": f"{uuid.uuid4().hex[:10]}@firma.com.tr", **fields}
    return await create(client, "/v1/leads", tenant.headers, body)


async def test_a_territory_whose_records_were_deleted_can_be_deleted(
    client: AsyncClient, tenant: Tenant
) -> None:
    # The deleted records still referenced it: the delete failed on the foreign key (409
    # "a concurrent request won", undocumented for this operation).
    territory = await create(
        client,
        "/v1/territories",
        tenant.headers,
        {"name": "Turkey", "priority": 10, "countries": ["TR"]},
    )
    lead = await _lead(client, tenant, country="TR")
    account = await create_account(client, tenant.headers, country="TR")
    assert lead["territory_id"] == account["territory_id"] == territory["id"]
    for path in (f"/v1/leads/{lead['id']}", f"/v1/accounts/{account['id']}"):
        assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    response = await client.delete(f"/v1/territories/{territory['id']}", headers=tenant.headers)
    assert response.status_code == 204, response.text


async def test_a_campaign_that_deleted_leads_came_from_stays_in_use(
    client: AsyncClient, tenant: Tenant
) -> None:
    campaign = await create(
        client, "/v1/campaigns", tenant.headers, {"name": "Webinar", "type": "webinar"}
    )
    lead = await _lead(client, tenant, campaign_id=campaign["id"])
    deleted = await client.delete(f"/v1/leads/{lead['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    response = await client.delete(f"/v1/campaigns/{campaign['id']}", headers=tenant.headers)
    assert_problem(response, 409, "campaign_in_use")


async def test_integers_beyond_the_database_columns_are_refused(
    client: AsyncClient, tenant: Tenant
) -> None:
    quote = f"/v1/quotes/{uuid.uuid4()}"
    for path in (f"{quote}/versions/{TOO_BIG}", f"{quote}/versions/{TOO_BIG}/pdf"):
        assert_problem(await client.get(path, headers=tenant.headers), 400, "invalid_parameter")
    for name in ("score_min", "score_max"):
        response = await client.get("/v1/leads", params={name: TOO_BIG}, headers=tenant.headers)
        assert_problem(response, 400, "invalid_parameter")
    document = {"filename": "a.pdf", "checksum_sha256": "0" * 64, "size_bytes": TOO_BIG}
    response = await client.post(
        f"/v1/contracts/{uuid.uuid4()}/documents", json=document, headers=tenant.headers
    )
    assert_problem(response, 422, "validation_failed")


async def test_amounts_with_more_digits_than_stored_are_422(
    client: AsyncClient, tenant: Tenant
) -> None:
    # 1e26 with two decimals overflowed the decimal context while being normalised.
    body = {"period": "2026-Q2", "category": "marketing", "amount": 1e26}
    response = await client.post("/v1/spend", json=body, headers=tenant.headers)
    assert_problem(response, 422, "validation_failed")
    body["amount"] = "123456789012345678.99"  # NUMERIC(20, 2) holds this
    assert (await client.post("/v1/spend", json=body, headers=tenant.headers)).status_code == 201


async def test_reports_need_a_period_before_theirs_and_a_sane_length(
    client: AsyncClient, tenant: Tenant
) -> None:
    # Growth compares with the period before, which cannot start before the year 1.
    early = {"from": "0001-01-01", "to": "0001-12-31"}
    for path in ("/v1/metrics/revenue-growth", "/v1/metrics/summary"):
        response = await client.get(path, params=early, headers=tenant.headers)
        assert_problem(response, 400, "invalid_period")
    response = await client.get(
        "/v1/metrics/revenue-growth/series",
        params={"from": "0001-01-01", "to": "0001-03-31"},
        headers=tenant.headers,
    )
    assert_problem(response, 400, "invalid_period")
    # CLTV looks back a year from the period's end: before the year 1 there is none …
    response = await client.get(
        "/v1/metrics/cac-ltv-ratio/series",
        params={"from": "0001-02-01", "to": "0011-01-01"},
        headers=tenant.headers,
    )
    assert_problem(response, 400, "invalid_period")
    # … and a year before 29 February is the 28th (it was a ValueError, a 500).
    leap = {"from": "2024-01-01", "to": "2024-02-28"}
    response = await client.get("/v1/metrics/cltv", params=leap, headers=tenant.headers)
    assert response.status_code == 200, response.text
    # A report by month has at most as many rows as a series has points.
    response = await client.get(
        "/v1/metrics/revenue",
        params={"from": "1900-01-01", "to": "2026-12-31", "group_by": "month"},
        headers=tenant.headers,
    )
    assert_problem(response, 400, "too_many_groups")


async def test_imports_that_cannot_be_read_are_422(client: AsyncClient, tenant: Tenant) -> None:
    for content_type, body, code in (
        ("application/json", b"\x80[]", "malformed_json"),
        ("application/json", b"[" * 100_000, "malformed_json"),
        # A cell over the csv module's field size limit.
        ("text/csv", b"last_name\n" + b"x" * 200_000 + b"\n", "validation_failed"),
    ):
        response = await client.post(
            "/v1/leads/import",
            content=body,
            headers={**tenant.headers, "Content-Type": content_type},
        )
        problem = assert_problem(response, 422, code)
        if content_type == "text/csv":
            assert problem["errors"] == [{"field": "body", "code": "malformed_csv"}]


async def test_amount_filters_longer_than_stored_amounts_are_400(
    client: AsyncClient, tenant: Tenant
) -> None:
    # The bound overflowed NUMERIC(20, 2) in the comparison.
    for value in ("-1.2828228381614913e+283", "1e30", "0.001"):
        response = await client.get(
            "/v1/opportunities", params={"amount_max": value}, headers=tenant.headers
        )
        assert_problem(response, 400, "invalid_parameter")
    ok = await client.get("/v1/opportunities", params={"amount_min": "0.5"}, headers=tenant.headers)
    assert ok.status_code == 200, ok.text


async def test_a_deleted_deals_activities_and_quotes(client: AsyncClient, tenant: Tenant) -> None:
    headers = tenant.headers
    book = await create(client, "/v1/price-books", headers, {"name": "TRY", "currency": "TRY"})
    seat = await create(client, "/v1/products", headers, {"sku": "SEAT", "name": "Seat"})
    entry = {"product_id": seat["id"], "unit_price": "100"}
    put = await client.put(f"/v1/price-books/{book['id']}/entries", json=entry, headers=headers)
    assert put.status_code == 200, put.text
    account = await create_account(client, headers)
    deal = await create(
        client,
        "/v1/opportunities",
        headers,
        {"name": "Deal", "account_id": account["id"], "amount": "1000", "close_date": "2030-06-30"},
    )
    lines = [{"product_id": seat["id"], "quantity": "2"}]
    quote = await create(
        client, "/v1/quotes", headers, {"opportunity_id": deal["id"], "line_items": lines}
    )
    for action in ("submit", "send"):
        moved = await client.post(f"/v1/quotes/{quote['id']}/{action}", headers=headers)
        assert moved.status_code == 200, moved.text
    call = {"kind": "call", "subject": "Discovery call", "opportunity_id": deal["id"]}
    activity = await create(client, "/v1/activities", headers, call)
    deleted = await client.delete(f"/v1/opportunities/{deal['id']}", headers=headers)
    assert deleted.status_code == 204

    # Editing an activity touched the (gone) deal: an assertion failed, a 500.
    edited = await client.patch(
        f"/v1/activities/{activity['id']}", json={"subject": "Follow-up"}, headers=headers
    )
    assert edited.status_code == 200, edited.text
    # The issued version stays printable; the quote can no longer be won.
    pdf = await client.get(f"/v1/quotes/{quote['id']}/versions/1/pdf", headers=headers)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    accepted = await client.post(f"/v1/quotes/{quote['id']}/accept", headers=headers)
    assert_problem(accepted, 409, "deal_deleted")


async def test_renaming_to_a_taken_name_is_a_documented_409(
    client: AsyncClient, tenant: Tenant
) -> None:
    # The unique key answered instead (a generic 409 the operations did not document).
    product = await create(client, "/v1/products", tenant.headers, {"sku": "P", "name": "P"})
    rule = {"category": "fit", "field": "industry", "operator": "equals", "value": "textile"}
    policy_rules = [{"name": "any", "when": {}, "steps": [{"kind": "manager_chain"}]}]
    for path, body, code in (
        ("/v1/partners", {}, "duplicate_partner"),
        ("/v1/lead-scoring-rules", {**rule, "points": 5}, "duplicate_rule"),
        (
            "/v1/cross-sell-rules",
            {"trigger_family": "m", "months_after": 6, "suggest_product_id": product["id"]},
            "duplicate_cross_sell_rule",
        ),
        ("/v1/approval-policies", {"rules": policy_rules, "active": False}, "duplicate_policy"),
    ):
        await create(client, path, tenant.headers, {**body, "name": "First"})
        second = await create(client, path, tenant.headers, {**body, "name": "Second"})
        url = f"{path}/{second['id']}"
        renamed = await client.patch(url, json={"name": "First"}, headers=tenant.headers)
        assert_problem(renamed, 409, code)
        same = await client.patch(url, json={"name": "Second"}, headers=tenant.headers)
        assert same.status_code == 200, same.text
