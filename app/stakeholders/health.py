"""Relationship health, pure: a score per committee member and one per deal.

Member health (0–100) = 0.4 × recency + 0.3 × frequency + 0.3 × stance, where
  recency   = 100 when the last touchpoint the contact took part in is at most 7 days old,
              falling linearly to 0 at 60 days (0 with no touchpoint);
  frequency = 20 per touchpoint in the last 90 days, at most 100 (5 touches = 100);
  stance    = supporter 100, neutral 50, unknown 30, opponent 0.
A member who left the company scores 0.

Committee health (0–100) = 0.5 × member average (weighted by influence 1–5)
                         + 0.5 × coverage,
coverage = 25 × (champion present) + 25 × (economic buyer present)
         + 25 × (decision maker present)
         + 25 × (share of members still at the company engaged in 30 days).
Only touchpoints count (every activity kind but notes).
Gaps name what to fix: no_champion, no_economic_buyer, no_decision_maker,
<role>_not_engaged_30d for those key roles, opponent_with_high_influence (influence ≥ 4),
member_left_company, no_members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

KEY_ROLES = ("champion", "economic_buyer", "decision_maker")
STANCE_POINTS = {"supporter": 100, "neutral": 50, "unknown": 30, "opponent": 0}
FRESH_DAYS = 7
STALE_DAYS = 60
FREQUENCY_WINDOW_DAYS = 90
POINTS_PER_TOUCH = 20
ENGAGED_DAYS = 30
HIGH_INFLUENCE = 4

WEIGHT_RECENCY = Decimal("0.4")
WEIGHT_FREQUENCY = Decimal("0.3")
WEIGHT_STANCE = Decimal("0.3")
WEIGHT_MEMBERS = Decimal("0.5")
WEIGHT_COVERAGE = Decimal("0.5")
ONE_PLACE = Decimal("0.1")


def _round(value: Decimal) -> Decimal:
    return value.quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Member:
    roles: tuple[str, ...]
    influence: int
    stance: str
    days_since_touch: float | None
    touches_90d: int
    active: bool = True

    @property
    def engaged_30d(self) -> bool:
        return self.days_since_touch is not None and self.days_since_touch <= ENGAGED_DAYS


@dataclass(frozen=True, slots=True)
class MemberHealth:
    score: Decimal
    recency: Decimal
    frequency: Decimal
    stance: Decimal


@dataclass(frozen=True, slots=True)
class CommitteeHealth:
    score: Decimal
    member_average: Decimal
    coverage: Decimal
    engaged_share: Decimal
    key_roles_present: dict[str, bool]
    gaps: list[str]


def recency_points(days_since_touch: float | None) -> Decimal:
    if days_since_touch is None or days_since_touch >= STALE_DAYS:
        return _round(Decimal(0))
    if days_since_touch <= FRESH_DAYS:
        return _round(Decimal(100))
    remaining = Decimal(str(STALE_DAYS - days_since_touch)) / (STALE_DAYS - FRESH_DAYS)
    return _round(100 * remaining)


def member_health(member: Member) -> MemberHealth:
    recency = recency_points(member.days_since_touch)
    frequency = _round(Decimal(min(100, POINTS_PER_TOUCH * member.touches_90d)))
    stance = _round(Decimal(STANCE_POINTS[member.stance]))
    if not member.active:
        return MemberHealth(_round(Decimal(0)), recency, frequency, stance)
    score = WEIGHT_RECENCY * recency + WEIGHT_FREQUENCY * frequency + WEIGHT_STANCE * stance
    return MemberHealth(_round(score), recency, frequency, stance)


def committee_health(members: Sequence[Member]) -> CommitteeHealth:
    if not members:
        zero = _round(Decimal(0))
        return CommitteeHealth(
            zero,
            zero,
            zero,
            zero,
            dict.fromkeys(KEY_ROLES, False),
            ["no_members", *(f"no_{r}" for r in KEY_ROLES)],
        )
    scores = [member_health(m).score for m in members]
    weights = [m.influence for m in members]
    average = _round(
        sum((s * w for s, w in zip(scores, weights, strict=True)), Decimal(0)) / sum(weights)
    )
    active = [m for m in members if m.active]
    present = {role: any(role in m.roles for m in active) for role in KEY_ROLES}
    # Share of the members still at the company who were engaged in the last 30 days.
    engaged = (
        Decimal(sum(1 for m in active if m.engaged_30d)) / len(active) if active else Decimal(0)
    )
    coverage = 25 * sum(present.values()) + 25 * engaged
    gaps = [f"no_{role}" for role, ok in present.items() if not ok]
    for role in KEY_ROLES:
        holders = [m for m in active if role in m.roles]
        if holders and not any(m.engaged_30d for m in holders):
            gaps.append(f"{role}_not_engaged_30d")
    if any(m.stance == "opponent" and m.influence >= HIGH_INFLUENCE for m in active):
        gaps.append("opponent_with_high_influence")
    if any(not m.active for m in members):
        gaps.append("member_left_company")
    score = WEIGHT_MEMBERS * average + WEIGHT_COVERAGE * coverage
    return CommitteeHealth(
        _round(score), average, _round(coverage), _round(100 * engaged), present, gaps
    )
