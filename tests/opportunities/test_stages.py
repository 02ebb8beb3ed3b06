"""The pure stage engine (app/opportunities/stages.py, SPEC.md §6): exhaustive, table-driven
and property-based tests, no database.

Expectations are computed here, independently of the module (``_oracle_met``,
``_expected_requirements``, ``_expected_move``), and compared with what the engine says."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.opportunities.stages import (
    COMMITTEE_ROLES,
    REQUIREMENTS,
    DealFacts,
    Move,
    MoveKind,
    Stage,
    StageKind,
    Unmet,
    entry_requirements,
    forecast_category,
    is_known_requirement,
    pipeline_problems,
    plan_move,
    plan_reopen,
    requirement_met,
    unmet_requirements,
)

# --- the default B2B pipeline (SPEC.md §6) ----------------------------------------------

PROSPECTING = Stage("prospecting", 1, StageKind.OPEN, Decimal("10"), "pipeline", ())
NEEDS_ANALYSIS = Stage("needs_analysis", 2, StageKind.OPEN, Decimal("20"), "pipeline", ())
PROPOSAL = Stage(
    "proposal", 3, StageKind.OPEN, Decimal("40"), "pipeline", ("amount_set", "close_date_set")
)
PRESENTATION = Stage(
    "presentation", 4, StageKind.OPEN, Decimal("50"), "best_case", ("quote_exists",)
)
NEGOTIATION = Stage(
    "negotiation", 5, StageKind.OPEN, Decimal("70"), "best_case", ("quote_approved",)
)
DECISION = Stage(
    "decision",
    6,
    StageKind.OPEN,
    Decimal("85"),
    "commit",
    ("role_present:decision_maker", "role_present:champion"),
)
CLOSED_WON = Stage(
    "closed_won",
    7,
    StageKind.WON,
    Decimal("100"),
    "closed",
    ("quote_accepted_or_amount", "won_reason_set"),
)
CLOSED_LOST = Stage(
    "closed_lost",
    8,
    StageKind.LOST,
    Decimal("0"),
    "omitted",
    ("lost_reason_set", "competitor_set_if_lost_to_competitor"),
)
PIPELINE: tuple[Stage, ...] = (
    PROSPECTING,
    NEEDS_ANALYSIS,
    PROPOSAL,
    PRESENTATION,
    NEGOTIATION,
    DECISION,
    CLOSED_WON,
    CLOSED_LOST,
)
BY_KEY = {s.key: s for s in PIPELINE}
KEYS = tuple(BY_KEY)
OPEN_KEYS = tuple(s.key for s in PIPELINE if s.kind is StageKind.OPEN)
CLOSED_KEYS = ("closed_won", "closed_lost")
PAIRS = list(itertools.product(KEYS, KEYS))

# The documented plain codes, written out here rather than read from the module.
PLAIN_CODES = (
    "amount_set",
    "close_date_set",
    "next_step_set",
    "quote_exists",
    "quote_approved",
    "quote_accepted_or_amount",
    "won_reason_set",
    "lost_reason_set",
    "competitor_set_if_lost_to_competitor",
)
ROLES = (
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
FIELD_KEYS = ("po_number", "tender_id", "industry", "region")
LOST_REASONS = (None, "lost_to_competitor", "no_budget", "no_decision", "timing", "price")
REASONS = (None, "", "   ", "\t\n", "customer asked for a new demo")
ALL_MET = DealFacts(
    amount_set=True,
    close_date_set=True,
    next_step_set=True,
    quotes=2,
    quote_approved=True,
    quote_accepted=True,
    committee_roles=frozenset(ROLES),
    won_reason_set=True,
    lost_reason_code="lost_to_competitor",
    competitor_set=True,
    custom_fields_set=frozenset(FIELD_KEYS),
)


# --- independent oracles -----------------------------------------------------------------


def _oracle_met(code: str, f: DealFacts) -> bool:
    """What each requirement means, straight from SPEC.md §6."""
    if code == "amount_set":
        return f.amount_set
    if code == "close_date_set":
        return f.close_date_set
    if code == "next_step_set":
        return f.next_step_set
    if code == "quote_exists":
        return f.quotes >= 1
    if code == "quote_approved":
        return f.quote_approved
    if code == "quote_accepted_or_amount":
        return f.quote_accepted or f.amount_set
    if code == "won_reason_set":
        return f.won_reason_set
    if code == "lost_reason_set":
        return f.lost_reason_code is not None
    if code == "competitor_set_if_lost_to_competitor":
        return f.competitor_set if f.lost_reason_code == "lost_to_competitor" else True
    kind, _, arg = code.partition(":")
    if kind == "role_present":
        return arg in f.committee_roles
    if kind == "field_set":
        return arg in f.custom_fields_set
    raise AssertionError(f"test oracle does not know {code!r}")


def _non_blank(reason: str | None) -> bool:
    return reason is not None and reason != "" and not reason.isspace()


def _fields_apply(target: Stage, from_key: str, stages: Sequence[Stage] = PIPELINE) -> bool:
    """A custom field required from ``from_key`` applies to that stage, later open stages
    and the won stage; never to earlier stages, the lost stage, or when ``from_key`` is not
    a stage of this pipeline."""
    by_key = {s.key: s for s in stages}
    if from_key not in by_key or target.kind is StageKind.LOST:
        return False
    source = by_key[from_key]
    if target.kind is StageKind.WON:
        return source.kind is StageKind.OPEN or source.key == target.key
    return source.kind is StageKind.OPEN and source.position <= target.position


def _expected_requirements(
    target: Stage, fields: Mapping[str, str], stages: Sequence[Stage] = PIPELINE
) -> list[str]:
    """The target's requirements, then the applicable custom fields; repeats dropped."""
    codes: list[str] = []
    for code in [
        *target.requirements,
        *(f"field_set:{k}" for k, frm in fields.items() if _fields_apply(target, frm, stages)),
    ]:
        if code not in codes:
            codes.append(code)
    return codes


