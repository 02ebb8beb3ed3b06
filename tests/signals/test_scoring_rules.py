"""The ``signal_count`` engagement rule of the pure scoring module (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.leads.scoring import Engagement, Rule, rule_problems, score, signal_windows

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)


def signal_rule(name: str, points: int, **value: Any) -> Rule:
    return Rule(f"id-{name}", name, "engagement", "signal_count", "matches", value, points)


TRIAL = signal_rule("trial", 15, signal_type="trial_started", min_count=1, within_days=14)
BUSY = signal_rule("busy", 10, signal_type="feature_used", min_count=3, within_days=7)


def test_windows_are_the_distinct_type_and_days_pairs() -> None:
    again = signal_rule("again", 1, signal_type="trial_started", min_count=2, within_days=14)
    assert signal_windows([TRIAL, BUSY, again]) == [("feature_used", 7), ("trial_started", 14)]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, 0),
        ({("trial_started", 14): 1}, 15),
        ({("trial_started", 14): 1, ("feature_used", 7): 2}, 15),
        ({("trial_started", 14): 2, ("feature_used", 7): 3}, 25),
        ({("feature_used", 14): 9}, 0),  # another window does not count
    ],
)
def test_a_signal_rule_awards_its_points_at_the_minimum_count(
    counts: dict[tuple[str, int], int], expected: int
) -> None:
    result = score([TRIAL, BUSY], {}, Engagement(signal_counts=counts), NOW)
    assert result.total == expected
    assert sum(item["points"] for item in result.breakdown) == expected
    assert all(item["category"] == "engagement" for item in result.breakdown)


@pytest.mark.parametrize(
    "value",
    [
        {"signal_type": "trial_started", "min_count": 1},
        {"signal_type": "party", "min_count": 1, "within_days": 7},
        {"signal_type": "trial_started", "min_count": 0, "within_days": 7},
        {"signal_type": "trial_started", "min_count": 1, "within_days": True},
        {"signal_type": "trial_started", "min_count": 1, "within_days": 7, "extra": 1},
        [],
    ],
)
def test_invalid_signal_rules_are_refused(value: Any) -> None:
    assert rule_problems("engagement", "signal_count", "matches", value)


def test_a_valid_signal_rule() -> None:
    value = {"signal_type": "active_users", "min_count": 2, "within_days": 30}
    assert rule_problems("engagement", "signal_count", "matches", value) == []
