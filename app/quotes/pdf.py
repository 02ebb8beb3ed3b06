"""A quote version as a PDF (fpdf2, Noto Sans: Turkish characters render as they are)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import fontpkg_noto_sans
from fpdf import FPDF

FONT = Path(fontpkg_noto_sans.__file__).parent / "files" / "NotoSans[wdth,wght].ttf"
COLUMNS = (
    ("#", 8),
    ("Product", 62),
    ("Qty", 16),
    ("Pricing", 34),
    ("List", 24),
    ("Discount", 22),
    ("Net", 24),
)


def money(amount: Decimal | str, currency: str) -> str:
    return f"{Decimal(amount):,.2f} {currency}"


def _pricing(snapshot: dict[str, Any]) -> str:
    if snapshot["pricing_model"] == "flat":
        return f"{Decimal(snapshot['unit_price']):,.2f} / unit"
    tiers = ", ".join(
        f"≤{t['up_to']}: {Decimal(t['unit_price']):,.2f}"
        if t["up_to"] is not None
        else f"more: {Decimal(t['unit_price']):,.2f}"
        for t in snapshot["tiers"]
    )
    return f"{snapshot['pricing_model']} ({tiers})"


def render(
    *,
    seller: str,
    buyer: dict[str, Any],
    deal_name: str,
    quote: dict[str, Any],
    version: dict[str, Any],
    lines: list[dict[str, Any]],
) -> bytes:
    currency = quote["currency"]
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("Noto", "", str(FONT))
    pdf.add_page()
    pdf.set_font("Noto", size=16)
    pdf.cell(
        0,
        10,
        f"Quote {quote['number']} — version {version['number']}",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_font("Noto", size=10)
    for label, value in (
        ("Seller", seller),
        (
            "Buyer",
            ", ".join(v for v in (buyer["name"], buyer.get("city"), buyer.get("country")) if v),
        ),
        ("Deal", deal_name),
        ("Date", date.today().isoformat()),
        ("Valid until", version["valid_until"] or "—"),
        ("Payment terms", f"{version['payment_terms_days']} days"),
        ("Term", f"{version['term_months']} months" if version["term_months"] else "one-off"),
        ("Annual uplift", f"{version['annual_uplift_pct']} %"),
        ("Status", quote["status"]),
    ):
        pdf.cell(35, 6, f"{label}:")
        pdf.cell(0, 6, str(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Noto", size=9)
    for title, width in COLUMNS:
        pdf.cell(width, 7, title, border=1)
    pdf.ln()
    for index, line in enumerate(lines, start=1):
        snapshot = line["price_snapshot"]
        discount = (
            f"{line['discount_pct']} %"
            if line["discount_pct"] is not None
            else money(line["discount"], currency)
        )
        cells = (
            str(index),
            f"{snapshot['product_name']} ({snapshot['product_sku']})",
            str(line["quantity"]),
            _pricing(snapshot),
            money(line["list_amount"], ""),
            discount,
            money(line["net_amount"], ""),
        )
        for (_, width), text in zip(COLUMNS, cells, strict=True):
            pdf.cell(width, 6, text[: int(width / 1.6)], border=1)
        pdf.ln()
    if version["term_months"]:
        pdf.ln(3)
        pdf.set_font("Noto", size=10)
        pdf.cell(0, 7, "Multi-year schedule", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Noto", size=9)
        years: dict[int, list[Decimal]] = {}
        for line in lines:
            for year in line["years"]:
                totals = years.setdefault(year["year"], [Decimal(0), Decimal(0), Decimal(0)])
                totals[0] += Decimal(year["list_amount"])
                totals[1] += Decimal(year["discount"])
                totals[2] += Decimal(year["net_amount"])
        for year_number, (listed, year_discount, net) in sorted(years.items()):
            pdf.cell(
                0,
                6,
                f"Year {year_number}: list {money(listed, currency)}, discount "
                f"{money(year_discount, currency)}, net {money(net, currency)}",
                new_x="LMARGIN",
                new_y="NEXT",
            )
    pdf.ln(3)
    pdf.set_font("Noto", size=11)
    for label, key in (
        ("Subtotal", "subtotal"),
        ("Discount", "discount_total"),
        ("Net total", "net_total"),
        ("ACV", "acv"),
        ("TCV", "tcv"),
    ):
        pdf.cell(40, 7, label)
        pdf.cell(0, 7, money(version[key], currency), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(40, 7, "Effective discount")
    pdf.cell(0, 7, f"{version['effective_discount_pct']} %", new_x="LMARGIN", new_y="NEXT")
    if version["notes"]:
        pdf.ln(3)
        pdf.set_font("Noto", size=9)
        pdf.multi_cell(0, 5, str(version["notes"]))
    return bytes(pdf.output())
