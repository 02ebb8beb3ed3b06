"""Opportunities: CRUD, the stage engine (moves, reopen, history), splits, handover on won,
and stale-deal follow-ups. The rules themselves live in ``stages.py``."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.core import outbox
from app.core.audit import changed_fields
from app.core.auth import Principal
from app.core.concurrency import check_version
from app.core.driver import prepared_rows
from app.core.errors import Forbidden, NotFound, RuleViolation, ValidationFailed, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.org_settings import org_settings
from app.core.pagination import paginate, parse_sort
from app.core.repository import ensure_active_user
from app.core.tenancy import actor_of, tenant_id
from app.metrics import rollups
from app.models import (
    Account,
    CustomFieldDefinition,
    Opportunity,
    OpportunitySplit,
    Organization,
    PipelineStage,
    Quote,
    StageHistory,
    User,
)
from app.nurture import service as nurture
from app.opportunities import stages as rules
from app.opportunities.schemas import (
    OpportunityCreate,
    OpportunityUpdate,
    Reopen,
    SplitsIn,
    StageMove,
)
from app.pipelines import service as pipelines
from app.stakeholders import service as stakeholders
from app.tasks.service import add_system_task

RESOURCE = "opportunity"
SORTABLE = {
    "created_at": Opportunity.created_at,
    "updated_at": Opportunity.updated_at,
    "amount": Opportunity.amount,
    "close_date": Opportunity.close_date,
    "name": Opportunity.name,
}
REOPEN_ROLES = frozenset({"manager", "admin"})
DEFAULT_ONBOARDING_TASKS = (
    {"title": "Hand the deal over to customer success", "due_in_days": 1},
    {"title": "Kick-off meeting with the customer", "due_in_days": 3},
    {"title": "Set up the customer's accounts and access", "due_in_days": 7},
)
SECONDS_PER_DAY = Decimal(86400)


@dataclass(frozen=True, slots=True)
class OpportunityView:
    """An opportunity with its current stage (what the API shows)."""

    opportunity: Opportunity
    stage: PipelineStage


@dataclass(frozen=True, slots=True)
class OpportunityFilters:
    pipeline_id: uuid.UUID | None = None
    stage: str | None = None
    owner_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    include_child_accounts: bool = False
    type: str | None = None
    forecast_category: str | None = None
    is_stale: bool | None = None
    is_closed: bool | None = None
    close_date_from: date | None = None
    close_date_to: date | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    updated_since: datetime | None = None


@functools.cache  # built once: statements are immutable, and building one costs CPU per request
def _with_stage() -> Any:  # Select of (Opportunity, PipelineStage)
    return select(Opportunity, PipelineStage).join(
        PipelineStage,
        and_(
            PipelineStage.organization_id == Opportunity.organization_id,
            PipelineStage.id == Opportunity.stage_id,
        ),
    )


@functools.cache
def _by_id() -> Any:
    return _with_stage().where(Opportunity.id == bindparam("opportunity_id"))


@functools.cache
def _as_shown() -> Any:
    """The deal as the API shows it (``OpportunityOut``'s fields), one row of columns: reads
    build no ORM objects, which a list page of 50 built 100 of and then copied field by
    field into its response models (~30 % of its CPU)."""
    o, s = Opportunity, PipelineStage
    owner_decides = and_(o.forecast_category_override.is_not(None), s.kind == "open")
    return select(
        o.id,
        o.created_at,
        o.updated_at,
        o.version,
        o.account_id,
        o.name,
        o.owner_id,
        o.pipeline_id,
        s.key.label("stage"),
        s.id.label("stage_id"),
        s.kind.label("stage_kind"),
        s.probability,
        o.amount,
        o.currency,
        o.close_date,
        o.type,
        o.source,
        o.lead_id,
        o.partner_id,
        o.competitors,
        o.next_step,
        _category_sql().label("forecast_category"),
        case((owner_decides, "owner"), else_="stage").label("forecast_category_source"),
        o.won_reason_code,  # the router nests the reasons
        o.won_reason_text,
        o.lost_reason_code,
        o.lost_reason_text,
        o.custom_fields,
        o.stage_entered_at,
        o.closed_at,
        o.last_touch_at,
        o.is_stale,
        o.stale_since,
    ).join(s, and_(s.organization_id == o.organization_id, s.id == o.stage_id))


@functools.cache
def _shown_by_id() -> Any:
    return _as_shown().where(Opportunity.id == bindparam("opportunity_id"))


def _category_sql() -> Any:
    """SQL twin of ``stages.forecast_category``: the owner's override counts on open deals."""
    return case(
        (
            PipelineStage.kind == "open",
            func.coalesce(Opportunity.forecast_category_override, PipelineStage.forecast_category),
        ),
        else_=PipelineStage.forecast_category,
    )


def effective_category(opportunity: Opportunity, stage: PipelineStage) -> str:
    return rules.forecast_category(stage, opportunity.forecast_category_override)


def category_source(opportunity: Opportunity, stage: PipelineStage) -> str:
    """Who decided the category: the owner (an override on an open deal) or the stage.
    ``_as_shown`` holds its SQL twin."""
    return "owner" if opportunity.forecast_category_override and stage.kind == "open" else "stage"


async def list_opportunities(
    session: AsyncSession,
    filters: OpportunityFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Row[Any]], str | None]:
    """A page of deals as the API shows them (``_as_shown``)."""
    stmt = _as_shown()
    for column, value in (
        (Opportunity.pipeline_id, filters.pipeline_id),
        (Opportunity.owner_id, filters.owner_id),
        (Opportunity.type, filters.type),
        (Opportunity.is_stale, filters.is_stale),
        (PipelineStage.key, filters.stage),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.account_id is not None:
        if filters.include_child_accounts:
            subtree = accounts.subtree(filters.account_id, tenant_id(session))
            stmt = stmt.where(Opportunity.account_id.in_(select(subtree.c.id)))
        else:
            stmt = stmt.where(Opportunity.account_id == filters.account_id)
    if filters.forecast_category is not None:
        stmt = stmt.where(_category_sql() == filters.forecast_category)
    if filters.is_closed is not None:
        stmt = stmt.where((PipelineStage.kind != "open") == filters.is_closed)
    if filters.close_date_from is not None:
        stmt = stmt.where(Opportunity.close_date >= filters.close_date_from)
    if filters.close_date_to is not None:
        stmt = stmt.where(Opportunity.close_date <= filters.close_date_to)
    if filters.amount_min is not None:
        stmt = stmt.where(Opportunity.amount >= filters.amount_min)
    if filters.amount_max is not None:
        stmt = stmt.where(Opportunity.amount <= filters.amount_max)
    if filters.updated_since is not None:
        stmt = stmt.where(Opportunity.updated_at >= filters.updated_since)
    keys = parse_sort(sort, SORTABLE, default="-created_at", id_column=Opportunity.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor, rows="columns")


async def read_opportunity(session: AsyncSession, opportunity_id: uuid.UUID) -> Any:
    """The deal as the API shows it (``_as_shown``), or 404."""
    row = (await prepared_rows(session, _shown_by_id(), {"opportunity_id": opportunity_id})).first()
    if row is None:
        raise NotFound(RESOURCE)
    return row


async def get_opportunity(
    session: AsyncSession, opportunity_id: uuid.UUID, *, for_update: bool = False
) -> OpportunityView:
    if for_update:
        # Lock the deal alone, then read its stage: with a join, a row updated by a
        # concurrent move would be re-checked against the old stage and vanish (404).
        opportunity = (
            await session.execute(
                select(Opportunity).where(Opportunity.id == opportunity_id).with_for_update()
            )
        ).scalar_one_or_none()
        if opportunity is None:
            raise NotFound(RESOURCE)
        stage = await session.scalar(
            select(PipelineStage).where(PipelineStage.id == opportunity.stage_id)
        )
        assert stage is not None  # foreign key
        return OpportunityView(opportunity, stage)
    row = (await session.execute(_by_id(), {"opportunity_id": opportunity_id})).first()
    if row is None:
        raise NotFound(RESOURCE)
    return OpportunityView(row[0], row[1])


async def _custom_field_definitions(session: AsyncSession) -> list[CustomFieldDefinition]:
    return list(
        await session.scalars(
            select(CustomFieldDefinition).where(CustomFieldDefinition.entity == "opportunity")
        )
    )


async def _fields_required_from(session: AsyncSession) -> dict[str, str]:
    return {
        d.key: d.required_from_stage
        for d in await _custom_field_definitions(session)
        if d.required_from_stage
    }


async def gather_facts(
    session: AsyncSession,
    opportunity: Opportunity,
    *,
    won_reason_set: bool | None = None,
    lost_reason_code: str | None = None,
    competitor_named: bool = False,
) -> rules.DealFacts:
    """What the stage rules need to know about a deal.

    Quotes count as approved once approved, sent or accepted (an approval-free version
    is approved on submission).
    """
    quote_states = list(
        await session.scalars(select(Quote.status).where(Quote.opportunity_id == opportunity.id))
    )
    return rules.DealFacts(
        quotes=len(quote_states),
        quote_approved=any(s in ("approved", "sent", "accepted") for s in quote_states),
        quote_accepted="accepted" in quote_states,
        committee_roles=await stakeholders.committee_roles(session, opportunity.id),
        amount_set=opportunity.amount is not None,
        close_date_set=opportunity.close_date is not None,
        next_step_set=bool(opportunity.next_step),
        won_reason_set=(
            won_reason_set
            if won_reason_set is not None
            else opportunity.won_reason_code is not None
        ),
        lost_reason_code=lost_reason_code or opportunity.lost_reason_code,
        competitor_set=competitor_named or bool(opportunity.competitors),
        custom_fields_set=frozenset(
            k for k, v in (opportunity.custom_fields or {}).items() if v not in (None, "")
        ),
    )


def _refuse(move: rules.Move) -> RuleViolation:
    codes = {u.code for u in move.unmet}
    invalid = codes & {"same_stage", "closed_is_terminal", "not_closed", "target_not_open"}
    return RuleViolation(
        f"Cannot move to {move.target.key}: {len(move.unmet)} requirement(s) unmet"
        if not invalid
        else f"Cannot move from {move.source.key} to {move.target.key}",
        code="invalid_stage_move" if invalid else "stage_requirements_unmet",
        title="Invalid stage move" if invalid else "Stage requirements unmet",
        unmet=[u.as_dict() for u in move.unmet],
    )


async def _record_move(
    session: AsyncSession,
    opportunity: Opportunity,
    source: PipelineStage | None,
    target: PipelineStage,
    direction: str,
    *,
    at: datetime,
    reason: str | None,
) -> None:
    days = None
    if source is not None:
        elapsed = Decimal((at - opportunity.stage_entered_at).total_seconds())
        days = (elapsed / SECONDS_PER_DAY).quantize(Decimal("0.01"))
        # The row that entered the stage being left learns how and when it was left.
        await session.flush()
        left = await session.execute(
            update(StageHistory)
            .where(
                StageHistory.opportunity_id == opportunity.id,
                StageHistory.exited_at.is_(None),
            )
            .values(exit_direction=str(direction), exited_at=at)
            .returning(StageHistory.moved_at, StageHistory.to_stage_id, StageHistory.direction)
            .execution_options(synchronize_session=False)
        )
        rollups.count_exits(session, opportunity.organization_id, left.all(), str(direction))
    session.add(
        StageHistory(
            id=new_id(),
            opportunity_id=opportunity.id,
            from_stage_id=source.id if source else None,
            to_stage_id=target.id,
            from_stage=source.key if source else None,
            to_stage=target.key,
            direction=direction,
            is_backward=direction == rules.MoveKind.BACKWARD,
            moved_at=at,
            actor_user_id=actor_of(session).user_id,
            reason=reason,
            days_in_previous_stage=days,
            amount=opportunity.amount,
            currency=opportunity.currency,
            probability=target.probability,
            forecast_category=effective_category(opportunity, target),
        )
    )


async def create_opportunity(
    session: AsyncSession,
    principal: Principal,
    data: OpportunityCreate,
    *,
    lead_id: uuid.UUID | None = None,
) -> OpportunityView:
    """A new deal; ``lead_id`` links it to the lead it was converted from."""
    account = await session.scalar(select(Account).where(Account.id == data.account_id))
    if account is None:
        raise invalid_reference("account_id", data.account_id, "an account")
    owner_id = data.owner_id or principal.user_id
    await ensure_active_user(session, "owner_id", owner_id)
    view = (
        await pipelines.get_pipeline(session, data.pipeline_id)
        if data.pipeline_id
        else await pipelines.default_pipeline(session)
    )
    stage = view.stage(data.stage) if data.stage else view.first_open
    if stage is None or stage.kind != "open":
        raise ValidationFailed(
            "A new deal starts in an open stage of its pipeline",
            errors=[{"field": "body.stage", "code": "unknown_stage", "detail": data.stage}],
        )
    custom = pipelines.validate_custom_values(
        await _custom_field_definitions(session), data.custom_fields or {}
    )
    currency = data.currency or await session.scalar(
        select(Organization.currency).where(Organization.id == tenant_id(session))
    )
    now = utcnow()
    opportunity = Opportunity(
        id=new_id(),
        account_id=account.id,
        name=data.name.strip(),
        owner_id=owner_id,
        pipeline_id=view.pipeline.id,
        stage_id=stage.id,
        stage_kind=stage.kind,
        amount=data.amount,
        currency=currency,
        close_date=data.close_date,
        type=data.type,
        source=data.source,
        competitors=[c.model_dump() for c in data.competitors or []],
        next_step=data.next_step,
        forecast_category_override=data.forecast_category,
        custom_fields={k: v for k, v in custom.items() if v is not None},
        lead_id=lead_id,
        stage_entered_at=now,
        is_stale=False,
    )
    if stage.id != view.first_open.id:
        required = rules.entry_requirements(
            pipelines.to_rule(stage), view.rules(), await _fields_required_from(session)
        )
        unmet = rules.unmet_requirements(required, await gather_facts(session, opportunity))
        if unmet:
            raise _refuse(
                rules.Move(
                    rules.MoveKind.FORWARD,
                    pipelines.to_rule(view.first_open),
                    pipelines.to_rule(stage),
                    tuple(unmet),
                )
            )
    session.add(opportunity)
    await _record_move(session, opportunity, None, stage, "created", at=now, reason=None)
    await session.flush()
    outbox.emit(
        session,
        "opportunity.created",
        resource_type=RESOURCE,
        resource_id=opportunity.id,
        data=snapshot(opportunity, stage),
    )
    await nurture.on_change(session, "opportunity", opportunity.id)
    return OpportunityView(opportunity, stage)


async def update_opportunity(
    session: AsyncSession,
    opportunity_id: uuid.UUID,
    data: OpportunityUpdate,
    expected_version: int | None,
) -> OpportunityView:
    view = await get_opportunity(session, opportunity_id, for_update=True)
    opportunity = view.opportunity
    check_version(RESOURCE, opportunity.version, expected_version)
    sent = data.model_fields_set
    if "owner_id" in sent:
        await ensure_active_user(session, "owner_id", data.owner_id)
        opportunity.owner_id = data.owner_id
    if "custom_fields" in sent and data.custom_fields is not None:
        changes = pipelines.validate_custom_values(
            await _custom_field_definitions(session), data.custom_fields
        )
        merged = {**opportunity.custom_fields, **changes}
        opportunity.custom_fields = {k: v for k, v in merged.items() if v is not None}
    if "competitors" in sent and data.competitors is not None:
        opportunity.competitors = [c.model_dump() for c in data.competitors]
    if "forecast_category" in sent:
        opportunity.forecast_category_override = data.forecast_category
    if "name" in sent and data.name is not None:
        opportunity.name = data.name.strip()
    for field in ("amount", "currency", "close_date", "source", "next_step", "type"):
        value = getattr(data, field)
        if field in sent and (value is not None or field in OpportunityUpdate.nullable):
            setattr(opportunity, field, value)
    changed = changed_fields(opportunity)
    if changed:
        await session.flush()
        outbox.emit(
            session,
            "opportunity.updated",
            resource_type=RESOURCE,
            resource_id=opportunity.id,
            data={**snapshot(opportunity, view.stage), "changed_fields": changed},
        )
    await nurture.on_change(session, "opportunity", view.opportunity.id)
    return view


async def delete_opportunity(
    session: AsyncSession, opportunity_id: uuid.UUID, expected_version: int | None
) -> None:
    view = await get_opportunity(session, opportunity_id, for_update=True)
    check_version(RESOURCE, view.opportunity.version, expected_version)
    view.opportunity.deleted_at = utcnow()
    await session.flush()
    outbox.emit(
        session,
        "opportunity.deleted",
        resource_type=RESOURCE,
        resource_id=opportunity_id,
        data={"id": opportunity_id, "name": view.opportunity.name},
    )


def _check_close_date(data: StageMove, target: PipelineStage) -> None:
    """A close date may be given when closing (the day it really closed); never later
    than today. Closing without one records today."""
    if data.close_date is None:
        return
    problem = None
    if target.kind == "open":
        problem = "close_date is given only when moving to a won or lost stage"
    elif data.close_date > utcnow().date():
        problem = "close_date cannot be in the future"
    if problem:
        raise ValidationFailed(
            problem, errors=[{"field": "body.close_date", "code": "invalid_close_date"}]
        )


async def move_stage(
    session: AsyncSession,
    opportunity_id: uuid.UUID,
    data: StageMove,
    expected_version: int | None,
) -> OpportunityView:
    view = await get_opportunity(session, opportunity_id, for_update=True)
    opportunity, source = view.opportunity, view.stage
    check_version(RESOURCE, opportunity.version, expected_version)
    pipeline = await pipelines.get_pipeline(session, opportunity.pipeline_id)
    target = pipeline.stage(data.stage)
    if target is None:
        raise ValidationFailed(
            f"The pipeline has no stage {data.stage!r}",
            errors=[
                {
                    "field": "body.stage",
                    "code": "unknown_stage",
                    "detail": ", ".join(s.key for s in pipeline.stages),
                }
            ],
        )
    _check_close_date(data, target)
    facts = await gather_facts(
        session,
        opportunity,
        won_reason_set=(data.won_reason is not None or opportunity.won_reason_code is not None),
        lost_reason_code=data.lost_reason.code if data.lost_reason else None,
        competitor_named=bool(data.competitor),
    )
    move = rules.plan_move(
        pipeline.rules(),
        source.key,
        target.key,
        facts,
        reason=data.reason,
        fields_required_from=await _fields_required_from(session),
    )
    if not move.allowed:
        raise _refuse(move)
    now = utcnow()
    await _record_move(session, opportunity, source, target, move.kind, at=now, reason=data.reason)
    opportunity.stage_id, opportunity.stage_kind = target.id, target.kind
    opportunity.stage_entered_at = now
    opportunity.is_stale, opportunity.stale_since = False, None
    # A reason is recorded when given; whether one is needed is the target's requirement.
    if move.kind is rules.MoveKind.WON:
        if data.won_reason is not None:
            opportunity.won_reason_code = data.won_reason.code
            opportunity.won_reason_text = data.won_reason.text
        opportunity.closed_at = now
        opportunity.close_date = data.close_date or now.date()
        opportunity.forecast_category_override = None
    elif move.kind is rules.MoveKind.LOST:
        if data.lost_reason is not None:
            opportunity.lost_reason_code = data.lost_reason.code
            opportunity.lost_reason_text = data.lost_reason.text
        if data.competitor:
            opportunity.competitors = _mark_winner(opportunity.competitors, data.competitor)
        opportunity.closed_at = now
        opportunity.close_date = data.close_date or now.date()
        opportunity.forecast_category_override = None
    await session.flush()
    payload = {
        **snapshot(opportunity, target),
        "from_stage": source.key,
        "to_stage": target.key,
        "direction": move.kind.value,
        "reason": data.reason,
    }
    outbox.emit(
        session,
        "opportunity.stage_changed",
        resource_type=RESOURCE,
        resource_id=opportunity.id,
        data=payload,
    )
    if move.kind is rules.MoveKind.WON:
        await _hand_over(session, opportunity, now)
        outbox.emit(
            session,
            "opportunity.won",
            resource_type=RESOURCE,
            resource_id=opportunity.id,
            data=payload,
        )
    elif move.kind is rules.MoveKind.LOST:
        outbox.emit(
            session,
            "opportunity.lost",
            resource_type=RESOURCE,
            resource_id=opportunity.id,
            data=payload,
        )
    await nurture.on_change(session, "opportunity", opportunity.id)
    return OpportunityView(opportunity, target)


def _mark_winner(competitors: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    updated = [
        {**c, "status": "won"} if c.get("name", "").casefold() == name.casefold() else c
        for c in competitors
    ]
    if not any(c.get("name", "").casefold() == name.casefold() for c in competitors):
        updated.append({"name": name, "strength": None, "status": "won"})
    return updated


async def _hand_over(session: AsyncSession, opportunity: Opportunity, at: datetime) -> None:
    """Sales → customer success: the account becomes a customer and onboarding tasks are
    created for the customer-success owner (org setting; else the deal owner)."""
    await accounts.ensure_customer(session, opportunity.account_id, at)
    settings = await org_settings(session)
    owner = settings.get("customer_success_owner_id")
    assignee = uuid.UUID(owner) if owner else opportunity.owner_id
    for index, template in enumerate(settings.get("onboarding_tasks") or DEFAULT_ONBOARDING_TASKS):
        add_system_task(
            session,
            title=str(template["title"]),
            source="handover",
            assignee_id=assignee,
            due_at=at + timedelta(days=int(template.get("due_in_days", 0))),
            dedupe_key=f"handover:{opportunity.id}:{at.isoformat()}:{index}",
            account_id=opportunity.account_id,
            opportunity_id=opportunity.id,
        )


async def reopen(
    session: AsyncSession,
    principal: Principal,
    opportunity_id: uuid.UUID,
    data: Reopen,
    expected_version: int | None,
) -> OpportunityView:
    if principal.role not in REOPEN_ROLES:
        raise Forbidden(
            "Reopening a closed deal needs the manager or admin role", code="role_not_allowed"
        )
    view = await get_opportunity(session, opportunity_id, for_update=True)
    opportunity, source = view.opportunity, view.stage
    check_version(RESOURCE, opportunity.version, expected_version)
    pipeline = await pipelines.get_pipeline(session, opportunity.pipeline_id)
    target_key = data.stage or await _stage_before_close(session, opportunity, pipeline)
    target = pipeline.stage(target_key)
    if target is None:
        raise ValidationFailed(
            f"The pipeline has no stage {target_key!r}",
            errors=[{"field": "body.stage", "code": "unknown_stage"}],
        )
    move = rules.plan_reopen(pipeline.rules(), source.key, target.key, reason=data.reason)
    if not move.allowed:
        raise _refuse(move)
    now = utcnow()
    await _record_move(session, opportunity, source, target, "reopen", at=now, reason=data.reason)
    opportunity.stage_id, opportunity.stage_kind = target.id, target.kind
    opportunity.stage_entered_at = now
    opportunity.closed_at = None
    opportunity.won_reason_code = opportunity.won_reason_text = None
    opportunity.lost_reason_code = opportunity.lost_reason_text = None
    await session.flush()
    payload = {
        **snapshot(opportunity, target),
        "from_stage": source.key,
        "to_stage": target.key,
        "direction": "reopen",
        "reason": data.reason,
    }
    outbox.emit(
        session,
        "opportunity.stage_changed",
        resource_type=RESOURCE,
        resource_id=opportunity.id,
        data=payload,
    )
    outbox.emit(
        session,
        "opportunity.reopened",
        resource_type=RESOURCE,
        resource_id=opportunity.id,
        data=payload,
    )
    await nurture.on_change(session, "opportunity", opportunity.id)
    return OpportunityView(opportunity, target)


async def _stage_before_close(
    session: AsyncSession, opportunity: Opportunity, pipeline: pipelines.PipelineView
) -> str:
    last_from = await session.scalar(
        select(StageHistory.from_stage)
        .where(
            StageHistory.opportunity_id == opportunity.id,
            StageHistory.to_stage_id == opportunity.stage_id,
        )
        .order_by(StageHistory.moved_at.desc(), StageHistory.id.desc())
        .limit(1)
    )
    return last_from or pipeline.first_open.key


async def stage_history(
    session: AsyncSession, opportunity_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[StageHistory], str | None]:
    await get_opportunity(session, opportunity_id)
    keys = parse_sort(
        None, {"moved_at": StageHistory.moved_at}, default="-moved_at", id_column=StageHistory.id
    )
    stmt = select(StageHistory).where(StageHistory.opportunity_id == opportunity_id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


# --- splits -------------------------------------------------------------------------------


async def list_splits(session: AsyncSession, opportunity_id: uuid.UUID) -> list[OpportunitySplit]:
    await get_opportunity(session, opportunity_id)
    return list(
        await session.scalars(
            select(OpportunitySplit)
            .where(OpportunitySplit.opportunity_id == opportunity_id)
            .order_by(
                OpportunitySplit.split_type, OpportunitySplit.percent.desc(), OpportunitySplit.id
            )
        )
    )


async def replace_splits(
    session: AsyncSession,
    opportunity_id: uuid.UUID,
    data: SplitsIn,
    expected_version: int | None,
) -> list[OpportunitySplit]:
    """Replace the whole split set; each split type present must sum to exactly 100."""
    view = await get_opportunity(session, opportunity_id, for_update=True)
    check_version(RESOURCE, view.opportunity.version, expected_version)
    totals: dict[str, Decimal] = {}
    errors: list[dict[str, Any]] = []
    seen: set[tuple[str, uuid.UUID | None]] = set()
    for index, split in enumerate(data.splits):
        totals[split.split_type] = totals.get(split.split_type, Decimal(0)) + split.percent
        if (split.split_type, split.user_id) in seen:
            errors.append({"field": f"body.splits.{index}.user_id", "code": "duplicate"})
        seen.add((split.split_type, split.user_id))
        if not await session.scalar(select(User.is_active).where(User.id == split.user_id)):
            errors.append(
                {
                    "field": f"body.splits.{index}.user_id",
                    "code": "not_found",
                    "detail": str(split.user_id),
                }
            )
    for split_type, total in totals.items():
        if total != Decimal(100):
            errors.append(
                {
                    "field": "body.splits",
                    "code": "sum_not_100",
                    "detail": f"{split_type} splits sum to {total}, not 100",
                }
            )
    if errors:
        raise ValidationFailed("The splits are not valid", errors=errors)
    for existing in await session.scalars(
        select(OpportunitySplit).where(OpportunitySplit.opportunity_id == opportunity_id)
    ):
        await session.delete(existing)
    await session.flush()
    created = [
        OpportunitySplit(
            id=new_id(),
            opportunity_id=opportunity_id,
            user_id=s.user_id,
            percent=s.percent,
            split_type=s.split_type,
        )
        for s in data.splits
    ]
    session.add_all(created)
    view.opportunity.updated_at = utcnow()  # the splits are part of the deal: new version
    await session.flush()
    outbox.emit(
        session,
        "opportunity.splits_changed",
        resource_type=RESOURCE,
        resource_id=opportunity_id,
        data={
            "id": opportunity_id,
            "splits": [
                {"user_id": s.user_id, "percent": s.percent, "split_type": s.split_type}
                for s in created
            ],
        },
    )
    return created


# --- stale deals --------------------------------------------------------------------------


async def mark_stale_deals(session: AsyncSession, now: datetime | None = None) -> tuple[int, int]:
    """Open deals untouched for longer than their stage's rotting days become stale: once
    per stale spell they get ``is_stale``, a follow-up task for the owner and an
    ``opportunity.stale`` event. Returns (deals marked, tasks created)."""
    now = now or utcnow()
    last_touch = func.greatest(
        Opportunity.stage_entered_at,
        func.coalesce(Opportunity.last_touch_at, Opportunity.stage_entered_at),
    )
    rows = (
        await session.execute(
            _with_stage()
            .where(
                PipelineStage.kind == "open",
                PipelineStage.rotting_days.is_not(None),
                Opportunity.is_stale.is_(False),
                last_touch < now - func.make_interval(0, 0, 0, PipelineStage.rotting_days),
            )
            .with_for_update(of=Opportunity, skip_locked=True)
        )
    ).all()
    for opportunity, stage in rows:
        opportunity.is_stale, opportunity.stale_since = True, now
        add_system_task(
            session,
            title=f"Follow up: {opportunity.name} has had no touch for {stage.rotting_days}+ days",
            source="follow_up",
            assignee_id=opportunity.owner_id,
            due_at=now + timedelta(days=1),
            dedupe_key=f"follow_up:{opportunity.id}:{now.isoformat()}",
            account_id=opportunity.account_id,
            opportunity_id=opportunity.id,
        )
        outbox.emit(
            session,
            "opportunity.stale",
            resource_type=RESOURCE,
            resource_id=opportunity.id,
            data={
                **snapshot(opportunity, stage),
                "rotting_days": stage.rotting_days,
                "stale_since": now,
            },
        )
    await session.flush()
    return len(rows), len(rows)


def snapshot(opportunity: Opportunity, stage: PipelineStage) -> dict[str, Any]:
    """The event payload for an opportunity."""
    return {
        "id": opportunity.id,
        "name": opportunity.name,
        "account_id": opportunity.account_id,
        "owner_id": opportunity.owner_id,
        "pipeline_id": opportunity.pipeline_id,
        "stage": stage.key,
        "amount": opportunity.amount,
        "currency": opportunity.currency,
        "close_date": opportunity.close_date,
        "forecast_category": effective_category(opportunity, stage),
        "partner_id": opportunity.partner_id,
        "version": opportunity.version,
    }
