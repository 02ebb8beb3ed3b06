"""Quote pricing, pure Decimal math.

Price-book entries price a quantity by one of three models:
  flat       quantity × unit price;
  volume     the tier the quantity reaches prices every unit (plus that tier's flat fee);
  graduated  each tier prices its own units (plus the flat fee of every tier reached).
Tiers are ordered by ``up_to`` (inclusive; ``None`` = no upper bound).

A line may discount by a percentage or an amount (never below zero). Multi-year terms
(``term_months``) price every year: the year's quantity (ramps), the list price raised by
the annual uplift from the second year on, a last partial year pro rata. Every amount is
rounded half-up to the currency's minor unit per line and year; totals are sums of rounded
lines. Effective discount % = (1 − net / list) × 100; TCV = net total over the term;
ACV = TCV per year of term.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

MINOR_UNITS = {
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "ISK": 0,
    "KWD": 3,
    "BHD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}
HUNDRED = Decimal(100)
ZERO = Decimal(0)
MODELS = ("flat", "volume", "graduated")


class PricingError(ValueError):
    """An entry or line that cannot be priced (the message says why)."""


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-MINOR_UNITS.get(currency.upper(), 2))


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class PriceEntry:
    model: str
    unit_price: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    min_quantity: Decimal | None = None


def entry_problems(entry: PriceEntry) -> list[str]:
    problems = []
    if entry.model not in MODELS:
        problems.append(f"pricing_model must be one of {', '.join(MODELS)}")
    elif entry.model == "flat":
        if entry.unit_price is None or entry.unit_price < 0:
            problems.append("a flat entry needs a unit_price ≥ 0")
    else:
        if not entry.tiers:
            problems.append(f"a {entry.model} entry needs tiers")
        bounds = [t.up_to for t in entry.tiers]
        if any(b is None for b in bounds[:-1]):
            problems.append("only the last tier may be unbounded (up_to null)")
        finite = [b for b in bounds if b is not None]
        if finite != sorted(finite) or len(set(finite)) != len(finite):
            problems.append("tier up_to values must increase")
        if any(b is not None and b <= 0 for b in bounds):
            problems.append("tier up_to must be positive")
        if any(t.unit_price < 0 or t.flat_fee < 0 for t in entry.tiers):
            problems.append("tier prices and fees must be ≥ 0")
    return problems


def list_amount(entry: PriceEntry, quantity: Decimal) -> Decimal:
    """The unrounded list amount of ``quantity`` units."""
    if quantity < 0:
        raise PricingError("quantity must not be negative")
    if entry.min_quantity is not None and ZERO < quantity < entry.min_quantity:
        raise PricingError(f"the minimum quantity is {entry.min_quantity}")
    if entry.model == "flat":
        assert entry.unit_price is not None
        return quantity * entry.unit_price
    if quantity == 0:
        return ZERO
    if entry.model == "volume":
        for tier in entry.tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                return quantity * tier.unit_price + tier.flat_fee
        raise PricingError(f"quantity {quantity} is above the last tier")
    total, floor = ZERO, ZERO
    for tier in entry.tiers:
        ceiling = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if ceiling > floor:
            total += (ceiling - floor) * tier.unit_price + tier.flat_fee
            floor = ceiling
        if tier.up_to is None or quantity <= tier.up_to:
            return total
    raise PricingError(f"quantity {quantity} is above the last tier")


@dataclass(frozen=True, slots=True)
class Line:
    entry: PriceEntry
    quantity: Decimal
    discount_pct: Decimal | None = None
    discount_amount: Decimal | None = None
    # Per-year quantities for ramps (year 1, 2, …); missing years repeat the last one.
    year_quantities: tuple[Decimal, ...] = ()


@dataclass(frozen=True, slots=True)
class Terms:
    currency: str
    term_months: int | None = None
    annual_uplift_pct: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class YearPrice:
    year: int
    months: int
    quantity: Decimal
    list_amount: Decimal
    discount: Decimal
    net_amount: Decimal


@dataclass(frozen=True, slots=True)
class PricedLine:
    list_amount: Decimal
    discount: Decimal
    net_amount: Decimal
    years: tuple[YearPrice, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: Decimal
    discount_total: Decimal
    net_total: Decimal
    effective_discount_pct: Decimal
    acv: Decimal
    tcv: Decimal


def _years(term_months: int | None) -> list[tuple[int, int]]:
    """(year, months) for the term; a quote without a term is one 12-month period."""
    if term_months is None:
        return [(1, 12)]
    full, rest = divmod(term_months, 12)
    return [(y, 12) for y in range(1, full + 1)] + ([(full + 1, rest)] if rest else [])


def price_line(line: Line, terms: Terms) -> PricedLine:
    if line.discount_pct is not None and line.discount_amount is not None:
        raise PricingError("give a discount percentage or an amount, not both")
    if line.discount_pct is not None and not ZERO <= line.discount_pct <= HUNDRED:
        raise PricingError("discount percentage must be between 0 and 100")
    if line.discount_amount is not None and line.discount_amount < 0:
        raise PricingError("discount amount must not be negative")
    uplift = 1 + terms.annual_uplift_pct / HUNDRED
    years = []
    periods = _years(terms.term_months)
    for index, (year, months) in enumerate(periods):
        quantities = line.year_quantities or (line.quantity,)
        quantity = quantities[min(index, len(quantities) - 1)]
        factor = uplift ** (year - 1) * Decimal(months) / 12
        listed = round_money(list_amount(line.entry, quantity) * factor, terms.currency)
        if line.discount_pct is not None:
            discount = round_money(listed * line.discount_pct / HUNDRED, terms.currency)
        elif line.discount_amount is not None:
            # An amount discount is per year of the term, prorated like the price.
            share = round_money(line.discount_amount * Decimal(months) / 12, terms.currency)
            discount = min(share, listed)
        else:
            discount = round_money(ZERO, terms.currency)
        years.append(YearPrice(year, months, quantity, listed, discount, listed - discount))
    return PricedLine(
        list_amount=sum((y.list_amount for y in years), ZERO),
        discount=sum((y.discount for y in years), ZERO),
        net_amount=sum((y.net_amount for y in years), ZERO),
        years=tuple(years),
    )


def totals(lines: Sequence[PricedLine], terms: Terms) -> Totals:
    # Sums of rounded lines; quantizing only fixes the scale (an empty quote is 0.00, not 0).
    subtotal = round_money(sum((line.list_amount for line in lines), ZERO), terms.currency)
    discount = round_money(sum((line.discount for line in lines), ZERO), terms.currency)
    net = subtotal - discount
    effective = (
        Decimal("0.00")
        if subtotal == 0
        else ((1 - net / subtotal) * HUNDRED).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    )
    term_years = Decimal(terms.term_months or 12) / 12
    return Totals(
        subtotal=subtotal,
        discount_total=discount,
        net_total=net,
        effective_discount_pct=effective,
        acv=round_money(net / term_years, terms.currency),
        tcv=net,
    )