def _expected_move(
    source: Stage, target: Stage, facts: DealFacts, reason: str | None, fields: Mapping[str, str]
) -> tuple[MoveKind | None, list[str]]:
    """(kind, unmet codes); kind None means "not asserted" (same stage)."""
    if source.key == target.key:
        return None, ["same_stage"]
    if source.kind is not StageKind.OPEN:
        return MoveKind.REOPEN, ["closed_is_terminal"]
    if target.kind is StageKind.OPEN and target.position < source.position:
        return MoveKind.BACKWARD, [] if _non_blank(reason) else ["reason_required"]
    kind = {
        StageKind.WON: MoveKind.WON,
        StageKind.LOST: MoveKind.LOST,
        StageKind.OPEN: MoveKind.FORWARD,
    }[target.kind]
    unmet = [c for c in _expected_requirements(target, fields) if not _oracle_met(c, facts)]
    return kind, unmet


def _check_move(
    move: Move,
    source: Stage,
    target: Stage,
    facts: DealFacts,
    reason: str | None,
    fields: Mapping[str, str],
) -> None:
    kind, codes = _expected_move(source, target, facts, reason, fields)
    got = [u.code for u in move.unmet]
    assert got == codes, (source.key, target.key, facts, reason, fields)
    assert move.allowed == (not got)
    assert move.source == source and move.target == target
    if kind is not None:
        assert move.kind is kind
        assert move.is_backward == (kind is MoveKind.BACKWARD)
    assert len(set(got)) == len(got)
    assert all(isinstance(u.detail, str) and u.detail.strip() for u in move.unmet)


# --- strategies -------------------------------------------------------------------------

roles_st = st.frozensets(st.sampled_from(COMMITTEE_ROLES))
facts_st = st.builds(
    DealFacts,
    amount_set=st.booleans(),
    close_date_set=st.booleans(),
    next_step_set=st.booleans(),
    quotes=st.integers(min_value=0, max_value=5),
    quote_approved=st.booleans(),
    quote_accepted=st.booleans(),
    committee_roles=roles_st,
    won_reason_set=st.booleans(),
    lost_reason_code=st.sampled_from(LOST_REASONS),
    competitor_set=st.booleans(),
    custom_fields_set=st.frozensets(st.sampled_from(FIELD_KEYS)),
)
reason_st = st.one_of(
    st.none(),
    st.sampled_from(REASONS),
    st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=5),
    st.text(max_size=20),
)
# Custom fields required from a stage; "won_later" and "" are not stages of the pipeline.
# (A field "required from" the lost stage is left out: that configuration is ambiguous.)
fields_st = st.dictionaries(
    st.sampled_from(FIELD_KEYS),
    st.sampled_from((*OPEN_KEYS, "closed_won", "won_later", "")),
    max_size=len(FIELD_KEYS),
)
known_code_st = st.one_of(
    st.sampled_from(PLAIN_CODES),
    st.sampled_from(ROLES).map(lambda r: f"role_present:{r}"),
    st.sampled_from(FIELD_KEYS).map(lambda k: f"field_set:{k}"),
)

# The project's conftest has a (no-op here) autouse function-scoped fixture.
FAST = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PER_PAIR = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# --- sanity of the test's own pipeline and constants ------------------------------------


def test_documented_constants_match_the_spec() -> None:
    assert set(REQUIREMENTS) == set(PLAIN_CODES)
    assert all(isinstance(v, str) and v.strip() for v in REQUIREMENTS.values())
    assert tuple(COMMITTEE_ROLES) == ROLES


def test_default_pipeline_shape() -> None:
    assert [s.position for s in PIPELINE] == list(range(1, 9))
    assert [s.is_closed for s in PIPELINE] == [False] * 6 + [True, True]
    assert pipeline_problems(PIPELINE) == []


def test_unmet_as_dict() -> None:
    assert Unmet("amount_set", "required: x").as_dict() == {
        "code": "amount_set",
        "detail": "required: x",
    }


# --- plan_move: every ordered pair × every requirement state ----------------------------

# Every combination of the facts the default pipeline's requirements look at.
FACT_GRID = [
    DealFacts(
        amount_set=amount,
        close_date_set=close,
        quotes=quotes,
        quote_approved=approved,
        quote_accepted=accepted,
        committee_roles=frozenset(roles),
        won_reason_set=won,
        lost_reason_code=lost,
        competitor_set=competitor,
    )
    for amount, close, quotes, approved, accepted, roles, won, lost, competitor in (
        itertools.product(
            (False, True),
            (False, True),
            (0, 1),
            (False, True),
            (False, True),
            ((), ("decision_maker",), ("champion",), ("decision_maker", "champion")),
            (False, True),
            (None, "lost_to_competitor", "no_budget"),
            (False, True),
        )
    )
]


@pytest.mark.parametrize(("source_key", "target_key"), PAIRS)
def test_every_pair_in_every_requirement_state(source_key: str, target_key: str) -> None:
    source, target = BY_KEY[source_key], BY_KEY[target_key]
    seen_allowed = seen_refused = False
    for facts in FACT_GRID:
        for reason in (None, "the customer re-opened the scope"):
            move = plan_move(PIPELINE, source_key, target_key, facts, reason=reason)
            _check_move(move, source, target, facts, reason, {})
            seen_allowed |= move.allowed
            seen_refused |= not move.allowed
    # Same-stage and closed-source moves are always refused; any other move is allowed in
    # some state, and refused in some state unless it is forward into a stage without
    # requirements.
    movable = source_key != target_key and source_key in OPEN_KEYS
    assert seen_allowed == movable
    backward = target.kind is StageKind.OPEN and target.position < source.position
    assert seen_refused == (not movable or backward or bool(target.requirements))


