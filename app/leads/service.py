"""Leads: CRUD with duplicate detection, territory assignment and scoring, the lifecycle
(``lifecycle.py``), conversion into account/contact/opportunity, and scoring rules."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, func, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.accounts.rules import SegmentRules, company_key, derive_segment, normalize_domain
from app.accounts.schemas import AccountCreate
from app.campaigns import service as campaigns
from app.core import outbox
from app.core.audit import changed_fields, record_created
from app.core.auth import Principal
from app.core.concurrency import check_version
from app.core.driver import prepared_rows
from app.core.errors import Conflict, RuleViolation, ValidationFailed, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.org_settings import org_settings
from app.core.pagination import paginate, parse_sort
from app.core.repository import ensure_active_user, get_or_404, insert_returning, insert_rows
from app.core.tenancy import actor_of, tenant_id
from app.leads import lifecycle, scoring
from app.leads.schemas import (
    ConvertIn,
    LeadCreate,
    LeadOut,
    LeadUpdate,
    ScoringRuleCreate,
    ScoringRuleUpdate,
    StatusChange,
)
from app.models import (
    Account,
    Activity,
    Contact,
    Lead,
    LeadScoringRule,
    LeadStatusHistory,
    Signal,
)
from app.nurture import service as nurture
from app.opportunities import service as opportunities
from app.opportunities.schemas import OpportunityCreate
from app.stakeholders import service as stakeholders
from app.stakeholders.schemas import ContactCreate
from app.territories import service as territories

RESOURCE = "lead"
STATUS_CHANGED = "lead.status_changed"
SORTABLE = {
    "created_at": Lead.created_at,
    "updated_at": Lead.updated_at,
    "score": Lead.score,
    "last_name": Lead.last_name,
}


@dataclass(frozen=True, slots=True)
class LeadSettings:
    mql_score_threshold: int | None
    require_bant_for_sql: bool
    allow_convert_from_sal: bool

    @classmethod
    def of(cls, settings: dict[str, Any]) -> LeadSettings:
        return cls(
            mql_score_threshold=settings.get("mql_score_threshold"),
            require_bant_for_sql=settings.get("require_bant_for_sql", True),
            allow_convert_from_sal=settings.get("allow_convert_from_sal", False),
        )


def scoring_fields(lead: Lead) -> dict[str, Any]:
    return {name: getattr(lead, name) for name in scoring.FIT_FIELDS}


def territory_fields(lead: Lead | dict[str, Any]) -> dict[str, str | None]:
    get = lead.get if isinstance(lead, dict) else lambda k: getattr(lead, k)
    return {k: get(k) for k in ("country", "city", "industry", "segment")}


# --- scoring ------------------------------------------------------------------------------


def to_rule(rule: LeadScoringRule | Row[Any]) -> scoring.Rule:
    return scoring.Rule(
        str(rule.id), rule.name, rule.category, rule.field, rule.operator, rule.value, rule.points
    )


@functools.cache
def _active_rules() -> Any:
    r = LeadScoringRule
    return (
        select(r.id, r.name, r.category, r.field, r.operator, r.value, r.points)
        .where(r.active)
        .order_by(r.name)
    )


async def active_rules(session: AsyncSession) -> list[scoring.Rule]:
    rows = await prepared_rows(session, _active_rules())
    return [to_rule(row) for row in rows]


def lead_signals(lead: Lead) -> ColumnElement[bool]:
    """The signals that count for a lead: its own, its converted contact's, and those of
    its account (the converted one, or for an open lead the account with its domain)."""
    condition: ColumnElement[bool] = Signal.lead_id == lead.id
    if lead.converted_contact_id is not None:
        condition = condition | (Signal.contact_id == lead.converted_contact_id)
    if lead.converted_account_id is not None:
        condition = condition | (Signal.account_id == lead.converted_account_id)
    if lead.domain and lead.status in lifecycle.OPEN_STATUSES:
        condition = condition | Signal.account_id.in_(
            select(Account.id).where(Account.domain == lead.domain)
        )
    return condition


async def signal_counts(
    session: AsyncSession, lead: Lead, windows: list[scoring.SignalWindow], now: datetime
) -> dict[scoring.SignalWindow, int]:
    """The lead's signal count in every (type, days) window, in one aggregate query."""
    if not windows:
        return {}
    counts = [
        func.count()
        .filter(Signal.type == kind, Signal.occurred_at >= now - timedelta(days=days))
        .label(f"w{index}")
        for index, (kind, days) in enumerate(windows)
    ]
    row = (
        await session.execute(select(*counts).where(lead_signals(lead), Signal.occurred_at <= now))
    ).one()
    return {window: int(row[index]) for index, window in enumerate(windows)}


