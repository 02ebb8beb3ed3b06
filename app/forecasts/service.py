"""Forecasting: the roll-up of deals by the management hierarchy, managers' adjustments,
forecast submissions, daily pipeline snapshots and their trend.

Definitions (a deal counts for a period when its ``close_date`` lies in it):

- a deal's **forecast category** is the owner's override on an open deal, else its
  stage's category; won/lost/open comes from the stage's ``kind``;
- **closed_won** = Σ amount of won deals; **commit** = Σ amount of open deals in the
  ``commit`` category; **best_case** = commit + Σ amount of open ``best_case`` deals;
  **pipeline** = Σ amount of open deals in every category but ``omitted``;
  **weighted_pipeline** = Σ amount × stage probability / 100 over those same open deals;
- amounts are in the corporate currency: won deals converted on their close date, open
  deals today (UTC); a deal whose currency has no known rate is left out and counted in
  ``unconverted_count``;
- **own** figures are the user's deals, **total** figures the user's and everyone's under
  them (``users.manager_id``);
- **quota** = the user's own quotas whose [start, end) lies within the period (converted on
  their start day), else the sum of their direct reports' quotas, recursively;
  **gap** = quota − (total.closed_won + total.commit), null without a quota.

Every figure is aggregated in SQL: one statement per roll-up (deals grouped by owner, then
summed over each user's subtree through the path of a recursive CTE).
"""

from __future__ import annotations

import typing
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CTE,
    Date,
    Select,
    Table,
    and_,
    any_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID, array, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.core import outbox
from app.core.auth import Principal
from app.core.concurrency import lock_tenant_topic
from app.core.errors import Forbidden, NotFound, ValidationFailed, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import get_or_404
from app.core.tenancy import tenant_id
from app.forecasts.schemas import AdjustmentCreate, SubmissionCreate
from app.metrics.fx import Converter
from app.metrics.periods import Period, period_between
from app.metrics.service import org_money_context, resolve_period
from app.models import (
    ForecastAdjustment,
    ForecastSubmission,
    Opportunity,
    PipelineSnapshot,
    PipelineStage,
    Quota,
    User,
)
from app.users.service import MAX_MANAGEMENT_DEPTH, management_chain

SUBMISSION_SORT = {
    "submitted_at": ForecastSubmission.submitted_at,
    "period_start": ForecastSubmission.period_start,
}
ADJUSTMENT_SORT = {"created_at": ForecastAdjustment.created_at}
MAX_TREND_DAYS = 731
DEFAULT_TREND_DAYS = 90
MANAGER_ROLES = frozenset({"admin", "manager"})
CATEGORY_ORDER = ("commit", "best_case", "pipeline", "closed", "omitted")
_FIGURES = (
    "closed_won",
    "commit",
    "best_case",
    "pipeline",
    "weighted_pipeline",
)
_COUNTS = (
    "closed_won_count",
    "commit_count",
    "best_case_count",
    "pipeline_count",
    "unconverted_count",
)
_UUIDS = ARRAY(UUID(as_uuid=True))


def today() -> date:
    return utcnow().date()


# --- periods --------------------------------------------------------------------------


def _invalid(field: str, code: str, detail: str) -> ValidationFailed:
    return ValidationFailed(detail, errors=[{"field": field, "code": code, "detail": detail}])


async def query_period(
    session: AsyncSession, label: str | None, from_date: date | None, to_date: date | None
) -> Period:
    """``?period=2026-Q3`` or ``?from=…&to=…`` (both days inclusive), or a 422."""
    if label is not None and (from_date is not None or to_date is not None):
        raise _invalid("query.period", "period_and_range", "Send period, or from and to; not both")
    if label is not None:
        return await resolve_period(session, label, "query.period")
    if from_date is None or to_date is None:
        raise _invalid("query.period", "missing_period", "Send period, or both from and to")
    try:
        return period_between(from_date, to_date)
    except ValueError as exc:
        raise _invalid("query.to", "invalid_range", str(exc)) from exc