@pytest.mark.parametrize(("source_key", "target_key"), PAIRS)
@PER_PAIR
@given(facts=facts_st, reason=reason_st, fields=fields_st)
def test_every_pair_property(
    source_key: str, target_key: str, facts: DealFacts, reason: str | None, fields: dict
) -> None:
    source, target = BY_KEY[source_key], BY_KEY[target_key]
    move = plan_move(
        PIPELINE, source_key, target_key, facts, reason=reason, fields_required_from=fields
    )
    _check_move(move, source, target, facts, reason, fields)


@FAST
@given(
    source_key=st.sampled_from(KEYS),
    target_key=st.sampled_from(KEYS),
    facts=facts_st,
    reason=reason_st,
    fields=fields_st,
)
def test_allowed_iff_no_unmet_codes(
    source_key: str, target_key: str, facts: DealFacts, reason: str | None, fields: dict
) -> None:
    move = plan_move(
        PIPELINE, source_key, target_key, facts, reason=reason, fields_required_from=fields
    )
    codes = {u.code for u in move.unmet}
    assert move.allowed == (codes == set())
    _check_move(move, BY_KEY[source_key], BY_KEY[target_key], facts, reason, fields)


STATE_SAMPLES = [(facts, reason) for facts in (DealFacts(), ALL_MET) for reason in REASONS]


@pytest.mark.parametrize("key", KEYS)
def test_same_stage_is_refused(key: str) -> None:
    for facts, reason in STATE_SAMPLES:
        move = plan_move(
            PIPELINE, key, key, facts, reason=reason, fields_required_from={"po_number": key}
        )
        assert not move.allowed
        assert [u.code for u in move.unmet] == ["same_stage"]
        assert key in move.unmet[0].detail


@pytest.mark.parametrize("source_key", CLOSED_KEYS)
@pytest.mark.parametrize("target_key", KEYS)
def test_closed_source_is_terminal(source_key: str, target_key: str) -> None:
    for facts, reason in STATE_SAMPLES:
        move = plan_move(PIPELINE, source_key, target_key, facts, reason=reason)
        assert not move.allowed
        if source_key == target_key:
            assert [u.code for u in move.unmet] == ["same_stage"]
        else:
            assert move.kind is MoveKind.REOPEN
            assert [u.code for u in move.unmet] == ["closed_is_terminal"]


# (later open stage, earlier open stage)
BACKWARD_PAIRS = [(t, s) for s, t in itertools.combinations(OPEN_KEYS, 2)]


@pytest.mark.parametrize(("source_key", "target_key"), BACKWARD_PAIRS)
def test_backward_needs_a_reason_and_ignores_requirements(source_key: str, target_key: str) -> None:
    assert BY_KEY[target_key].position < BY_KEY[source_key].position
    for facts, reason in STATE_SAMPLES:
        move = plan_move(
            PIPELINE,
            source_key,
            target_key,
            facts,
            reason=reason,
            # Even a field required from the very first stage is not asked for going back.
            fields_required_from={"po_number": "prospecting"},
        )
        assert move.kind is MoveKind.BACKWARD and move.is_backward
        if _non_blank(reason):
            assert move.allowed and move.unmet == ()
        else:
            assert [u.code for u in move.unmet] == ["reason_required"]


def test_backward_pairs_cover_every_backward_move() -> None:
    assert len(BACKWARD_PAIRS) == 15
    assert {
        (s, t)
        for s, t in PAIRS
        if s in OPEN_KEYS and t in OPEN_KEYS and BY_KEY[t].position < BY_KEY[s].position
    } == set(BACKWARD_PAIRS)


@pytest.mark.parametrize("source_key", OPEN_KEYS)
@pytest.mark.parametrize("reason", REASONS)
def test_forward_won_and_lost_ignore_the_reason(source_key: str, reason: str | None) -> None:
    for target in PIPELINE:
        if target.kind is StageKind.OPEN and target.position <= BY_KEY[source_key].position:
            continue
        assert plan_move(PIPELINE, source_key, target.key, ALL_MET, reason=reason).allowed
        refused = plan_move(PIPELINE, source_key, target.key, DealFacts(), reason=reason)
        assert [u.code for u in refused.unmet] == [
            c for c in target.requirements if not _oracle_met(c, DealFacts())
        ]


@pytest.mark.parametrize("source_key", OPEN_KEYS)
def test_closing_from_any_open_stage(source_key: str) -> None:
    won = plan_move(PIPELINE, source_key, "closed_won", DealFacts(), reason=None)
    assert won.kind is MoveKind.WON
    assert [u.code for u in won.unmet] == ["quote_accepted_or_amount", "won_reason_set"]
    lost = plan_move(PIPELINE, source_key, "closed_lost", DealFacts(), reason=None)
    assert lost.kind is MoveKind.LOST
    assert [u.code for u in lost.unmet] == ["lost_reason_set"]
    by_competitor = DealFacts(lost_reason_code="lost_to_competitor")
    lost = plan_move(PIPELINE, source_key, "closed_lost", by_competitor, reason=None)
    assert [u.code for u in lost.unmet] == ["competitor_set_if_lost_to_competitor"]
    assert plan_move(
        PIPELINE, source_key, "closed_lost", DealFacts(lost_reason_code="no_budget"), reason=None
    ).allowed
    assert plan_move(
        PIPELINE,
        source_key,
        "closed_won",
        DealFacts(quote_accepted=True, won_reason_set=True),
        reason=None,
    ).allowed


# --- skipping stages --------------------------------------------------------------------

# For each open stage: facts meeting exactly that stage's requirements and nothing else.
ONLY_THE_TARGET = {
    "prospecting": DealFacts(),
    "needs_analysis": DealFacts(),
    "proposal": DealFacts(amount_set=True, close_date_set=True),
    "presentation": DealFacts(quotes=1),
    "negotiation": DealFacts(quote_approved=True),
    "decision": DealFacts(committee_roles=frozenset({"decision_maker", "champion"})),
}


