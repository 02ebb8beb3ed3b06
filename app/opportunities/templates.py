"""Pipeline templates (SPEC.md §6 and the seeds): data, not code.

Each stage: (key, name, kind, probability %, forecast category, expected days, rotting days,
entry requirements). Open stages come in order; then the won and the lost stage.
"""

from __future__ import annotations

from typing import NamedTuple


class StageTemplate(NamedTuple):
    key: str
    name: str
    kind: str
    probability: int
    forecast_category: str
    expected_days: int | None
    rotting_days: int | None
    requirements: tuple[str, ...]


WON = StageTemplate(
    "closed_won",
    "Closed won",
    "won",
    100,
    "closed",
    None,
    None,
    ("quote_accepted_or_amount", "won_reason_set"),
)
LOST = StageTemplate(
    "closed_lost",
    "Closed lost",
    "lost",
    0,
    "omitted",
    None,
    None,
    ("lost_reason_set", "competitor_set_if_lost_to_competitor"),
)


def _open(
    key: str,
    name: str,
    probability: int,
    category: str,
    expected: int,
    rotting: int,
    *requirements: str,
) -> StageTemplate:
    return StageTemplate(key, name, "open", probability, category, expected, rotting, requirements)


TEMPLATES: dict[str, tuple[str, str, tuple[StageTemplate, ...]]] = {
    "b2b": (
        "B2B sales",
        "The default B2B pipeline: prospecting to decision.",
        (
            _open("prospecting", "Prospecting", 10, "pipeline", 14, 21),
            _open("needs_analysis", "Needs analysis", 20, "pipeline", 21, 21),
            _open("proposal", "Proposal", 40, "pipeline", 14, 14, "amount_set", "close_date_set"),
            _open("presentation", "Presentation", 50, "best_case", 14, 14, "quote_exists"),
            _open("negotiation", "Negotiation", 70, "best_case", 21, 14, "quote_approved"),
            _open(
                "decision",
                "Decision",
                85,
                "commit",
                14,
                10,
                "role_present:decision_maker",
                "role_present:champion",
            ),
            WON,
            LOST,
        ),
    ),
    "manufacturing": (
        "Manufacturing",
        "Long cycles with technical evaluation, samples and procurement.",
        (
            _open("discovery", "Discovery", 10, "pipeline", 30, 30),
            _open(
                "technical_evaluation",
                "Technical evaluation",
                25,
                "pipeline",
                45,
                30,
                "role_present:technical_evaluator",
            ),
            _open("sample_trial", "Sample / trial production", 40, "pipeline", 60, 30),
            _open(
                "proposal",
                "Proposal",
                55,
                "best_case",
                21,
                21,
                "amount_set",
                "close_date_set",
                "quote_exists",
            ),
            _open(
                "procurement",
                "Procurement",
                75,
                "commit",
                30,
                21,
                "quote_approved",
                "role_present:procurement",
            ),
            WON,
            LOST,
        ),
    ),
    "textile_seasonal": (
        "Textile (seasonal)",
        "Collections sold against season deadlines; short rotting windows.",
        (
            _open("collection_presented", "Collection presented", 15, "pipeline", 14, 10),
            _open("samples_sent", "Samples sent", 30, "pipeline", 14, 10),
            _open(
                "price_agreed",
                "Price agreed",
                60,
                "best_case",
                10,
                7,
                "amount_set",
                "close_date_set",
                "quote_exists",
            ),
            _open("order_confirmation", "Order confirmation", 85, "commit", 7, 5, "quote_approved"),
            WON,
            LOST,
        ),
    ),
    "construction_tender": (
        "Construction tender",
        "Public and private tenders: specification, bid, evaluation.",
        (
            _open("tender_announced", "Tender announced", 5, "pipeline", 30, 30),
            _open("specification", "Specification", 15, "pipeline", 30, 30),
            _open(
                "bid_preparation",
                "Bid preparation",
                30,
                "pipeline",
                21,
                14,
                "amount_set",
                "close_date_set",
            ),
            _open("bid_submitted", "Bid submitted", 45, "best_case", 45, 30, "quote_approved"),
            _open("shortlisted", "Shortlisted", 65, "best_case", 30, 21),
            _open("award", "Award", 90, "commit", 14, 14, "role_present:decision_maker"),
            WON,
            LOST,
        ),
    ),
    "saas": (
        "SaaS",
        "Demo, trial and subscription: a shorter, product-led cycle.",
        (
            _open("qualified", "Qualified", 10, "pipeline", 7, 14),
            _open("demo", "Demo", 25, "pipeline", 7, 10),
            _open("trial", "Trial", 45, "best_case", 14, 10),
            _open(
                "proposal",
                "Proposal",
                60,
                "best_case",
                7,
                7,
                "amount_set",
                "close_date_set",
                "quote_exists",
            ),
            _open("contracting", "Contracting", 85, "commit", 7, 7, "quote_approved"),
            WON,
            LOST,
        ),
    ),
}
DEFAULT_TEMPLATE = "b2b"
