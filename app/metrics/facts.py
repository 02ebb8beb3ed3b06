"""The stored facts behind the KPIs, aggregated in SQL.

Each fact is one aggregate statement over one family of rows (opportunities, leads,
customers, activities, quotas, spend, stage history, forecast submissions) for one
period, filtered by the request's filters and optionally grouped by owner, team or
segment. A fact returns ``{group key: {aggregate: value}}`` (the key is ``None`` when
ungrouped); the KPI definitions in ``kpis.py`` only combine those few aggregate rows.

Money is converted to the corporate currency inside the statement (``fx.Converter``):
won and lost deals on their close date, open deals on the evaluation day, quotas and
spend on their first day, forecast submissions on the day they were made. Rows with no
known rate are left out of the sums and counted as ``unconverted``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    Integer,
    Select,
    Text,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from app.core.database import AGGREGATES_ENGINE_KEY
from app.core.tenancy import INCLUDE_DELETED, actor_of, bind_tenant, tenant_id
from app.metrics import rollups
from app.metrics.fx import Converter, Expr, converter_for
from app.metrics.periods import Period, year_before
from app.metrics.rollups import ADVANCED, CLOSING_MOVES, utc_date
from app.models import (
    Account,
    Activity,
    ActivityRollup,
    Campaign,
    ForecastSubmission,
    Lead,
    Opportunity,
    OpportunityCloseRollup,
    OpportunityCreatedRollup,
    PipelineStage,
    Quota,
    Spend,
    StageEntryRollup,
    StageExitRollup,
    StageHistory,
    User,
)

log = logging.getLogger("dealbase.metrics")

GroupBy = Literal["owner", "team", "segment"]
# Connections a report computes its facts on, side by side (``FactContext.prefetch``).
FACT_CONCURRENCY = 3
# The facts that take longest at volume (in this order at 1M deals, bench/README.md): a
# report starts them first, so that none is left running alone after the others.
SLOWEST_FACTS = ("trailing_revenue", "rep_quotas", "customers", "stage_times", "forecast")
# Sorting and hashing a quarter of stage history (600k rows at 1M deals) stays in memory.
AGGREGATE_WORK_MEM = "64MB"


async def prepare_for_aggregates(session: AsyncSession, *, side_by_side: bool = False) -> None:
    """Settings for this transaction only (``set_config(…, true)`` is ``SET LOCAL``):
    room for its sorts and hashes, and a plan made for each statement's own values. The
    asyncpg driver prepares every statement; after five runs on a connection PostgreSQL
    may reuse a generic plan, made without knowing the period, and the KPI statements then
    ran up to 2× slower (trailing revenue 240 → 480 ms at 1M). Planning anew costs ~1 ms.
    No merge joins: the planner cannot know how many days the exchange-rate CTEs list
    (``fx``), and with a high guess it sorted a quarter's deals to merge them with the rate
    days instead of hashing the few real ones (revenue by rep at 1M: 880 → 680 ms). No JIT
    compilation: a correlated subquery's cost estimate crossed ``jit_above_cost`` and the
    lead funnel spent 14 ms compiling to read 25,000 index entries.

    ``side_by_side``: the statements run beside the other facts of a report, which already
    keep the cores busy, so they get no parallel workers of their own. The customers' scan
    took 49 ms with two workers and three times the CPU; alone on its process, 70 ms, and a
    summary at 1M ~10 ms less."""
    settings = [
        func.set_config("work_mem", AGGREGATE_WORK_MEM, True),
        func.set_config("plan_cache_mode", "force_custom_plan", True),
        func.set_config("enable_mergejoin", "off", True),
        func.set_config("jit", "off", True),
    ]
    if side_by_side:
        settings.append(func.set_config("max_parallel_workers_per_gather", "0", True))
    await session.execute(select(*settings))


def _start_rank(fact: str) -> int:
    return SLOWEST_FACTS.index(fact) if fact in SLOWEST_FACTS else len(SLOWEST_FACTS)


Key = str | None
Rows = dict[Key, dict[str, Any]]
# Money sums to convert: name → (amount, condition, None for every row).
Money = dict[str, tuple[Expr, ColumnElement[bool] | None]]

FILTER_NAMES = (
    "owner_id",
    "team_id",
    "territory_id",
    "segment",
    "pipeline_id",
    "type",
    "source",
)
# Which filters (and groupings) each family of facts can honour.
_OPPORTUNITY_FILTERS = frozenset(FILTER_NAMES)
FAMILY_FILTERS: dict[str, frozenset[str]] = {
    "opportunity": _OPPORTUNITY_FILTERS,
    "stage_history": _OPPORTUNITY_FILTERS,
    "lead": frozenset({"owner_id", "team_id", "territory_id", "segment", "source"}),
    "customer": frozenset({"owner_id", "team_id", "territory_id", "segment"}),
    "activity": frozenset({"owner_id", "team_id"}),
    "quota": frozenset({"owner_id", "team_id"}),
    "submission": frozenset({"owner_id"}),
    "spend": frozenset(),
}
FAMILY_GROUPS: dict[str, frozenset[str]] = {
    "opportunity": frozenset({"owner", "team", "segment"}),
    "stage_history": frozenset({"owner", "team", "segment"}),
    "lead": frozenset({"owner", "team", "segment"}),
    "customer": frozenset({"owner", "team", "segment"}),
    "activity": frozenset({"owner", "team"}),
    "quota": frozenset({"owner", "team"}),
    "submission": frozenset(),
    "spend": frozenset(),
}
# Aliases are built once: building one walks every column of the table.
OWNER = aliased(User, name="owner")
DEAL_ACCOUNT = aliased(Account, name="deal_account")
SOURCE_LEAD = aliased(Lead, name="source_lead")
CONVERTED_DEAL = aliased(Opportunity, name="converted_deal")
HISTORY_STAGE = aliased(PipelineStage, name="history_stage")
TEAM_MEMBER = aliased(User, name="team_member")


@dataclass(frozen=True, slots=True)
class MetricFilters:
    owner_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    territory_id: uuid.UUID | None = None
    segment: str | None = None
    pipeline_id: uuid.UUID | None = None
    type: str | None = None
    source: str | None = None

    def given(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in FILTER_NAMES if getattr(self, n) is not None}


@dataclass(slots=True)
class Dimensions:
    """Where a family's rows keep each filterable attribute (None: not applicable)."""

    owner: Expr | None = None
    segment: Expr | None = None
    territory: Expr | None = None
    pipeline: Expr | None = None
    type: Expr | None = None
    source: Expr | None = None
    account_join: Any = None  # (account alias, on-clause) joined only when needed