@pytest.mark.parametrize(("source_key", "target_key"), list(itertools.combinations(OPEN_KEYS, 2)))
def test_skipping_stages_needs_only_the_targets_requirements(
    source_key: str, target_key: str
) -> None:
    facts = ONLY_THE_TARGET[target_key]
    move = plan_move(PIPELINE, source_key, target_key, facts, reason=None)
    assert move.kind is MoveKind.FORWARD
    assert move.allowed
    # …even though the skipped stages' own requirements are not met.
    skipped = [
        s
        for s in PIPELINE
        if BY_KEY[source_key].position < s.position < BY_KEY[target_key].position
    ]
    for stage in skipped:
        if stage.requirements and stage.requirements != BY_KEY[target_key].requirements:
            assert not all(_oracle_met(c, facts) for c in stage.requirements)


@FAST
@given(facts=facts_st, reason=reason_st)
def test_prospecting_to_decision_iff_decisions_requirements(
    facts: DealFacts, reason: str | None
) -> None:
    move = plan_move(PIPELINE, "prospecting", "decision", facts, reason=reason)
    has_both = {"decision_maker", "champion"} <= facts.committee_roles
    assert move.kind is MoveKind.FORWARD
    assert move.allowed == has_both
    expected = [
        f"role_present:{r}"
        for r in ("decision_maker", "champion")
        if r not in facts.committee_roles
    ]
    assert [u.code for u in move.unmet] == expected


def test_prospecting_to_decision_examples() -> None:
    nothing_but_roles = DealFacts(committee_roles=frozenset({"decision_maker", "champion"}))
    assert plan_move(PIPELINE, "prospecting", "decision", nothing_but_roles, reason=None).allowed
    everything_but_roles = replace(ALL_MET, committee_roles=frozenset({"influencer"}))
    refused = plan_move(PIPELINE, "prospecting", "decision", everything_but_roles, reason=None)
    assert [u.code for u in refused.unmet] == [
        "role_present:decision_maker",
        "role_present:champion",
    ]


# --- every requirement code individually -----------------------------------------------

REQUIREMENT_TABLE: list[tuple[str, DealFacts, bool]] = [
    ("amount_set", DealFacts(), False),
    ("amount_set", DealFacts(amount_set=True), True),
    ("amount_set", DealFacts(quote_accepted=True), False),
    ("close_date_set", DealFacts(), False),
    ("close_date_set", DealFacts(close_date_set=True), True),
    ("next_step_set", DealFacts(), False),
    ("next_step_set", DealFacts(next_step_set=True), True),
    ("quote_exists", DealFacts(), False),
    ("quote_exists", DealFacts(quotes=1), True),
    ("quote_exists", DealFacts(quotes=7), True),
    ("quote_exists", DealFacts(quote_approved=True, quote_accepted=True), False),
    ("quote_approved", DealFacts(), False),
    ("quote_approved", DealFacts(quotes=3), False),
    ("quote_approved", DealFacts(quote_approved=True), True),
    ("quote_accepted_or_amount", DealFacts(), False),
    ("quote_accepted_or_amount", DealFacts(quote_accepted=True), True),
    ("quote_accepted_or_amount", DealFacts(amount_set=True), True),
    ("quote_accepted_or_amount", DealFacts(amount_set=True, quote_accepted=True), True),
    ("quote_accepted_or_amount", DealFacts(quotes=2, quote_approved=True), False),
    ("won_reason_set", DealFacts(), False),
    ("won_reason_set", DealFacts(won_reason_set=True), True),
    ("lost_reason_set", DealFacts(), False),
    ("lost_reason_set", DealFacts(competitor_set=True), False),
    ("lost_reason_set", DealFacts(lost_reason_code="no_budget"), True),
    ("lost_reason_set", DealFacts(lost_reason_code="lost_to_competitor"), True),
    ("competitor_set_if_lost_to_competitor", DealFacts(), True),
    ("competitor_set_if_lost_to_competitor", DealFacts(competitor_set=True), True),
    ("competitor_set_if_lost_to_competitor", DealFacts(lost_reason_code="no_budget"), True),
    (
        "competitor_set_if_lost_to_competitor",
        DealFacts(lost_reason_code="no_budget", competitor_set=True),
        True,
    ),
    (
        "competitor_set_if_lost_to_competitor",
        DealFacts(lost_reason_code="lost_to_competitor"),
        False,
    ),
    (
        "competitor_set_if_lost_to_competitor",
        DealFacts(lost_reason_code="lost_to_competitor", competitor_set=True),
        True,
    ),
    *(
        row
        for role in ROLES
        for row in (
            (f"role_present:{role}", DealFacts(), False),
            (f"role_present:{role}", DealFacts(committee_roles=frozenset({role})), True),
            (f"role_present:{role}", DealFacts(committee_roles=frozenset(ROLES)), True),
            (
                f"role_present:{role}",
                DealFacts(committee_roles=frozenset(ROLES) - {role}),
                False,
            ),
        )
    ),
    *(
        row
        for key in FIELD_KEYS
        for row in (
            (f"field_set:{key}", DealFacts(), False),
            (f"field_set:{key}", DealFacts(custom_fields_set=frozenset({key})), True),
            (f"field_set:{key}", DealFacts(custom_fields_set=frozenset(FIELD_KEYS)), True),
            (
                f"field_set:{key}",
                DealFacts(custom_fields_set=frozenset(FIELD_KEYS) - {key}),
                False,
            ),
            # A committee role of the same name is not a custom field, and vice versa.
            (f"field_set:{key}", DealFacts(committee_roles=frozenset(ROLES)), False),
        )
    ),
    ("role_present:champion", DealFacts(custom_fields_set=frozenset({"champion"})), False),
]


