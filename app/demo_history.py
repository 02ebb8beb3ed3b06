"""Two years of sales history for the demo organization (and, with ``scale``, for the
benchmarks): leads moving through the funnel, deals moving through stages (forward and
sometimes backward) to won or lost, activities, customers won and churned, quotas, spend,
exchange rates and forecast submissions.

The services stamp "now" on everything they create, so history is generated here and
written with PostgreSQL ``COPY`` (fast enough for millions of rows); every value obeys
the same constraints the services enforce. Deterministic for a given random generator.
Volumes per unit of ``scale``: 1,000 leads, 5,000 opportunities (about 3 stage moves and 5
activities each) and 2,500 accounts.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.driver import run
from app.core.ids import new_id
from app.core.tenancy import tenant_id
from app.metrics import rollups
from app.metrics.periods import add_months, period_containing
from app.metrics.report_cache import record_change
from app.models import (
    Account,
    Activity,
    Campaign,
    ExchangeRate,
    ForecastSubmission,
    Lead,
    LeadStatusHistory,
    Opportunity,
    PipelineStage,
    Quota,
    Spend,
    StageHistory,
)

LEADS_PER_SCALE = 1_000
OPPORTUNITIES_PER_SCALE = 5_000
ACCOUNTS_PER_SCALE = 2_500
HISTORY_DAYS = 730
CHUNK = 20_000
LEAD_SOURCES = ("web_form", "event", "outbound", "partner", "referral", "paid")
DEAL_SOURCES = ("web_form", "event", "outbound", "partner", "referral")
INDUSTRIES = ("manufacturing", "textile", "construction", "saas", "logistics", "retail")
SELLING_KINDS = ("email", "call", "meeting", "demo", "linkedin")
# Rates to TRY on the first day of the history, drifting up ~2.5 % a month.
BASE_RATES = {"EUR": Decimal("30.00"), "USD": Decimal("27.50")}


@dataclass(frozen=True, slots=True)
class Stage:
    id: uuid.UUID
    key: str
    position: int
    kind: str
    probability: Decimal
    category: str
    expected_days: int


@dataclass(frozen=True, slots=True)
class SalesOrg:
    """Who sells: reps with their manager chain, managers and the VP on top."""

    reps: list[uuid.UUID]
    managers: list[uuid.UUID]
    vp: uuid.UUID
    manager_of: dict[uuid.UUID, uuid.UUID]
    territories: list[uuid.UUID]


# Tables in the order their foreign keys need them written.
WRITE_ORDER: tuple[Any, ...] = (
    ExchangeRate,
    Account,
    Campaign,
    Lead,
    LeadStatusHistory,
    Opportunity,
    StageHistory,
    Activity,
    Quota,
    ForecastSubmission,
    Spend,
)


@dataclass
class _Writer:
    """Buffers rows per table and COPYs them in chunks (every table's buffer at once, in
    foreign-key order, so a row never arrives before what it references)."""

    session: AsyncSession
    organization_id: uuid.UUID
    buffers: dict[Any, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    written: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def add(self, model: Any, **row: Any) -> None:
        self.buffers[model].append(row)
        if len(self.buffers[model]) >= CHUNK:
            await self.flush()

    analyzed: dict[str, int] = field(default_factory=dict)

    async def flush(self) -> None:
        for model in WRITE_ORDER:
            rows = self.buffers.pop(model, [])
            if rows:
                await self._copy(model.__table__, rows)
                await self._analyze_when_grown(model.__table__.name)

    async def _analyze_when_grown(self, table: str) -> None:
        """ANALYZE a table each time it doubles: the foreign-key checks of the next COPY
        are re-planned with its real size (planned on a near-empty table they scan it
        whole for every row)."""
        if self.written[table] >= 2 * self.analyzed.get(table, 500):
            await self.session.execute(text(f"ANALYZE {table}"))
            self.analyzed[table] = self.written[table]

    async def _copy(self, table: Table, rows: list[dict[str, Any]]) -> None:
        given = set().union(*(row.keys() for row in rows))
        # Columns nobody gave and without a Python default keep their server default.
        columns = [
            c
            for c in table.columns
            if c.name in given
            or c.default is not None
            or c.name in ("organization_id", "created_at", "updated_at")
        ]
        now = datetime.now(UTC)
        records = []
        for row in rows:
            record = []
            for column in columns:
                if column.name == "organization_id":
                    value: Any = self.organization_id
                elif column.name in row:
                    value = row[column.name]
                elif column.name in ("created_at", "updated_at"):
                    value = row.get("created_at", now)
                elif column.default is not None and column.default.is_scalar:
                    value = getattr(column.default, "arg")  # noqa: B009 - typed as generator
                elif column.default is not None and column.default.is_callable:
                    value = getattr(column.default, "arg")({})  # noqa: B009
                else:
                    value = None
                if isinstance(column.type, JSONB) and value is not None:
                    value = json.dumps(value)
                record.append(value)
            records.append(tuple(record))
        names = [c.name for c in columns]
        await run(
            self.session,
            f"COPY {table.name}",
            lambda driver: driver.copy_records_to_table(table.name, records=records, columns=names),
        )
        record_change(self.session, self.organization_id)  # COPY bypasses the ORM's counting
        self.written[table.name] += len(records)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _moment(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(rng.randint(7, 18), rng.randint(0, 59)), tzinfo=UTC)


def _amount(rng: random.Random) -> Decimal:
    """Log-uniform between 20,000 and 2,000,000, rounded to the thousand."""
    value = math.exp(rng.uniform(math.log(20_000), math.log(2_000_000)))
    return Decimal(int(value / 1000) * 1000)


def _synthetic_rate(currency: str, day: date, start: date) -> Decimal:
    """The demo's made-up rate to TRY: the base rate, up 2.5 % a month since ``start``."""
    months = (day.year - start.year) * 12 + day.month - start.month
    return (BASE_RATES[currency] * Decimal("1.025") ** months).quantize(Decimal("0.0001"))