def start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass
class FactContext:
    """One evaluation: the tenant session, currency, filters, grouping and a memo so a
    summary computes each fact once."""

    session: AsyncSession
    corporate: str
    today: date
    filters: MetricFilters
    group_by: GroupBy | None = None
    converter: Converter = field(init=False)
    _memo: dict[tuple[str, str, date, date], Rows] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.converter = converter_for(self.corporate)

    async def fact(self, name: str, period: Period) -> Rows:
        memo_key = (name, period.label, period.start, period.end)
        if memo_key not in self._memo:
            self._memo[memo_key] = await FACTS[name](self, period)
        return self._memo[memo_key]

    async def prefetch(self, wanted: Iterable[tuple[str, Period]]) -> None:
        """Compute the facts not known yet side by side, on ``FACT_CONCURRENCY``
        connections (from the aggregates pool when the session names one): they are
        independent read-only aggregates, so a summary takes about as long as its slowest
        few instead of the sum of all."""
        missing = {
            (name, p.label, p.start, p.end): (name, p)
            for name, p in wanted
            if (name, p.label, p.start, p.end) not in self._memo
        }
        if len(missing) < 2:
            for name, p in missing.values():
                await self.fact(name, p)
            return
        organization, actor = tenant_id(self.session), actor_of(self.session)
        bind = self.session.info.get(AGGREGATES_ENGINE_KEY) or self.session.bind
        # Shared: each worker takes the next fact left, the slowest first. (An item is
        # (memo key, (fact name, period)).)
        jobs = iter(sorted(missing.items(), key=lambda item: _start_rank(item[1][0])))

        async def work() -> None:
            # One session per worker, not per fact: the facts only read, so they can share
            # a transaction and its settings instead of each paying for its own.
            async with AsyncSession(bind, autoflush=False) as session:
                bind_tenant(session, organization, actor)
                await prepare_for_aggregates(session, side_by_side=True)
                for key, (name, p) in jobs:
                    worker = replace(self, session=session, _memo={})
                    self._memo[key] = await FACTS[name](worker, p)

        await asyncio.gather(*(work() for _ in range(min(FACT_CONCURRENCY, len(missing)))))

    # --- scoping ----------------------------------------------------------------------

    def scope(
        self, stmt: Select[Any], dims: Dimensions, *, grouped: bool = True
    ) -> tuple[Select[Any], ColumnElement[Any]]:
        """``stmt`` filtered by every filter the dimensions support, and the group key
        expression (a constant NULL when ungrouped). Filters a family cannot honour are
        skipped here; the KPI reports them as ignored."""
        f = self.filters
        group_by = self.group_by if grouped else None
        needs_account = dims.account_join is not None and (
            f.segment is not None
            or f.territory_id is not None
            or (group_by == "segment" and dims.segment is not None)
        )
        if needs_account:
            account, on = dims.account_join
            stmt = stmt.outerjoin(account, on)
        needs_owner_user = dims.owner is not None and (f.team_id is not None or group_by == "team")
        owner_user = OWNER
        if needs_owner_user:
            stmt = stmt.outerjoin(owner_user, owner_user.id == dims.owner)
        conditions: list[ColumnElement[bool]] = []
        if f.owner_id is not None and dims.owner is not None:
            conditions.append(dims.owner == f.owner_id)
        if f.team_id is not None and dims.owner is not None:
            conditions.append(owner_user.team_id == f.team_id)
        if f.territory_id is not None and dims.territory is not None:
            conditions.append(dims.territory == f.territory_id)
        if f.segment is not None and dims.segment is not None:
            conditions.append(dims.segment == f.segment)
        if f.pipeline_id is not None and dims.pipeline is not None:
            conditions.append(dims.pipeline == f.pipeline_id)
        if f.type is not None and dims.type is not None:
            conditions.append(dims.type == f.type)
        if f.source is not None and dims.source is not None:
            conditions.append(dims.source == f.source)
        if conditions:
            stmt = stmt.where(*conditions)
        key: ColumnElement[Any]
        if group_by == "owner" and dims.owner is not None:
            key = cast(dims.owner, Text())
        elif group_by == "team" and dims.owner is not None:
            key = cast(owner_user.team_id, Text())
        elif group_by == "segment" and dims.segment is not None:
            key = dims.segment
        else:
            key = cast(null(), Text())
        return stmt, key

    def converted(
        self,
        stmt: Select[Any],
        keys: dict[str, Expr],
        *,
        currency: Expr,
        day: Expr,
        money: Money,
        sums: dict[str, ColumnElement[Any]] | None = None,
        priced: Expr | None = None,
    ) -> Select[Any]:
        """Money sums converted to the corporate currency, aggregated first and converted
        after: ``stmt``'s rows are summed per key, currency and conversion day, and only
        those few partial sums meet the rates (exact, since conversion is linear). The rows
        in the corporate currency need no rate, so their days do not matter: they add up
        to one partial sum per key. Even per rep, a quarter's won deals at 1M shrink to
        9,100 partial sums (of 56,700 deals; 43,600 when every row kept its day), so
        converting each row instead costs more (revenue by rep 369 → 305 ms).

        ``money`` maps a name to (amount, condition); each gives ``name`` (the converted
        sum) and ``name_unconverted`` (rows with an amount but no known rate). ``sums``
        are other additive aggregates (counts, day totals) carried through unchanged.

        ``priced``: the rows are roll-ups, each of several deals, and this column says how
        many of them have an amount (otherwise a row with an amount counts one)."""
        sums = sums or {}
        rate_day = case((currency == self.corporate, null()), else_=day)
        inner_columns: list[Any] = [k.label(f"k_{name}") for name, k in keys.items()]
        inner_columns += [currency.label("currency"), rate_day.label("day")]
        for name, (amount, condition) in money.items():
            total: ColumnElement[Any] = func.sum(amount)
            rows: ColumnElement[Any] = func.count(amount) if priced is None else func.sum(priced)
            if condition is not None:
                total, rows = total.filter(condition), rows.filter(condition)
            inner_columns += [total.label(f"m_{name}"), rows.label(f"n_{name}")]
        inner_columns += [aggregate.label(f"s_{name}") for name, aggregate in sums.items()]
        partial = (
            stmt.add_columns(*inner_columns)
            .group_by(*keys.values(), currency, rate_day)
            .subquery("partial")
        )
        outer = select(*(partial.c[f"k_{name}"].label(name) for name in keys)).select_from(partial)
        outer, rate = self.converter.join_rate(outer, partial.c.currency, partial.c.day)
        columns: list[Any] = []
        for name in money:
            columns.append(func.coalesce(func.sum(partial.c[f"m_{name}"] * rate), 0).label(name))
            columns.append(
                func.coalesce(func.sum(partial.c[f"n_{name}"]).filter(rate.is_(None)), 0).label(
                    f"{name}_unconverted"
                )
            )
        columns += [func.coalesce(func.sum(partial.c[f"s_{name}"]), 0).label(name) for name in sums]
        return outer.add_columns(*columns).group_by(*(partial.c[f"k_{n}"] for n in keys))

    async def keyed(self, stmt: Select[Any]) -> Rows:
        """Run an aggregate ``stmt`` that has a ``group_key`` column."""
        rows: Rows = {}
        for row in (await self.session.execute(stmt)).mappings():
            values = dict(row)
            rows[values.pop("group_key")] = values
        return rows

    async def grouped(self, stmt: Select[Any], key: ColumnElement[Any]) -> Rows:
        """Run an aggregate ``stmt`` (its columns labelled) grouped by ``key``."""
        result = await self.session.execute(stmt.add_columns(key.label("group_key")).group_by(key))
        rows: Rows = {}
        for row in result.mappings():
            values = dict(row)
            rows[values.pop("group_key")] = values
        return rows


