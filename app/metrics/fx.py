"""Currency conversion inside aggregate SQL.

The same rule as ``service.rate_on`` — the latest rate of the pair on or before the day,
else the inverse of the latest reverse rate, 1 for the corporate currency itself — but as
range joins, so a query converts thousands of rows with one hash join instead of a
lookup per row. Each rate is valid from its date until the pair's next rate (``valid_to``
exclusive, NULL for the latest).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CTE, ColumnElement, Select, and_, case, func, literal, or_, select
from sqlalchemy.orm import QueryableAttribute

from app.models import ExchangeRate

# A column or ORM attribute usable in an expression.
Expr = ColumnElement[Any] | QueryableAttribute[Any]


class Converter:
    """Adds the joins that convert an amount column to ``corporate`` on a given day."""

    def __init__(self, corporate: str) -> None:
        self.corporate = corporate
        # Rates quoted into the corporate currency: 1 <currency> = rate <corporate>.
        self._direct = self._ranges(
            ExchangeRate.from_currency, ExchangeRate.to_currency, ExchangeRate.rate, "fx_direct"
        )
        # Rates quoted out of the corporate currency, inverted.
        self._reverse = self._ranges(
            ExchangeRate.to_currency,
            ExchangeRate.from_currency,
            literal(1) / ExchangeRate.rate,
            "fx_reverse",
        )

    def _ranges(
        self,
        currency: Expr,
        quoted_in: Expr,
        rate: Expr,
        name: str,
    ) -> CTE:
        return (
            select(
                currency.label("currency"),
                ExchangeRate.date.label("valid_from"),
                func.lead(ExchangeRate.date)
                .over(partition_by=currency, order_by=ExchangeRate.date)
                .label("valid_to"),
                rate.label("rate"),
            )
            .where(quoted_in == self.corporate)
            .cte(name)
            # Computed once per statement (then hashed), not once per converted row.
            .prefix_with("MATERIALIZED")
        )

    def join_rate(
        self, stmt: Select[Any], currency: Expr, day: Expr
    ) -> tuple[Select[Any], ColumnElement[Any]]:
        """``stmt`` with the rate joins added, and the rate expression: NULL when no rate
        of the currency is known on that day (the caller counts those as unconverted)."""
        direct = self._direct.alias()
        reverse = self._reverse.alias()

        def valid(ranges: Any) -> ColumnElement[bool]:
            return and_(
                ranges.c.currency == currency,
                ranges.c.valid_from <= day,
                or_(ranges.c.valid_to.is_(None), day < ranges.c.valid_to),
            )

        stmt = stmt.outerjoin(direct, valid(direct)).outerjoin(reverse, valid(reverse))
        rate = case(
            (currency == self.corporate, literal(1)),
            else_=func.coalesce(direct.c.rate, reverse.c.rate),
        )
        return stmt, rate