# --- the management hierarchy and who sees what --------------------------------------


def subtree(
    organization_id: uuid.UUID, root_id: uuid.UUID, *, quota_period: Period | None = None
) -> CTE:
    """Recursive CTE of ``root_id`` and everyone under them: ``id``, ``manager_id``,
    ``depth`` (0 for the root) and ``path`` (the ids from the root down to the user).

    With ``quota_period`` also ``has_quota`` (the user has a quota within the period) and
    ``quota_floor``: the depth of the nearest manager above (within the subtree) who has
    one, -1 when none has."""

    def has_quota(user: Any) -> Any:
        assert quota_period is not None
        return exists().where(
            Quota.organization_id == organization_id,
            Quota.user_id == user.id,
            Quota.start >= quota_period.start,
            Quota.end <= quota_period.end,
        )

    columns: list[Any] = [
        User.id.label("id"),
        User.manager_id.label("manager_id"),
        literal(0).label("depth"),
        array[Any]([User.id], type_=UUID(as_uuid=True)).label("path"),
    ]
    if quota_period is not None:
        columns += [has_quota(User).label("has_quota"), literal(-1).label("quota_floor")]
    root = (
        select(*columns)
        .where(User.organization_id == organization_id, User.id == root_id)
        .cte("subtree", recursive=True)
    )
    child = aliased(User)
    step_columns: list[Any] = [
        child.id,
        child.manager_id,
        root.c.depth + 1,
        func.array_append(root.c.path, child.id, type_=_UUIDS),
    ]
    if quota_period is not None:
        step_columns += [
            has_quota(child),
            case((root.c.has_quota, root.c.depth), else_=root.c.quota_floor),
        ]
    step = select(*step_columns).where(
        child.organization_id == organization_id,
        child.manager_id == root.c.id,
        root.c.depth < MAX_MANAGEMENT_DEPTH,
    )
    return root.union_all(step)


async def _user_exists(session: AsyncSession, user_id: uuid.UUID) -> bool:
    return await session.scalar(select(User.id).where(User.id == user_id)) is not None


def _may_see(principal: Principal, chain: list[uuid.UUID]) -> bool:
    return principal.is_admin or (principal.user_id is not None and principal.user_id in chain)