# --- opportunities ------------------------------------------------------------------


def _opportunity_dims() -> Dimensions:
    account = DEAL_ACCOUNT
    return Dimensions(
        owner=Opportunity.owner_id,
        segment=account.segment,
        territory=account.territory_id,
        pipeline=Opportunity.pipeline_id,
        type=Opportunity.type,
        source=Opportunity.source,
        account_join=(account, account.id == Opportunity.account_id),
    )


def _category() -> ColumnElement[Any]:
    return func.coalesce(Opportunity.forecast_category_override, PipelineStage.forecast_category)


def _closing_sums(
    kind: Expr, category: Expr, type_: Expr, deals: Callable[[], ColumnElement[Any]], cycle: Expr
) -> tuple[dict[str, ColumnElement[bool]], dict[str, ColumnElement[Any]]]:
    """Which rows each money sum of ``closing_facts`` takes, and its other sums, over rows
    of a stage ``kind``, forecast ``category`` and deal ``type`` (deals, or roll-ups of
    them): ``deals()`` counts them and ``cycle`` is their sales cycles in days."""
    won, lost = kind == "won", kind == "lost"
    open_ = and_(kind == "open", category != "omitted")
    new_business = type_ == "new_business"
    sums = {
        "won_count": deals().filter(won),
        "cycle_days": func.sum(cycle).filter(won),
        "lost_count": deals().filter(lost),
        "won_new_business": deals().filter(and_(won, new_business)),
        "lost_new_business": deals().filter(and_(lost, new_business)),
        "won_existing": deals().filter(and_(won, ~new_business)),
        "lost_existing": deals().filter(and_(lost, ~new_business)),
        "open_count": deals().filter(open_),
    }
    return {"won_amount": won, "open_amount": open_}, sums


async def closing_facts(ctx: FactContext, period: Period) -> Rows:
    """Deals whose close date is in the period: won and lost (with the sales cycle of the
    won ones and the new-business / existing-customer split) and the open deals still
    expected to close in it."""
    if _reads_rollups(ctx, "opportunity"):
        rollup = OpportunityCloseRollup
        kind = PipelineStage.kind
        category = func.coalesce(
            func.nullif(rollup.category_override, ""), PipelineStage.forecast_category
        )
        takes, sums = _closing_sums(
            kind, category, rollup.type, lambda: func.sum(rollup.deals), rollup.cycle_days
        )
        stmt = (
            select()
            .select_from(rollup)
            .join(PipelineStage, PipelineStage.id == rollup.stage_id)
            .where(_in_days(rollup.day, period), rollup.deals != 0)
        )
        return await ctx.keyed(
            ctx.converted(
                stmt,
                {"group_key": cast(null(), Text())},
                currency=rollup.currency,
                day=case((kind == "open", literal(ctx.today)), else_=rollup.day),
                money={name: (rollup.amount, rows) for name, rows in takes.items()},
                sums=sums,
                priced=rollup.priced,
            )
        )
    dims = _opportunity_dims()
    stmt = (
        select()
        .select_from(Opportunity)
        .join(PipelineStage, PipelineStage.id == Opportunity.stage_id)
        .where(Opportunity.close_date >= period.start, Opportunity.close_date < period.end)
    )
    stmt, key = ctx.scope(stmt, dims)
    takes, sums = _closing_sums(
        Opportunity.stage_kind,
        _category(),
        Opportunity.type,
        func.count,
        Opportunity.close_date - rollups.first_contact_day(),
    )
    totals = ctx.converted(
        stmt,
        {"group_key": key},
        currency=Opportunity.currency,
        # Closed deals convert on their close date, open ones today.
        day=case(
            (Opportunity.stage_kind == "open", literal(ctx.today)), else_=Opportunity.close_date
        ),
        money={name: (Opportunity.amount, rows) for name, rows in takes.items()},
        sums=sums,
    )
    return await ctx.keyed(totals)


