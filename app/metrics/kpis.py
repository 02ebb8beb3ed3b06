"""The KPIs of SPEC §11: each one a small combination of aggregate facts (``facts.py``).

A KPI never divides by zero: when its denominator is zero (or an input is missing) its
value is ``None`` and ``reason`` says why. Percentages are returned as percent (``"25.00"``
for 25 %), money in the corporate currency with two decimals, durations in days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from app.metrics.facts import FACT_FAMILY, FAMILY_FILTERS, FAMILY_GROUPS, FactContext, Key
from app.metrics.periods import Period, previous

Unit = Literal["currency", "percent", "ratio", "count", "days", "currency_per_day", "mixed"]
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
PREVIOUS = "@previous"  # a fact name suffix: the same fact for the previous period


def money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(CENT, ROUND_HALF_UP)


def two_places(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def percent(numerator: Any, denominator: Any) -> Decimal:
    return two_places(Decimal(numerator) * HUNDRED / Decimal(denominator))


@dataclass(frozen=True, slots=True)
class Outcome:
    value: Any
    inputs: dict[str, Any]
    reason: str | None = None


def ratio_outcome(numerator: Any, denominator: Any, reason: str, **inputs: Any) -> Outcome:
    """numerator / denominator as a percentage, or None with ``reason`` when the
    denominator is zero."""
    body = {"numerator": numerator, "denominator": denominator, **inputs}
    if not denominator:
        return Outcome(None, body, reason)
    return Outcome(percent(numerator, denominator), body)


class FactView:
    """The facts of one group, with zeros for facts that have no row in it."""

    def __init__(self, rows: dict[str, Any]) -> None:
        self._rows = rows

    def __getitem__(self, name: str) -> dict[str, Any]:
        row = self._rows.get(name)
        return row if isinstance(row, dict) else {}

    def reps(self) -> list[dict[str, Any]]:
        reps = self._rows.get("rep_quotas")
        return reps if isinstance(reps, list) else []

    def num(self, fact: str, column: str) -> Decimal:
        return Decimal(self[fact].get(column) or 0)

    def count(self, fact: str, column: str) -> int:
        return int(self[fact].get(column) or 0)


@dataclass(frozen=True, slots=True)
class Kpi:
    name: str
    title: str
    unit: Unit
    definition: str
    facts: tuple[str, ...]
    compute: Callable[[FactView, Period, FactContext], Outcome]
    families: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "families",
            frozenset(FACT_FAMILY[f.removesuffix(PREVIOUS)] for f in self.facts),
        )

    def fact_periods(self, period: Period) -> list[tuple[str, Period]]:
        """The facts (and their periods) this KPI reads for ``period``."""
        wanted = []
        for name in self.facts:
            fact, _, suffix = name.partition("@")
            wanted.append((fact, previous(period) if suffix else period))
        return wanted

    @property
    def path(self) -> str:
        return self.name.replace("_", "-")

    def ignored_filters(self, given: dict[str, Any]) -> list[str]:
        """Given filters that some input of this KPI cannot be narrowed by."""
        return sorted(
            f for f in given if any(f not in FAMILY_FILTERS[fam] for fam in self.families)
        )

    def groupable_by(self) -> frozenset[str]:
        groups = frozenset({"owner", "team", "segment", "month"})
        for family in self.families:
            groups &= FAMILY_GROUPS[family] | {"month"}
        return groups


# --- the definitions ----------------------------------------------------------------


def _revenue(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    return Outcome(
        money(f.num("closing", "won_amount")),
        {
            "won_amount": money(f.num("closing", "won_amount")),
            "won_count": f.count("closing", "won_count"),
            "unconverted_count": f.count("closing", "won_amount_unconverted"),
        },
    )


def _revenue_growth(f: FactView, period: Period, _c: FactContext) -> Outcome:
    current = money(f.num("closing", "won_amount"))
    before = money(f.num("won" + PREVIOUS, "won_amount"))
    prior = previous(period)
    return ratio_outcome(
        current - before,
        before,
        "no revenue in the previous period",
        revenue=current,
        previous_revenue=before,
        previous_period={"label": prior.label, "start": prior.start, "end": prior.end},
    )


def _average_deal_size(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    won = money(f.num("closing", "won_amount"))
    count = f.count("closing", "won_count")
    body = {"numerator": won, "denominator": count}
    if not count:
        return Outcome(None, body, "no deals were won in the period")
    return Outcome(money(won / count), body)


def _lead_conversion(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    return ratio_outcome(
        f.count("lead_created", "converted"),
        f.count("lead_created", "created"),
        "no leads were created in the period",
    )


def _funnel(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    mql, sal = f.count("lead_funnel", "mql"), f.count("lead_funnel", "sal")
    sql, won = f.count("lead_funnel", "sql"), f.count("lead_funnel", "won")

    def step(a: int, b: int) -> Decimal | None:
        return percent(b, a) if a else None

    inputs = {
        "numerator": won,
        "denominator": mql,
        "mql": mql,
        "sal": sal,
        "sql": sql,
        "won": won,
        "mql_to_sal": step(mql, sal),
        "sal_to_sql": step(sal, sql),
        "sql_to_won": step(sql, won),
    }
    if not mql:
        return Outcome(None, inputs, "no leads became MQL in the period")
    return Outcome(percent(won, mql), inputs)


def _opportunity_conversion(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    return ratio_outcome(
        f.count("created", "created_won"),
        f.count("created", "created_count"),
        "no opportunities were created in the period",
    )


def _win_rate(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    def split(won: int, lost: int) -> dict[str, Any]:
        return {"won": won, "lost": lost, "rate": percent(won, won + lost) if won + lost else None}

    won, lost = f.count("closing", "won_count"), f.count("closing", "lost_count")
    return ratio_outcome(
        won,
        won + lost,
        "no deals were won or lost in the period",
        won=won,
        lost=lost,
        new_business=split(
            f.count("closing", "won_new_business"), f.count("closing", "lost_new_business")
        ),
        expansion=split(f.count("closing", "won_existing"), f.count("closing", "lost_existing")),
    )


def _sales_cycle(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    days = f.count("closing", "cycle_days")
    won = f.count("closing", "won_count")
    body = {"numerator": days, "denominator": won}
    if not won:
        return Outcome(None, body, "no deals were won in the period")
    return Outcome(two_places(Decimal(days) / won), body)


def _qualified_leads(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    return Outcome(
        f.count("lead_sql", "reached_sql"),
        {
            "reached_sql": f.count("lead_sql", "reached_sql"),
            "leads_created": f.count("lead_created", "created"),
        },
    )


def _velocity(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    opportunities = f.count("created", "created_count")
    won, lost = f.count("closing", "won_count"), f.count("closing", "lost_count")
    won_amount = f.num("closing", "won_amount")
    cycle_days = f.count("closing", "cycle_days")
    win_rate = Decimal(won) / (won + lost) if won + lost else None
    average = won_amount / won if won else None
    cycle = Decimal(cycle_days) / won if won else None
    inputs = {
        "qualified_opportunities": opportunities,
        "win_rate": None if win_rate is None else two_places(win_rate * HUNDRED),
        "average_deal_size": None if average is None else money(average),
        "sales_cycle_days": None if cycle is None else two_places(cycle),
    }
    if win_rate is None or average is None or cycle is None:
        return Outcome(None, inputs, "no deals were won in the period")
    if not cycle:
        return Outcome(None, inputs, "the sales cycle is zero days")
    return Outcome(money(opportunities * win_rate * average / cycle), inputs)


def _forecast_accuracy(f: FactView, period: Period, ctx: FactContext) -> Outcome:
    forecast, actual = money(f.num("forecast", "forecast")), money(f.num("forecast", "actual"))
    inputs = {
        "forecast": forecast,
        "actual": actual,
        "submissions": f.count("forecast", "submissions"),
        "forecasters": f["forecast"].get("forecasters") or [],
    }
    if period.end > ctx.today:
        return Outcome(None, inputs, "the period has not ended")
    if not inputs["submissions"]:
        return Outcome(None, inputs, "no forecast was submitted for the period")
    if not actual:
        return Outcome(None, inputs, "nothing was won in the period")
    return Outcome(two_places((1 - abs(actual - forecast) / actual) * HUNDRED), inputs)


def _cac_parts(f: FactView) -> tuple[Decimal, int, dict[str, Any]]:
    sales, marketing = money(f.num("spend", "sales")), money(f.num("spend", "marketing"))
    campaigns = money(f.num("campaign_costs", "campaign_costs"))
    new = f.count("customers", "new")
    total = sales + marketing + campaigns
    inputs = {
        "numerator": total,
        "denominator": new,
        "sales_spend": sales,
        "marketing_spend": marketing + campaigns,
        "marketing_spend_recorded": marketing,
        "campaign_costs": campaigns,
        "new_customers": new,
    }
    return total, new, inputs


def _cac(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    spend, new, inputs = _cac_parts(f)
    if not new:
        return Outcome(None, inputs, "no new customers were won in the period")
    return Outcome(money(spend / new), inputs)


def _cltv_parts(f: FactView) -> tuple[Decimal | None, dict[str, Any], str | None]:
    revenue = money(f.num("trailing_revenue", "revenue"))
    customers = f.count("trailing_revenue", "paying_customers")
    lifetime = f["customers"].get("lifetime_years")
    annual = revenue / customers if customers else None
    inputs = {
        "trailing_12_month_revenue": revenue,
        "paying_customers": customers,
        "average_annual_revenue_per_customer": None if annual is None else money(annual),
        "average_lifetime_years": None if lifetime is None else two_places(Decimal(lifetime)),
        "churned_customers": f.count("customers", "churned_to_date"),
    }
    if annual is None:
        return None, inputs, "no customer paid in the twelve months up to the period end"
    if lifetime is None:
        return None, inputs, "no customer has churned yet, so the lifetime is unknown"
    return annual * Decimal(lifetime), inputs, None


def _cltv(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    value, inputs, reason = _cltv_parts(f)
    return Outcome(None if value is None else money(value), inputs, reason)


def _cac_ltv(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    cltv, cltv_inputs, reason = _cltv_parts(f)
    spend, new, _ = _cac_parts(f)
    cac = spend / new if new else None
    inputs = {
        "numerator": None if cltv is None else money(cltv),
        "denominator": None if cac is None else money(cac),
        "cltv": None if cltv is None else money(cltv),
        "cac": None if cac is None else money(cac),
        "healthy_at_least": Decimal(3),
    }
    if cltv is None:
        return Outcome(None, {**inputs, **cltv_inputs}, reason)
    if not cac:
        return Outcome(None, inputs, "CAC is zero or unknown (no spend or no new customers)")
    return Outcome(two_places(cltv / cac), inputs)


def _customer_rate(numerator: Callable[[FactView], int]) -> Callable[..., Outcome]:
    def compute(f: FactView, _p: Period, _c: FactContext) -> Outcome:
        return ratio_outcome(
            numerator(f),
            f.count("customers", "at_start"),
            "there were no customers at the start of the period",
            customers_at_start=f.count("customers", "at_start"),
            customers_at_end=f.count("customers", "at_end"),
            new_customers=f.count("customers", "new"),
            lost_customers=f.count("customers", "lost"),
        )

    return compute


def _rep_rows(f: FactView) -> list[dict[str, Any]]:
    return [
        {
            "user_id": rep["user_id"],
            "name": rep["name"],
            "quota": money(rep["quota"]),
            "won": money(rep["won"]),
            "attainment": percent(rep["won"], rep["quota"]),
        }
        for rep in f.reps()
    ]


def _quota_attainment(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    reps = _rep_rows(f)
    at_or_above = sum(1 for rep in reps if rep["won"] >= rep["quota"])
    team_quota = sum((r["quota"] for r in reps), Decimal("0.00"))
    team_won = sum((r["won"] for r in reps), Decimal("0.00"))
    return ratio_outcome(
        at_or_above,
        len(reps),
        "no rep has a quota for the period",
        team_quota=team_quota,
        team_won=team_won,
        team_attainment=percent(team_won, team_quota) if team_quota else None,
        reps=reps,
    )


def _rep_productivity(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    won = money(f.num("closing", "won_amount"))
    reps = len(f.reps())
    body = {"numerator": won, "denominator": reps}
    if not reps:
        return Outcome(None, body, "no rep has a quota for the period")
    return Outcome(money(won / reps), body)


def _time_selling(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    selling = f.num("activities", "selling_minutes") / 60
    logged = f.num("activities", "logged_minutes") / 60
    return ratio_outcome(
        two_places(selling),
        two_places(logged),
        "no activity hours were logged in the period",
        activities_without_duration=f.count("activities", "without_duration"),
    )


def _coverage(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    pipeline = money(f.num("closing", "open_amount"))
    won = money(f.num("closing", "won_amount"))
    quota = sum((money(rep["quota"]) for rep in f.reps()), Decimal("0.00"))
    remaining = quota - won
    inputs = {
        "numerator": pipeline,
        "denominator": remaining,
        "open_pipeline": pipeline,
        "quota": quota,
        "won": won,
        "unconverted_count": f.count("closing", "open_amount_unconverted"),
    }
    if not quota:
        return Outcome(None, inputs, "no quota is set for the period")
    if remaining <= 0:
        return Outcome(None, inputs, "the quota is already met")
    return Outcome(two_places(pipeline / remaining), inputs)


def _stage_conversion(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    stages = f["stage_entries"].get("stages") or []
    entered = sum(s["entered"] for s in stages)
    advanced = sum(s["advanced"] for s in stages)
    rows = [
        {
            "pipeline_id": s["pipeline_id"],
            "stage": s["stage"],
            "stage_name": s["stage_name"],
            "entered": s["entered"],
            "advanced": s["advanced"],
            "conversion": percent(s["advanced"], s["entered"]) if s["entered"] else None,
        }
        for s in stages
    ]
    return ratio_outcome(advanced, entered, "no deal entered a stage in the period", stages=rows)


def _days(value: Any) -> Decimal | None:
    return None if value is None else two_places(Decimal(value))


def _time_in_stage(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    times = f["stage_times"]
    stages = [
        {
            "pipeline_id": s["pipeline_id"],
            "stage": s["stage"],
            "stage_name": s["stage_name"],
            "exits": int(s["exits"]),
            "median_days": _days(s["median_days"]),
            "mean_days": _days(Decimal(s["total_days"]) / s["exits"]),
        }
        for s in times.get("stages") or []
    ]
    exits = int(times.get("exits") or 0)
    inputs = {"exits": exits, "stages": stages}
    if not exits:
        return Outcome(None, inputs, "no deal left a stage in the period")
    return Outcome(_days(times["median_days"]), inputs)


def _four_vs(f: FactView, period: Period, ctx: FactContext) -> Outcome:
    times = f["stage_times"]
    exits = int(times.get("exits") or 0)
    won, lost = f.count("closing", "won_count"), f.count("closing", "lost_count")
    value = {
        "volume": f.count("created", "created_count"),
        "value": money(f.num("created", "created_amount")),
        "velocity": _days(Decimal(times["total_days"]) / exits) if exits else None,
        "conversion": percent(won, won + lost) if won + lost else None,
    }
    return Outcome(
        value,
        {
            "volume": "opportunities created in the period",
            "value": "their total amount",
            "velocity": "mean days spent per stage by deals that left a stage in the period",
            "conversion": "win rate of the deals closed in the period",
            "stage_exits": exits,
            "won": won,
            "lost": lost,
        },
    )


def _campaign_roi(f: FactView, _p: Period, _c: FactContext) -> Outcome:
    revenue = money(f.num("campaign_revenue", "campaign_revenue"))
    cost = money(f.num("campaign_costs", "campaign_costs"))
    inputs = {
        "numerator": revenue,
        "denominator": cost,
        "won_deals": f.count("campaign_revenue", "campaign_deals"),
        "campaigns_with_cost": f.count("campaign_costs", "campaigns"),
    }
    if not cost:
        return Outcome(None, inputs, "no campaign cost falls in the period")
    return Outcome(two_places(revenue / cost), inputs)


KPIS: tuple[Kpi, ...] = (
    Kpi(
        "revenue",
        "Total revenue",
        "currency",
        "Σ amount of deals won with close date in the period.",
        ("closing",),
        _revenue,
    ),
    Kpi(
        "revenue_growth",
        "Revenue growth",
        "percent",
        "(revenue this period − revenue previous period) / revenue previous period. The "
        "previous period has the same length (the previous quarter of 2026-Q3 is 2026-Q2).",
        ("closing", "won" + PREVIOUS),
        _revenue_growth,
    ),
    Kpi(
        "average_deal_size",
        "Average deal size",
        "currency",
        "Won revenue / number of deals won, in the period.",
        ("closing",),
        _average_deal_size,
    ),
    Kpi(
        "lead_conversion_rate",
        "Lead conversion rate",
        "percent",
        "Leads created in the period that were converted / leads created in the period.",
        ("lead_created",),
        _lead_conversion,
    ),
    Kpi(
        "funnel",
        "Funnel MQL → SAL → SQL → won",
        "percent",
        "For the leads that became MQL in the period: MQL→SAL, SAL→SQL and SQL→won (the "
        "converted deal is won) in the inputs; the value is MQL→won.",
        ("lead_funnel",),
        _funnel,
    ),
    Kpi(
        "opportunity_conversion_rate",
        "Opportunity conversion rate",
        "percent",
        "Opportunities created in the period that were won / opportunities created in it.",
        ("created",),
        _opportunity_conversion,
    ),
    Kpi(
        "win_rate",
        "Win rate",
        "percent",
        "Won / (won + lost), deals closed in the period; split into new business and "
        "expansion (deals with existing customers: expansion and renewal types).",
        ("closing",),
        _win_rate,
    ),
    Kpi(
        "sales_cycle_length",
        "Sales cycle length",
        "days",
        "Mean days from first contact (the source lead's creation when the deal came from "
        "a lead, else the deal's creation) to the close date, for deals won in the period.",
        ("closing",),
        _sales_cycle,
    ),
    Kpi(
        "qualified_leads",
        "Qualified leads",
        "count",
        "Number of leads that reached SQL in the period.",
        ("lead_sql", "lead_created"),
        _qualified_leads,
    ),
    Kpi(
        "pipeline_velocity",
        "Pipeline velocity",
        "currency_per_day",
        "(qualified opportunities × win rate × average deal size) / sales cycle length, per "
        "day; qualified opportunities are those created in the period (every deal passed "
        "qualification).",
        ("created", "closing"),
        _velocity,
    ),
    Kpi(
        "forecast_accuracy",
        "Forecast accuracy",
        "percent",
        "1 − |actual won − forecast| / actual won, for a period that has ended. The "
        "forecast is the commit of the latest submission made before the period ended by "
        "the owner_id filter's user (else by every top-of-hierarchy user who submitted); "
        "actual is the revenue won by them and everyone under them.",
        ("forecast",),
        _forecast_accuracy,
    ),
    Kpi(
        "cac",
        "Customer acquisition cost",
        "currency",
        "Sales + marketing spend in the period / new customers won in it. Marketing spend "
        "is the recorded marketing spend plus the campaigns' actual costs (spread over "
        "their days); spend recorded for a longer period counts pro rata by days.",
        ("spend", "campaign_costs", "customers"),
        _cac,
    ),
    Kpi(
        "cltv",
        "Customer lifetime value",
        "currency",
        "Average annual revenue per customer (won revenue in the twelve months up to the "
        "period end / customers who paid in them) × average customer lifetime in years "
        "(from becoming a customer to churning, over customers churned by the period end).",
        ("trailing_revenue", "customers"),
        _cltv,
    ),
    Kpi(
        "cac_ltv_ratio",
        "CAC : LTV",
        "ratio",
        "CLTV / CAC (healthy at 3 or more).",
        ("trailing_revenue", "customers", "spend", "campaign_costs"),
        _cac_ltv,
    ),
    Kpi(
        "churn_rate",
        "Churn rate (gross)",
        "percent",
        "Customers lost in the period / customers at the start of the period.",
        ("customers",),
        _customer_rate(lambda f: f.count("customers", "lost")),
    ),
    Kpi(
        "net_customer_churn_rate",
        "Net customer churn rate",
        "percent",
        "(Customers lost − new customers) / customers at the start of the period.",
        ("customers",),
        _customer_rate(lambda f: f.count("customers", "lost") - f.count("customers", "new")),
    ),
    Kpi(
        "retention_rate",
        "Customer retention rate",
        "percent",
        "(Customers at the end − new customers in the period) / customers at the start.",
        ("customers",),
        _customer_rate(lambda f: f.count("customers", "at_end") - f.count("customers", "new")),
    ),
    Kpi(
        "quota_attainment",
        "Quota attainment",
        "percent",
        "Reps at or above quota / reps with a quota, in the period; the team's won / quota "
        "% and each rep's % in the inputs. "
        "A rep's quota is the sum of the quotas recorded within the period, else the "
        "overlapping longer quota pro rata by days.",
        ("rep_quotas",),
        _quota_attainment,
    ),
    Kpi(
        "rep_productivity",
        "Rep productivity",
        "currency",
        "Won revenue / number of reps with a quota, in the period.",
        ("closing", "rep_quotas"),
        _rep_productivity,
    ),
    Kpi(
        "time_spent_selling",
        "Time spent selling",
        "percent",
        "Hours of selling activities / all logged activity hours, in the period.",
        ("activities",),
        _time_selling,
    ),
    Kpi(
        "pipeline_coverage",
        "Pipeline coverage",
        "ratio",
        "Open pipeline closing in the period / (quota − won so far); 3.00 means three "
        "times the remaining quota.",
        ("closing", "rep_quotas"),
        _coverage,
    ),
    Kpi(
        "stage_conversion",
        "Stage conversion",
        "percent",
        "From the stage history: of the entries into a stage in the period, the share "
        "that left it forward (to a further stage, skipping allowed, or won); per stage in "
        "the inputs. A deal that came back into a stage counts once per entry.",
        ("stage_entries",),
        _stage_conversion,
    ),
    Kpi(
        "time_in_stage",
        "Median time in stage",
        "days",
        "Median days spent in a stage by the deals that left it in the period; per stage "
        "(median and mean) in the inputs.",
        ("stage_times",),
        _time_in_stage,
    ),
    Kpi(
        "campaign_roi",
        "Campaign ROI",
        "ratio",
        "Revenue won in the period from deals a campaign sourced (the deal's source lead "
        "came from it) / the campaigns' actual costs in the period (spread over their days). "
        "Per campaign, with influence and first/last touch: /v1/campaigns/{id}/influence.",
        ("campaign_revenue", "campaign_costs"),
        _campaign_roi,
    ),
    Kpi(
        "four_vs",
        "The four Vs",
        "mixed",
        "Volume (opportunities created in the period), value (their total), velocity "
        "(mean days per stage) and conversion (win rate), as one object.",
        ("created", "stage_times", "closing"),
        _four_vs,
    ),
)
BY_NAME: dict[str, Kpi] = {k.name: k for k in KPIS}


async def evaluate(kpi: Kpi, ctx: FactContext, period: Period) -> dict[Key, Outcome]:
    """The KPI per group (one entry, key None, when ungrouped)."""
    await ctx.prefetch(kpi.fact_periods(period))
    rows: dict[str, dict[Key, Any]] = {}
    for name, (fact, fact_period) in zip(kpi.facts, kpi.fact_periods(period), strict=True):
        result = await ctx.fact(fact, fact_period)
        if fact == "rep_quotas":
            by_group: dict[Key, Any] = {}
            for rep in result.values():
                by_group.setdefault(rep["group_key"], []).append(rep)
            rows[name] = by_group
        else:
            rows[name] = result
    keys: set[Key] = {None} if ctx.group_by is None else set()
    if ctx.group_by is not None:
        for by_group in rows.values():
            keys.update(by_group)
    return {
        key: kpi.compute(
            FactView({name: by_group.get(key) for name, by_group in rows.items()}), period, ctx
        )
        for key in keys
    }
