"""Which approvals a quote version needs under the default and custom policies."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from app.approvals.policy import DEFAULT_RULES, Manager, QuoteFacts, plan, rule_problems

# rep → manager (authority 20 %) → VP (30 %) → CEO (no limit set)
CHAIN = [Manager("manager", D(20)), Manager("vp", D(30)), Manager("ceo", None)]
GROUPS = {"finance": ["fin1", "fin2"], "legal": ["law"]}


def steps(
    discount: str, *, terms: int | None = 30, months: int | None = 12, chain: list[Manager] = CHAIN
) -> list[tuple[str, tuple[str, ...]]]:
    facts = QuoteFacts(D(discount), D(1000), terms, months)
    result = plan(DEFAULT_RULES, facts, manager_chain=chain, groups=GROUPS, requester_id="rep")
    return [(s.label, s.approver_ids) for s in result.steps]


@pytest.mark.parametrize(
    ("discount", "expected"),
    [
        ("0", []),
        ("10", []),  # ≤ 10 %: none
        ("10.01", [("manager manager", ("manager",))]),
        ("20", [("manager manager", ("manager",))]),  # ≤ 20 %: the manager
        ("25", [("manager manager", ("manager",)), ("manager vp", ("vp",))]),  # then VP
        ("30", [("manager manager", ("manager",)), ("manager vp", ("vp",))]),
    ],
)
def test_discount_bands(discount: str, expected: list[tuple[str, tuple[str, ...]]]) -> None:
    assert steps(discount) == expected


def test_above_30_percent_adds_finance_and_walks_the_whole_chain() -> None:
    result = plan(
        DEFAULT_RULES,
        QuoteFacts(D(35), D(1000), 30, 12),
        manager_chain=CHAIN,
        groups=GROUPS,
        requester_id="rep",
    )
    labels = [s.label for s in result.steps]
    # nobody's authority covers 35 %: the chain goes to the top and is flagged unresolvable
    assert labels == [
        "manager manager",
        "manager vp",
        "manager ceo",
        "no manager's authority covers this discount",
        "group finance",
    ]
    assert not result.resolvable
    assert result.steps[-1].approver_ids == ("fin1", "fin2")


def test_payment_terms_and_term_length_add_finance_and_legal_once() -> None:
    assert steps("0", terms=90) == [("group finance", ("fin1", "fin2"))]
    assert steps("0", months=48) == [("group legal", ("law",))]
    # finance appears once even when two rules ask for it
    both = steps("35", terms=90, chain=[Manager("manager", D(50))])
    assert both == [("manager manager", ("manager",)), ("group finance", ("fin1", "fin2"))]


def test_requester_never_approves_and_empty_group_is_unresolvable() -> None:
    facts = QuoteFacts(D(0), D(0), 90, None)
    result = plan(
        DEFAULT_RULES, facts, manager_chain=[], groups={"finance": ["rep"]}, requester_id="rep"
    )
    assert result.steps[0].approver_ids == ()
    assert not result.resolvable


def test_custom_rules_and_validation() -> None:
    rules = [
        {
            "name": "big deals",
            "when": {"net_total_gt": "100000"},
            "steps": [{"kind": "user", "user_id": "cfo"}],
        }
    ]
    small = plan(
        rules,
        QuoteFacts(D(0), D(100000), None, None),
        manager_chain=CHAIN,
        groups={},
        requester_id="rep",
    )
    big = plan(
        rules,
        QuoteFacts(D(0), D("100000.01"), None, None),
        manager_chain=CHAIN,
        groups={},
        requester_id="rep",
    )
    assert not small.needs_approval
    assert [s.approver_ids for s in big.steps] == [("cfo",)]
    assert rule_problems(DEFAULT_RULES) == []
    assert rule_problems([{"name": "", "when": {"colour": 1}, "steps": [{"kind": "x"}]}]) == [
        "rules[0]: a name is required",
        "rules[0]: conditions are discount_pct_gt, net_total_gt, payment_terms_gt, term_months_gt",
        "rules[0]: step kind must be one of manager_chain, group, user",
    ]