async def created_facts(ctx: FactContext, period: Period) -> Rows:
    """Deals created in the period (the pipeline generated) and how many of them are won."""
    if _reads_rollups(ctx, "opportunity"):
        rollup = OpportunityCreatedRollup
        return await ctx.keyed(
            ctx.converted(
                select().select_from(rollup).where(_in_days(rollup.day, period), rollup.deals != 0),
                {"group_key": cast(null(), Text())},
                currency=rollup.currency,
                day=rollup.day,
                money={"created_amount": (rollup.amount, None)},
                sums={
                    "created_count": func.sum(rollup.deals),
                    "created_won": func.sum(rollup.deals).filter(rollup.won),
                },
                priced=rollup.priced,
            )
        )
    dims = _opportunity_dims()
    stmt = (
        select()
        .select_from(Opportunity)
        .where(
            Opportunity.created_at >= start_of(period.start),
            Opportunity.created_at < start_of(period.end),
        )
    )
    stmt, key = ctx.scope(stmt, dims)
    totals = ctx.converted(
        stmt,
        {"group_key": key},
        currency=Opportunity.currency,
        day=utc_date(Opportunity.created_at),
        money={"created_amount": (Opportunity.amount, None)},
        sums={
            "created_count": func.count(),
            "created_won": func.count().filter(Opportunity.stage_kind == "won"),
        },
    )
    return await ctx.keyed(totals)


def _won_in(start: date, end: date) -> Select[Any]:
    """Deals won with a close date in [start, end) (an index-only scan of the won ones)."""
    return (
        select()
        .select_from(Opportunity)
        .where(
            Opportunity.stage_kind == "won",
            Opportunity.close_date >= start,
            Opportunity.close_date < end,
        )
    )


def _won_from_rollups(
    ctx: FactContext, start: date, end: date, money: str, sums: tuple[str, ...] = ()
) -> Select[Any]:
    """Won revenue (``money``) with a close date in [start, end) and, if ``sums`` names
    it, the count of those deals (``won_count``), from the close-date roll-ups."""
    rollup = OpportunityCloseRollup
    stmt = (
        select()
        .select_from(rollup)
        .join(PipelineStage, PipelineStage.id == rollup.stage_id)
        .where(
            PipelineStage.kind == "won", rollup.day >= start, rollup.day < end, rollup.deals != 0
        )
    )
    counts = {"won_count": func.sum(rollup.deals)}
    return ctx.converted(
        stmt,
        {"group_key": cast(null(), Text())},
        currency=rollup.currency,
        day=rollup.day,
        money={money: (rollup.amount, None)},
        sums={name: counts[name] for name in sums},
        priced=rollup.priced,
    )


async def won_facts(ctx: FactContext, period: Period) -> Rows:
    """Revenue won in the period alone (what growth needs of the previous period)."""
    if _reads_rollups(ctx, "opportunity"):
        won = _won_from_rollups(ctx, period.start, period.end, "won_amount", ("won_count",))
        return await ctx.keyed(won)
    dims = _opportunity_dims()
    stmt, key = ctx.scope(_won_in(period.start, period.end), dims)
    totals = ctx.converted(
        stmt,
        {"group_key": key},
        currency=Opportunity.currency,
        day=Opportunity.close_date,
        money={"won_amount": (Opportunity.amount, None)},
        sums={"won_count": func.count()},
    )
    return await ctx.keyed(totals)


async def trailing_revenue_facts(ctx: FactContext, period: Period) -> Rows:
    """Won revenue and distinct paying customers in the twelve months up to the period end
    (the annual revenue per customer of CLTV). Distinct customers do not add up, so they
    are always counted from the deals."""
    dims = _opportunity_dims()
    window_start = year_before(period.end)
    stmt, key = ctx.scope(_won_in(window_start, period.end), dims)
    if _reads_rollups(ctx, "opportunity"):
        totals = _won_from_rollups(ctx, window_start, period.end, "revenue")
    else:
        totals = ctx.converted(
            stmt,
            {"group_key": key},
            currency=Opportunity.currency,
            day=Opportunity.close_date,
            money={"revenue": (Opportunity.amount, None)},
        )
    revenue = await ctx.keyed(totals)
    # The accounts counted as groups, not by count(DISTINCT): unfiltered, the won deals
    # come in account order from ix_opportunities_won_account and need no sort (a year's
    # 200,000 won deals at 1M: 130 → 50 ms).
    accounts = stmt.add_columns(key.label("group_key"), Opportunity.account_id).group_by(
        key, Opportunity.account_id
    )
    if ctx.group_by is None:
        # Asked for in account order, so that the planner does stream them from that index:
        # it had estimated hashing the 154,000 accounts cheaper, and took 145 ms, not 74.
        accounts = accounts.order_by(Opportunity.account_id)
    paying = accounts.subquery("paying")
    customers = await ctx.grouped(
        select(func.count().label("paying_customers")).select_from(paying), paying.c.group_key
    )
    for group, values in customers.items():
        revenue.setdefault(group, {}).update(values, window_start=window_start)
    return revenue


# --- leads --------------------------------------------------------------------------


def _lead_dims() -> Dimensions:
    return Dimensions(
        owner=Lead.owner_id,
        segment=Lead.segment,
        territory=Lead.territory_id,
        source=Lead.source,
    )


def _in(column: Expr, period: Period) -> ColumnElement[bool]:
    return and_(column >= start_of(period.start), column < start_of(period.end))


def _reads_rollups(ctx: FactContext, family: str) -> bool:
    """The daily roll-ups (``rollups.py``) hold whole-organization sums: they answer a
    period that no filter or grouping the family honours narrows; anything narrower reads
    the rows themselves."""
    return (
        not FAMILY_FILTERS[family].intersection(ctx.filters.given())
        and ctx.group_by not in FAMILY_GROUPS[family]
    )


def _in_days(day: Expr, period: Period) -> ColumnElement[bool]:
    return and_(day >= period.start, day < period.end)


async def lead_created_facts(ctx: FactContext, period: Period) -> Rows:
    stmt = select().select_from(Lead).where(_in(Lead.created_at, period))
    stmt, key = ctx.scope(stmt, _lead_dims())
    stmt = stmt.add_columns(
        func.count().label("created"),
        func.count().filter(Lead.converted_at.is_not(None)).label("converted"),
    )
    return await ctx.grouped(stmt, key)