@pytest.mark.parametrize(("code", "facts", "expected"), REQUIREMENT_TABLE)
def test_requirement_table(code: str, facts: DealFacts, expected: bool) -> None:
    assert requirement_met(code, facts) is expected
    assert _oracle_met(code, facts) is expected  # the oracle agrees with the table
    unmet = unmet_requirements([code], facts)
    assert [u.code for u in unmet] == ([] if expected else [code])


def test_requirement_table_covers_every_code() -> None:
    assert {code for code, _, _ in REQUIREMENT_TABLE} == {
        *PLAIN_CODES,
        *(f"role_present:{r}" for r in ROLES),
        *(f"field_set:{k}" for k in FIELD_KEYS),
    }
    for code in {c for c, _, _ in REQUIREMENT_TABLE}:
        outcomes = {e for c, _, e in REQUIREMENT_TABLE if c == code}
        assert outcomes == {True, False}, code


# Breaking one thing in otherwise complete facts: exactly these codes become unmet.
BREAKERS: list[tuple[str, DealFacts, set[str]]] = [
    ("amount_set", replace(ALL_MET, amount_set=False), {"amount_set"}),
    ("close_date_set", replace(ALL_MET, close_date_set=False), {"close_date_set"}),
    ("next_step_set", replace(ALL_MET, next_step_set=False), {"next_step_set"}),
    ("quote_exists", replace(ALL_MET, quotes=0), {"quote_exists"}),
    ("quote_approved", replace(ALL_MET, quote_approved=False), {"quote_approved"}),
    ("quote_accepted", replace(ALL_MET, quote_accepted=False), set()),
    (
        "quote_accepted_or_amount",
        replace(ALL_MET, quote_accepted=False, amount_set=False),
        {"quote_accepted_or_amount", "amount_set"},
    ),
    ("won_reason_set", replace(ALL_MET, won_reason_set=False), {"won_reason_set"}),
    ("lost_reason_code", replace(ALL_MET, lost_reason_code=None), {"lost_reason_set"}),
    (
        "lost_reason_code_other",
        replace(ALL_MET, lost_reason_code="no_budget", competitor_set=False),
        set(),
    ),
    (
        "competitor_set",
        replace(ALL_MET, competitor_set=False),
        {"competitor_set_if_lost_to_competitor"},
    ),
    *(
        (
            f"role {role}",
            replace(ALL_MET, committee_roles=frozenset(ROLES) - {role}),
            {f"role_present:{role}"},
        )
        for role in ROLES
    ),
    *(
        (
            f"field {key}",
            replace(ALL_MET, custom_fields_set=frozenset(FIELD_KEYS) - {key}),
            {f"field_set:{key}"},
        )
        for key in FIELD_KEYS
    ),
]
EVERY_CODE = [
    *PLAIN_CODES,
    *(f"role_present:{r}" for r in ROLES),
    *(f"field_set:{k}" for k in FIELD_KEYS),
]


def test_all_met_meets_everything() -> None:
    assert all(requirement_met(code, ALL_MET) for code in EVERY_CODE)
    assert unmet_requirements(EVERY_CODE, ALL_MET) == []


@pytest.mark.parametrize(("name", "facts", "expected"), BREAKERS, ids=[b[0] for b in BREAKERS])
def test_breaking_one_fact(name: str, facts: DealFacts, expected: set[str]) -> None:
    unmet = unmet_requirements(EVERY_CODE, facts)
    assert {u.code for u in unmet} == expected
    assert {c for c in EVERY_CODE if not requirement_met(c, facts)} == expected


@FAST
@given(code=known_code_st, facts=facts_st)
def test_requirement_met_matches_the_oracle(code: str, facts: DealFacts) -> None:
    assert requirement_met(code, facts) is _oracle_met(code, facts)


UNKNOWN_PLAIN = [
    "banana",
    "",
    "AMOUNT_SET",
    "amount_set ",
    " amount_set",
    "amount",
    "quote_accepted",
    "role_present",
    "field_set",
    "rolepresent:champion",
]


@pytest.mark.parametrize("code", UNKNOWN_PLAIN)
@pytest.mark.parametrize("facts", [DealFacts(), ALL_MET])
def test_requirement_met_raises_for_unknown_codes(code: str, facts: DealFacts) -> None:
    with pytest.raises(ValueError):
        requirement_met(code, facts)
    with pytest.raises(ValueError):
        unmet_requirements(["amount_set", code], facts)


@pytest.mark.parametrize(
    "code",
    ["role_present:ceo", "role_present:", "field_set:Bad Key", "field_set:", "field_set:abc\n"],
)
def test_requirement_met_raises_for_unknown_parametrised_codes(code: str) -> None:
    # Even when the facts hold something of that name: an unknown code is never judged.
    arg = code.partition(":")[2]
    facts = DealFacts(committee_roles=frozenset({arg}), custom_fields_set=frozenset({arg}))
    for f in (DealFacts(), facts):
        with pytest.raises(ValueError):
            requirement_met(code, f)
        with pytest.raises(ValueError):
            unmet_requirements([code], f)


@FAST
@given(code=st.text(max_size=30), facts=facts_st)
def test_requirement_met_raises_iff_unknown(code: str, facts: DealFacts) -> None:
    if is_known_requirement(code):
        assert requirement_met(code, facts) is _oracle_met(code, facts)
    else:
        with pytest.raises(ValueError):
            requirement_met(code, facts)


# --- is_known_requirement --------------------------------------------------------------

KNOWN = [
    *PLAIN_CODES,
    *(f"role_present:{r}" for r in ROLES),
    "field_set:a",
    "field_set:po_number",
    "field_set:tender_id_2",
    "field_set:x9",
    "field_set:" + "a" * 64,
]
UNKNOWN = [
    "role_present:ceo",
    "field_set:Bad Key",
    "banana",
    "",
    "role_present:",
    "role_present:Champion",
    "role_present:champion ",
    "role_present:decision-maker",
    "role_present",
    "field_set:",
    "field_set",
    "field_set:1abc",
    "field_set:_abc",
    "field_set:abc-def",
    "field_set:ABC",
    "field_set:abc def",
    "field_set:" + "a" * 65,
    "field_set:çiçek",
    "Amount_set",
    "amount_set ",
    "quote_accepted",
    "FIELD_SET:abc",
]


