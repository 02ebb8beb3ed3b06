"""Territory matching, pure.

A territory matches a record (values compared with ``fold``) when every dimension it
constrains (countries, cities,
industries, segments; an empty list means "any") contains the record's value. Territories
are tried by ascending priority; the first match wins; no match → the default queue (none).
Two territories at the same priority that could both match one record are a conflict: their
constraints intersect on every dimension.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DIMENSIONS = ("countries", "cities", "industries", "segments")
RECORD_FIELDS = {
    "countries": "country",
    "cities": "city",
    "industries": "industry",
    "segments": "segment",
}


@functools.lru_cache(maxsize=16_384)
def fold(value: str) -> str:
    """Compare values without case, accents or the Turkish dotted/dotless i:
    "İSTANBUL", "Istanbul" and "istanbul" are one city. Cached: an import folds the same
    few hundred countries, cities and industries for every one of its records."""
    decomposed = unicodedata.normalize("NFKD", value.replace("ı", "i").replace("İ", "I"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


@dataclass(frozen=True, slots=True)
class TerritoryRule:
    id: str
    name: str
    priority: int
    countries: frozenset[str] = frozenset()
    cities: frozenset[str] = frozenset()
    industries: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    # Folded once: an import matches every territory against up to 100,000 records.
    _folded: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folded = {d: frozenset(fold(v) for v in getattr(self, d)) for d in DIMENSIONS}
        object.__setattr__(self, "_folded", folded)

    def constraint(self, dimension: str) -> frozenset[str]:
        return self._folded[dimension]

    def matches(self, record: Mapping[str, str | None]) -> bool:
        for dimension in DIMENSIONS:
            allowed = self.constraint(dimension)
            value = record.get(RECORD_FIELDS[dimension])
            if allowed and (value is None or fold(value) not in allowed):
                return False
        return True


def first_match(
    territories: Sequence[TerritoryRule], record: Mapping[str, str | None]
) -> TerritoryRule | None:
    for territory in sorted(territories, key=lambda t: (t.priority, t.name, t.id)):
        if territory.matches(record):
            return territory
    return None


def overlaps(a: TerritoryRule, b: TerritoryRule) -> bool:
    """Whether some record could match both (checked for equal priorities)."""
    for dimension in DIMENSIONS:
        left, right = a.constraint(dimension), b.constraint(dimension)
        if left and right and not (left & right):
            return False
    return True


def conflicts(candidate: TerritoryRule, others: Sequence[TerritoryRule]) -> list[TerritoryRule]:
    return [
        other
        for other in others
        if other.id != candidate.id
        and other.priority == candidate.priority
        and overlaps(candidate, other)
    ]


def next_member(members: Sequence[str], last_index: int) -> tuple[str | None, int]:
    """Round-robin: the member after the one who got the last record."""
    if not members:
        return None, last_index
    index = (last_index + 1) % len(members)
    return members[index], index
