"""Relationship health, pure: member and committee scores against hand-computed numbers.

Member health = 0.4 × recency + 0.3 × frequency + 0.3 × stance (rounded half-up to 0.1);
committee health = 0.5 × influence-weighted member average + 0.5 × coverage.
"""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.stakeholders.health import (
    KEY_ROLES,
    STANCE_POINTS,
    CommitteeHealth,
    Member,
    committee_health,
    member_health,
    recency_points,
)

ALL_ROLES = (
    "decision_maker",
    "economic_buyer",
    "champion",
    "influencer",
    "technical_evaluator",
    "legal",
    "procurement",
    "end_user",
    "blocker",
)


def member(
    *roles: str,
    influence: int = 3,
    stance: str = "unknown",
    days: float | None = None,
    touches: int = 0,
    active: bool = True,
) -> Member:
    return Member(
        roles=roles,
        influence=influence,
        stance=stance,
        days_since_touch=days,
        touches_90d=touches,
        active=active,
    )


def parts(m: Member) -> tuple[str, str, str, str]:
    """Score, recency, frequency and stance as the API prints them."""
    h = member_health(m)
    return str(h.score), str(h.recency), str(h.frequency), str(h.stance)


def D(value: str) -> Decimal:
    return Decimal(value)


# --- recency ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (None, "0.0"),  # never touched
        (0, "100.0"),  # flat zone: ≤ 7 days
        (7, "100.0"),  # the edge of the flat zone
        (7.5, "99.1"),  # 100 × (60 − 7.5) / 53 = 100 × 52.5 / 53 = 99.0566… → 99.1
        (20, "75.5"),  # 100 × 40 / 53 = 75.4716… → 75.5
        (33.5, "50.0"),  # 100 × 26.5 / 53 = 50 exactly
        (59.9, "0.2"),  # 100 × 0.1 / 53 = 0.1886… → 0.2
        (60, "0.0"),  # reaches 0 at 60 days
        (100, "0.0"),  # and stays there
    ],
)
def test_recency_points(days: float | None, expected: str) -> None:
    # compared as text: every value comes with exactly one decimal place
    assert str(recency_points(days)) == expected


def test_recency_falls_monotonically_between_7_and_60_days() -> None:
    values = [recency_points(7 + i * 0.5) for i in range(107)]  # 7 … 60 days
    assert values[0] == 100 and values[-1] == 0
    assert all(a >= b for a, b in pairwise(values))


# --- member health ------------------------------------------------------------------------


def test_supporter_touched_recently_and_often_scores_100() -> None:
    # recency 100 (3 ≤ 7 days), frequency min(100, 20 × 5) = 100, stance 100
    # 0.4·100 + 0.3·100 + 0.3·100 = 40 + 30 + 30 = 100.0
    assert parts(member(stance="supporter", days=3, touches=5)) == (
        "100.0",
        "100.0",
        "100.0",
        "100.0",
    )


def test_neutral_half_way_with_two_touches() -> None:
    # recency 100·(60 − 33.5)/53 = 50.0, frequency 20 × 2 = 40, stance 50
    # 0.4·50 + 0.3·40 + 0.3·50 = 20 + 12 + 15 = 47.0
    assert parts(member(stance="neutral", days=33.5, touches=2)) == (
        "47.0",
        "50.0",
        "40.0",
        "50.0",
    )


def test_opponent_never_touched_scores_0() -> None:
    # recency 0 (no touch), frequency 0, stance 0 → 0
    assert parts(member(stance="opponent")) == ("0.0", "0.0", "0.0", "0.0")


def test_unknown_stance_frequency_is_capped_and_score_rounded_half_up() -> None:
    # recency 99.1 (7.5 days, see above), frequency min(100, 20 × 8 = 160) = 100, stance 30
    # 0.4·99.1 + 0.3·100 + 0.3·30 = 39.64 + 30 + 9 = 78.64 → 78.6
    assert parts(member(stance="unknown", days=7.5, touches=8)) == (
        "78.6",
        "99.1",
        "100.0",
        "30.0",
    )
    # 0.4·75.5 (20 days) + 0.3·20 (1 touch) + 0.3·50 (neutral) = 30.2 + 6 + 15 = 51.2
    assert member_health(member(stance="neutral", days=20, touches=1)).score == D("51.2")


def test_member_who_left_the_company_scores_0_but_keeps_the_parts() -> None:
    # the parts would give 100.0, but a member who left scores 0
    assert parts(member(stance="supporter", days=1, touches=5, active=False)) == (
        "0.0",
        "100.0",
        "100.0",
        "100.0",
    )


def test_stance_points() -> None:
    assert STANCE_POINTS == {"supporter": 100, "neutral": 50, "unknown": 30, "opponent": 0}
    for stance, points in STANCE_POINTS.items():
        # never touched: only 0.3 × stance is left
        assert member_health(member(stance=stance)).score == Decimal(points) * D("0.3")


