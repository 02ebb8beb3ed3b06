"""The PDF of a quote version is a real PDF with the right totals and Turkish text."""

from __future__ import annotations

import io

from httpx import AsyncClient
from pypdf import PdfReader

from tests.factories import Tenant, assert_problem, create, create_account


async def test_quote_pdf_has_totals_and_turkish_characters(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    h = tenant.headers
    product = await create(
        client, "/v1/products", h, {"sku": "DOKUMA-1", "name": "Dokuma tezgâhı çözümü"}
    )
    book = await create(client, "/v1/price-books", h, {"name": "TL liste", "currency": "TRY"})
    entry = await client.put(
        f"/v1/price-books/{book['id']}/entries",
        headers=h,
        json={
            "product_id": product["id"],
            "pricing_model": "graduated",
            "tiers": [{"up_to": "10", "unit_price": "1000"}, {"up_to": None, "unit_price": "800"}],
        },
    )
    assert entry.status_code == 200, entry.text
    account = await create_account(client, h, name="Işık Örme Sanayi Ltd. Şti.", city="İzmir")
    deal = await create(
        client, "/v1/opportunities", h, {"account_id": account["id"], "name": "Güneşli fabrika"}
    )
    quote = await create(
        client,
        "/v1/quotes",
        h,
        {
            "opportunity_id": deal["id"],
            "term_months": 24,
            "annual_uplift_pct": "5",
            "notes": "Kurulum ücretsizdir; ödeme 30 gün içinde.",
            "line_items": [{"product_id": product["id"], "quantity": "20", "discount_pct": "25"}],
        },
    )
    response = await client.get(f"/v1/quotes/{quote['id']}/versions/1/pdf", headers=h)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    # year 1: 10 × 1000 + 10 × 800 = 18,000; year 2 (+5 %): 18,900; subtotal 36,900
    # discount 25 % → 9,225; net 27,675; ACV 27,675 / 2 = 13,837.50
    for expected in (
        "36,900.00 TRY",
        "9,225.00 TRY",
        "27,675.00 TRY",
        "13,837.50 TRY",
        "25.00 %",
        "Işık Örme Sanayi Ltd. Şti.",
        "İzmir",
        "Güneşli fabrika",
        "Dokuma tezgâhı",
        "Year 2",
        "ödeme 30 gün",
        quote["number"],
    ):
        assert expected in text, expected
    missing = await client.get(f"/v1/quotes/{quote['id']}/versions/9/pdf", headers=h)
    assert_problem(missing, 404)
    foreign = await client.get(
        f"/v1/quotes/{quote['id']}/versions/1/pdf", headers=other_tenant.headers
    )
    assert_problem(foreign, 404)