async def _engagement(
    session: AsyncSession, lead: Lead, rules: list[scoring.Rule], now: datetime
) -> scoring.Engagement:
    if inspect(lead).pending:  # not written yet: no activity or signal can refer to it
        return scoring.Engagement()
    rows = await session.execute(
        select(Activity.kind, Activity.occurred_at).where(Activity.lead_id == lead.id)
    )
    return scoring.Engagement(
        tuple((kind, at) for kind, at in rows),
        await signal_counts(session, lead, scoring.signal_windows(rules), now),
    )


async def rescore(session: AsyncSession, lead: Lead, settings: LeadSettings) -> None:
    """Re-score a lead and promote it new → mql when the score reaches the threshold."""
    rules, now = await active_rules(session), utcnow()
    result = scoring.score(
        rules, scoring_fields(lead), await _engagement(session, lead, rules, now), now
    )
    lead.score, lead.score_breakdown = result.total, result.breakdown
    threshold = settings.mql_score_threshold
    if threshold is not None and lead.score >= threshold:
        auto_promote(session, lead, f"score {lead.score} reached the MQL threshold {threshold}")


def auto_promote(session: AsyncSession, lead: Lead, reason: str) -> bool:
    """The system's new → mql promotion (score threshold, PLG rule); False if not new."""
    if lead.status != "new":
        return False
    _set_status(session, lead, "mql", actor_type="system", reason=reason)
    return True


def _set_status(
    session: AsyncSession,
    lead: Lead,
    status: str,
    *,
    actor_type: str = "user",
    reason_code: str | None = None,
    reason: str | None = None,
) -> None:
    previous = lead.status
    now = utcnow()
    lead.status = status
    if status in lifecycle.STATUS_TIMESTAMPS:
        setattr(lead, lifecycle.STATUS_TIMESTAMPS[status], now)
    if status == "disqualified":
        lead.disqualified_reason_code, lead.disqualified_reason = reason_code, reason
    session.add(
        LeadStatusHistory(
            id=new_id(),
            lead_id=lead.id,
            from_status=previous,
            to_status=status,
            at=now,
            actor_user_id=actor_of(session).user_id if actor_type == "user" else None,
            actor_type=actor_type,
            reason_code=reason_code,
            reason=reason,
        )
    )
    if previous is not None:
        outbox.emit(
            session,
            STATUS_CHANGED,
            resource_type=RESOURCE,
            resource_id=lead.id,
            data=_status_changed(lead.id, previous, status, actor_type, reason_code),
        )


def _status_changed(
    lead_id: uuid.UUID, previous: str, status: str, actor_type: str, reason_code: str | None
) -> dict[str, Any]:
    return {
        "id": lead_id,
        "from": previous,
        "to": status,
        "actor_type": actor_type,
        "reason_code": reason_code,
    }


# --- leads --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadFilters:
    status: str | None = None
    source: str | None = None
    owner_id: uuid.UUID | None = None
    territory_id: uuid.UUID | None = None
    email: str | None = None
    campaign: str | None = None
    import_job_id: uuid.UUID | None = None
    score_min: int | None = None
    score_max: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    account_id: uuid.UUID | None = None


