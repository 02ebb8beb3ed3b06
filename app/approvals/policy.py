"""Which approvals a quote version needs, pure.

A policy is an ordered list of rules. Every rule whose conditions all hold (each optional:
effective discount % above, net total above, payment terms above N days, term above N
months) adds its steps; a step already added is not added twice. Steps run in order:

* ``manager_chain``: the requester's manager, then theirs, … up to and including the first
  whose approval authority (max discount %) covers the quote's discount — each of them
  approves in turn (so "manager, then VP" falls out of the authority limits);
* ``group``: any one member of a named approver group (``finance``, ``legal``, …);
* ``user``: one named user.

The default policy: above 10 % the manager chain; above 30 % also finance; payment terms
above 60 days add finance; a term above 36 months adds legal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

STEP_KINDS = ("manager_chain", "group", "user")
CONDITIONS = ("discount_pct_gt", "net_total_gt", "payment_terms_gt", "term_months_gt")

DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "name": "discount above 10%",
        "when": {"discount_pct_gt": "10"},
        "steps": [{"kind": "manager_chain"}],
    },
    {
        "name": "discount above 30%",
        "when": {"discount_pct_gt": "30"},
        "steps": [{"kind": "group", "group": "finance"}],
    },
    {
        "name": "payment terms above 60 days",
        "when": {"payment_terms_gt": 60},
        "steps": [{"kind": "group", "group": "finance"}],
    },
    {
        "name": "term above 36 months",
        "when": {"term_months_gt": 36},
        "steps": [{"kind": "group", "group": "legal"}],
    },
]


@dataclass(frozen=True, slots=True)
class QuoteFacts:
    discount_pct: Decimal
    net_total: Decimal
    payment_terms_days: int | None
    term_months: int | None


@dataclass(frozen=True, slots=True)
class Manager:
    user_id: str
    authority_pct: Decimal | None


@dataclass(frozen=True, slots=True)
class PlannedStep:
    position: int
    kind: str
    rule: str
    label: str
    approver_ids: tuple[str, ...]
    group: str | None = None
    resolvable: bool = True


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[PlannedStep, ...] = field(default=())

    @property
    def needs_approval(self) -> bool:
        return bool(self.steps)

    @property
    def resolvable(self) -> bool:
        return all(s.resolvable for s in self.steps)


def rule_problems(rules: Sequence[Mapping[str, Any]]) -> list[str]:
    problems = []
    for index, rule in enumerate(rules):
        where = f"rules[{index}]"
        if not isinstance(rule.get("name"), str) or not rule["name"]:
            problems.append(f"{where}: a name is required")
        when = rule.get("when") or {}
        if not isinstance(when, Mapping) or set(when) - set(CONDITIONS):
            problems.append(f"{where}: conditions are {', '.join(CONDITIONS)}")
        steps = rule.get("steps") or []
        if not steps:
            problems.append(f"{where}: at least one step")
        for step in steps:
            kind = step.get("kind")
            if kind not in STEP_KINDS:
                problems.append(f"{where}: step kind must be one of {', '.join(STEP_KINDS)}")
            elif kind == "group" and not step.get("group"):
                problems.append(f"{where}: a group step names its group")
            elif kind == "user" and not step.get("user_id"):
                problems.append(f"{where}: a user step names its user_id")
    return problems


def _holds(when: Mapping[str, Any], facts: QuoteFacts) -> bool:
    checks = {
        "discount_pct_gt": lambda v: facts.discount_pct > Decimal(str(v)),
        "net_total_gt": lambda v: facts.net_total > Decimal(str(v)),
        "payment_terms_gt": lambda v: (facts.payment_terms_days or 0) > int(v),
        "term_months_gt": lambda v: (facts.term_months or 0) > int(v),
    }
    return all(checks[name](value) for name, value in when.items())


def _chain_approvers(chain: Sequence[Manager], discount: Decimal) -> tuple[tuple[str, ...], bool]:
    """Managers from the nearest up to the first whose authority covers the discount."""
    approvers = []
    for manager in chain:
        approvers.append(manager.user_id)
        if manager.authority_pct is not None and manager.authority_pct >= discount:
            return tuple(approvers), True
    return tuple(approvers), False


def plan(
    rules: Sequence[Mapping[str, Any]],
    facts: QuoteFacts,
    *,
    manager_chain: Sequence[Manager],
    groups: Mapping[str, Sequence[str]],
    requester_id: str,
) -> Plan:
    """The sequential steps a quote version needs, with who can approve each."""
    steps: list[PlannedStep] = []
    seen: set[tuple[str, str]] = set()
    for rule in rules:
        if not _holds(rule.get("when") or {}, facts):
            continue
        for step in rule["steps"]:
            kind = step["kind"]
            if kind == "manager_chain":
                approvers, covered = _chain_approvers(manager_chain, facts.discount_pct)
                for user_id in approvers:
                    if ("user", user_id) in seen:
                        continue
                    seen.add(("user", user_id))
                    steps.append(
                        PlannedStep(
                            len(steps) + 1, kind, rule["name"], f"manager {user_id}", (user_id,)
                        )
                    )
                if not covered:
                    steps.append(
                        PlannedStep(
                            len(steps) + 1,
                            kind,
                            rule["name"],
                            "no manager's authority covers this discount",
                            (),
                            resolvable=False,
                        )
                    )
            elif kind == "group":
                key = ("group", step["group"])
                if key in seen:
                    continue
                seen.add(key)
                members = tuple(m for m in groups.get(step["group"], ()) if m != requester_id)
                steps.append(
                    PlannedStep(
                        len(steps) + 1,
                        kind,
                        rule["name"],
                        f"group {step['group']}",
                        members,
                        group=step["group"],
                        resolvable=bool(members),
                    )
                )
            else:
                user_id = str(step["user_id"])
                if ("user", user_id) in seen:
                    continue
                seen.add(("user", user_id))
                steps.append(
                    PlannedStep(
                        len(steps) + 1,
                        kind,
                        rule["name"],
                        f"user {user_id}",
                        (user_id,),
                        resolvable=user_id != requester_id,
                    )
                )
    return Plan(tuple(steps))
