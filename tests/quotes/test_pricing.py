"""Pricing by hand-computed tables and by properties (hypothesis)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.quotes.pricing import (
    Line,
    PriceEntry,
    PricingError,
    Terms,
    Tier,
    entry_problems,
    list_amount,
    price_line,
    round_money,
    totals,
)

TIERS = (Tier(D(10), D(100)), Tier(D(50), D(80)), Tier(None, D(60)))
VOLUME = PriceEntry("volume", tiers=TIERS)
GRADUATED = PriceEntry("graduated", tiers=TIERS)
FLAT = PriceEntry("flat", unit_price=D("99.99"))


@pytest.mark.parametrize(
    ("quantity", "volume", "graduated"),
    [
        (D(0), D(0), D(0)),
        (D(1), D(100), D(100)),
        (D(10), D(1000), D(1000)),  # the last unit of tier 1
        (D(11), D(880), D(1080)),  # volume: 11 × 80; graduated: 10 × 100 + 1 × 80
        (D(50), D(4000), D(4200)),  # 50 × 80; 1000 + 40 × 80
        (D(60), D(3600), D(4800)),  # 60 × 60; 1000 + 3200 + 10 × 60
    ],
)
def test_volume_and_graduated_tables(quantity: D, volume: D, graduated: D) -> None:
    assert list_amount(VOLUME, quantity) == volume
    assert list_amount(GRADUATED, quantity) == graduated


def test_flat_fees_and_minimum_quantity() -> None:
    with_fees = PriceEntry("graduated", tiers=(Tier(D(5), D(10), D(50)), Tier(None, D(8), D(20))))
    assert list_amount(with_fees, D(3)) == D(80)  # 3 × 10 + 50
    assert list_amount(with_fees, D(7)) == D(136)  # 50 + 50 + 2 × 8 + 20
    minimum = PriceEntry("flat", unit_price=D(5), min_quantity=D(10))
    with pytest.raises(PricingError):
        list_amount(minimum, D(3))
    assert list_amount(minimum, D(10)) == D(50)


def test_multi_year_ramp_with_uplift_and_partial_year() -> None:
    line = Line(FLAT, D(3), discount_pct=D("12.5"), year_quantities=(D(3), D(5), D(8)))
    priced = price_line(line, Terms("TRY", term_months=30, annual_uplift_pct=D(5)))
    # year 1: 3 × 99.99 = 299.97, discount 37.49625 → 37.50
    # year 2: 5 × 99.99 × 1.05 = 524.9475 → 524.95, discount 65.61875 → 65.62
    # year 3 (6 months): 8 × 99.99 × 1.1025 × 0.5 = 440.9559 → 440.96, discount 55.12
    assert [(y.list_amount, y.discount, y.net_amount) for y in priced.years] == [
        (D("299.97"), D("37.50"), D("262.47")),
        (D("524.95"), D("65.62"), D("459.33")),
        (D("440.96"), D("55.12"), D("385.84")),
    ]
    result = totals([priced], Terms("TRY", 30, D(5)))
    assert (result.subtotal, result.discount_total, result.net_total) == (
        D("1265.88"),
        D("158.24"),
        D("1107.64"),
    )
    assert result.effective_discount_pct == D("12.50")
    assert result.tcv == D("1107.64")
    assert result.acv == D("443.06")  # 1107.64 / 2.5


def test_amount_discount_is_capped_and_currency_minor_units() -> None:
    line = Line(PriceEntry("flat", unit_price=D(10)), D(1), discount_amount=D(25))
    assert price_line(line, Terms("EUR")).net_amount == D(0)
    assert round_money(D("10.5"), "JPY") == D(11)
    assert round_money(D("1.2345"), "KWD") == D("1.235")
    assert round_money(D("0.005"), "TRY") == D("0.01")  # half-up


def test_invalid_entries_and_discounts() -> None:
    assert entry_problems(PriceEntry("flat")) == ["a flat entry needs a unit_price ≥ 0"]
    assert entry_problems(PriceEntry("volume")) == ["a volume entry needs tiers"]
    bad = PriceEntry("graduated", tiers=(Tier(None, D(1)), Tier(D(5), D(1))))
    assert "only the last tier may be unbounded (up_to null)" in entry_problems(bad)
    assert entry_problems(PriceEntry("magic")) == [
        "pricing_model must be one of flat, volume, graduated"
    ]
    with pytest.raises(PricingError):
        price_line(Line(FLAT, D(1), discount_pct=D(101)), Terms("TRY"))
    with pytest.raises(PricingError):
        price_line(Line(FLAT, D(1), discount_pct=D(1), discount_amount=D(1)), Terms("TRY"))
    bounded = PriceEntry("volume", tiers=(Tier(D(10), D(1)),))
    with pytest.raises(PricingError):
        list_amount(bounded, D(11))


money = st.decimals(min_value=D(0), max_value=D(10000), places=2)
quantities = st.integers(min_value=0, max_value=500).map(D)


@settings(max_examples=200, deadline=None)
@given(
    quantity=quantities,
    price=money,
    pct=st.decimals(min_value=D(0), max_value=D(100), places=2),
    term=st.one_of(st.none(), st.integers(min_value=1, max_value=72)),
    uplift=st.decimals(min_value=D(0), max_value=D(20), places=2),
)
def test_totals_add_up_and_discount_is_never_negative(
    quantity: D, price: D, pct: D, term: int | None, uplift: D
) -> None:
    terms = Terms("TRY", term, uplift)
    lines = [
        price_line(Line(PriceEntry("flat", unit_price=price), quantity, discount_pct=pct), terms),
        price_line(Line(GRADUATED, quantity), terms),
    ]
    result = totals(lines, terms)
    assert result.subtotal == sum(line.list_amount for line in lines)
    assert result.net_total == result.subtotal - result.discount_total
    assert result.discount_total >= 0 and result.net_total >= 0
    assert D(0) <= result.effective_discount_pct <= D(100)
    for line in lines:
        assert line.net_amount == sum(y.net_amount for y in line.years)
        for year in line.years:
            assert year.list_amount == round_money(year.list_amount, "TRY")


@settings(max_examples=200, deadline=None)
@given(quantity=quantities)
def test_graduated_never_undercuts_volume_with_falling_tier_prices(quantity: D) -> None:
    """With prices falling by tier, graduated charges the early units at the higher
    prices, so it is never below volume pricing at the same quantity — and both grow with
    the quantity."""
    assert list_amount(GRADUATED, quantity) >= list_amount(VOLUME, quantity)
    assert list_amount(GRADUATED, quantity + 1) > list_amount(GRADUATED, quantity)