async def lead_funnel_facts(ctx: FactContext, period: Period) -> Rows:
    """The cohort of leads that became MQL in the period, and how far each got."""
    won_deal = CONVERTED_DEAL
    # Looked up only for the SQLs (inside their FILTER): a join would hash every deal.
    converted_and_won = (
        select(won_deal.id)
        .where(won_deal.id == Lead.converted_opportunity_id, won_deal.stage_kind == "won")
        .correlate(Lead)
        .exists()
    )
    stmt = select().select_from(Lead).where(_in(Lead.mql_at, period))
    stmt, key = ctx.scope(stmt, _lead_dims())
    qualified = and_(Lead.sal_at.is_not(None), Lead.sql_at.is_not(None))
    stmt = stmt.add_columns(
        func.count().label("mql"),
        func.count().filter(Lead.sal_at.is_not(None)).label("sal"),
        func.count().filter(qualified).label("sql"),
        func.count()
        .filter(and_(qualified, Lead.converted_opportunity_id.is_not(None), converted_and_won))
        .label("won"),
    )
    return await ctx.grouped(stmt, key)


async def lead_sql_facts(ctx: FactContext, period: Period) -> Rows:
    stmt = select().select_from(Lead).where(_in(Lead.sql_at, period))
    stmt, key = ctx.scope(stmt, _lead_dims())
    return await ctx.grouped(stmt.add_columns(func.count().label("reached_sql")), key)


# --- customers ----------------------------------------------------------------------


async def customer_facts(ctx: FactContext, period: Period) -> Rows:
    """Customers at the start and end of the period, won and lost in it. A customer is
    an account from ``became_customer_at`` until ``churned_at``."""
    start, end = start_of(period.start), start_of(period.end)
    became, churned = Account.became_customer_at, Account.churned_at
    stmt = select().select_from(Account).where(became.is_not(None))
    stmt, key = ctx.scope(
        stmt,
        Dimensions(owner=Account.owner_id, segment=Account.segment, territory=Account.territory_id),
    )

    def customer_on(moment: datetime) -> ColumnElement[bool]:
        return and_(became < moment, or_(churned.is_(None), churned >= moment))

    lost = and_(churned >= start, churned < end, churned > became)
    lifetime_years = (
        extract("year", func.age(churned, became))
        + extract("month", func.age(churned, became)) / 12
        + extract("day", func.age(churned, became)) / Decimal("365.25")
    )
    ended = and_(churned.is_not(None), churned < end, churned > became)
    stmt = stmt.add_columns(
        func.count().filter(customer_on(start)).label("at_start"),
        func.count().filter(customer_on(end)).label("at_end"),
        func.count().filter(and_(became >= start, became < end)).label("new"),
        func.count().filter(lost).label("lost"),
        func.count().filter(ended).label("churned_to_date"),
        func.avg(lifetime_years).filter(ended).label("lifetime_years"),
    )
    return await ctx.grouped(stmt, key)


# --- spend, quotas, activities ------------------------------------------------------


def _overlap_days(start: Any, end: Any, period: Period) -> ColumnElement[Any]:
    return func.least(end, period.end) - func.greatest(start, period.start)


async def spend_facts(ctx: FactContext, period: Period) -> Rows:
    """Sales and marketing spend; a row that only partly overlaps the period counts pro
    rata by days."""
    overlap = _overlap_days(Spend.start, Spend.end, period)
    stmt = select().select_from(Spend).where(Spend.start < period.end, Spend.end > period.start)
    stmt, rate = ctx.converter.join_rate(stmt, Spend.currency, Spend.start)
    share = Spend.amount * rate * overlap / (Spend.end - Spend.start)
    stmt = stmt.add_columns(
        func.coalesce(func.sum(share).filter(Spend.category == "sales"), 0).label("sales"),
        func.coalesce(func.sum(share).filter(Spend.category == "marketing"), 0).label("marketing"),
        func.count().filter(rate.is_(None)).label("unconverted"),
    )
    return await ctx.grouped(stmt, cast(null(), Text()))


async def campaign_cost_facts(ctx: FactContext, period: Period) -> Rows:
    """Campaign costs in the period (the marketing side of CAC, next to recorded spend):
    a campaign's actual cost spreads evenly over its days (start … end, both inclusive;
    one day when it has no end), converted on its first day."""
    start = func.coalesce(Campaign.start_date, utc_date(Campaign.created_at))
    end = func.coalesce(Campaign.end_date, start) + 1
    overlap = _overlap_days(start, end, period)
    stmt = (
        select()
        .select_from(Campaign)
        .where(Campaign.actual_cost > 0, start < period.end, end > period.start)
    )
    stmt, rate = ctx.converter.join_rate(stmt, Campaign.currency, start)
    stmt = stmt.add_columns(
        func.coalesce(func.sum(Campaign.actual_cost * rate * overlap / (end - start)), 0).label(
            "campaign_costs"
        ),
        func.count().label("campaigns"),
        func.count().filter(rate.is_(None)).label("unconverted"),
    )
    return await ctx.grouped(stmt, cast(null(), Text()))


async def campaign_revenue_facts(ctx: FactContext, period: Period) -> Rows:
    """Revenue won in the period from deals sourced by a campaign (the deal's source lead
    came from it)."""
    dims = _opportunity_dims()
    stmt = _won_in(period.start, period.end).join(
        SOURCE_LEAD,
        and_(SOURCE_LEAD.id == Opportunity.lead_id, SOURCE_LEAD.campaign_id.is_not(None)),
    )
    stmt, key = ctx.scope(stmt, dims)
    totals = ctx.converted(
        stmt,
        {"group_key": key},
        currency=Opportunity.currency,
        day=Opportunity.close_date,
        money={"campaign_revenue": (Opportunity.amount, None)},
        sums={"campaign_deals": func.count()},
    )
    return await ctx.keyed(totals)