async def list_leads(
    session: AsyncSession,
    filters: LeadFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Lead], str | None]:
    stmt = select(Lead)
    for column, value in (
        (Lead.status, filters.status),
        (Lead.source, filters.source),
        (Lead.owner_id, filters.owner_id),
        (Lead.territory_id, filters.territory_id),
        (Lead.email, filters.email.lower() if filters.email else None),
        (Lead.campaign, filters.campaign),
        (Lead.import_job_id, filters.import_job_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.score_min is not None:
        stmt = stmt.where(Lead.score >= filters.score_min)
    if filters.score_max is not None:
        stmt = stmt.where(Lead.score <= filters.score_max)
    if filters.created_after is not None:
        stmt = stmt.where(Lead.created_at >= filters.created_after)
    if filters.created_before is not None:
        stmt = stmt.where(Lead.created_at < filters.created_before)
    if filters.account_id is not None:
        account = await accounts.get_account(session, filters.account_id)
        linked = Lead.converted_account_id == account.id
        if account.domain:
            linked = or_(
                linked, (Lead.domain == account.domain) & Lead.status.in_(lifecycle.OPEN_STATUSES)
            )
        stmt = stmt.where(linked)
    keys = parse_sort(sort, SORTABLE, default="-created_at", id_column=Lead.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_lead(session: AsyncSession, lead_id: uuid.UUID, *, for_update: bool = False) -> Lead:
    return await get_or_404(session, Lead, lead_id, RESOURCE, for_update=for_update)


async def get_lead_or_invalid(session: AsyncSession, lead_id: uuid.UUID) -> Lead:
    lead = await session.scalar(select(Lead).where(Lead.id == lead_id))
    if lead is None:
        raise invalid_reference("lead_id", lead_id, "a lead")
    return lead


@functools.cache
def _open_lead_with_email(excepting_one: bool) -> Any:
    stmt = select(Lead.id).where(
        Lead.email == bindparam("email"), Lead.status.in_(lifecycle.OPEN_STATUSES)
    )
    if excepting_one:
        stmt = stmt.where(Lead.id != bindparam("except_id"))
    return stmt.limit(1)


async def _check_duplicate(
    session: AsyncSession, email: str | None, except_id: uuid.UUID | None = None
) -> None:
    if email is None:
        return
    found = await prepared_rows(
        session,
        _open_lead_with_email(except_id is not None),
        {"email": email, "except_id": except_id},
    )
    existing = found.scalar()
    if existing is not None:
        raise Conflict(
            f"An open lead with the e-mail {email!r} exists; pass allow_duplicate=true to "
            "create another",
            code="duplicate_lead",
            extra={"existing_id": str(existing)},
        )


def new_lead_values(
    data: LeadCreate, organization_id: uuid.UUID, segment_rules: SegmentRules, now: datetime
) -> dict[str, Any]:
    """Every column of a new lead but its owner, territory and score: single creation and
    the import build their rows with this."""
    values = data.model_dump(exclude={"bant", "email", "domain"})
    values.update(
        id=new_id(),
        organization_id=organization_id,
        email=data.email.lower() if data.email else None,
        domain=normalize_domain(data.domain),
        last_name=data.last_name.strip(),
        bant=data.bant.model_dump(exclude_none=True) if data.bant else {},
        segment=derive_segment(segment_rules, data.employee_count, data.annual_revenue),
        created_at=now,
        updated_at=now,
        version=1,
    )
    return values


def score_new_lead(
    values: dict[str, Any],
    rules: list[scoring.Rule],
    settings: LeadSettings,
    now: datetime,
    creator_id: uuid.UUID | None,
) -> list[dict[str, Any]]:
    """Score a new lead (it has no activity or signal yet) and set its status: ``mql`` when
    the score reaches the threshold, else ``new``. Answers its status history rows: its
    creation by ``creator_id``, then the system's promotion if any."""
    result = scoring.score(rules, values, scoring.Engagement(), now)
    values["score"], values["score_breakdown"] = result.total, result.breakdown
    threshold = settings.mql_score_threshold
    promoted = threshold is not None and result.total >= threshold
    values["status"] = "mql" if promoted else "new"
    values["mql_at"] = now if promoted else None
    history = [_history_values(values, None, "new", now, creator_id, "user")]
    if promoted:
        reason = f"score {result.total} reached the MQL threshold {threshold}"
        history.append(_history_values(values, "new", "mql", now, None, "system", reason))
    return history


def _history_values(
    lead: dict[str, Any],
    from_status: str | None,
    to_status: str,
    at: datetime,
    actor_user_id: uuid.UUID | None,
    actor_type: str,
    reason: str | None = None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "organization_id": lead["organization_id"],
        "lead_id": lead["id"],
        "from_status": from_status,
        "to_status": to_status,
        "at": at,
        "actor_user_id": actor_user_id,
        "actor_type": actor_type,
        "reason": reason,
    }


# The columns of a lead as the API shows it.
SHOWN_COLUMNS = tuple(LeadOut.model_fields)


async def create_lead(
    session: AsyncSession, principal: Principal, data: LeadCreate, *, allow_duplicate: bool
) -> dict[str, Any]:
    """Create a lead; answers it as the API shows it (``SHOWN_COLUMNS``).

    The rows are inserted as prepared statements (``insert_rows``), not through the ORM (its
    unit of work was most of a create's CPU, bench/README.md), so this records its audit
    row and events itself."""
    email = data.email.lower() if data.email else None
    if not allow_duplicate:
        await _check_duplicate(session, email)
    await ensure_active_user(session, "owner_id", data.owner_id)
    if data.campaign_id is not None:
        await campaigns.get_campaign_or_invalid(session, data.campaign_id)
    settings = await org_settings(session)
    now = utcnow()
    values = new_lead_values(data, tenant_id(session), SegmentRules.from_settings(settings), now)
    assignment = await territories.assign(
        session, territory_fields(values), pick_owner=data.owner_id is None
    )
    values["territory_id"] = assignment.territory_id
    values["owner_id"] = data.owner_id or assignment.owner_id or principal.user_id
    history = score_new_lead(
        values, await active_rules(session), LeadSettings.of(settings), now, principal.user_id
    )
    lead = await insert_returning(session, Lead, values, SHOWN_COLUMNS)
    await insert_rows(session, LeadStatusHistory, history)
    await territories.record_assignment_now(session, "lead", lead["id"], lead["territory_id"])
    await record_created(session, Lead, values)
    events = [outbox.event_values(session, "lead.created", RESOURCE, lead["id"], snapshot(lead))]
    if lead["status"] == "mql":  # promoted by its score
        promotion = _status_changed(lead["id"], "new", "mql", "system", None)
        events.append(outbox.event_values(session, STATUS_CHANGED, RESOURCE, lead["id"], promotion))
    await outbox.emit_now(session, events)
    await nurture.on_change(session, "lead", lead["id"])
    return lead


async def update_lead(
    session: AsyncSession, lead_id: uuid.UUID, data: LeadUpdate, expected_version: int | None
) -> Lead:
    lead = await get_lead(session, lead_id, for_update=True)
    check_version(RESOURCE, lead.version, expected_version)
    sent = data.model_fields_set
    if "email" in sent:
        email = data.email.lower() if data.email else None
        if lead.status in lifecycle.OPEN_STATUSES:
            await _check_duplicate(session, email, lead.id)
        lead.email = email
    if "owner_id" in sent:
        await ensure_active_user(session, "owner_id", data.owner_id)
        lead.owner_id = data.owner_id
    if "domain" in sent:
        lead.domain = normalize_domain(data.domain)
    if "campaign_id" in sent:
        if data.campaign_id is not None:
            await campaigns.get_campaign_or_invalid(session, data.campaign_id)
        lead.campaign_id = data.campaign_id
    for field in (
        "first_name",
        "phone",
        "title",
        "seniority",
        "company_name",
        "industry",
        "employee_count",
        "annual_revenue",
        "country",
        "city",
        "campaign",
    ):
        if field in sent:
            setattr(lead, field, getattr(data, field))
    for field in ("last_name", "source"):
        if field in sent and getattr(data, field) is not None:
            setattr(lead, field, getattr(data, field))
    if "bant" in sent and data.bant is not None:
        # Items sent replace the stored ones; an item sent as null is cleared.
        bant = dict(lead.bant)
        for item, value in data.bant.model_dump(exclude_unset=True).items():
            if value is None:
                bant.pop(item, None)
            else:
                bant[item] = value
        lead.bant = bant
    if sent & {"employee_count", "annual_revenue"}:
        lead.segment = derive_segment(
            await accounts.segment_rules(session), lead.employee_count, lead.annual_revenue
        )
    await rescore(session, lead, LeadSettings.of(await org_settings(session)))
    changed = changed_fields(lead)
    if changed:
        await session.flush()
        outbox.emit(
            session,
            "lead.updated",
            resource_type=RESOURCE,
            resource_id=lead.id,
            data={**snapshot(lead), "changed_fields": changed},
        )
    await nurture.on_change(session, "lead", lead.id)
    return lead


async def change_status(
    session: AsyncSession, lead_id: uuid.UUID, data: StatusChange, expected_version: int | None
) -> Lead:
    lead = await get_lead(session, lead_id, for_update=True)
    check_version(RESOURCE, lead.version, expected_version)
    settings = LeadSettings.of(await org_settings(session))
    unmet = lifecycle.check_transition(
        lead.status,
        data.status,
        bant=lead.bant,
        require_bant=settings.require_bant_for_sql,
        reason_code=data.reason_code,
    )
    if unmet:
        raise RuleViolation(
            f"Cannot move the lead from {lead.status} to {data.status}",
            code="lead_transition_refused",
            title="Lead status change refused",
            unmet=[u.as_dict() for u in unmet],
        )
    _set_status(session, lead, data.status, reason_code=data.reason_code, reason=data.reason)
    await session.flush()
    await nurture.on_change(session, "lead", lead.id)
    return lead


async def status_history(
    session: AsyncSession, lead_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[LeadStatusHistory], str | None]:
    await get_lead(session, lead_id)
    keys = parse_sort(
        None, {"at": LeadStatusHistory.at}, default="-at", id_column=LeadStatusHistory.id
    )
    stmt = select(LeadStatusHistory).where(LeadStatusHistory.lead_id == lead_id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def delete_lead(
    session: AsyncSession, lead_id: uuid.UUID, expected_version: int | None
) -> None:
    lead = await get_lead(session, lead_id, for_update=True)
    check_version(RESOURCE, lead.version, expected_version)
    lead.deleted_at = utcnow()
    await session.flush()
    outbox.emit(
        session, "lead.deleted", resource_type=RESOURCE, resource_id=lead.id, data={"id": lead.id}
    )


async def touched(session: AsyncSession, lead_id: uuid.UUID, at: datetime) -> None:
    """An activity on the lead: engagement scoring and last activity."""
    lead = await get_lead(session, lead_id, for_update=True)
    if lead.last_activity_at is None or at > lead.last_activity_at:
        lead.last_activity_at = at
    await rescore(session, lead, LeadSettings.of(await org_settings(session)))


# --- conversion ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversionPlan:
    account: Account | None
    account_matched_by: str | None
    contact: Contact | None


async def _match_account(
    session: AsyncSession, lead: Lead, explicit: uuid.UUID | None
) -> tuple[Account | None, str | None]:
    if explicit is not None:
        return await accounts.get_account_or_invalid(session, explicit), "explicit"
    if lead.domain:
        by_domain = await session.scalar(select(Account).where(Account.domain == lead.domain))
        if by_domain is not None:
            return by_domain, "domain"
    if lead.company_name and (key := company_key(lead.company_name)):
        by_name = await session.scalar(
            select(Account)
            .where(Account.name_key == key)
            .order_by(Account.created_at, Account.id)
            .limit(1)
        )
        if by_name is not None:
            return by_name, "name"
    return None, None


async def plan_conversion(session: AsyncSession, lead: Lead, data: ConvertIn) -> ConversionPlan:
    account, matched_by = await _match_account(session, lead, data.account_id)
    contact = None
    if account is not None and lead.email:
        contact = await session.scalar(
            select(Contact).where(Contact.account_id == account.id, Contact.email == lead.email)
        )
    return ConversionPlan(account, matched_by, contact)


async def convert(
    session: AsyncSession,
    principal: Principal,
    lead_id: uuid.UUID,
    data: ConvertIn,
    *,
    dry_run: bool,
    expected_version: int | None,
) -> tuple[Lead, ConversionPlan, list[str]]:
    """Atomically turn a qualified lead into an account (matched, never duplicated), a
    contact (matched by e-mail) and optionally a deal in the first stage."""
    lead = await get_lead(session, lead_id, for_update=not dry_run)
    check_version(RESOURCE, lead.version, expected_version)
    settings = LeadSettings.of(await org_settings(session))
    unmet = lifecycle.check_conversion(lead.status, allow_from_sal=settings.allow_convert_from_sal)
    if unmet:
        raise RuleViolation(
            "The lead cannot be converted",
            code="conversion_refused",
            title="Conversion refused",
            unmet=[u.as_dict() for u in unmet],
        )
    plan = await plan_conversion(session, lead, data)
    will_create = [
        kind
        for kind, exists in (("account", plan.account), ("contact", plan.contact))
        if exists is None
    ]
    if data.opportunity is not None:
        will_create.append("opportunity")
    if dry_run:
        return lead, plan, will_create
    account = plan.account or await accounts.create_account(
        session,
        principal,
        AccountCreate(
            name=lead.company_name or f"{lead.first_name or ''} {lead.last_name}".strip(),
            domain=lead.domain,
            industry=lead.industry,
            employee_count=lead.employee_count,
            annual_revenue=lead.annual_revenue,
            country=lead.country,
            city=lead.city,
            owner_id=lead.owner_id,
        ),
    )
    contact = plan.contact or await stakeholders.create_contact(
        session,
        lead.owner_id,
        ContactCreate(
            account_id=account.id,
            first_name=lead.first_name or "-",
            last_name=lead.last_name,
            title=lead.title,
            seniority=lead.seniority,
            email=lead.email,
            phone=lead.phone,
            owner_id=lead.owner_id,
        ),
    )
    opportunity_id = None
    if data.opportunity is not None:
        view = await opportunities.create_opportunity(
            session,
            principal,
            OpportunityCreate(
                account_id=account.id,
                name=data.opportunity.name,
                amount=data.opportunity.amount,
                currency=data.opportunity.currency,
                close_date=data.opportunity.close_date,
                pipeline_id=data.opportunity.pipeline_id,
                owner_id=lead.owner_id,
                source=lead.source,
            ),
            lead_id=lead.id,
        )
        opportunity_id = view.opportunity.id
    lead.converted_account_id, lead.converted_contact_id = account.id, contact.id
    lead.converted_opportunity_id = opportunity_id
    _set_status(session, lead, "converted")
    await session.flush()
    outbox.emit(
        session,
        "lead.converted",
        resource_type=RESOURCE,
        resource_id=lead.id,
        data={
            "id": lead.id,
            "account_id": account.id,
            "contact_id": contact.id,
            "opportunity_id": opportunity_id,
            "created": will_create,
        },
    )
    await nurture.on_change(session, "lead", lead.id)
    return lead, ConversionPlan(account, plan.account_matched_by, contact), will_create


SNAPSHOT_FIELDS = (
    "email",
    "company_name",
    "status",
    "score",
    "owner_id",
    "territory_id",
    "source",
    "version",
)


def snapshot(lead: Lead | Mapping[str, Any]) -> dict[str, Any]:
    """The lead as its events show it (a stored lead, or its row's columns)."""
    get = lead.__getitem__ if isinstance(lead, Mapping) else functools.partial(getattr, lead)
    first_name = get("first_name") or ""
    return {
        "id": get("id"),
        "name": f"{first_name} {get('last_name')}".strip(),
        **{name: get(name) for name in SNAPSHOT_FIELDS},
    }


# --- scoring rules ------------------------------------------------------------------------


def _check_rule(category: str, field: str, operator: str, value: Any) -> None:
    problems = scoring.rule_problems(category, field, operator, value)
    if problems:
        raise ValidationFailed(
            f"Invalid scoring rule: {problems[0]}",
            errors=[{"field": "body", "code": "invalid_rule", "detail": p} for p in problems],
        )


async def list_rules(session: AsyncSession) -> list[LeadScoringRule]:
    return list(await session.scalars(select(LeadScoringRule).order_by(LeadScoringRule.name)))


async def get_rule(
    session: AsyncSession, rule_id: uuid.UUID, *, for_update: bool = False
) -> LeadScoringRule:
    return await get_or_404(
        session, LeadScoringRule, rule_id, "scoring rule", for_update=for_update
    )


async def create_rule(session: AsyncSession, data: ScoringRuleCreate) -> LeadScoringRule:
    _check_rule(data.category, data.field, data.operator, data.value)
    if (
        await session.scalar(select(LeadScoringRule.id).where(LeadScoringRule.name == data.name))
        is not None
    ):
        raise Conflict(f"A scoring rule named {data.name!r} exists", code="duplicate_rule")
    rule = LeadScoringRule(
        id=new_id(),
        name=data.name,
        category=data.category,
        field=data.field,
        operator=data.operator,
        value=data.value,
        points=data.points,
        active=data.active,
    )
    session.add(rule)
    await session.flush()
    return rule


async def update_rule(
    session: AsyncSession, rule_id: uuid.UUID, data: ScoringRuleUpdate, expected_version: int | None
) -> LeadScoringRule:
    rule = await get_rule(session, rule_id, for_update=True)
    check_version("scoring rule", rule.version, expected_version)
    sent = data.model_fields_set
    if "value" in sent:
        _check_rule(rule.category, rule.field, rule.operator, data.value)
        rule.value = data.value
    if data.name is not None and data.name != rule.name:
        taken = select(LeadScoringRule.id).where(LeadScoringRule.name == data.name)
        if await session.scalar(taken):
            raise Conflict(f"A scoring rule named {data.name!r} exists", code="duplicate_rule")
        rule.name = data.name
    if data.points is not None:
        rule.points = data.points
    if data.active is not None:
        rule.active = data.active
    await session.flush()
    return rule


async def delete_rule(
    session: AsyncSession, rule_id: uuid.UUID, expected_version: int | None
) -> None:
    rule = await get_rule(session, rule_id, for_update=True)
    check_version("scoring rule", rule.version, expected_version)
    await session.delete(rule)
    await session.flush()


async def rescore_open_leads(session: AsyncSession, *, batch: int = 1000) -> int:
    """Apply the current rules to every open lead (after rules changed)."""
    settings = LeadSettings.of(await org_settings(session))
    rescored = 0
    last_id: uuid.UUID | None = None
    while True:
        stmt = select(Lead).where(Lead.status.in_(lifecycle.OPEN_STATUSES)).order_by(Lead.id)
        if last_id is not None:
            stmt = stmt.where(Lead.id > last_id)
        leads = list(await session.scalars(stmt.limit(batch).with_for_update(skip_locked=True)))
        if not leads:
            return rescored
        for lead in leads:
            await rescore(session, lead, settings)
        await session.flush()
        rescored += len(leads)
        last_id = leads[-1].id
