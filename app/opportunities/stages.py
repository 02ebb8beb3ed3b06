"""The stage engine's rules, pure: which moves are allowed and what a target stage needs.

The sales cycle is not linear. Forward moves (also skipping stages) need the target
stage's entry requirements; backward moves need a reason; closing uses the won/lost stage's
requirements; closed deals are terminal until reopened (by a manager, with a reason). A
refused move lists every unmet requirement. Facts about the deal (amount, quotes, buying
committee, …) are gathered by the service; this module only judges them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

COMMITTEE_ROLES = (
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
LOST_TO_COMPETITOR = "lost_to_competitor"

# The documented requirement codes: code → what it asks for.
REQUIREMENTS: dict[str, str] = {
    "amount_set": "the amount is set",
    "close_date_set": "the expected close date is set",
    "next_step_set": "a next step is recorded",
    "quote_exists": "at least one quote exists",
    "quote_approved": "a quote is approved (or needs no approval)",
    "quote_accepted_or_amount": "a quote is accepted, or an amount is set explicitly",
    "won_reason_set": "a won reason is given",
    "lost_reason_set": "a lost reason is given",
    "competitor_set_if_lost_to_competitor": "a competitor is named when lost to a competitor",
}
# Parametrised codes: role_present:<committee role>, field_set:<custom field key>.
ROLE_PRESENT = "role_present:"
FIELD_SET = "field_set:"
_FIELD_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


class StageKind(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class MoveKind(StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"
    WON = "won"
    LOST = "lost"
    REOPEN = "reopen"


@dataclass(frozen=True, slots=True)
class Stage:
    key: str
    position: int
    kind: StageKind = StageKind.OPEN
    probability: Decimal = Decimal(0)
    forecast_category: str = "pipeline"
    requirements: tuple[str, ...] = ()

    @property
    def is_closed(self) -> bool:
        return self.kind is not StageKind.OPEN


@dataclass(frozen=True, slots=True)
class DealFacts:
    """What the service knows about the deal when a move is asked for."""

    amount_set: bool = False
    close_date_set: bool = False
    next_step_set: bool = False
    quotes: int = 0
    quote_approved: bool = False
    quote_accepted: bool = False
    committee_roles: frozenset[str] = frozenset()
    won_reason_set: bool = False
    lost_reason_code: str | None = None
    competitor_set: bool = False
    custom_fields_set: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Unmet:
    code: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Move:
    kind: MoveKind
    source: Stage
    target: Stage
    unmet: tuple[Unmet, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return not self.unmet

    @property
    def is_backward(self) -> bool:
        return self.kind is MoveKind.BACKWARD


def is_known_requirement(code: str) -> bool:
    if code in REQUIREMENTS:
        return True
    if code.startswith(ROLE_PRESENT):
        return code.removeprefix(ROLE_PRESENT) in COMMITTEE_ROLES
    if code.startswith(FIELD_SET):
        return _FIELD_KEY.fullmatch(code.removeprefix(FIELD_SET)) is not None
    return False


def requirement_met(code: str, facts: DealFacts) -> bool:
    if not is_known_requirement(code):
        raise ValueError(f"unknown requirement {code!r}")
    if code.startswith(ROLE_PRESENT):
        return code.removeprefix(ROLE_PRESENT) in facts.committee_roles
    if code.startswith(FIELD_SET):
        return code.removeprefix(FIELD_SET) in facts.custom_fields_set
    checks = {
        "amount_set": facts.amount_set,
        "close_date_set": facts.close_date_set,
        "next_step_set": facts.next_step_set,
        "quote_exists": facts.quotes > 0,
        "quote_approved": facts.quote_approved,
        "quote_accepted_or_amount": facts.quote_accepted or facts.amount_set,
        "won_reason_set": facts.won_reason_set,
        "lost_reason_set": facts.lost_reason_code is not None,
        "competitor_set_if_lost_to_competitor": (
            facts.lost_reason_code != LOST_TO_COMPETITOR or facts.competitor_set
        ),
    }
    return checks[code]


def describe(code: str) -> str:
    if code.startswith(ROLE_PRESENT):
        return f"a {code.removeprefix(ROLE_PRESENT)} is on the buying committee"
    if code.startswith(FIELD_SET):
        return f"the custom field {code.removeprefix(FIELD_SET)!r} is set"
    return REQUIREMENTS[code]


def unmet_requirements(requirements: Iterable[str], facts: DealFacts) -> list[Unmet]:
    return [
        Unmet(code, f"required: {describe(code)}")
        for code in dict.fromkeys(requirements)  # keep order, drop repeats
        if not requirement_met(code, facts)
    ]


def entry_requirements(
    target: Stage, stages: Sequence[Stage], fields_required_from: Mapping[str, str]
) -> list[str]:
    """The target's own requirements plus ``field_set:<key>`` for each custom field that
    is required from a stage at or before the target (by position, in this pipeline; the
    won stage comes after every open stage). Losing a deal never needs custom fields."""
    positions = {s.key: s.position for s in stages}
    extra = [
        f"{FIELD_SET}{key}"
        for key, from_stage in fields_required_from.items()
        if target.kind is not StageKind.LOST
        and from_stage in positions
        and positions[from_stage] <= target.position
    ]
    return [*target.requirements, *extra]


def plan_move(
    stages: Sequence[Stage],
    current_key: str,
    target_key: str,
    facts: DealFacts,
    *,
    reason: str | None,
    fields_required_from: Mapping[str, str] | None = None,
) -> Move:
    """Judge a move of a deal from ``current_key`` to ``target_key``."""
    by_key = {s.key: s for s in stages}
    source, target = by_key[current_key], by_key[target_key]
    required = entry_requirements(target, stages, fields_required_from or {})
    if target.key == source.key:
        return Move(
            MoveKind.FORWARD,
            source,
            target,
            (Unmet("same_stage", f"the deal is already in {source.key}"),),
        )
    if source.is_closed:
        return Move(
            MoveKind.REOPEN,
            source,
            target,
            (Unmet("closed_is_terminal", "a closed deal moves only by reopening it"),),
        )
    if target.kind is StageKind.WON:
        return Move(MoveKind.WON, source, target, tuple(unmet_requirements(required, facts)))
    if target.kind is StageKind.LOST:
        return Move(MoveKind.LOST, source, target, tuple(unmet_requirements(required, facts)))
    if target.position < source.position:
        unmet = (
            ()
            if reason and reason.strip()
            else (Unmet("reason_required", "moving a deal backward needs a reason"),)
        )
        return Move(MoveKind.BACKWARD, source, target, unmet)
    return Move(MoveKind.FORWARD, source, target, tuple(unmet_requirements(required, facts)))


def plan_reopen(
    stages: Sequence[Stage], current_key: str, target_key: str, *, reason: str | None
) -> Move:
    """Reopen a closed deal into an open stage (the role check is the service's)."""
    by_key = {s.key: s for s in stages}
    source, target = by_key[current_key], by_key[target_key]
    unmet: list[Unmet] = []
    if not source.is_closed:
        unmet.append(Unmet("not_closed", "only a closed deal can be reopened"))
    if target.is_closed:
        unmet.append(Unmet("target_not_open", "a deal is reopened into an open stage"))
    if not (reason and reason.strip()):
        unmet.append(Unmet("reason_required", "reopening a deal needs a reason"))
    return Move(MoveKind.REOPEN, source, target, tuple(unmet))


class Categorized(Protocol):
    """A stage as ``forecast_category`` needs it: a ``Stage``, or a stored stage (saves
    building a ``Stage`` for each row of a list)."""

    @property
    def forecast_category(self) -> str: ...

    @property
    def is_closed(self) -> bool: ...


def forecast_category(stage: Categorized, override: str | None) -> str:
    """The stage's category, unless the owner overrode it on an open deal."""
    return stage.forecast_category if stage.is_closed or override is None else override


def pipeline_problems(stages: Sequence[Stage]) -> list[Unmet]:
    """Everything wrong with a pipeline definition (empty when it is valid)."""
    problems: list[Unmet] = []
    keys = [s.key for s in stages]
    for key in {k for k in keys if keys.count(k) > 1}:
        problems.append(Unmet("duplicate_stage_key", f"stage key {key!r} appears twice"))
    kinds = [s.kind for s in stages]
    if kinds.count(StageKind.OPEN) < 1:
        problems.append(Unmet("no_open_stage", "a pipeline needs at least one open stage"))
    for kind in (StageKind.WON, StageKind.LOST):
        if kinds.count(kind) != 1:
            problems.append(
                Unmet(f"{kind.value}_stage_count", f"a pipeline needs exactly one {kind} stage")
            )
    for stage in stages:
        for code in stage.requirements:
            if not is_known_requirement(code):
                problems.append(
                    Unmet("unknown_requirement", f"stage {stage.key!r}: unknown {code!r}")
                )
    return problems