async def rep_quota_facts(ctx: FactContext, period: Period) -> Rows:
    """One row per rep with a quota in the period: the quota (the quotas recorded within
    the period; when there are none, the overlapping longer quotas pro rata by days) and
    the revenue the rep won in it. Keyed by user id; ``group_key`` says the group."""
    overlap = _overlap_days(Quota.start, Quota.end, period)
    quota_stmt = select(Quota.user_id).where(Quota.start < period.end, Quota.end > period.start)
    quota_stmt, rate = ctx.converter.join_rate(quota_stmt, Quota.currency, Quota.start)
    inside = and_(Quota.start >= period.start, Quota.end <= period.end)
    quotas = (
        quota_stmt.add_columns(
            func.sum(Quota.amount * rate).filter(inside).label("inside"),
            func.sum(Quota.amount * rate * overlap / (Quota.end - Quota.start)).label("prorated"),
            func.count().filter(rate.is_(None)).label("unconverted"),
        )
        .group_by(Quota.user_id)
        .subquery("rep_quotas")
    )
    dims = _opportunity_dims()
    won_stmt, _ = ctx.scope(_won_in(period.start, period.end), dims, grouped=False)
    won = ctx.converted(
        won_stmt,
        {"user_id": Opportunity.owner_id},  # the won revenue is per rep here
        currency=Opportunity.currency,
        day=Opportunity.close_date,
        money={"won": (Opportunity.amount, None)},
    ).subquery("rep_won")
    quota_amount = func.coalesce(quotas.c.inside, quotas.c.prorated)
    stmt = (
        select(
            cast(User.id, Text()).label("user_id"),
            User.name.label("name"),
            quota_amount.label("quota"),
            func.coalesce(won.c.won, 0).label("won"),
            quotas.c.unconverted.label("unconverted"),
        )
        .select_from(quotas)
        .join(User, User.id == quotas.c.user_id)
        .outerjoin(won, won.c.user_id == quotas.c.user_id)
        .where(quota_amount > 0)
    )
    f = ctx.filters
    if f.owner_id is not None:
        stmt = stmt.where(User.id == f.owner_id)
    if f.team_id is not None:
        stmt = stmt.where(User.team_id == f.team_id)
    if ctx.group_by == "owner":
        key: ColumnElement[Any] = cast(User.id, Text())
    elif ctx.group_by == "team":
        key = cast(User.team_id, Text())
    else:
        key = cast(null(), Text())
    result = await ctx.session.execute(stmt.add_columns(key.label("group_key")).order_by(User.name))
    return {row["user_id"]: dict(row) for row in result.mappings()}


async def activity_facts(ctx: FactContext, period: Period) -> Rows:
    if _reads_rollups(ctx, "activity"):
        day = ActivityRollup
        stmt = (
            select(*(func.sum(getattr(day, name)).label(name) for name in rollups.ACTIVITY_SUMS))
            .where(_in_days(day.day, period))
            .having(func.sum(day.activities) > 0)
        )
        return await ctx.grouped(stmt, cast(null(), Text()))
    stmt = select().select_from(Activity).where(_in(Activity.occurred_at, period))
    stmt, key = ctx.scope(stmt, Dimensions(owner=Activity.owner_id))
    stmt = stmt.add_columns(*(sql.label(name) for name, sql in rollups.activity_sums().items()))
    return await ctx.grouped(stmt, key)


# --- stage history ------------------------------------------------------------------


def _history_scope(ctx: FactContext, stmt: Any) -> tuple[Select[Any], ColumnElement[Any]]:
    """Stage history narrowed by the deal's attributes. The deals are joined only when a
    filter or grouping needs them (history of a quarter is millions of rows at scale);
    history stays history, so deals deleted later count either way."""
    if not ctx.filters.given() and ctx.group_by is None:
        return stmt, cast(null(), Text())
    dims = _opportunity_dims()
    stmt = stmt.join(Opportunity, Opportunity.id == StageHistory.opportunity_id)
    return ctx.scope(stmt.execution_options(**{INCLUDE_DELETED: True}), dims)


def _with_stage_names(grouped: Any, stage_id: Any) -> Select[Any]:
    """The aggregated rows with their stage's pipeline, key, name and position: joined
    after aggregating, so a quarter of history never meets the stage table row by row."""
    stage = HISTORY_STAGE
    return (
        select(
            grouped,
            stage.pipeline_id,
            stage.key.label("stage"),
            stage.name.label("stage_name"),
            stage.position,
        )
        .join(stage, stage.id == stage_id)
        .order_by(stage.pipeline_id, stage.position)
    )


async def stage_entry_facts(ctx: FactContext, period: Period) -> Rows:
    """Per open stage: the entries into it in the period and how many of them left it
    forward (to a further stage, skipping allowed, or won), read from each entry's
    recorded exit. A deal that came back into a stage counts once per entry."""
    if _reads_rollups(ctx, "stage_history"):
        grouped = (
            select(
                cast(null(), Text()).label("group_key"),
                StageEntryRollup.stage_id,
                func.sum(StageEntryRollup.entered).label("entered"),
                func.sum(StageEntryRollup.advanced).label("advanced"),
            )
            .where(_in_days(StageEntryRollup.day, period))
            .group_by(StageEntryRollup.stage_id)
            .subquery("entries")
        )
        stmt = _with_stage_names(grouped, grouped.c.stage_id)
        return _by_group_list(await ctx.session.execute(stmt), "stages")
    stmt = (
        select()
        .select_from(StageHistory)
        .where(_in(StageHistory.moved_at, period), StageHistory.direction.not_in(CLOSING_MOVES))
    )
    stmt, key = _history_scope(ctx, stmt)
    grouped = (
        stmt.add_columns(
            key.label("group_key"),
            StageHistory.to_stage_id.label("stage_id"),
            func.count().label("entered"),
            func.count().filter(StageHistory.exit_direction.in_(ADVANCED)).label("advanced"),
        )
        .group_by(key, StageHistory.to_stage_id)
        .subquery("entries")
    )
    stmt = _with_stage_names(grouped, grouped.c.stage_id)
    return _by_group_list(await ctx.session.execute(stmt), "stages")