@pytest.mark.parametrize(
    ("days", "engaged"), [(None, False), (0, True), (30, True), (30.01, False), (45, False)]
)
def test_engaged_in_30_days(days: float | None, engaged: bool) -> None:
    assert member(days=days).engaged_30d is engaged


# --- committee health ---------------------------------------------------------------------


def test_empty_committee() -> None:
    health = committee_health([])
    assert [str(v) for v in (health.score, health.member_average, health.coverage)] == [
        "0.0",
        "0.0",
        "0.0",
    ]
    assert health == CommitteeHealth(
        score=D("0.0"),
        member_average=D("0.0"),
        coverage=D("0.0"),
        engaged_share=D("0.0"),
        key_roles_present={"champion": False, "economic_buyer": False, "decision_maker": False},
        gaps=["no_members", "no_champion", "no_economic_buyer", "no_decision_maker"],
    )


def test_full_committee_with_every_key_role_engaged() -> None:
    members = [
        # 0.4·100 + 0.3·100 + 0.3·100 = 100.0
        member("champion", influence=3, stance="supporter", days=3, touches=5),
        # 0.4·100 + 0.3·40 + 0.3·50 = 40 + 12 + 15 = 67.0
        member("economic_buyer", influence=5, stance="neutral", days=3, touches=2),
        # recency 100·50/53 = 94.339… → 94.3; 0.4·94.3 + 0.3·20 + 0.3·30 = 37.72 + 6 + 9
        # = 52.72 → 52.7
        member("decision_maker", influence=2, stance="unknown", days=10, touches=1),
    ]
    assert [str(member_health(m).score) for m in members] == ["100.0", "67.0", "52.7"]
    health = committee_health(members)
    # average (100·3 + 67·5 + 52.7·2) / (3 + 5 + 2) = (300 + 335 + 105.4) / 10 = 74.04 → 74.0
    assert str(health.member_average) == "74.0"
    # all three engaged within 30 days: share 3/3 = 100 %
    assert str(health.engaged_share) == "100.0"
    # coverage 25 + 25 + 25 + 25 × 1 = 100
    assert str(health.coverage) == "100.0"
    # score 0.5·74.0 + 0.5·100 = 37 + 50 = 87.0
    assert str(health.score) == "87.0"
    assert health.key_roles_present == dict.fromkeys(KEY_ROLES, True)
    assert health.gaps == []


def test_committee_without_an_economic_buyer() -> None:
    members = [
        # 100.0 (see above)
        member("champion", "influencer", influence=3, stance="supporter", days=3, touches=5),
        # 0.4·100 + 0.3·20 + 0.3·50 = 40 + 6 + 15 = 61.0
        member("decision_maker", influence=3, stance="neutral", days=3, touches=1),
    ]
    health = committee_health(members)
    # average (100·3 + 61·3) / 6 = 483 / 6 = 80.5
    assert str(health.member_average) == "80.5"
    # coverage 25 (champion) + 0 (economic buyer) + 25 (decision maker) + 25 × 2/2 = 75
    assert str(health.coverage) == "75.0"
    # score 0.5·80.5 + 0.5·75 = 40.25 + 37.5 = 77.75 → 77.8 (half up)
    assert str(health.score) == "77.8"
    assert health.key_roles_present == {
        "champion": True,
        "economic_buyer": False,
        "decision_maker": True,
    }
    assert health.gaps == ["no_economic_buyer"]


def test_champion_not_engaged_in_30_days() -> None:
    members = [
        # recency 100·(60 − 45)/53 = 28.301… → 28.3; 0.4·28.3 + 0.3·20 + 0.3·100
        # = 11.32 + 6 + 30 = 47.32 → 47.3
        member("champion", influence=3, stance="supporter", days=45, touches=1),
        # 0.4·100 + 0.3·100 + 0.3·50 = 40 + 30 + 15 = 85.0
        member(
            "economic_buyer", "decision_maker", influence=3, stance="neutral", days=2, touches=5
        ),
    ]
    assert [str(member_health(m).score) for m in members] == ["47.3", "85.0"]
    health = committee_health(members)
    # average (47.3 + 85.0) / 2 = 66.15 → 66.2
    assert str(health.member_average) == "66.2"
    # one of two engaged: 50 %; coverage 75 + 25 × 0.5 = 87.5
    assert str(health.engaged_share) == "50.0"
    assert str(health.coverage) == "87.5"
    # score 0.5·66.2 + 0.5·87.5 = 33.1 + 43.75 = 76.85 → 76.9
    assert str(health.score) == "76.9"
    assert health.gaps == ["champion_not_engaged_30d"]


def test_key_role_held_twice_is_engaged_when_one_holder_is() -> None:
    members = [
        member("decision_maker", days=45),
        member("decision_maker", days=5),
    ]
    assert "decision_maker_not_engaged_30d" not in committee_health(members).gaps
    members = [member("decision_maker", days=45), member("economic_buyer")]
    assert committee_health(members).gaps == [
        "no_champion",
        "economic_buyer_not_engaged_30d",  # in KEY_ROLES order
        "decision_maker_not_engaged_30d",
    ]


