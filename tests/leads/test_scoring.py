"""Pure lead scoring (app/leads/scoring.py, SPEC.md §4): each operator, engagement windows,
totals computed by hand, and the validation of rule definitions. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from app.leads.scoring import (
    FIT_FIELDS,
    Engagement,
    Rule,
    Score,
    rule_problems,
    score,
)

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
NOTHING = Engagement()


def fit(name: str, field: str, operator: str, value: Any, points: int) -> Rule:
    return Rule(f"id-{name}", name, "fit", field, operator, value, points)


def engaged(name: str, field: str, value: Any, points: int) -> Rule:
    return Rule(f"id-{name}", name, "engagement", field, "matches", value, points)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def matched(rules: list[Rule], lead: dict[str, Any], engagement: Engagement = NOTHING) -> set[str]:
    return {item["rule"] for item in score(rules, lead, engagement, NOW).breakdown}


LEAD: dict[str, Any] = {
    "title": "Satın Alma Müdürü (Purchasing Manager)",
    "seniority": "manager",
    "company_name": "Anadolu Tekstil A.Ş.",
    "domain": "anadolutekstil.com.tr",
    "industry": "Textile",
    "employee_count": 250,
    "annual_revenue": Decimal("45000000.00"),
    "country": "TR",
    "city": "Bursa",
    "segment": "mid_market",
    "source": "event",
    "campaign": "ITM 2026",
    "email": "ayse@anadolutekstil.com.tr",
}


# --- fit operators -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hit"),
    [("textile", True), ("TEXTILE", True), ("Textile", True), ("textiles", False), ("", False)],
)
def test_equals_is_case_insensitive_and_exact(value: str, hit: bool) -> None:
    rule = fit("industry", "industry", "equals", value, 10)
    assert matched([rule], LEAD) == ({"industry"} if hit else set())


def test_equals_compares_numbers_as_text() -> None:
    assert matched([fit("250", "employee_count", "equals", 250, 1)], LEAD) == {"250"}
    assert matched([fit("251", "employee_count", "equals", 251, 1)], LEAD) == set()


@pytest.mark.parametrize(
    ("values", "hit"),
    [
        (["textile", "manufacturing"], True),
        (["MANUFACTURING", "TEXTILE"], True),
        (["manufacturing", "retail"], False),
        (["text"], False),
    ],
)
def test_in(values: list[str], hit: bool) -> None:
    assert matched([fit("in", "industry", "in", values, 5)], LEAD) == ({"in"} if hit else set())


def test_in_with_numbers() -> None:
    assert matched([fit("in", "employee_count", "in", [100, 250, 500], 5)], LEAD) == {"in"}


@pytest.mark.parametrize(
    ("bounds", "hit"),
    [
        ({"min": 100, "max": 1000}, True),
        ({"min": 250, "max": 250}, True),  # both bounds inclusive
        ({"min": 250}, True),  # min only
        ({"min": 251}, False),
        ({"max": 250}, True),  # max only
        ({"max": 249}, False),
        ({"min": "100", "max": "249.99"}, False),
        ({"min": 250.0}, True),
    ],
)
def test_range_inclusive_with_either_bound(bounds: dict[str, Any], hit: bool) -> None:
    rule = fit("size", "employee_count", "range", bounds, 20)
    assert matched([rule], LEAD) == ({"size"} if hit else set())


def test_range_on_decimal_revenue() -> None:
    assert matched([fit("r", "annual_revenue", "range", {"min": 45000000}, 1)], LEAD) == {"r"}
    assert matched([fit("r", "annual_revenue", "range", {"max": "44999999.99"}, 1)], LEAD) == set()


def test_range_on_a_text_field_never_matches() -> None:
    assert matched([fit("r", "industry", "range", {"min": 0}, 1)], LEAD) == set()


@pytest.mark.parametrize(
    ("needle", "hit"),
    [("müdür", True), ("MANAGER", True), ("purchasing manager", True), ("director", False)],
)
def test_contains_is_a_case_insensitive_substring(needle: str, hit: bool) -> None:
    rule = fit("title", "title", "contains", needle, 15)
    assert matched([rule], LEAD) == ({"title"} if hit else set())


@pytest.mark.parametrize(
    ("field", "operator", "value"),
    [
        ("industry", "equals", "textile"),
        ("industry", "in", ["textile"]),
        ("industry", "contains", ""),
        ("employee_count", "range", {"min": 0}),
        ("employee_count", "range", {"max": 10**9}),
        ("title", "contains", "a"),
    ],
)
def test_a_missing_field_never_matches(field: str, operator: str, value: Any) -> None:
    rule = fit("r", field, operator, value, 10)
    assert matched([rule], {**LEAD, field: None}) == set()
    assert matched([rule], {k: v for k, v in LEAD.items() if k != field}) == set()
    # Sanity: with the field present the same rule matches.
    assert matched([rule], LEAD) == {"r"}


# --- engagement ----------------------------------------------------------------------------


def test_activity_count_with_kinds_window_and_minimum() -> None:
    activities = Engagement(
        (
            ("meeting", ago(1)),
            ("demo", ago(10)),
            ("meeting", ago(29)),
            ("meeting", ago(31)),  # outside 30 days
            ("email", ago(2)),
            ("email", ago(3)),
            ("call", NOW + timedelta(hours=1)),  # in the future: not counted
        )
    )

    def hit(value: dict[str, Any]) -> bool:
        return matched([engaged("e", "activity_count", value, 1)], {}, activities) == {"e"}

    # meetings/demos in 30 days: 3
    assert hit({"kinds": ["meeting", "demo"], "days": 30, "min": 3})
    assert not hit({"kinds": ["meeting", "demo"], "days": 30, "min": 4})
    # in 40 days: 4
    assert hit({"kinds": ["meeting", "demo"], "days": 40, "min": 4})
    # demos only: 1 in 30 days, none in 5
    assert hit({"kinds": ["demo"], "days": 30, "min": 1})
    assert not hit({"kinds": ["demo"], "days": 5, "min": 1})
    # no kinds (or an empty list) counts every kind: 5 in 30 days (the future call aside)
    assert hit({"days": 30, "min": 5})
    assert hit({"kinds": [], "days": 30, "min": 5})
    assert not hit({"days": 30, "min": 6})
    assert hit({"days": 3, "min": 3})  # meeting 1d, email 2d, email 3d (boundary inclusive)
    assert not hit({"kinds": ["call"], "days": 30, "min": 1})


def test_recency() -> None:
    def hit(activities: tuple[tuple[str, datetime], ...], days: int) -> bool:
        rule = engaged("recent", "recency", {"days": days}, 7)
        return matched([rule], {}, Engagement(activities)) == {"recent"}

    assert hit((("email", ago(6)),), 7)
    assert hit((("email", ago(7)),), 7)  # the boundary counts
    assert not hit((("email", ago(7.01)),), 7)
    assert not hit((), 7)
    assert not hit((("note", NOW + timedelta(days=1)),), 7)
    # recency ignores kinds and minimums.
    rule = engaged("recent", "recency", {"days": 7, "kinds": ["demo"], "min": 5}, 7)
    assert matched([rule], {}, Engagement((("email", ago(1)),))) == {"recent"}


# --- totals and breakdown ------------------------------------------------------------------


def test_total_and_breakdown_by_hand() -> None:
    rules = [
        fit("Textile", "industry", "in", ["textile", "apparel"], 20),  # ✓ +20
        fit("Mid-size", "employee_count", "range", {"min": 100, "max": 999}, 15),  # ✓ +15
        fit("Turkey", "country", "equals", "tr", 10),  # ✓ +10
        fit("Manager title", "title", "contains", "manager", 5),  # ✓ +5
        fit("Student", "title", "contains", "student", -50),  # ✗
        fit("Free mail", "domain", "contains", "gmail", -30),  # ✗
        fit("Partner", "source", "equals", "partner", 25),  # ✗
        engaged("Busy", "activity_count", {"kinds": ["meeting"], "days": 30, "min": 2}, 30),  # ✓
        engaged("Recent", "recency", {"days": 7}, 8),  # ✓ +8
        engaged("Very recent", "recency", {"days": 1}, 12),  # ✗
        fit("Competitor", "company_name", "contains", "tekstil", -40),  # ✓ -40
    ]
    activities = Engagement((("meeting", ago(3)), ("meeting", ago(20)), ("email", ago(2))))
    result = score(rules, LEAD, activities, NOW)
    assert result.total == 20 + 15 + 10 + 5 + 30 + 8 - 40 == 48
    assert result.breakdown == [
        {"rule_id": "id-Textile", "rule": "Textile", "category": "fit", "points": 20},
        {"rule_id": "id-Mid-size", "rule": "Mid-size", "category": "fit", "points": 15},
        {"rule_id": "id-Turkey", "rule": "Turkey", "category": "fit", "points": 10},
        {
            "rule_id": "id-Manager title",
            "rule": "Manager title",
            "category": "fit",
            "points": 5,
        },
        {"rule_id": "id-Busy", "rule": "Busy", "category": "engagement", "points": 30},
        {"rule_id": "id-Recent", "rule": "Recent", "category": "engagement", "points": 8},
        {"rule_id": "id-Competitor", "rule": "Competitor", "category": "fit", "points": -40},
    ]
    assert sum(item["points"] for item in result.breakdown) == result.total


def test_negative_points_can_make_the_total_negative() -> None:
    rules = [
        fit("Student", "title", "contains", "müdür", -50),
        fit("Bursa", "city", "equals", "BURSA", 5),
    ]
    assert score(rules, LEAD, NOTHING, NOW) == Score(
        -45,
        [
            {"rule_id": "id-Student", "rule": "Student", "category": "fit", "points": -50},
            {"rule_id": "id-Bursa", "rule": "Bursa", "category": "fit", "points": 5},
        ],
    )


def test_no_rules_or_nothing_matched_is_zero_with_an_empty_breakdown() -> None:
    assert score([], LEAD, NOTHING, NOW) == Score(0, [])
    rules = [fit("x", "industry", "equals", "mining", 10), engaged("r", "recency", {"days": 1}, 3)]
    assert score(rules, LEAD, NOTHING, NOW) == Score(0, [])


def test_zero_point_rules_are_listed_when_matched() -> None:
    result = score([fit("Flag", "country", "equals", "TR", 0)], LEAD, NOTHING, NOW)
    assert result.total == 0 and [b["rule"] for b in result.breakdown] == ["Flag"]


# --- rule definitions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "field", "operator", "value"),
    [
        ("fit", "industry", "equals", "textile"),
        ("fit", "employee_count", "equals", 250),
        ("fit", "industry", "in", ["textile"]),
        ("fit", "employee_count", "range", {"min": 1}),
        ("fit", "employee_count", "range", {"max": "10.5"}),
        ("fit", "annual_revenue", "range", {"min": 0, "max": 1000}),
        ("fit", "title", "contains", "manager"),
        *(("fit", f, "equals", "x") for f in FIT_FIELDS),
        ("engagement", "recency", "matches", {"days": 7}),
        ("engagement", "activity_count", "matches", {"days": 30, "min": 1}),
        ("engagement", "activity_count", "matches", {"days": 30, "min": 2, "kinds": ["demo"]}),
    ],
)
def test_valid_rules_have_no_problems(category: str, field: str, operator: str, value: Any) -> None:
    assert rule_problems(category, field, operator, value) == []


@pytest.mark.parametrize(
    ("category", "field", "operator", "value", "fragment"),
    [
        ("fit", "owner_id", "equals", "x", "field must be one of"),
        ("fit", "status", "equals", "new", "field must be one of"),
        ("fit", "activity_count", "equals", 1, "field must be one of"),
        ("fit", "industry", "matches", "x", "operator must be one of"),
        ("fit", "industry", "startswith", "x", "operator must be one of"),
        ("fit", "industry", "in", [], "'in' needs a non-empty list"),
        ("fit", "industry", "in", "textile", "'in' needs a non-empty list"),
        ("fit", "industry", "in", None, "'in' needs a non-empty list"),
        ("fit", "employee_count", "range", {}, "'range' needs"),
        ("fit", "employee_count", "range", [1, 2], "'range' needs"),
        ("fit", "employee_count", "range", {"min": "many"}, "'range' needs"),
        ("fit", "employee_count", "range", {"min": None}, "'range' needs"),
        ("fit", "employee_count", "range", {"min": True}, "'range' needs"),
        ("fit", "employee_count", "range", {"min": 1, "mx": 5}, "'range' needs"),
        ("fit", "employee_count", "range", 10, "'range' needs"),
        ("fit", "industry", "equals", ["a"], "'equals' needs a single value"),
        ("fit", "industry", "equals", None, "'equals' needs a single value"),
        ("fit", "title", "contains", {"x": 1}, "'contains' needs a single value"),
        ("engagement", "industry", "matches", {"days": 1}, "engagement rules use field"),
        ("engagement", "recency", "equals", {"days": 1}, "engagement rules use field"),
        ("engagement", "recency", "matches", 7, "engagement rules need"),
        ("engagement", "recency", "matches", {}, "engagement rules need"),
        ("engagement", "recency", "matches", {"days": 0}, "engagement rules need"),
        ("engagement", "recency", "matches", {"days": "7"}, "engagement rules need"),
        ("engagement", "recency", "matches", {"days": 1.5}, "engagement rules need"),
        ("engagement", "activity_count", "matches", {"days": 7}, "activity_count needs"),
        ("engagement", "activity_count", "matches", {"days": 7, "min": 0}, "activity_count needs"),
        (
            "engagement",
            "activity_count",
            "matches",
            {"days": 7, "min": 1, "kinds": "demo"},
            "activity_count needs",
        ),
    ],
)
def test_bad_rules_are_rejected(
    category: str, field: str, operator: str, value: Any, fragment: str
) -> None:
    problems = rule_problems(category, field, operator, value)
    assert len(problems) == 1 and fragment in problems[0], problems