async def stage_time_facts(ctx: FactContext, period: Period) -> Rows:
    """Per stage left in the period, and over all of them: how many exits, the total and
    the median days spent. The median is exact but computed from counts per distinct
    duration (in hundredths of a day, as stored), so the history is hashed once, never
    sorted; one statement gives the stages and the overall row (``stage_id`` NULL)."""
    if _reads_rollups(ctx, "stage_history"):
        from_rollups = await _stage_times_from_rollups(ctx, period)
        if from_rollups is not None:
            return from_rollups
        log.warning(
            "stage exit roll-ups disagree with the history; `dealbase rebuild-rollups` "
            "recomputes them",
            extra={"organization_id": str(tenant_id(ctx.session))},
        )
    days = StageHistory.days_in_previous_stage
    stmt = (
        select()
        .select_from(StageHistory)
        .where(_in(StageHistory.moved_at, period), rollups.exit_conditions())
    )
    stmt, key = _history_scope(ctx, stmt)
    hundredths = cast(days * 100, Integer)
    counts = (
        stmt.add_columns(
            key.label("group_key"),
            StageHistory.from_stage_id.label("stage_id"),
            hundredths.label("duration"),
            func.count().label("n"),
        )
        .group_by(key, StageHistory.from_stage_id, hundredths)
        .cte("duration_counts")
    )
    overall = (
        select(
            counts.c.group_key,
            cast(null(), counts.c.stage_id.type).label("stage_id"),
            counts.c.duration,
            func.sum(counts.c.n).label("n"),
        )
        .group_by(counts.c.group_key, counts.c.duration)
        .subquery("overall_counts")
    )
    medians = union_all(_medians(counts), _medians(overall)).subquery("medians")
    stage = HISTORY_STAGE
    stmt = (
        select(
            medians,
            stage.pipeline_id,
            stage.key.label("stage"),
            stage.name.label("stage_name"),
            stage.position,
        )
        .outerjoin(stage, stage.id == medians.c.stage_id)
        .order_by(stage.pipeline_id, stage.position)
    )
    rows: Rows = {}
    for row in (await ctx.session.execute(stmt)).mappings():
        values = dict(row)
        group = rows.setdefault(values.pop("group_key"), {"stages": []})
        if values["stage_id"] is None:
            group.update(values)
        else:
            group["stages"].append(values)
    return rows


async def _stage_times_from_rollups(ctx: FactContext, period: Period) -> Rows | None:
    """``stage_time_facts`` of an unfiltered period, exactly, from the daily roll-ups.

    The roll-ups count exits per stage and whole days spent. Summed over the period's
    days (one row per stage and day count), they give each stage's exits and total days
    and tell in which whole-day bucket its median positions ⌊(N−1)/2⌋ and ⌈(N−1)/2⌉ fall,
    and how far into the bucket; the overall row (``stage_id`` NULL) sums the stages per
    bucket. Only those buckets' moves of the period are then read from the history, by
    ``ix_stage_history_exit_duration``, for the exact values at those positions. None when
    one of them is not there (roll-ups out of step with the history)."""
    rollup = StageExitRollup
    per_stage = (
        select(
            rollup.stage_id,
            rollup.whole_days,
            func.sum(rollup.exits).label("n"),
            func.sum(rollup.hundredths).label("h"),
        )
        .where(_in_days(rollup.day, period))
        .group_by(rollup.stage_id, rollup.whole_days)
        .cte("bucket_counts")
    )
    overall = select(
        cast(null(), per_stage.c.stage_id.type).label("stage_id"),
        per_stage.c.whole_days,
        func.sum(per_stage.c.n).label("n"),
        func.sum(per_stage.c.h).label("h"),
    ).group_by(per_stage.c.whole_days)
    buckets = union_all(select(per_stage), overall).subquery("buckets")
    partition = buckets.c.stage_id
    running = select(
        buckets,
        func.sum(buckets.c.n)
        .over(partition_by=partition, order_by=buckets.c.whole_days)
        .label("upto"),
        func.sum(buckets.c.n).over(partition_by=partition).label("exits"),
        func.sum(buckets.c.h).over(partition_by=partition).label("hundredths"),
    ).subquery("running")
    low = func.floor((running.c.exits - 1) / 2)
    high = func.ceil((running.c.exits - 1) / 2)
    before = running.c.upto - running.c.n

    def holds(position: ColumnElement[Any]) -> ColumnElement[bool]:
        return and_(before <= position, position < running.c.upto)

    stage = HISTORY_STAGE
    located = (
        select(
            running.c.stage_id,
            running.c.whole_days,
            running.c.exits,
            running.c.hundredths,
            case((holds(low), low - before)).label("low_offset"),
            case((holds(high), high - before)).label("high_offset"),
            stage.pipeline_id,
            stage.key.label("stage"),
            stage.name.label("stage_name"),
            stage.position,
        )
        .outerjoin(stage, stage.id == running.c.stage_id)
        .where(or_(holds(low), holds(high)))
        .order_by(stage.pipeline_id, stage.position)
    )
    partitions: dict[uuid.UUID | None, dict[str, Any]] = {}
    targets: list[tuple[uuid.UUID | None, int, int]] = []  # stage, bucket, offset
    for row in (await ctx.session.execute(located)).mappings():
        stage_id = row["stage_id"]
        partitions.setdefault(
            stage_id,
            {
                "stage_id": stage_id,
                "exits": row["exits"],
                "total_days": Decimal(row["hundredths"]) / 100,
                "median_days": Decimal(0),
                "pipeline_id": row["pipeline_id"],
                "stage": row["stage"],
                "stage_name": row["stage_name"],
                "position": row["position"],
            },
        )
        for offset in (row["low_offset"], row["high_offset"]):
            if offset is not None:
                targets.append((stage_id, row["whole_days"], int(offset)))
    if not partitions:
        return {}
    stage_ids = [s for s in partitions if s is not None]
    days = StageHistory.days_in_previous_stage
    # Both positions of a median mostly fall in the same bucket: one lookup reads them.
    lookups: dict[tuple[uuid.UUID | None, int], list[int]] = {}
    for stage_id, bucket, offset in targets:
        lookups.setdefault((stage_id, bucket), []).append(offset)
    # Each lookup: its stage and bucket, the offsets it serves, the first and how many.
    spans = [
        (key, offsets, min(offsets), max(offsets) - min(offsets) + 1)
        for key, offsets in lookups.items()
    ]
    picks = []
    for index, ((stage_id, bucket), _offsets, first, count) in enumerate(spans):
        of_stage = (
            StageHistory.from_stage_id == stage_id
            if stage_id is not None
            else StageHistory.from_stage_id.in_(stage_ids)
        )
        picks.append(
            select(literal(index).label("lookup"), days.label("days"))
            .where(
                of_stage,
                func.floor(days) == bucket,
                _in(StageHistory.moved_at, period),
                rollups.exit_conditions(),
            )
            .order_by(days)
            .offset(first)
            .limit(count)
            .subquery()
            .select()
        )
    picked: dict[int, list[Decimal]] = {}
    for lookup, value in await ctx.session.execute(union_all(*picks)):
        picked.setdefault(lookup, []).append(Decimal(value))
    for index, ((stage_id, _bucket), offsets, first, count) in enumerate(spans):
        found = sorted(picked.get(index, []))
        if len(found) < count:
            return None  # the roll-ups count moves the history lacks (written around the API)
        for offset in offsets:
            # Each partition has its two positions' values; their mean is the median.
            partitions[stage_id]["median_days"] += found[offset - first] / 2
    whole = partitions.pop(None)
    return {None: {**whole, "stages": list(partitions.values())}}