@pytest.mark.parametrize("code", KNOWN)
def test_is_known_requirement_accepts(code: str) -> None:
    assert is_known_requirement(code) is True


@pytest.mark.parametrize(
    "code", [*UNKNOWN, "field_set:abc\n", "field_set:po_number\n", "role_present:champion\n"]
)
def test_is_known_requirement_rejects(code: str) -> None:
    assert is_known_requirement(code) is False
    with pytest.raises(ValueError):
        requirement_met(code, ALL_MET)


_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")


@FAST
@given(
    code=st.one_of(
        known_code_st,
        st.sampled_from(ROLES).map(lambda r: "role_present:" + r),
        st.from_regex(r"[a-z][a-z0-9_]{0,70}", fullmatch=True).map(lambda k: "field_set:" + k),
        st.text(alphabet="abcdefgz_AZ09 :-\n", max_size=30).map(lambda k: "field_set:" + k),
        st.text(alphabet="abcdefgz_AZ09 :-\n", max_size=30).map(lambda k: "role_present:" + k),
        st.text(max_size=30),
    )
)
def test_is_known_requirement_property(code: str) -> None:
    kind, sep, arg = code.partition(":")
    expected = (
        code in PLAIN_CODES
        or (sep and kind == "role_present" and arg in ROLES)
        or (sep and kind == "field_set" and _KEY.fullmatch(arg) is not None)
    )
    assert is_known_requirement(code) is bool(expected)


# --- the unmet list: every requirement, in order, no repeats, with a sentence ---------


@pytest.mark.parametrize("target_key", KEYS)
def test_unmet_list_names_every_requirement_in_order(target_key: str) -> None:
    target = BY_KEY[target_key]
    nothing = DealFacts(lost_reason_code=None)
    unmet = unmet_requirements(target.requirements, nothing)
    expected = [c for c in target.requirements if not _oracle_met(c, nothing)]
    assert [u.code for u in unmet] == expected
    for u in unmet:
        assert isinstance(u.detail, str) and len(u.detail.strip()) > 10
        assert u.detail != u.code


@FAST
@given(codes=st.lists(known_code_st, max_size=15), facts=facts_st)
def test_unmet_requirements_property(codes: list[str], facts: DealFacts) -> None:
    unmet = unmet_requirements(codes, facts)
    expected: list[str] = []
    for code in codes:
        if code not in expected and not _oracle_met(code, facts):
            expected.append(code)
    assert [u.code for u in unmet] == expected
    assert len({u.code for u in unmet}) == len(unmet)
    for u in unmet:
        assert isinstance(u.detail, str) and u.detail.strip()
        assert u.as_dict() == {"code": u.code, "detail": u.detail}


@pytest.mark.parametrize("code", EVERY_CODE)
def test_every_code_has_its_own_detail_sentence(code: str) -> None:
    # (competitor_set_if_lost_to_competitor is met vacuously without that lost reason)
    facts = DealFacts(lost_reason_code=None if code == "lost_reason_set" else "lost_to_competitor")
    (unmet,) = unmet_requirements([code, code], facts)
    assert unmet.code == code
    assert unmet.detail.strip()
    # The parametrised codes name their argument.
    if ":" in code:
        assert code.partition(":")[2] in unmet.detail


def test_details_are_distinct() -> None:
    details = [
        u.detail
        for facts in (DealFacts(), DealFacts(lost_reason_code="lost_to_competitor"))
        for u in unmet_requirements(EVERY_CODE, facts)
    ]
    details = list(dict.fromkeys(details))
    assert len(details) == len(EVERY_CODE)
    assert len(set(details)) == len(details)


def test_refused_move_lists_every_unmet_requirement_once() -> None:
    proposal_twice = replace(
        PROPOSAL, requirements=("amount_set", "close_date_set", "amount_set", "field_set:po_number")
    )
    stages = [s if s.key != "proposal" else proposal_twice for s in PIPELINE]
    move = plan_move(
        stages,
        "prospecting",
        "proposal",
        DealFacts(),
        reason=None,
        fields_required_from={"po_number": "needs_analysis", "region": "prospecting"},
    )
    assert [u.code for u in move.unmet] == [
        "amount_set",
        "close_date_set",
        "field_set:po_number",
        "field_set:region",
    ]


# --- entry_requirements and custom fields -----------------------------------------------


@pytest.mark.parametrize("target_key", KEYS)
@pytest.mark.parametrize("from_key", [*OPEN_KEYS, "closed_won", "not_in_pipeline", ""])
def test_entry_requirements_table(target_key: str, from_key: str) -> None:
    target = BY_KEY[target_key]
    got = entry_requirements(target, PIPELINE, {"po_number": from_key})
    applies = _fields_apply(target, from_key)
    assert got == [*target.requirements, *(["field_set:po_number"] if applies else [])]
    # Spelled out, for the record:
    if target.kind is StageKind.LOST or from_key not in BY_KEY:
        assert not applies
    elif target.kind is StageKind.WON:
        assert applies
    else:
        assert applies == (BY_KEY[from_key].position <= target.position)


@pytest.mark.parametrize("target_key", KEYS)
def test_entry_requirements_without_custom_fields(target_key: str) -> None:
    target = BY_KEY[target_key]
    assert entry_requirements(target, PIPELINE, {}) == list(target.requirements)