async def load_stages(session: AsyncSession) -> dict[uuid.UUID, list[Stage]]:
    rows = await session.scalars(select(PipelineStage).order_by(PipelineStage.position))
    stages: dict[uuid.UUID, list[Stage]] = defaultdict(list)
    for s in rows:
        stages[s.pipeline_id].append(
            Stage(
                s.id,
                s.key,
                s.position,
                s.kind,
                s.probability,
                s.forecast_category,
                s.expected_days or 14,
            )
        )
    return stages


@dataclass
class _Deal:
    id: uuid.UUID
    owner: uuid.UUID
    account: uuid.UUID
    created: datetime
    amount: Decimal
    currency: str
    won_on: date | None = None


async def seed_history(
    session: AsyncSession,
    org: SalesOrg,
    pipelines: dict[uuid.UUID, list[Stage]],
    rng: random.Random,
    *,
    scale: int = 1,
    today: date | None = None,
) -> dict[str, int]:
    """Write the history; returns the rows written per table."""
    today = today or datetime.now(UTC).date()
    start = today - timedelta(days=HISTORY_DAYS)
    writer = _Writer(session, tenant_id(session))
    now = datetime.combine(today, time.min, tzinfo=UTC)  # the same history all day long

    await _exchange_rates(writer, start, today)
    accounts = await _accounts(writer, org, rng, ACCOUNTS_PER_SCALE * scale, start)
    pipeline_ids = list(pipelines)
    # Leads over two years; SQLs convert into deals, the rest of the deals are direct.
    campaigns = await _campaigns(writer, rng, start, today, scale)
    specs = await _leads(writer, org, rng, LEADS_PER_SCALE * scale, start, now, campaigns)
    for _ in range(max(0, OPPORTUNITIES_PER_SCALE * scale - len(specs))):
        created = _moment(start + timedelta(days=rng.randrange(HISTORY_DAYS)), rng)
        specs.append((created, rng.choice(org.reps), None, rng.choice(DEAL_SOURCES)))
    # Walked in creation order, so a deal knows whether its account is a customer yet.
    specs.sort(key=lambda spec: spec[0])
    first_win: dict[uuid.UUID, date] = {}
    deals: list[_Deal] = []
    for created, owner, lead_id, source in specs:
        account = rng.choice(accounts)
        pipeline = pipeline_ids[0] if rng.random() < 0.75 else rng.choice(pipeline_ids)
        won_before = first_win.get(account)
        existing = won_before is not None and won_before < created.date()
        deal = await _deal(
            writer,
            rng,
            pipelines[pipeline],
            _DealSpec(pipeline, account, owner, created, lead_id, source, existing, start),
            now,
        )
        if deal.won_on and (won_before is None or deal.won_on < won_before):
            first_win[account] = deal.won_on
        deals.append(deal)

    await _customers(writer, rng, first_win, today)
    await _quotas_and_forecasts(writer, org, rng, deals, start, today)
    await _spend(writer, rng, start, today, scale)
    await writer.flush()
    await _link_converted_leads(session, writer.organization_id)
    await rollups.rebuild(session, writer.organization_id)  # COPY bypasses the counting
    return dict(writer.written)