def _medians(counts: Any) -> Select[Any]:
    """Per (group_key, stage_id) of ``(…, duration, n)`` rows: exits, total days and the
    median days — ``percentile_cont(0.5)``: the mean of the durations at positions
    ⌊(N−1)/2⌋ and ⌈(N−1)/2⌉ in sorted order, found by running totals of the counts."""
    partition = [counts.c.group_key, counts.c.stage_id]
    running = select(
        *partition,
        counts.c.duration,
        counts.c.n,
        func.sum(counts.c.n).over(partition_by=partition, order_by=counts.c.duration).label("upto"),
        func.sum(counts.c.n).over(partition_by=partition).label("total"),
    ).subquery()
    keys = [running.c.group_key, running.c.stage_id]
    half = (running.c.total - 1) / 2
    low = func.min(running.c.duration).filter(running.c.upto > func.floor(half))
    high = func.min(running.c.duration).filter(running.c.upto > func.ceil(half))
    return select(
        *keys,
        func.sum(running.c.n).label("exits"),
        (func.sum(running.c.duration * running.c.n) / 100.0).label("total_days"),
        ((low + high) / 200.0).label("median_days"),
    ).group_by(*keys)


def _by_group_list(result: Any, name: str) -> Rows:
    rows: Rows = {}
    for row in result.mappings():
        values = dict(row)
        rows.setdefault(values.pop("group_key"), {name: []})[name].append(values)
    return rows


# --- forecast submissions -----------------------------------------------------------


async def forecast_facts(ctx: FactContext, period: Period) -> Rows:
    """The forecast called for the period against what was won. The forecaster is the
    ``owner_id`` filter's user, else every top-of-hierarchy user (no manager) who
    submitted; each one's latest submission made before the period ended counts, and the
    actual is the won revenue of the forecasters and everyone under them."""
    latest = (
        select(
            ForecastSubmission.user_id,
            ForecastSubmission.commit,
            ForecastSubmission.currency,
            ForecastSubmission.submitted_at,
        )
        .ext(distinct_on(ForecastSubmission.user_id))
        .join(User, User.id == ForecastSubmission.user_id)
        .where(
            ForecastSubmission.period_start == period.start,
            ForecastSubmission.period_end == period.end,
            ForecastSubmission.submitted_at < start_of(period.end),
        )
        .order_by(ForecastSubmission.user_id, ForecastSubmission.submitted_at.desc())
    )
    if ctx.filters.owner_id is not None:
        latest = latest.where(ForecastSubmission.user_id == ctx.filters.owner_id)
    else:
        latest = latest.where(User.manager_id.is_(None))
    submitted = latest.subquery("latest_submissions")
    forecast_stmt = select().select_from(submitted)
    forecast_stmt, rate = ctx.converter.join_rate(
        forecast_stmt, submitted.c.currency, utc_date(submitted.c.submitted_at)
    )
    forecast_stmt = forecast_stmt.add_columns(
        func.coalesce(func.sum(submitted.c.commit * rate), 0).label("forecast"),
        func.count().label("submissions"),
        func.count().filter(rate.is_(None)).label("unconverted"),
        func.array_agg(cast(submitted.c.user_id, Text())).label("forecasters"),
    )
    forecast = (await ctx.session.execute(forecast_stmt)).mappings().one()

    team = select(submitted.c.user_id.label("id")).cte("forecast_team", recursive=True)
    member = TEAM_MEMBER
    team = team.union(select(member.id).where(member.manager_id == team.c.id))
    won_stmt = ctx.converted(
        _won_in(period.start, period.end).where(Opportunity.owner_id.in_(select(team.c.id))),
        {},
        currency=Opportunity.currency,
        day=Opportunity.close_date,
        money={"actual": (Opportunity.amount, None)},
    )
    actual = (await ctx.session.execute(won_stmt)).scalar() or 0
    return {None: {**dict(forecast), "actual": actual}}


FACTS: dict[str, Callable[[FactContext, Period], Awaitable[Rows]]] = {
    "closing": closing_facts,
    "won": won_facts,
    "created": created_facts,
    "trailing_revenue": trailing_revenue_facts,
    "lead_created": lead_created_facts,
    "lead_funnel": lead_funnel_facts,
    "lead_sql": lead_sql_facts,
    "customers": customer_facts,
    "spend": spend_facts,
    "campaign_costs": campaign_cost_facts,
    "campaign_revenue": campaign_revenue_facts,
    "rep_quotas": rep_quota_facts,
    "activities": activity_facts,
    "stage_entries": stage_entry_facts,
    "stage_times": stage_time_facts,
    "forecast": forecast_facts,
}
FACT_FAMILY: dict[str, str] = {
    "closing": "opportunity",
    "won": "opportunity",
    "created": "opportunity",
    "trailing_revenue": "opportunity",
    "lead_created": "lead",
    "lead_funnel": "lead",
    "lead_sql": "lead",
    "customers": "customer",
    "spend": "spend",
    "campaign_costs": "spend",
    "campaign_revenue": "opportunity",
    "rep_quotas": "quota",
    "activities": "activity",
    "stage_entries": "stage_history",
    "stage_times": "stage_history",
    "forecast": "submission",
}