async def ensure_visible(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> None:
    """A user the caller may see forecasts of: themselves and anyone under them (admins:
    anyone). Unknown here (or another organization's) → 404; outside the hierarchy → 403."""
    if not await _user_exists(session, user_id):
        raise NotFound("user")
    if principal.is_admin:
        return
    if not _may_see(principal, await management_chain(session, user_id)):
        raise Forbidden(
            "You can see the forecasts of yourself and the people under you",
            code="outside_hierarchy",
        )


async def _ensure_target(
    session: AsyncSession,
    principal: Principal,
    user_id: uuid.UUID,
    *,
    action: str,
    managers_only: bool,
) -> None:
    """A body's ``user_id``: an active user of this organization (else 422) whom the caller
    may act for: admins anyone; managers themselves and the people under them; with
    ``managers_only`` False, anyone also themselves."""
    active = await session.scalar(select(User.is_active).where(User.id == user_id))
    if not active:
        raise invalid_reference("user_id", user_id, "an active user")
    if principal.is_admin:
        return
    is_self = user_id == principal.user_id
    if is_self and not managers_only:
        return
    if principal.role == "manager" and _may_see(
        principal, await management_chain(session, user_id)
    ):
        return
    raise Forbidden(
        f"Only admins, and managers for the people under them, can {action}",
        code="outside_hierarchy" if principal.role == "manager" else "role_not_allowed",
    )


def _visible_user_ids(session: AsyncSession, principal: Principal) -> Select[Any]:
    """Ids of the users whose forecasts a non-admin caller may see."""
    if principal.user_id is None:
        raise Forbidden("Forecasts belong to users; this key has none", code="user_required")
    tree = subtree(tenant_id(session), principal.user_id)
    return select(tree.c.id)


# --- roll-up --------------------------------------------------------------------------


def deal_category() -> Any:
    """The owner's override on an open deal, else the stage's forecast category."""
    return case(
        (
            PipelineStage.kind == "open",
            func.coalesce(Opportunity.forecast_category_override, PipelineStage.forecast_category),
        ),
        else_=PipelineStage.forecast_category,
    )


def _deals_with_stage() -> Select[Any]:
    return (
        select()
        .select_from(Opportunity)
        .join(
            PipelineStage,
            and_(
                PipelineStage.organization_id == Opportunity.organization_id,
                PipelineStage.id == Opportunity.stage_id,
            ),
        )
    )


def _rounded(value: Any) -> Any:
    return func.round(func.coalesce(value, 0), 2)


async def rollup(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID | None, period: Period
) -> dict[str, Any]:
    """The user's forecast node with every level under them nested in ``children``."""
    root_id = user_id or principal.user_id
    if root_id is None:
        raise _invalid("query.user_id", "missing", "This key has no user: send user_id")
    await ensure_visible(session, principal, root_id)
    org = tenant_id(session)
    corporate, _ = await org_money_context(session)
    as_of = today()
    tree = subtree(org, root_id, quota_period=period)
    converter = Converter(corporate)  # one per statement: its rate CTEs are named

    # Deals closing in the period, grouped by owner (the owners of the subtree only).
    category = deal_category()
    is_won = PipelineStage.kind == "won"
    is_open = PipelineStage.kind == "open"
    deals = (
        _deals_with_stage()
        .join(tree, tree.c.id == Opportunity.owner_id)
        .where(
            Opportunity.close_date >= period.start,
            Opportunity.close_date < period.end,
            or_(is_won, and_(is_open, category != "omitted")),
        )
    )
    day = case((is_won, Opportunity.close_date), else_=literal(as_of, Date))
    deals, rate = converter.join_rate(deals, Opportunity.currency, day)
    converted = or_(Opportunity.amount.is_(None), rate.is_not(None))
    value = func.coalesce(Opportunity.amount * rate, 0)
    commit = and_(is_open, category == "commit")
    best_case = and_(is_open, category.in_(("commit", "best_case")))

    def amount(expr: Any, condition: Any) -> Any:
        return func.sum(expr).filter(and_(condition, converted))

    def count(condition: Any) -> Any:
        return func.count().filter(and_(condition, converted))

    own = (
        deals.add_columns(
            Opportunity.owner_id.label("owner_id"),
            amount(value, is_won).label("closed_won"),
            amount(value, commit).label("commit"),
            amount(value, best_case).label("best_case"),
            amount(value, is_open).label("pipeline"),
            amount(value * PipelineStage.probability / 100, is_open).label("weighted_pipeline"),
            count(is_won).label("closed_won_count"),
            count(commit).label("commit_count"),
            count(best_case).label("best_case_count"),
            count(is_open).label("pipeline_count"),
            func.count().filter(not_(converted)).label("unconverted_count"),
        )
        .group_by(Opportunity.owner_id)
        .cte("own_figures")
    )

    # Quotas within the period, per user, in the corporate currency.
    quotas = (
        select()
        .select_from(Quota)
        .join(tree, tree.c.id == Quota.user_id)
        .where(Quota.start >= period.start, Quota.end <= period.end)
    )
    quotas, quota_rate = converter.join_rate(quotas, Quota.currency, Quota.start)
    own_quota = (
        quotas.add_columns(
            Quota.user_id.label("user_id"),
            func.sum(Quota.amount * quota_rate).label("amount"),
            func.count().filter(quota_rate.is_(None)).label("unconverted"),
        )
        .group_by(Quota.user_id)
        .cte("own_quota")
    )

    # Each user's subtree: the users whose path goes through them.
    anc, member = tree.alias("anc"), tree.alias("member")
    totals = (
        select(
            anc.c.id.label("id"),
            *(func.sum(own.c[f]).label(f) for f in _FIGURES),
            *(func.coalesce(func.sum(own.c[c]), 0).label(c) for c in _COUNTS),
        )
        .select_from(anc)
        .join(member, anc.c.id == any_(member.c.path))
        .outerjoin(own, own.c.owner_id == member.c.id)
        .group_by(anc.c.id)
        .cte("total_figures")
    )
    # A quota counts for everyone above its holder up to (not including) the nearest
    # manager who has a quota of their own.
    rolled_quota = (
        select(
            anc.c.id.label("id"),
            func.sum(own_quota.c.amount).label("amount"),
            func.sum(own_quota.c.unconverted).label("unconverted"),
        )
        .select_from(anc)
        .join(
            member,
            and_(anc.c.id == any_(member.c.path), member.c.quota_floor < anc.c.depth),
        )
        .join(own_quota, own_quota.c.user_id == member.c.id)
        .group_by(anc.c.id)
        .cte("rolled_quota")
    )
    quota = func.round(rolled_quota.c.amount, 2)
    stmt = (
        select(
            tree.c.id,
            tree.c.manager_id,
            tree.c.depth,
            tree.c.has_quota,
            User.name,
            User.role,
            User.is_active,
            *(_rounded(own.c[f]).label(f"own_{f}") for f in _FIGURES),
            *(func.coalesce(own.c[c], 0).label(f"own_{c}") for c in _COUNTS),
            *(_rounded(totals.c[f]).label(f"total_{f}") for f in _FIGURES),
            *(totals.c[c].label(f"total_{c}") for c in _COUNTS),
            quota.label("quota"),
            func.coalesce(rolled_quota.c.unconverted, 0).label("unconverted_quota_count"),
            (quota - (_rounded(totals.c.closed_won) + _rounded(totals.c.commit))).label("gap"),
        )
        .select_from(tree)
        .join(User, and_(User.organization_id == org, User.id == tree.c.id))
        .join(totals, totals.c.id == tree.c.id)
        .outerjoin(own, own.c.owner_id == tree.c.id)
        .outerjoin(rolled_quota, rolled_quota.c.id == tree.c.id)
    )
    rows = (await session.execute(stmt)).mappings().all()
    adjustments = await effective_adjustments(session, [r["id"] for r in rows], period)

    nodes: dict[uuid.UUID, dict[str, Any]] = {}
    children: dict[uuid.UUID | None, list[dict[str, Any]]] = defaultdict(list)
    root: dict[str, Any] | None = None
    for r in rows:
        node = {
            "user": {
                "id": r["id"],
                "name": r["name"],
                "role": r["role"],
                "is_active": r["is_active"],
            },
            "manager_id": r["manager_id"],
            "own": {k: r[f"own_{k}"] for k in (*_FIGURES, *_COUNTS)},
            "total": {k: r[f"total_{k}"] for k in (*_FIGURES, *_COUNTS)},
            "quota": r["quota"],
            "quota_source": _quota_source(r["has_quota"], r["quota"], r["unconverted_quota_count"]),
            "unconverted_quota_count": r["unconverted_quota_count"],
            "gap": r["gap"],
            "adjustments": adjustments.get(r["id"], []),
            "children": [],
        }
        nodes[r["id"]] = node
        if r["depth"] == 0:
            root = node
        else:
            children[r["manager_id"]].append(node)
    for manager_id, reports in children.items():
        reports.sort(key=lambda n: (n["user"]["name"], str(n["user"]["id"])))
        if manager_id in nodes:
            nodes[manager_id]["children"] = reports
    assert root is not None  # ensure_visible found the user
    return {
        **root,
        "period": {"label": period.label, "start": period.start, "end": period.end},
        "currency": corporate,
        "as_of": as_of,
    }


def _quota_source(has_quota: bool, quota: Decimal | None, unconverted: int) -> str | None:
    if has_quota:
        return "own"
    if quota is not None or unconverted:
        return "subordinates"
    return None


# --- adjustments ----------------------------------------------------------------------


def _adjustments_with_author() -> Any:  # Select of (ForecastAdjustment, author name)
    return select(ForecastAdjustment, User.name).join(
        User,
        and_(
            User.organization_id == ForecastAdjustment.organization_id,
            User.id == ForecastAdjustment.adjusted_by_id,
        ),
    )


def adjustment_view(adjustment: ForecastAdjustment, author: str) -> dict[str, Any]:
    return {
        **{
            c.key: getattr(adjustment, c.key)
            for c in ForecastAdjustment.__table__.columns
            if c.key != "organization_id"
        },
        "adjusted_by_name": author,
    }


async def effective_adjustments(
    session: AsyncSession, user_ids: list[uuid.UUID], period: Period
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The latest adjustment per (user, category, adjusting manager), newest first."""
    if not user_ids:
        return {}
    stmt = (
        _adjustments_with_author()
        .where(
            ForecastAdjustment.user_id.in_(user_ids),
            ForecastAdjustment.period_start == period.start,
            ForecastAdjustment.period_end == period.end,
        )
        .ext(
            distinct_on(
                ForecastAdjustment.user_id,
                ForecastAdjustment.category,
                ForecastAdjustment.adjusted_by_id,
            )
        )
        .order_by(
            ForecastAdjustment.user_id,
            ForecastAdjustment.category,
            ForecastAdjustment.adjusted_by_id,
            ForecastAdjustment.created_at.desc(),
            ForecastAdjustment.id.desc(),
        )
    )
    result: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for adjustment, author in (await session.execute(stmt)).all():
        result[adjustment.user_id].append(adjustment_view(adjustment, author))
    for views in result.values():
        views.sort(key=lambda v: (v["created_at"], v["id"]), reverse=True)
    return result


async def create_adjustment(
    session: AsyncSession, principal: Principal, data: AdjustmentCreate
) -> dict[str, Any]:
    """A manager's (or admin's) adjusted figure; earlier ones stay in the history."""
    if principal.role not in MANAGER_ROLES or principal.user_id is None:
        raise Forbidden("Only managers and admins adjust forecasts", code="role_not_allowed")
    await _ensure_target(
        session, principal, data.user_id, action="adjust this forecast", managers_only=True
    )
    period = await resolve_period(session, data.period)
    corporate, _ = await org_money_context(session)
    adjustment = ForecastAdjustment(
        id=new_id(),
        user_id=data.user_id,
        period=period.label,
        period_start=period.start,
        period_end=period.end,
        category=data.category,
        amount=data.amount,
        currency=corporate,
        adjusted_by_id=principal.user_id,
        note=data.note,
    )
    session.add(adjustment)
    await session.flush()
    author = await session.scalar(select(User.name).where(User.id == principal.user_id))
    view = adjustment_view(adjustment, author or "")
    outbox.emit(
        session,
        "forecast.adjusted",
        resource_type="forecast_adjustment",
        resource_id=adjustment.id,
        data={k: v for k, v in view.items() if k not in ("created_at", "updated_at")},
    )
    return view


async def list_adjustments(
    session: AsyncSession,
    principal: Principal,
    *,
    user_id: uuid.UUID | None,
    period: str | None,
    category: str | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    stmt = _adjustments_with_author()
    if user_id is not None:
        await ensure_visible(session, principal, user_id)
        stmt = stmt.where(ForecastAdjustment.user_id == user_id)
    elif not principal.is_admin:
        stmt = stmt.where(ForecastAdjustment.user_id.in_(_visible_user_ids(session, principal)))
    if period is not None:
        stmt = stmt.where(
            ForecastAdjustment.period
            == (await resolve_period(session, period, "query.period")).label
        )
    if category is not None:
        stmt = stmt.where(ForecastAdjustment.category == category)
    keys = parse_sort(sort, ADJUSTMENT_SORT, default="-created_at", id_column=ForecastAdjustment.id)
    rows, next_cursor = await paginate(
        session, stmt, keys, limit=limit, cursor=cursor, rows="tuples"
    )
    return [adjustment_view(a, author) for a, author in rows], next_cursor


# --- submissions ----------------------------------------------------------------------


async def create_submission(
    session: AsyncSession, principal: Principal, data: SubmissionCreate
) -> ForecastSubmission:
    """Record a forecast call; every call is kept (the latest one per user and period is
    what forecast accuracy compares with the won revenue)."""
    target = data.user_id or principal.user_id
    if target is None:
        raise _invalid("body.user_id", "missing", "This key has no user: send user_id")
    await _ensure_target(
        session, principal, target, action="submit someone else's forecast", managers_only=False
    )
    period = await resolve_period(session, data.period)
    corporate, _ = await org_money_context(session)
    submission = ForecastSubmission(
        id=new_id(),
        user_id=target,
        period=period.label,
        period_start=period.start,
        period_end=period.end,
        commit=data.commit,
        best_case=data.best_case,
        currency=corporate,
        submitted_at=utcnow(),
        submitted_by_id=principal.user_id,
        note=data.note,
    )
    session.add(submission)
    await session.flush()
    outbox.emit(
        session,
        "forecast.submitted",
        resource_type="forecast_submission",
        resource_id=submission.id,
        data={
            c.key: getattr(submission, c.key)
            for c in ForecastSubmission.__table__.columns
            if c.key not in ("organization_id", "created_at", "updated_at")
        },
    )
    return submission


async def list_submissions(
    session: AsyncSession,
    principal: Principal,
    *,
    user_id: uuid.UUID | None,
    period: str | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ForecastSubmission], str | None]:
    stmt = select(ForecastSubmission)
    if user_id is not None:
        await ensure_visible(session, principal, user_id)
        stmt = stmt.where(ForecastSubmission.user_id == user_id)
    elif not principal.is_admin:
        stmt = stmt.where(ForecastSubmission.user_id.in_(_visible_user_ids(session, principal)))
    if period is not None:
        stmt = stmt.where(
            ForecastSubmission.period
            == (await resolve_period(session, period, "query.period")).label
        )
    keys = parse_sort(
        sort, SUBMISSION_SORT, default="-submitted_at", id_column=ForecastSubmission.id
    )
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_submission(
    session: AsyncSession, principal: Principal, submission_id: uuid.UUID
) -> ForecastSubmission:
    submission = await get_or_404(session, ForecastSubmission, submission_id, "forecast submission")
    await ensure_visible(session, principal, submission.user_id)
    return submission


# --- pipeline snapshots ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    snapshot_date: date
    currency: str
    rows: list[dict[str, Any]]

    @property
    def totals(self) -> dict[str, Any]:
        return {
            "deal_count": sum(r["deal_count"] for r in self.rows),
            "amount": sum((r["amount"] for r in self.rows), Decimal(0)),
            "weighted_amount": sum((r["weighted_amount"] for r in self.rows), Decimal(0)),
            "unconverted_count": sum(r["unconverted_count"] for r in self.rows),
        }


_SNAPSHOT_VALUES = (
    "pipeline_id",
    "stage_id",
    "forecast_category",
    "owner_id",
    "deal_count",
    "amount",
    "weighted_amount",
    "unconverted_count",
)


async def take_pipeline_snapshot(session: AsyncSession, day: date) -> Snapshot:
    """Store the open pipeline per (pipeline, stage, forecast category, owner), converted
    to the corporate currency on ``day``, replacing any snapshot of that day: one set of
    rows per organization and day however often it runs.

    One INSERT … SELECT … GROUP BY, written as a data-modifying CTE under a SELECT so that
    the tenancy layer scopes every table it reads (deals, stages, exchange rates)."""
    org = tenant_id(session)
    await lock_tenant_topic(session, org, "forecasts.pipeline_snapshot")
    corporate, _ = await org_money_context(session)
    await session.execute(delete(PipelineSnapshot).where(PipelineSnapshot.snapshot_date == day))

    category = deal_category()
    deals, rate = Converter(corporate).join_rate(
        _deals_with_stage().where(PipelineStage.kind == "open"),
        Opportunity.currency,
        literal(day, Date),
    )
    converted = or_(Opportunity.amount.is_(None), rate.is_not(None))
    value = func.coalesce(Opportunity.amount * rate, 0)
    groups = (
        deals.add_columns(
            Opportunity.pipeline_id.label("pipeline_id"),
            Opportunity.stage_id.label("stage_id"),
            category.label("forecast_category"),
            Opportunity.owner_id.label("owner_id"),
            func.count().filter(converted).label("deal_count"),
            _rounded(func.sum(value).filter(converted)).label("amount"),
            _rounded(func.sum(value * PipelineStage.probability / 100).filter(converted)).label(
                "weighted_amount"
            ),
            func.count().filter(not_(converted)).label("unconverted_count"),
        )
        .group_by(Opportunity.pipeline_id, Opportunity.stage_id, category, Opportunity.owner_id)
        .cte("snapshot_groups")
    )
    table = typing.cast(Table, PipelineSnapshot.__table__)
    stored = (
        insert(table)
        .from_select(
            ["organization_id", "id", "snapshot_date", *_SNAPSHOT_VALUES, "currency", "created_at"],
            select(
                literal(org, UUID(as_uuid=True)),
                func.gen_random_uuid(),
                literal(day, Date),
                *(groups.c[c] for c in _SNAPSHOT_VALUES),
                literal(corporate),
                func.now(),
            ),
        )
        .returning(*(table.c[c] for c in _SNAPSHOT_VALUES))
        .cte("stored")
    )
    result = await session.execute(
        select(*(stored.c[c] for c in _SNAPSHOT_VALUES)).order_by(
            stored.c.pipeline_id,
            stored.c.stage_id,
            stored.c.forecast_category,
            stored.c.owner_id.nulls_first(),
        )
    )
    return Snapshot(day, corporate, [dict(r) for r in result.mappings().all()])


async def trend(
    session: AsyncSession,
    principal: Principal,
    *,
    from_date: date | None,
    to_date: date | None,
    group_by: str,
    pipeline_id: uuid.UUID | None,
    owner_id: uuid.UUID | None,
    include_omitted: bool,
) -> dict[str, Any]:
    """Snapshot values per day and group (stage, forecast category or owner), zeros
    included, and the total per day. Non-admins see the deals of their own subtree.
    Default range: the 90 days up to ``to`` (default: today)."""
    to_date = to_date or today()
    if from_date is None:
        # No earlier than the first day a date can hold (the range is then shorter).
        back = DEFAULT_TREND_DAYS - 1
        from_date = to_date - timedelta(days=back) if to_date.toordinal() > back else date.min
    if to_date < from_date:
        raise _invalid("query.to", "invalid_range", f"to {to_date} is before from {from_date}")
    if (to_date - from_date).days >= MAX_TREND_DAYS:
        raise _invalid(
            "query.to", "range_too_long", f"The range spans at most {MAX_TREND_DAYS} days"
        )
    if owner_id is not None:
        await ensure_visible(session, principal, owner_id)
    corporate, _ = await org_money_context(session)
    in_range = and_(
        PipelineSnapshot.snapshot_date >= from_date, PipelineSnapshot.snapshot_date <= to_date
    )
    dates = list(
        await session.scalars(
            select(PipelineSnapshot.snapshot_date)
            .where(in_range)
            .distinct()
            .order_by(PipelineSnapshot.snapshot_date)
        )
    )
    filters = [in_range, PipelineSnapshot.currency == corporate]
    if not include_omitted:
        filters.append(PipelineSnapshot.forecast_category != "omitted")
    if pipeline_id is not None:
        filters.append(PipelineSnapshot.pipeline_id == pipeline_id)
    if owner_id is not None:
        filters.append(PipelineSnapshot.owner_id == owner_id)
    elif not principal.is_admin:
        filters.append(PipelineSnapshot.owner_id.in_(_visible_user_ids(session, principal)))

    sums = (
        func.sum(PipelineSnapshot.amount).label("value"),
        func.sum(PipelineSnapshot.weighted_amount).label("weighted_value"),
        func.sum(PipelineSnapshot.deal_count).label("count"),
    )
    stmt: Any
    if group_by == "stage":
        stmt = select(
            PipelineSnapshot.stage_id.label("key"),
            PipelineStage.name.label("label"),
            PipelineSnapshot.pipeline_id.label("pipeline_id"),
            PipelineStage.position.label("position"),
        ).join(
            PipelineStage,
            and_(
                PipelineStage.organization_id == PipelineSnapshot.organization_id,
                PipelineStage.id == PipelineSnapshot.stage_id,
            ),
        )
        group_columns: list[Any] = [
            PipelineSnapshot.stage_id,
            PipelineStage.name,
            PipelineSnapshot.pipeline_id,
            PipelineStage.position,
        ]
    elif group_by == "owner":
        stmt = select(
            PipelineSnapshot.owner_id.label("key"),
            User.name.label("label"),
        ).outerjoin(
            User,
            and_(
                User.organization_id == PipelineSnapshot.organization_id,
                User.id == PipelineSnapshot.owner_id,
            ),
        )
        group_columns = [PipelineSnapshot.owner_id, User.name]
    else:
        stmt = select(PipelineSnapshot.forecast_category.label("key"))
        group_columns = [PipelineSnapshot.forecast_category]
    stmt = (
        stmt.add_columns(PipelineSnapshot.snapshot_date.label("day"), *sums)
        .where(*filters)
        .group_by(PipelineSnapshot.snapshot_date, *group_columns)
    )
    total_stmt = (
        select(PipelineSnapshot.snapshot_date.label("day"), *sums)
        .where(*filters)
        .group_by(PipelineSnapshot.snapshot_date)
    )
    rows = (await session.execute(stmt)).mappings().all()
    totals = {r["day"]: r for r in (await session.execute(total_stmt)).mappings().all()}

    zero = {"value": Decimal(0), "weighted_value": Decimal(0), "count": 0}
    series: dict[Any, dict[str, Any]] = {}
    for r in rows:
        key = r["key"]
        entry = series.get(key)
        if entry is None:
            entry = series[key] = {
                "key": None if key is None else str(key),
                "label": _trend_label(group_by, key, r.get("label")),
                "pipeline_id": r.get("pipeline_id"),
                "order": _trend_order(group_by, r),
                "by_day": {},
            }
        entry["by_day"][r["day"]] = r
    ordered = sorted(series.values(), key=lambda e: e["order"])
    return {
        "from": from_date,
        "to": to_date,
        "group_by": group_by,
        "currency": corporate,
        "dates": dates,
        "series": [
            {
                "key": e["key"],
                "label": e["label"],
                "pipeline_id": e["pipeline_id"],
                "points": [_point(d, e["by_day"].get(d, zero)) for d in dates],
            }
            for e in ordered
        ],
        "totals": [_point(d, totals.get(d, zero)) for d in dates],
    }


def _point(day: date, values: Any) -> dict[str, Any]:
    return {
        "date": day,
        "value": values["value"],
        "weighted_value": values["weighted_value"],
        "count": int(values["count"]),
    }


def _trend_label(group_by: str, key: Any, label: str | None) -> str:
    if group_by == "owner" and key is None:
        return "No owner"
    return label or str(key)


def _trend_order(group_by: str, row: Any) -> tuple[Any, ...]:
    if group_by == "stage":
        return (str(row["pipeline_id"]), row["position"], str(row["key"]))
    if group_by == "category":
        key = row["key"]
        return (CATEGORY_ORDER.index(key) if key in CATEGORY_ORDER else len(CATEGORY_ORDER),)
    return (row["key"] is None, row["label"] or "", str(row["key"]))