async def _link_converted_leads(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """A converted lead points at the deal and account it became (one UPDATE … FROM)."""
    leads, opportunities = _table(Lead), _table(Opportunity)
    await session.execute(
        update(leads)
        .where(
            leads.c.organization_id == organization_id,
            opportunities.c.organization_id == organization_id,
            opportunities.c.lead_id == leads.c.id,
        )
        .values(
            converted_opportunity_id=opportunities.c.id,
            converted_account_id=opportunities.c.account_id,
        )
    )


async def _exchange_rates(writer: _Writer, start: date, today: date) -> None:
    day = start.replace(day=1)
    while day <= today:
        for currency in BASE_RATES:
            await writer.add(
                ExchangeRate,
                id=new_id(),
                date=day,
                from_currency=currency,
                to_currency="TRY",
                rate=_synthetic_rate(currency, day, start),
            )
        day = add_months(day, 1)


async def _accounts(
    writer: _Writer, org: SalesOrg, rng: random.Random, count: int, start: date
) -> list[uuid.UUID]:
    ids = []
    for index in range(count):
        employees = rng.choice((15, 40, 120, 300, 700, 1500, 5000))
        segment = "smb" if employees < 100 else "mid_market" if employees < 1000 else "enterprise"
        name = f"Tarihçe {index + 1} Sanayi A.Ş."
        account_id = new_id()
        await writer.add(
            Account,
            id=account_id,
            name=name,
            name_key=name.casefold(),
            industry=rng.choice(INDUSTRIES),
            employee_count=employees,
            country="TR",
            city=rng.choice(("İstanbul", "Ankara", "İzmir", "Bursa")),
            segment=segment,
            lifecycle="prospect",
            owner_id=rng.choice(org.reps),
            territory_id=rng.choice(org.territories) if org.territories else None,
            created_at=_moment(start, rng),
        )
        ids.append(account_id)
    return ids


async def _leads(
    writer: _Writer,
    org: SalesOrg,
    rng: random.Random,
    count: int,
    start: date,
    now: datetime,
    campaigns: list[tuple[date, date, uuid.UUID]],
) -> list[tuple[datetime, uuid.UUID, uuid.UUID | None, str]]:
    """Leads at the SPEC's typical rates: about 60 % become MQL, 20–40 % of MQLs are
    accepted (SAL), 80–90 % of SALs qualify (SQL) and most SQLs convert. Returns the
    converted ones (conversion time, owner, lead, source)."""
    converted: list[tuple[datetime, uuid.UUID, uuid.UUID | None, str]] = []
    for index in range(count):
        # Volume grows over the two years.
        offset = int(HISTORY_DAYS * math.sqrt(rng.random()))
        created = _moment(start + timedelta(days=offset), rng)
        owner = rng.choice(org.reps)
        source = rng.choice(LEAD_SOURCES)
        lead_id = new_id()
        times: dict[str, datetime] = {}
        status = "new"
        moment = created
        for step, chance in (("mql", 0.6), ("sal", rng.uniform(0.2, 0.4)), ("sql", 0.85)):
            if rng.random() >= chance:
                break
            moment = moment + timedelta(days=rng.randint(1, 12), hours=rng.randint(0, 8))
            if moment >= now:
                break
            times[step], status = moment, step
        if status == "sql" and rng.random() < 0.9:
            moment = moment + timedelta(days=rng.randint(0, 5), hours=1)
            if moment < now:
                times["converted"], status = moment, "converted"
        elif status in ("new", "mql") and rng.random() < 0.3:
            moment = moment + timedelta(days=rng.randint(3, 30))
            if moment < now:
                times["disqualified"], status = moment, "disqualified"
        employees = rng.choice((15, 40, 120, 300, 700, 1500))
        await writer.add(
            Lead,
            id=lead_id,
            first_name=rng.choice(("Ayşe", "Mehmet", "Elif", "Can", "Zeynep", "Emre")),
            last_name=f"Aday {index + 1}",
            email=f"lead{index + 1}.{lead_id.hex[:6]}@example.com.tr",
            company_name=f"Aday Firma {index + 1}",
            industry=rng.choice(INDUSTRIES),
            employee_count=employees,
            country="TR",
            segment="smb"
            if employees < 100
            else "mid_market"
            if employees < 1000
            else "enterprise",
            source=source,
            campaign_id=_campaign_of(campaigns, created.date(), rng)
            if source in ("event", "paid", "web_form")
            else None,
            owner_id=owner,
            territory_id=rng.choice(org.territories) if org.territories else None,
            status=status,
            score=rng.randint(0, 100),
            mql_at=times.get("mql"),
            sal_at=times.get("sal"),
            sql_at=times.get("sql"),
            converted_at=times.get("converted"),
            disqualified_at=times.get("disqualified"),
            disqualified_reason_code="no_budget" if "disqualified" in times else None,
            created_at=created,
            updated_at=max([created, *times.values()]),
        )
        previous: str | None = None
        for step, at in [("new", created), *times.items()]:
            await writer.add(
                LeadStatusHistory,
                id=new_id(),
                lead_id=lead_id,
                from_status=previous,
                to_status=step,
                at=at,
                actor_type="user",
            )
            previous = step
        if "converted" in times:
            converted.append((times["converted"], owner, lead_id, source))
    return converted


@dataclass(frozen=True, slots=True)
class _DealSpec:
    pipeline_id: uuid.UUID
    account: uuid.UUID
    owner: uuid.UUID
    created: datetime
    lead_id: uuid.UUID | None
    source: str
    existing_customer: bool
    history_start: date


CAMPAIGN_KINDS = (("webinar", 60_000), ("event", 250_000), ("paid", 150_000))


async def _campaigns(
    writer: _Writer, rng: random.Random, start: date, today: date, scale: int
) -> list[tuple[date, date, uuid.UUID]]:
    """Three campaigns a month (a webinar, an event, paid ads) with their costs."""
    campaigns = []
    month = start.replace(day=1)
    while month <= today:
        for kind, cost in CAMPAIGN_KINDS:
            campaign_id = new_id()
            first = month + timedelta(days=rng.randint(0, 20))
            last = min(first + timedelta(days=rng.randint(0, 30)), today)
            await writer.add(
                Campaign,
                id=campaign_id,
                name=f"{kind.title()} {month.year}-{month.month:02d}",
                type=kind,
                channel={"webinar": "online", "event": "in person", "paid": "search"}[kind],
                start_date=first,
                end_date=max(first, last),
                budget=Decimal(cost * scale),
                actual_cost=Decimal(int(cost * scale * rng.uniform(0.8, 1.1))),
                currency="TRY",
                status="completed" if last < today else "active",
            )
            campaigns.append((first, max(first, last), campaign_id))
        month = add_months(month, 1)
    return campaigns


def _campaign_of(
    campaigns: list[tuple[date, date, uuid.UUID]], day: date, rng: random.Random
) -> uuid.UUID | None:
    """A campaign running on ``day`` (else none) for about half of such leads."""
    running = [c for c in campaigns if c[0] <= day <= c[1]]
    return rng.choice(running)[2] if running and rng.random() < 0.5 else None


async def _deal(
    writer: _Writer, rng: random.Random, stages: list[Stage], spec: _DealSpec, now: datetime
) -> _Deal:
    """One deal walked through its pipeline: each stage lasts about its expected days,
    most deals move forward, some slip back a stage, and they end won, lost or still open
    (when the walk reaches today). Deals with existing customers are lost far less often
    (SPEC seed 002: ~30 % of new business is won, ~75 % of deals with customers)."""
    pipeline_id, account, owner, created = spec.pipeline_id, spec.account, spec.owner, spec.created
    lead_id, source = spec.lead_id, spec.source
    loss_per_stage = 0.04 if spec.existing_customer else 0.16
    open_stages = [s for s in stages if s.kind == "open"]
    won = next(s for s in stages if s.kind == "won")
    lost = next(s for s in stages if s.kind == "lost")
    currency = "TRY" if rng.random() < 0.85 else rng.choice(("EUR", "USD"))
    amount = _amount(rng)
    if currency != "TRY":  # the same deal sizes, quoted in the foreign currency
        rate = _synthetic_rate(currency, created.date(), spec.history_start)
        amount = (amount / rate).quantize(Decimal(100))
    deal = _Deal(new_id(), owner, account, created, amount, currency)
    moves: list[tuple[Stage, datetime, str]] = [(open_stages[0], created, "created")]
    index = 0
    moment = created
    final: Stage = open_stages[0]
    while True:
        stay = timedelta(days=max(1.0, rng.expovariate(1 / open_stages[index].expected_days)))
        if moment + stay >= now:
            break
        moment += stay
        roll = rng.random()
        if roll < loss_per_stage:
            final = lost
            moves.append((lost, moment, "lost"))
            break
        if roll < loss_per_stage + 0.06 and index > 0:
            index -= 1
            moves.append((open_stages[index], moment, "backward"))
            continue
        if index == len(open_stages) - 1:
            final = won
            moves.append((won, moment, "won"))
            break
        index += 1
        moves.append((open_stages[index], moment, "forward"))
    final = moves[-1][0]
    closed_at = moment if final.kind != "open" else None
    if final.kind == "open":
        close_date = (now + timedelta(days=rng.randint(5, 150))).date()
    else:
        close_date = moment.date()
    if final.kind == "won":
        deal.won_on = close_date
    override = (
        "commit" if final.kind == "open" and final.position >= 4 and rng.random() < 0.3 else None
    )
    await writer.add(
        Opportunity,
        id=deal.id,
        account_id=account,
        name=f"Fırsat {deal.id.hex[:8]}",
        owner_id=owner,
        pipeline_id=pipeline_id,
        stage_id=final.id,
        stage_kind=final.kind,
        amount=deal.amount,
        currency=deal.currency,
        close_date=close_date,
        type=rng.choice(("expansion", "renewal")) if spec.existing_customer else "new_business",
        source=source,
        lead_id=lead_id,
        forecast_category_override=override,
        won_reason_code="product_fit" if final.kind == "won" else None,
        lost_reason_code="price" if final.kind == "lost" else None,
        stage_entered_at=moves[-1][1],
        closed_at=closed_at,
        last_touch_at=moves[-1][1],
        created_at=created,
        updated_at=moves[-1][1],
    )
    previous: tuple[Stage, datetime] | None = None
    for index, (stage, at, direction) in enumerate(moves):
        following = moves[index + 1] if index + 1 < len(moves) else None
        await writer.add(
            StageHistory,
            id=new_id(),
            opportunity_id=deal.id,
            from_stage_id=previous[0].id if previous else None,
            to_stage_id=stage.id,
            from_stage=previous[0].key if previous else None,
            to_stage=stage.key,
            direction=direction,
            is_backward=direction == "backward",
            moved_at=at,
            actor_user_id=owner,
            reason="Customer asked for a new proposal" if direction == "backward" else None,
            days_in_previous_stage=(
                Decimal((at - previous[1]).total_seconds() / 86400).quantize(Decimal("0.01"))
                if previous
                else None
            ),
            amount=deal.amount,
            currency=deal.currency,
            probability=stage.probability,
            forecast_category=stage.category,
            exit_direction=following[2] if following else None,
            exited_at=following[1] if following else None,
        )
        previous = (stage, at)
    end = closed_at or now
    span = max(1.0, (end - created).total_seconds())
    for _ in range(rng.randint(2, 8)):
        kind = rng.choice(SELLING_KINDS) if rng.random() < 0.85 else "note"
        await writer.add(
            Activity,
            id=new_id(),
            kind=kind,
            occurred_at=created + timedelta(seconds=rng.uniform(0, span)),
            duration_minutes=rng.choice((10, 15, 30, 45, 60, 90)),
            subject="Follow-up" if kind != "note" else "Internal notes",
            selling=kind != "note",
            account_id=account,
            opportunity_id=deal.id,
            owner_id=owner,
            created_at=created,
        )
    return deal


async def _customers(
    writer: _Writer, rng: random.Random, first_win: dict[uuid.UUID, date], today: date
) -> None:
    """An account becomes a customer on its first won deal; about a third of them churn
    6–20 months later (one executemany UPDATE)."""
    await writer.flush()
    accounts = _table(Account)
    rows = []
    for account, became in first_win.items():
        churned: date | None = became + timedelta(days=rng.randint(180, 600))
        if churned is not None and (churned >= today or rng.random() > 0.35):
            churned = None
        rows.append(
            {
                "b_id": account,
                "b_became": datetime.combine(became, time(17), tzinfo=UTC),
                "b_churned": datetime.combine(churned, time(9), tzinfo=UTC) if churned else None,
                "b_lifecycle": "former_customer" if churned else "customer",
            }
        )
    if rows:
        await writer.session.execute(
            update(accounts)
            .where(
                accounts.c.organization_id == writer.organization_id,
                accounts.c.id == bindparam("b_id"),
            )
            .values(
                became_customer_at=bindparam("b_became"),
                churned_at=bindparam("b_churned"),
                lifecycle=bindparam("b_lifecycle"),
            ),
            rows,
        )


async def _quotas_and_forecasts(
    writer: _Writer,
    org: SalesOrg,
    rng: random.Random,
    deals: list[_Deal],
    start: date,
    today: date,
) -> None:
    """Quarterly quotas near each rep's real results (so some make it and some don't),
    and forecast calls at mid-quarter by reps, managers and the VP."""
    won: dict[tuple[uuid.UUID, str], Decimal] = defaultdict(Decimal)
    quarter_total: dict[str, Decimal] = defaultdict(Decimal)
    quarters = {}
    for deal in deals:
        if deal.won_on:
            quarter = period_containing(deal.won_on, "quarter")
            quarters[quarter.label] = quarter
            rate = (
                Decimal(1)
                if deal.currency == "TRY"
                else _synthetic_rate(deal.currency, deal.won_on, start)
            )
            won[(deal.owner, quarter.label)] += deal.amount * rate
            quarter_total[quarter.label] += deal.amount * rate
    current = period_containing(today, "quarter")
    previous_quarter = period_containing(current.start - timedelta(days=1), "quarter")
    # The quarter in progress is judged against last quarter's pace, a little higher.
    quarter_total[current.label] = quarter_total[previous_quarter.label] * Decimal("1.05")
    quarters[current.label] = current
    for quarter in sorted(quarters.values(), key=lambda q: q.start):
        average = quarter_total[quarter.label] / len(org.reps)
        team_actual: dict[uuid.UUID, Decimal] = defaultdict(Decimal)
        for rep in org.reps:
            actual = won.get((rep, quarter.label), Decimal(0))
            target = average * Decimal(rng.uniform(0.75, 1.35))
            await writer.add(
                Quota,
                id=new_id(),
                user_id=rep,
                period=quarter.label,
                start=quarter.start,
                end=quarter.end,
                amount=target.quantize(Decimal(1000)),
                currency="TRY",
            )
            team_actual[rep] = actual
            team_actual[org.manager_of[rep]] += actual
            team_actual[org.vp] += actual
        submitted = quarter.start + timedelta(days=45)
        if submitted >= today:
            continue
        for user, actual in team_actual.items():
            commit = (actual * Decimal(rng.uniform(0.8, 1.1))).quantize(Decimal(1000))
            await writer.add(
                ForecastSubmission,
                id=new_id(),
                user_id=user,
                period=quarter.label,
                period_start=quarter.start,
                period_end=quarter.end,
                commit=commit,
                best_case=(commit * Decimal("1.2")).quantize(Decimal(1000)),
                currency="TRY",
                submitted_at=_moment(submitted, rng),
                submitted_by_id=user,
                note="Mid-quarter call",
                created_at=_moment(submitted, rng),
            )


async def _spend(writer: _Writer, rng: random.Random, start: date, today: date, scale: int) -> None:
    month = start.replace(day=1)
    while month <= today:
        end = add_months(month, 1)
        for category, base in (("sales", 4_000_000), ("marketing", 2_500_000)):
            await writer.add(
                Spend,
                id=new_id(),
                period=f"{month.year:04d}-{month.month:02d}",
                start=month,
                end=end,
                category=category,
                amount=Decimal(int(base * scale * rng.uniform(0.85, 1.2))),
                currency="TRY",
            )
        month = end
