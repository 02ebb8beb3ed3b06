"""The lead lifecycle, pure.

    new → mql → sal → sql → converted
    disqualified (with a reason) from any open status; recycled (back to nurture) from
    sal or sql; a recycled lead can become an MQL again.

A referral or event lead may skip ahead (new → sal); moving to ``sql`` requires the four
BANT items confirmed (unless the organization turns that off). ``converted`` is reached only
through conversion, which needs ``sql`` (or ``sal`` if the organization allows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPEN_STATUSES = ("new", "mql", "sal", "sql", "recycled")
BANT_ITEMS = ("budget", "authority", "need", "timeline")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("mql", "sal", "disqualified"),
    "mql": ("sal", "disqualified"),
    "sal": ("sql", "recycled", "disqualified"),
    "sql": ("recycled", "disqualified"),
    "recycled": ("mql", "disqualified"),
    "converted": (),
    "disqualified": (),
}
# The timestamp each status sets when reached.
STATUS_TIMESTAMPS = {
    "mql": "mql_at",
    "sal": "sal_at",
    "sql": "sql_at",
    "converted": "converted_at",
    "disqualified": "disqualified_at",
    "recycled": "recycled_at",
}


@dataclass(frozen=True, slots=True)
class Unmet:
    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail}


def unconfirmed_bant(bant: Mapping[str, Any]) -> list[str]:
    return [
        item
        for item in BANT_ITEMS
        if not (isinstance(bant.get(item), Mapping) and bant[item].get("confirmed") is True)
    ]


def check_transition(
    current: str,
    target: str,
    *,
    bant: Mapping[str, Any],
    require_bant: bool = True,
    reason_code: str | None = None,
) -> list[Unmet]:
    """Every reason the move is refused (empty when allowed)."""
    if target == "converted":
        return [Unmet("use_conversion", "a lead is converted through POST /convert")]
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(TRANSITIONS[current]) or "none (final status)"
        return [Unmet("invalid_transition", f"from {current} the lead can go to: {allowed}")]
    unmet: list[Unmet] = []
    if target == "sql" and require_bant:
        unmet += [
            Unmet(f"bant_{item}_unconfirmed", f"BANT {item} must be recorded and confirmed")
            for item in unconfirmed_bant(bant)
        ]
    if target == "disqualified" and not reason_code:
        unmet.append(Unmet("reason_required", "disqualifying a lead needs a reason code"))
    return unmet


def check_conversion(status: str, *, allow_from_sal: bool) -> list[Unmet]:
    allowed = ("sql", "sal") if allow_from_sal else ("sql",)
    if status == "converted":
        return [Unmet("already_converted", "the lead has been converted already")]
    if status not in allowed:
        return [Unmet("not_qualified", f"only a lead in {' or '.join(allowed)} converts")]
    return []