@pytest.mark.parametrize("from_key", OPEN_KEYS)
def test_field_required_from_a_stage(from_key: str) -> None:
    fields = {"tender_id": from_key}
    start = BY_KEY[from_key].position
    for target in PIPELINE:
        codes = entry_requirements(target, PIPELINE, fields)
        needed = "field_set:tender_id" in codes
        if target.kind is StageKind.LOST:
            assert not needed, target.key
        elif target.kind is StageKind.WON:
            assert needed
        else:
            assert needed == (target.position >= start), target.key


def test_fields_whose_stage_is_not_in_the_pipeline_are_ignored() -> None:
    fields = {"po_number": "site_visit", "region": "closed", "industry": "PROPOSAL"}
    for target in PIPELINE:
        assert entry_requirements(target, PIPELINE, fields) == list(target.requirements)
    # …and a field from a stage of *another* pipeline does not leak into this one.
    other = [
        Stage("discovery", 1),
        Stage("won", 2, StageKind.WON),
        Stage("lost", 3, StageKind.LOST),
    ]
    for target in other:
        assert entry_requirements(target, other, {"po_number": "proposal"}) == []


def test_losing_never_needs_custom_fields() -> None:
    fields = {k: frm for k, frm in zip(FIELD_KEYS, OPEN_KEYS, strict=False)}
    fields["region"] = "closed_won"
    assert entry_requirements(CLOSED_LOST, PIPELINE, fields) == list(CLOSED_LOST.requirements)
    move = plan_move(
        PIPELINE,
        "decision",
        "closed_lost",
        DealFacts(lost_reason_code="no_budget"),
        reason=None,
        fields_required_from=fields,
    )
    assert move.allowed


def test_field_required_from_the_won_stage_applies_only_to_winning() -> None:
    fields = {"po_number": "closed_won"}
    for target in PIPELINE:
        needed = "field_set:po_number" in entry_requirements(target, PIPELINE, fields)
        assert needed == (target.key == "closed_won"), target.key


def test_custom_fields_through_plan_move() -> None:
    fields = {"po_number": "proposal"}
    quoted = DealFacts(quotes=1)
    # Forward into a stage at or after the field's stage: the field is required.
    move = plan_move(
        PIPELINE, "needs_analysis", "presentation", quoted, reason=None, fields_required_from=fields
    )
    assert [u.code for u in move.unmet] == ["field_set:po_number"]
    assert "po_number" in move.unmet[0].detail
    with_field = replace(quoted, custom_fields_set=frozenset({"po_number"}))
    assert plan_move(
        PIPELINE,
        "needs_analysis",
        "presentation",
        with_field,
        reason=None,
        fields_required_from=fields,
    ).allowed
    # Forward into an earlier stage than the field's: not required.
    assert plan_move(
        PIPELINE,
        "prospecting",
        "needs_analysis",
        DealFacts(),
        reason=None,
        fields_required_from=fields,
    ).allowed
    # Into the field's own stage: required after the stage's own requirements.
    move = plan_move(
        PIPELINE, "prospecting", "proposal", DealFacts(), reason=None, fields_required_from=fields
    )
    assert [u.code for u in move.unmet] == ["amount_set", "close_date_set", "field_set:po_number"]
    # Winning: required.
    won = DealFacts(amount_set=True, won_reason_set=True)
    move = plan_move(
        PIPELINE, "prospecting", "closed_won", won, reason=None, fields_required_from=fields
    )
    assert [u.code for u in move.unmet] == ["field_set:po_number"]
    # Backward: not required (only a reason is).
    assert plan_move(
        PIPELINE,
        "decision",
        "proposal",
        DealFacts(),
        reason="re-scoping",
        fields_required_from=fields,
    ).allowed


@FAST
@given(target_key=st.sampled_from(KEYS), fields=fields_st)
def test_entry_requirements_property(target_key: str, fields: dict) -> None:
    target = BY_KEY[target_key]
    got = entry_requirements(target, PIPELINE, fields)
    assert list(dict.fromkeys(got)) == _expected_requirements(target, fields)


# --- plan_reopen ------------------------------------------------------------------------


@pytest.mark.parametrize(("source_key", "target_key"), PAIRS)
def test_plan_reopen_every_combination(source_key: str, target_key: str) -> None:
    for reason in REASONS:
        _check_reopen(source_key, target_key, reason)


def _check_reopen(source_key: str, target_key: str, reason: str | None) -> None:
    source, target = BY_KEY[source_key], BY_KEY[target_key]
    move = plan_reopen(PIPELINE, source_key, target_key, reason=reason)
    expected = [
        *(["not_closed"] if source.kind is StageKind.OPEN else []),
        *(["target_not_open"] if target.kind is not StageKind.OPEN else []),
        *([] if _non_blank(reason) else ["reason_required"]),
    ]
    assert [u.code for u in move.unmet] == expected
    assert move.kind is MoveKind.REOPEN
    assert move.source == source and move.target == target
    assert move.allowed == (
        source_key in CLOSED_KEYS and target_key in OPEN_KEYS and _non_blank(reason)
    )
    assert all(u.detail.strip() for u in move.unmet)


@FAST
@given(source_key=st.sampled_from(KEYS), target_key=st.sampled_from(KEYS), reason=reason_st)
def test_plan_reopen_property(source_key: str, target_key: str, reason: str | None) -> None:
    move = plan_reopen(PIPELINE, source_key, target_key, reason=reason)
    assert move.allowed == (
        BY_KEY[source_key].is_closed and not BY_KEY[target_key].is_closed and _non_blank(reason)
    )


def test_a_reopened_deal_moves_normally_again() -> None:
    reopen = plan_reopen(PIPELINE, "closed_lost", "negotiation", reason="budget came back")
    assert reopen.allowed
    # Once in negotiation, the usual rules apply (backward needs a reason, …).
    assert not plan_move(PIPELINE, "negotiation", "proposal", DealFacts(), reason=None).allowed


# --- forecast_category ------------------------------------------------------------------