def test_opponent_with_high_influence() -> None:
    members = [
        # 100.0
        member("champion", influence=3, stance="supporter", days=3, touches=5),
        # never touched opponent: 0
        member("blocker", influence=4, stance="opponent"),
    ]
    health = committee_health(members)
    # average (100·3 + 0·4) / 7 = 42.857… → 42.9
    assert str(health.member_average) == "42.9"
    # coverage 25 (champion) + 25 × 1/2 = 37.5
    assert str(health.coverage) == "37.5"
    # score 0.5·42.9 + 0.5·37.5 = 21.45 + 18.75 = 40.2
    assert str(health.score) == "40.2"
    assert health.gaps == ["no_economic_buyer", "no_decision_maker", "opponent_with_high_influence"]
    # influence 3 is not high; a supporter with influence 5 is no risk
    mild = [members[0], member("blocker", influence=3, stance="opponent")]
    assert "opponent_with_high_influence" not in committee_health(mild).gaps
    friend = [members[0], member("influencer", influence=5, stance="supporter")]
    assert "opponent_with_high_influence" not in committee_health(friend).gaps


def test_member_average_is_weighted_by_influence() -> None:
    members = [
        # 100.0 with influence 1
        member("champion", influence=1, stance="supporter", days=3, touches=5),
        # 0 with influence 3
        member("influencer", influence=3, stance="opponent"),
    ]
    health = committee_health(members)
    # (100·1 + 0·3) / (1 + 3) = 25.0 (unweighted it would be 50)
    assert str(health.member_average) == "25.0"
    # coverage 25 + 25 × 1/2 = 37.5; score 0.5·25 + 0.5·37.5 = 12.5 + 18.75 = 31.25 → 31.3
    assert str(health.coverage) == "37.5"
    assert str(health.score) == "31.3"
    assert health.gaps == ["no_economic_buyer", "no_decision_maker"]


def test_champion_who_left_the_company() -> None:
    members = [
        # left: 0 although the parts give 100
        member("champion", influence=3, stance="supporter", days=3, touches=5, active=False),
        # 0.4·100 + 0.3·40 + 0.3·50 = 67.0
        member(
            "economic_buyer", "decision_maker", influence=3, stance="neutral", days=3, touches=2
        ),
    ]
    health = committee_health(members)
    # average (0·3 + 67·3) / 6 = 33.5
    assert str(health.member_average) == "33.5"
    # no champion any more; engaged: the 1 member still at the company, of 1 → 100 %
    assert health.key_roles_present == {
        "champion": False,
        "economic_buyer": True,
        "decision_maker": True,
    }
    assert str(health.engaged_share) == "100.0"
    # coverage 0 + 25 + 25 + 25 × 1 = 75; score 0.5·33.5 + 0.5·75 = 16.75 + 37.5 = 54.25 → 54.3
    assert str(health.coverage) == "75.0"
    assert str(health.score) == "54.3"
    assert health.gaps == ["no_champion", "member_left_company"]


def test_opponent_who_left_is_no_longer_a_risk() -> None:
    members = [
        member("champion", stance="supporter", days=1),
        member("blocker", influence=5, stance="opponent", days=1, active=False),
    ]
    gaps = committee_health(members).gaps
    assert "opponent_with_high_influence" not in gaps
    assert gaps[-1] == "member_left_company"


# --- properties ---------------------------------------------------------------------------

members_strategy = st.builds(
    Member,
    roles=st.lists(st.sampled_from(ALL_ROLES), max_size=3, unique=True).map(tuple),
    influence=st.integers(1, 5),
    stance=st.sampled_from(sorted(STANCE_POINTS)),
    days_since_touch=st.none()
    | st.floats(min_value=0, max_value=1000, allow_nan=False, allow_infinity=False),
    touches_90d=st.integers(0, 500),
    active=st.booleans(),
)


def _within(value: Decimal) -> bool:
    """Between 0 and 100, with exactly one decimal place (as the API prints it)."""
    return Decimal(0) <= value <= Decimal(100) and value.as_tuple().exponent == -1


@given(members_strategy)
def test_member_scores_stay_within_0_and_100(m: Member) -> None:
    h = member_health(m)
    assert all(_within(v) for v in (h.score, h.recency, h.frequency, h.stance))
    if not m.active:
        assert h.score == 0


@given(st.lists(members_strategy, max_size=12))
def test_committee_scores_stay_within_0_and_100(members: list[Member]) -> None:
    h = committee_health(members)
    assert all(_within(v) for v in (h.score, h.member_average, h.coverage, h.engaged_share))
    assert set(h.key_roles_present) == set(KEY_ROLES)
    assert len(h.gaps) == len(set(h.gaps))
