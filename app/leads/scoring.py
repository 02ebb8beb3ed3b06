"""Lead scoring, pure: score = Σ points of the rules a lead matches, with the breakdown.

Fit rules look at the lead's fields: ``equals``, ``in``, ``range`` ({"min", "max"},
inclusive; either may be omitted) and ``contains`` (case-insensitive substring). Engagement
rules look at its activities: ``activity_count`` ({"kinds": [...], "days": N, "min": M}:
at least M activities of those kinds in the last N days) and ``recency`` ({"days": N}: an
activity within the last N days). ``signal_count`` ({"signal_type": T, "min_count": M,
"within_days": N}) looks at its engagement signals: at least M signals of type T that
occurred in the last N days; the caller counts them per (type, days) window
(``signal_windows``) and passes the counts in.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

FIT_FIELDS = (
    "title",
    "seniority",
    "company_name",
    "domain",
    "industry",
    "employee_count",
    "annual_revenue",
    "country",
    "city",
    "segment",
    "source",
    "campaign",
    "email",
)
FIT_OPERATORS = ("equals", "in", "range", "contains")
ENGAGEMENT_FIELDS = ("activity_count", "recency", "signal_count")
SIGNAL_TYPES = (
    "trial_started",
    "feature_used",
    "seats_added",
    "active_users",
    "web_visit",
    "email_opened",
    "content_downloaded",
    "other",
)
SignalWindow = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    category: str
    field: str
    operator: str
    value: Any
    points: int


@dataclass(frozen=True, slots=True)
class Engagement:
    """The lead's activities: (kind, occurred_at) pairs; and its signal counts per
    (signal type, days) window of the ``signal_count`` rules."""

    activities: Sequence[tuple[str, datetime]] = field(default_factory=tuple)
    signal_counts: Mapping[SignalWindow, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Score:
    total: int
    breakdown: list[dict[str, Any]]


def rule_problems(category: str, field_name: str, operator: str, value: Any) -> list[str]:
    """Why a rule definition is invalid (empty when it is valid)."""
    if category == "fit":
        if field_name not in FIT_FIELDS:
            return [f"field must be one of {', '.join(FIT_FIELDS)}"]
        if operator not in FIT_OPERATORS:
            return [f"operator must be one of {', '.join(FIT_OPERATORS)}"]
        if operator == "in" and not (isinstance(value, list) and value):
            return ["'in' needs a non-empty list"]
        if operator == "range" and not (
            isinstance(value, dict)
            and set(value) <= {"min", "max"}
            and value
            and all(_number(v) is not None for v in value.values())
        ):
            return ['\'range\' needs {"min": number, "max": number} (either may be omitted)']
        if operator in ("equals", "contains") and (
            isinstance(value, bool) or not isinstance(value, str | int | float)
        ):
            return [f"'{operator}' needs a single value"]
        return []
    if field_name not in ENGAGEMENT_FIELDS or operator != "matches":
        return [
            "engagement rules use field activity_count, recency or signal_count with "
            "operator 'matches'"
        ]
    if field_name == "signal_count":
        return _signal_rule_problems(value)
    # type() rather than isinstance(): a JSON true is not a count of days.
    if not isinstance(value, dict) or type(value.get("days")) is not int or value["days"] < 1:
        return ['engagement rules need {"days": positive integer, …}']
    if field_name == "activity_count" and not (
        type(value.get("min")) is int
        and value["min"] >= 1
        and isinstance(value.get("kinds", []), list)
    ):
        return ['activity_count needs {"days": N, "min": M, "kinds": [...]}']
    return []


def _signal_rule_problems(value: Any) -> list[str]:
    shape = 'signal_count needs {"signal_type": T, "min_count": M >= 1, "within_days": N >= 1}'
    if not isinstance(value, dict) or set(value) != {"signal_type", "min_count", "within_days"}:
        return [shape]
    if value["signal_type"] not in SIGNAL_TYPES:
        return [f"signal_type must be one of {', '.join(SIGNAL_TYPES)}"]
    if not all(type(value[k]) is int and value[k] >= 1 for k in ("min_count", "within_days")):
        return [shape]
    return []


def signal_windows(rules: Sequence[Rule]) -> list[SignalWindow]:
    """The (signal type, days) windows the ``signal_count`` rules need counted."""
    return sorted(
        {
            (r.value["signal_type"], r.value["within_days"])
            for r in rules
            if r.category == "engagement" and r.field == "signal_count"
        }
    )


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    return _number_in(str(value))


@functools.lru_cache(maxsize=4096)
def _number_in(text: str) -> Decimal | None:
    """Cached: an import compares the same few values (countries, industries, rule values)
    for every record, and a failed ``Decimal`` costs an exception each time."""
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _fit(rule: Rule, lead: Mapping[str, Any]) -> bool:
    actual = lead.get(rule.field)
    if actual is None:
        return False
    if rule.operator == "equals":
        left, right = _number(actual), _number(rule.value)
        if left is not None and right is not None:
            return left == right  # 1000.00 equals "1000"
        return str(actual).casefold() == str(rule.value).casefold()
    if rule.operator == "in":
        return str(actual).casefold() in {str(v).casefold() for v in rule.value}
    if rule.operator == "contains":
        return str(rule.value).casefold() in str(actual).casefold()
    number = _number(actual)
    if number is None:
        return False
    low, high = _number(rule.value.get("min")), _number(rule.value.get("max"))
    return (low is None or number >= low) and (high is None or number <= high)


def _engaged(rule: Rule, engagement: Engagement, now: datetime) -> bool:
    if rule.field == "signal_count":
        window = (rule.value["signal_type"], rule.value["within_days"])
        needed: int = rule.value["min_count"]
        return engagement.signal_counts.get(window, 0) >= needed
    since = now - timedelta(days=rule.value["days"])
    recent = [(k, at) for k, at in engagement.activities if since <= at <= now]
    if rule.field == "recency":
        return bool(recent)
    kinds: list[str] = rule.value.get("kinds") or []
    minimum: int = rule.value["min"]
    return sum(1 for k, _ in recent if not kinds or k in kinds) >= minimum


def score(
    rules: Sequence[Rule], lead: Mapping[str, Any], engagement: Engagement, now: datetime
) -> Score:
    breakdown: list[dict[str, Any]] = []
    for rule in rules:
        matched = _fit(rule, lead) if rule.category == "fit" else _engaged(rule, engagement, now)
        if matched:
            breakdown.append(
                {
                    "rule_id": rule.id,
                    "rule": rule.name,
                    "category": rule.category,
                    "points": rule.points,
                }
            )
    return Score(sum(int(item["points"]) for item in breakdown), breakdown)