OVERRIDES = (None, "pipeline", "best_case", "commit", "omitted", "closed")


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("override", OVERRIDES)
def test_forecast_category(key: str, override: str | None) -> None:
    stage = BY_KEY[key]
    got = forecast_category(stage, override)
    if stage.kind is StageKind.OPEN and override is not None:
        assert got == override
    else:
        assert got == stage.forecast_category


def test_forecast_category_defaults() -> None:
    assert [forecast_category(s, None) for s in PIPELINE] == [
        "pipeline",
        "pipeline",
        "pipeline",
        "best_case",
        "best_case",
        "commit",
        "closed",
        "omitted",
    ]
    assert forecast_category(CLOSED_WON, "pipeline") == "closed"
    assert forecast_category(CLOSED_LOST, "commit") == "omitted"
    assert forecast_category(PROSPECTING, "commit") == "commit"


@FAST
@given(key=st.sampled_from(KEYS), override=st.one_of(st.none(), st.sampled_from(OVERRIDES[1:])))
def test_forecast_category_property(key: str, override: str | None) -> None:
    stage = BY_KEY[key]
    expected = (
        override if (override is not None and not stage.is_closed) else stage.forecast_category
    )
    assert forecast_category(stage, override) == expected


# --- pipeline_problems ------------------------------------------------------------------


def _codes(stages: Sequence[Stage]) -> Counter[str]:
    problems = pipeline_problems(stages)
    assert all(p.detail.strip() for p in problems)
    return Counter(p.code for p in problems)


def test_the_default_pipeline_is_valid() -> None:
    assert pipeline_problems(PIPELINE) == []
    assert pipeline_problems(list(reversed(PIPELINE))) == []


def test_duplicate_keys() -> None:
    stages = [*PIPELINE, Stage("proposal", 9)]
    problems = pipeline_problems(stages)
    assert [p.code for p in problems] == ["duplicate_stage_key"]
    assert "proposal" in problems[0].detail
    # Each duplicated key is reported, once.
    stages = [*PIPELINE, Stage("proposal", 9), Stage("proposal", 10), Stage("decision", 11)]
    problems = pipeline_problems(stages)
    assert Counter(p.code for p in problems) == {"duplicate_stage_key": 2}
    assert sorted("proposal" in p.detail for p in problems) == [False, True]
    assert any("decision" in p.detail for p in problems)


def test_won_stage_count() -> None:
    no_won = [s for s in PIPELINE if s.key != "closed_won"]
    assert _codes(no_won) == {"won_stage_count": 1}
    two_won = [*PIPELINE, Stage("won_again", 9, StageKind.WON)]
    assert _codes(two_won) == {"won_stage_count": 1}


def test_lost_stage_count() -> None:
    no_lost = [s for s in PIPELINE if s.key != "closed_lost"]
    assert _codes(no_lost) == {"lost_stage_count": 1}
    two_lost = [*PIPELINE, Stage("lost_again", 9, StageKind.LOST)]
    assert _codes(two_lost) == {"lost_stage_count": 1}


def test_no_open_stage() -> None:
    assert _codes([CLOSED_WON, CLOSED_LOST]) == {"no_open_stage": 1}
    assert _codes([]) == {"no_open_stage": 1, "won_stage_count": 1, "lost_stage_count": 1}
    assert _codes([DECISION, CLOSED_WON, CLOSED_LOST]) == {}


@pytest.mark.parametrize("code", UNKNOWN)
def test_unknown_requirement(code: str) -> None:
    bad = replace(PROPOSAL, requirements=("amount_set", code))
    stages = [bad if s.key == "proposal" else s for s in PIPELINE]
    problems = pipeline_problems(stages)
    assert [p.code for p in problems] == ["unknown_requirement"]
    assert "proposal" in problems[0].detail and repr(code) in problems[0].detail


def test_every_unknown_requirement_is_reported() -> None:
    stages = [
        replace(s, requirements=(*s.requirements, "banana", "role_present:ceo"))
        if s.key in ("needs_analysis", "closed_won")
        else s
        for s in PIPELINE
    ]
    problems = pipeline_problems(stages)
    assert Counter(p.code for p in problems) == {"unknown_requirement": 4}


def test_known_requirements_are_fine_anywhere() -> None:
    stages = [replace(s, requirements=tuple(EVERY_CODE)) for s in PIPELINE]
    assert pipeline_problems(stages) == []


def test_problems_combine() -> None:
    stages = [
        Stage("won", 1, StageKind.WON, requirements=("banana",)),
        Stage("won", 2, StageKind.WON),
    ]
    assert _codes(stages) == {
        "duplicate_stage_key": 1,
        "no_open_stage": 1,
        "won_stage_count": 1,
        "lost_stage_count": 1,
        "unknown_requirement": 1,
    }


stage_st = st.builds(
    Stage,
    key=st.sampled_from(("a", "b", "c", "d", "won", "lost")),
    position=st.integers(1, 10),
    kind=st.sampled_from(list(StageKind)),
    requirements=st.lists(
        st.one_of(known_code_st, st.sampled_from(("banana", "role_present:ceo", "field_set:X"))),
        max_size=3,
    ).map(tuple),
)


@FAST
@given(stages=st.lists(stage_st, max_size=8))
def test_pipeline_problems_property(stages: list[Stage]) -> None:
    keys = Counter(s.key for s in stages)
    kinds = Counter(s.kind for s in stages)
    expected: Counter[str] = Counter()
    expected["duplicate_stage_key"] = sum(1 for n in keys.values() if n > 1)
    expected["no_open_stage"] = int(kinds[StageKind.OPEN] == 0)
    expected["won_stage_count"] = int(kinds[StageKind.WON] != 1)
    expected["lost_stage_count"] = int(kinds[StageKind.LOST] != 1)
    expected["unknown_requirement"] = sum(
        1
        for s in stages
        for c in s.requirements
        if c in ("banana", "role_present:ceo", "field_set:X")
    )
    assert _codes(stages) == +expected
