"""The pure lead lifecycle (app/leads/lifecycle.py, SPEC.md §4): every status pair
table-driven, BANT combinations property-based, no database.

The expected transition table is written out here from the specification, independently
of the module, and compared with what ``check_transition`` says."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.leads.lifecycle import (
    BANT_ITEMS,
    OPEN_STATUSES,
    STATUS_TIMESTAMPS,
    TRANSITIONS,
    Unmet,
    check_conversion,
    check_transition,
    unconfirmed_bant,
)

STATUSES = ("new", "mql", "sal", "sql", "converted", "disqualified", "recycled")

# new → mql → sal → sql (→ converted only through /convert); disqualified from any open
# status; recycled from sal or sql; a recycled lead can become an MQL again; a referral or
# event lead may skip ahead new → sal.
EXPECTED_ALLOWED = {
    ("new", "mql"),
    ("new", "sal"),
    ("mql", "sal"),
    ("sal", "sql"),
    ("sal", "recycled"),
    ("sql", "recycled"),
    ("recycled", "mql"),
    *((status, "disqualified") for status in ("new", "mql", "sal", "sql", "recycled")),
}

ALL_CONFIRMED = {item: {"value": f"{item} ok", "confirmed": True} for item in BANT_ITEMS}


def test_the_table_matches_the_specification() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == EXPECTED_ALLOWED
    assert set(OPEN_STATUSES) == {"new", "mql", "sal", "sql", "recycled"}
    assert TRANSITIONS["converted"] == () and TRANSITIONS["disqualified"] == ()
    assert BANT_ITEMS == ("budget", "authority", "need", "timeline")
    assert set(STATUS_TIMESTAMPS) == set(STATUSES) - {"new"}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(STATUSES, STATUSES)))
def test_every_status_pair(current: str, target: str) -> None:
    # BANT confirmed and a reason given: only the table decides.
    unmet = check_transition(
        current, target, bant=ALL_CONFIRMED, require_bant=True, reason_code="no_budget"
    )
    if target == "converted":
        assert unmet == [Unmet("use_conversion", "a lead is converted through POST /convert")]
    elif (current, target) in EXPECTED_ALLOWED:
        assert unmet == []
    else:
        assert [u.code for u in unmet] == ["invalid_transition"]
        assert unmet[0].detail.startswith(f"from {current} the lead can go to: ")
        if current in ("converted", "disqualified"):
            assert unmet[0].detail.endswith("none (final status)")
        else:
            named = unmet[0].detail.split(": ", 1)[1].split(", ")
            assert set(named) == {b for a, b in EXPECTED_ALLOWED if a == current}


@pytest.mark.parametrize("current", STATUSES)
def test_converted_is_never_a_status_move_whatever_else_holds(current: str) -> None:
    for require_bant in (True, False):
        unmet = check_transition(current, "converted", bant={}, require_bant=require_bant)
        assert [u.code for u in unmet] == ["use_conversion"]


@pytest.mark.parametrize("current", ["new", "mql", "sal", "sql", "recycled"])
def test_disqualify_needs_a_reason_code_from_every_open_status(current: str) -> None:
    for missing in (None, ""):
        unmet = check_transition(current, "disqualified", bant={}, reason_code=missing)
        assert unmet == [Unmet("reason_required", "disqualifying a lead needs a reason code")]
    assert check_transition(current, "disqualified", bant={}, reason_code="spam") == []


def test_a_reason_code_is_ignored_for_other_moves() -> None:
    assert check_transition("new", "mql", bant={}, reason_code="spam") == []
    # A final status stays final, even with a reason.
    unmet = check_transition("disqualified", "disqualified", bant={}, reason_code="spam")
    assert [u.code for u in unmet] == ["invalid_transition"]


def test_an_invalid_move_to_sql_does_not_also_list_bant() -> None:
    unmet = check_transition("mql", "sql", bant={}, require_bant=True)
    assert [u.code for u in unmet] == ["invalid_transition"]


# --- BANT -----------------------------------------------------------------------------------

GARBAGE_ITEMS = [
    None,
    "yes",
    1,
    True,
    ["confirmed"],
    {},
    {"value": "big"},
    {"confirmed": "true"},
    {"confirmed": 1},
    {"confirmed": None},
]
# One BANT item: (what is stored, whether it counts as confirmed); "missing" drops the key.
ITEM_STATES = st.one_of(
    st.just(("confirmed", True)),
    st.just(("unconfirmed", False)),
    st.just(("missing", False)),
    st.sampled_from(GARBAGE_ITEMS).map(lambda g: (g, False)),
)


def _bant(states: dict[str, Any]) -> dict[str, Any]:
    bant: dict[str, Any] = {}
    for item, (state, _) in states.items():
        if state == "confirmed":
            bant[item] = {"value": "v", "confirmed": True}
        elif state == "unconfirmed":
            bant[item] = {"value": "v", "confirmed": False}
        elif state != "missing":
            bant[item] = state
    return bant


@pytest.mark.parametrize("confirmed", list(itertools.product([True, False], repeat=4)))
def test_all_16_confirmed_combinations(confirmed: tuple[bool, ...]) -> None:
    bant = {
        item: {"value": "v", "confirmed": flag}
        for item, flag in zip(BANT_ITEMS, confirmed, strict=True)
    }
    expected = [item for item, flag in zip(BANT_ITEMS, confirmed, strict=True) if not flag]
    assert unconfirmed_bant(bant) == expected
    unmet = check_transition("sal", "sql", bant=bant, require_bant=True)
    assert [u.code for u in unmet] == [f"bant_{item}_unconfirmed" for item in expected]
    assert all(
        u.detail == f"BANT {i} must be recorded and confirmed"
        for u, i in zip(unmet, expected, strict=True)
    )
    assert check_transition("sal", "sql", bant=bant, require_bant=False) == []


@given(st.fixed_dictionaries({item: ITEM_STATES for item in BANT_ITEMS}))
def test_bant_with_missing_and_garbage_items(states: dict[str, Any]) -> None:
    bant = _bant(states)
    expected = [item for item in BANT_ITEMS if not states[item][1]]
    assert unconfirmed_bant(bant) == expected
    unmet = check_transition("sal", "sql", bant=bant, require_bant=True)
    assert [u.code for u in unmet] == [f"bant_{item}_unconfirmed" for item in expected]
    # Turned off by the organization: nothing is required.
    assert check_transition("sal", "sql", bant=bant, require_bant=False) == []
    # BANT matters only for sql.
    assert check_transition("sal", "recycled", bant=bant) == []


@given(
    st.dictionaries(
        st.text(max_size=10).filter(lambda k: k not in BANT_ITEMS),
        st.just({"confirmed": True}),
        max_size=4,
    )
)
def test_unknown_bant_keys_confirm_nothing(extra: dict[str, Any]) -> None:
    assert unconfirmed_bant(extra) == list(BANT_ITEMS)
    assert unconfirmed_bant({**extra, **ALL_CONFIRMED}) == []


def test_unmet_as_dict() -> None:
    assert Unmet("reason_required", "why").as_dict() == {
        "code": "reason_required",
        "detail": "why",
    }


# --- conversion -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "allow_from_sal", "expected"),
    [
        ("sql", False, []),
        ("sql", True, []),
        ("sal", True, []),
        ("sal", False, ["not_qualified"]),
        ("converted", False, ["already_converted"]),
        ("converted", True, ["already_converted"]),
        *(
            (status, allow, ["not_qualified"])
            for status in ("new", "mql", "recycled", "disqualified")
            for allow in (False, True)
        ),
    ],
)
def test_check_conversion(status: str, allow_from_sal: bool, expected: list[str]) -> None:
    unmet = check_conversion(status, allow_from_sal=allow_from_sal)
    assert [u.code for u in unmet] == expected
    if expected == ["not_qualified"]:
        wanted = "sql or sal" if allow_from_sal else "sql"
        assert unmet[0].detail == f"only a lead in {wanted} converts"
