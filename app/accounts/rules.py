"""Pure rule: an account's segment from its size (org-configurable thresholds)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class SegmentRules:
    """An account reaching either threshold (employees or revenue) is in that segment."""

    mid_market_min_employees: int = 100
    enterprise_min_employees: int = 1000
    mid_market_min_revenue: Decimal = Decimal("10000000")
    enterprise_min_revenue: Decimal = Decimal("250000000")

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> SegmentRules:
        raw = settings.get("segment_rules") or {}
        defaults = cls()
        return cls(
            mid_market_min_employees=int(
                raw.get("mid_market_min_employees", defaults.mid_market_min_employees)
            ),
            enterprise_min_employees=int(
                raw.get("enterprise_min_employees", defaults.enterprise_min_employees)
            ),
            mid_market_min_revenue=Decimal(
                str(raw.get("mid_market_min_revenue", defaults.mid_market_min_revenue))
            ),
            enterprise_min_revenue=Decimal(
                str(raw.get("enterprise_min_revenue", defaults.enterprise_min_revenue))
            ),
        )


def derive_segment(
    rules: SegmentRules, employee_count: int | None, annual_revenue: Decimal | None
) -> str:
    employees = employee_count or 0
    revenue = annual_revenue or Decimal(0)
    if employees >= rules.enterprise_min_employees or revenue >= rules.enterprise_min_revenue:
        return "enterprise"
    if employees >= rules.mid_market_min_employees or revenue >= rules.mid_market_min_revenue:
        return "mid_market"
    return "smb"


def normalize_domain(value: str | None) -> str | None:
    """``https://WWW.Acme.com.tr/about`` → ``acme.com.tr``; the key for duplicate checks."""
    if value is None:
        return None
    domain = value.strip().lower()
    for scheme in ("https://", "http://"):
        domain = domain.removeprefix(scheme)
    domain = domain.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]
    domain = domain.removeprefix("www.").strip(".")
    return domain or None


# Legal-form and filler words dropped from company names before matching.
LEGAL_WORDS = frozenset(
    {
        "a",
        "s",
        "as",
        "ltd",
        "sti",
        "inc",
        "llc",
        "gmbh",
        "bv",
        "sa",
        "san",
        "tic",
        "ve",
        "co",
        "corp",
        "limited",
        "anonim",
        "sirketi",
        "holding",
    }
)


def company_key(name: str) -> str:
    """``Anadolu Tekstil San. ve Tic. A.Ş.`` → ``anadolutekstil``: the name-matching key
    (accents and Turkish dotted/dotless i folded, legal forms dropped)."""
    decomposed = unicodedata.normalize("NFKD", name.replace("ı", "i").replace("İ", "I"))
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = re.findall(r"[a-z0-9]+", ascii_only)
    kept = [w for w in words if w not in LEGAL_WORDS]
    return "".join(kept or words)
