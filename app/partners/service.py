"""Channel partners and deal registration: conflict checks on submission, approval that
creates the deal with the partner attached and a commission split, protection against
other partners' registrations of the same prospect, expiry, the joint pipeline and
commission totals."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.accounts.rules import company_key, normalize_domain
from app.accounts.schemas import AccountCreate
from app.api_keys.service import issue_key
from app.core import outbox
from app.core.auth import Principal
from app.core.concurrency import check_version, lock_tenant_topic
from app.core.errors import Conflict, NotFound, RuleViolation, ValidationFailed, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.org_settings import org_settings
from app.core.pagination import paginate, parse_sort
from app.core.repository import get_or_404
from app.core.tenancy import tenant_id
from app.models import (
    Account,
    DealRegistration,
    Opportunity,
    OpportunitySplit,
    Organization,
    Partner,
    PipelineStage,
)
from app.opportunities import service as opportunities
from app.opportunities.schemas import OpportunityCreate
from app.partners.schemas import PartnerCreate, PartnerUpdate, RegistrationCreate

RESOURCE = "deal_registration"
ACTIVE = ("submitted", "approved")
DEFAULT_PROTECTION_DAYS = 90


# --- partners -----------------------------------------------------------------------------


async def list_partners(session: AsyncSession) -> list[Partner]:
    return list(await session.scalars(select(Partner).order_by(Partner.name)))


async def get_partner(
    session: AsyncSession, partner_id: uuid.UUID, *, for_update: bool = False
) -> Partner:
    return await get_or_404(session, Partner, partner_id, "partner", for_update=for_update)


async def create_partner(session: AsyncSession, data: PartnerCreate) -> Partner:
    if await session.scalar(select(Partner.id).where(Partner.name == data.name)):
        raise Conflict(f"A partner named {data.name!r} exists", code="duplicate_partner")
    partner = Partner(
        id=new_id(),
        name=data.name,
        tier=data.tier,
        domain=normalize_domain(data.domain),
        commission_rate_pct=data.commission_rate_pct,
        status="active",
    )
    session.add(partner)
    await session.flush()
    return partner


async def update_partner(
    session: AsyncSession, partner_id: uuid.UUID, data: PartnerUpdate, expected_version: int | None
) -> Partner:
    partner = await get_partner(session, partner_id, for_update=True)
    check_version("partner", partner.version, expected_version)
    if data.name is not None and await session.scalar(
        select(Partner.id).where(Partner.name == data.name, Partner.id != partner.id)
    ):
        raise Conflict(f"A partner named {data.name!r} exists", code="duplicate_partner")
    for field in data.model_fields_set:
        value = getattr(data, field)
        if field == "domain":
            partner.domain = normalize_domain(value)
        elif value is not None:
            setattr(partner, field, value)
    await session.flush()
    return partner


async def create_partner_key(
    session: AsyncSession, principal: Principal, partner_id: uuid.UUID, name: str
) -> tuple[uuid.UUID, str]:
    partner = await get_partner(session, partner_id)
    if partner.status != "active":
        raise RuleViolation(
            "The partner is inactive",
            code="partner_inactive",
            unmet=[{"code": "partner_inactive", "detail": partner.name}],
        )
    key, token = await issue_key(
        session,
        organization_id=principal.organization_id,
        user_id=None,
        partner_id=partner.id,
        name=name,
        scopes=["*"],
        created_by_id=principal.user_id,
    )
    return key.id, token


# --- deal registrations -------------------------------------------------------------------


def _acting_partner(principal: Principal, partner_id: uuid.UUID | None) -> uuid.UUID:
    if principal.partner_id is not None:
        if partner_id not in (None, principal.partner_id):
            raise ValidationFailed(
                "A partner registers deals for itself",
                errors=[{"field": "body.partner_id", "code": "not_yours"}],
            )
        return principal.partner_id
    if partner_id is None:
        raise ValidationFailed(
            "Name the partner you register this deal for",
            errors=[{"field": "body.partner_id", "code": "missing"}],
        )
    return partner_id


async def conflicts_for(
    session: AsyncSession, registration: DealRegistration
) -> list[dict[str, Any]]:
    """Existing accounts (domain, name), their open deals, and other partners' active
    registrations of the same prospect — each with why it matched."""
    found: list[dict[str, Any]] = []
    matches = []
    if registration.domain:
        matches.append((Account.domain == registration.domain, "same domain"))
    matches.append((Account.name_key == registration.company_key, "same company name"))
    account_ids: list[uuid.UUID] = []
    for condition, reason in matches:
        for account in await session.scalars(select(Account).where(condition)):
            if account.id not in account_ids:
                account_ids.append(account.id)
                found.append(
                    {"kind": "account", "id": account.id, "reason": reason, "label": account.name}
                )
    if account_ids:
        deals = await session.execute(
            select(Opportunity.id, Opportunity.name)
            .join(
                PipelineStage,
                and_(
                    PipelineStage.organization_id == Opportunity.organization_id,
                    PipelineStage.id == Opportunity.stage_id,
                ),
            )
            .where(Opportunity.account_id.in_(account_ids), PipelineStage.kind == "open")
        )
        found += [
            {
                "kind": "opportunity",
                "id": deal_id,
                "reason": "open deal of the account",
                "label": name,
            }
            for deal_id, name in deals
        ]
    same_prospect = [DealRegistration.company_key == registration.company_key]
    if registration.domain:
        same_prospect.append(DealRegistration.domain == registration.domain)
    others = await session.scalars(
        select(DealRegistration).where(
            or_(*same_prospect),
            DealRegistration.status.in_(ACTIVE),
            DealRegistration.partner_id != registration.partner_id,
            DealRegistration.id != registration.id,
        )
    )
    today = utcnow().date()
    for other in others:
        protected = other.status == "approved" and (other.protected_until or today) >= today
        found.append(
            {
                "kind": "registration",
                "id": other.id,
                "reason": "protected registration of another partner"
                if protected
                else "active registration of another partner",
                "label": other.company_name,
                "protected_until": other.protected_until if protected else None,
            }
        )
    return found


async def submit(
    session: AsyncSession, principal: Principal, data: RegistrationCreate
) -> DealRegistration:
    partner_id = _acting_partner(principal, data.partner_id)
    partner = await session.scalar(select(Partner).where(Partner.id == partner_id))
    if partner is None or partner.status != "active":
        raise invalid_reference("partner_id", partner_id, "an active partner")
    currency = data.currency or await session.scalar(
        select(Organization.currency).where(Organization.id == tenant_id(session))
    )
    registration = DealRegistration(
        id=new_id(),
        partner_id=partner_id,
        company_name=data.company_name.strip(),
        company_key=company_key(data.company_name),
        domain=normalize_domain(data.domain),
        country=data.country,
        contact_name=data.contact_name,
        contact_email=data.contact_email.lower() if data.contact_email else None,
        contact_title=data.contact_title,
        expected_amount=data.expected_amount,
        currency=currency,
        expected_close_date=data.expected_close_date,
        products=list(data.products),
        notes=data.notes,
        status="submitted",
        submitted_by_user_id=principal.user_id,
    )
    registration.conflicts = _jsonable(await conflicts_for(session, registration))
    session.add(registration)
    await session.flush()
    outbox.emit(
        session,
        "deal_registration.submitted",
        resource_type=RESOURCE,
        resource_id=registration.id,
        data=snapshot(registration),
        partner_id=partner_id,
    )
    return registration


def _jsonable(conflicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: (str(v) if isinstance(v, uuid.UUID | date) else v) for k, v in c.items()}
        for c in conflicts
    ]


async def list_registrations(
    session: AsyncSession,
    principal: Principal,
    *,
    status: str | None,
    partner_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[DealRegistration], str | None]:
    stmt = select(DealRegistration)
    if principal.partner_id is not None:
        stmt = stmt.where(DealRegistration.partner_id == principal.partner_id)
    elif partner_id is not None:
        stmt = stmt.where(DealRegistration.partner_id == partner_id)
    if status is not None:
        stmt = stmt.where(DealRegistration.status == status)
    keys = parse_sort(
        None,
        {"created_at": DealRegistration.created_at},
        default="-created_at",
        id_column=DealRegistration.id,
    )
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_registration(
    session: AsyncSession,
    principal: Principal,
    registration_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> DealRegistration:
    registration = await get_or_404(
        session, DealRegistration, registration_id, "deal registration", for_update=for_update
    )
    if principal.partner_id is not None and registration.partner_id != principal.partner_id:
        raise NotFound("deal registration")  # another partner's: never leak it
    return registration


async def approve(
    session: AsyncSession,
    principal: Principal,
    registration_id: uuid.UUID,
    expected_version: int | None,
) -> DealRegistration:
    """Create or link the account, open the deal with the partner attached and a default
    commission split, and protect the prospect for the org's protection period."""
    await lock_tenant_topic(session, tenant_id(session), "deal_registrations")
    registration = await get_registration(session, principal, registration_id, for_update=True)
    check_version("deal registration", registration.version, expected_version)
    if registration.status != "submitted":
        raise RuleViolation(
            f"A {registration.status} registration is not approved",
            code="not_submitted",
            unmet=[{"code": "not_submitted", "detail": registration.status}],
        )
    current = await conflicts_for(session, registration)
    registration.conflicts = _jsonable(current)
    protected = [c for c in current if c["kind"] == "registration" and c["protected_until"]]
    if protected:
        raise RuleViolation(
            "Another partner's registration protects this prospect",
            code="protected_by_other_partner",
            unmet=[
                {
                    "code": "protected_by_other_partner",
                    "detail": f"{c['label']} until {c['protected_until']}",
                }
                for c in protected
            ],
        )
    partner = await get_partner(session, registration.partner_id)
    matched = next((c["id"] for c in current if c["kind"] == "account"), None)
    account = (
        await session.scalar(select(Account).where(Account.id == matched)) if matched else None
    )
    if account is None:
        account = await accounts.create_account(
            session,
            principal,
            AccountCreate(
                name=registration.company_name,
                domain=registration.domain,
                country=registration.country,
            ),
        )
    view = await opportunities.create_opportunity(
        session,
        principal,
        OpportunityCreate(
            account_id=account.id,
            name=f"{registration.company_name} (via {partner.name})"[:300],
            amount=registration.expected_amount,
            currency=registration.currency,
            close_date=registration.expected_close_date,
            source="partner",
        ),
    )
    deal = view.opportunity
    deal.partner_id = partner.id
    session.add_all(
        [
            OpportunitySplit(
                id=new_id(),
                opportunity_id=deal.id,
                split_type="commission",
                partner_id=partner.id,
                percent=partner.commission_rate_pct,
            ),
            *(
                [
                    OpportunitySplit(
                        id=new_id(),
                        opportunity_id=deal.id,
                        split_type="commission",
                        user_id=deal.owner_id,
                        percent=Decimal(100) - partner.commission_rate_pct,
                    )
                ]
                if deal.owner_id and partner.commission_rate_pct < 100
                else []
            ),
        ]
    )
    days = int(
        (await org_settings(session)).get("partner_protection_days", DEFAULT_PROTECTION_DAYS)
    )
    registration.status, registration.decided_at = "approved", utcnow()
    registration.account_id, registration.opportunity_id = account.id, deal.id
    registration.protected_until = utcnow().date() + timedelta(days=days)
    await session.flush()
    outbox.emit(
        session,
        "deal_registration.approved",
        resource_type=RESOURCE,
        resource_id=registration.id,
        data=snapshot(registration),
        partner_id=partner.id,
    )
    return registration


async def reject(
    session: AsyncSession,
    principal: Principal,
    registration_id: uuid.UUID,
    reason: str,
    expected_version: int | None,
) -> DealRegistration:
    registration = await get_registration(session, principal, registration_id, for_update=True)
    check_version("deal registration", registration.version, expected_version)
    if registration.status != "submitted":
        raise RuleViolation(
            f"A {registration.status} registration is not rejected",
            code="not_submitted",
            unmet=[{"code": "not_submitted", "detail": registration.status}],
        )
    registration.status, registration.rejection_reason = "rejected", reason
    registration.decided_at = utcnow()
    await session.flush()
    outbox.emit(
        session,
        "deal_registration.rejected",
        resource_type=RESOURCE,
        resource_id=registration.id,
        data={**snapshot(registration), "reason": reason},
        partner_id=registration.partner_id,
    )
    return registration


async def settle(session: AsyncSession, today: date | None = None) -> int:
    """Approved registrations whose deal was won are converted; those whose protection
    ended first expire (a job)."""
    day = today or utcnow().date()
    changed = 0
    rows = await session.execute(
        select(DealRegistration, PipelineStage.kind)
        .join(
            Opportunity,
            and_(
                Opportunity.organization_id == DealRegistration.organization_id,
                Opportunity.id == DealRegistration.opportunity_id,
            ),
        )
        .join(
            PipelineStage,
            and_(
                PipelineStage.organization_id == Opportunity.organization_id,
                PipelineStage.id == Opportunity.stage_id,
            ),
        )
        .where(DealRegistration.status == "approved")
        .with_for_update(of=DealRegistration, skip_locked=True)
    )
    for registration, kind in rows:
        if kind == "won":
            registration.status = "converted"
        elif registration.protected_until is not None and registration.protected_until < day:
            registration.status = "expired"
        else:
            continue
        changed += 1
        outbox.emit(
            session,
            f"deal_registration.{registration.status}",
            resource_type=RESOURCE,
            resource_id=registration.id,
            data=snapshot(registration),
            partner_id=registration.partner_id,
        )
    await session.flush()
    return changed


async def joint_pipeline(session: AsyncSession, partner_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(DealRegistration, Opportunity, PipelineStage.key)
        .outerjoin(
            Opportunity,
            and_(
                Opportunity.organization_id == DealRegistration.organization_id,
                Opportunity.id == DealRegistration.opportunity_id,
            ),
        )
        .outerjoin(
            PipelineStage,
            and_(
                PipelineStage.organization_id == Opportunity.organization_id,
                PipelineStage.id == Opportunity.stage_id,
            ),
        )
        .where(DealRegistration.partner_id == partner_id)
        .order_by(DealRegistration.created_at.desc(), DealRegistration.id)
    )
    return [
        {
            "registration_id": r.id,
            "company_name": r.company_name,
            "registration_status": r.status,
            "protected_until": r.protected_until,
            "opportunity_id": deal.id if deal else None,
            "stage": stage,
            "amount": deal.amount if deal else None,
            "currency": deal.currency if deal else None,
            "close_date": deal.close_date if deal else None,
        }
        for r, deal, stage in rows
    ]


_PERIOD = re.compile(r"^(\d{4})(?:-Q([1-4])|-(\d{2}))?$")


def period_bounds(period: str) -> tuple[date, date]:
    """``2026``, ``2026-Q3`` or ``2026-07`` → [start, end) in calendar terms."""
    match = _PERIOD.match(period)
    if not match or (match.group(3) and not 1 <= int(match.group(3)) <= 12):
        raise ValidationFailed(
            "period is YYYY, YYYY-Qn or YYYY-MM",
            errors=[{"field": "query.period", "code": "invalid_period", "detail": period}],
        )
    year = int(match.group(1))
    if match.group(2):
        first = (int(match.group(2)) - 1) * 3 + 1
        start, months = date(year, first, 1), 3
    elif match.group(3):
        start, months = date(year, int(match.group(3)), 1), 1
    else:
        start, months = date(year, 1, 1), 12
    end_month = start.month - 1 + months
    return start, date(start.year + end_month // 12, end_month % 12 + 1, 1)


async def commissions(session: AsyncSession, partner_id: uuid.UUID, period: str) -> dict[str, Any]:
    """Σ won amount × the partner's commission split over deals won in the period (SQL)."""
    await get_partner(session, partner_id)
    start, end = period_bounds(period)
    rows = (
        await session.execute(
            select(
                Opportunity.currency,
                func.count().label("deals"),
                func.sum(Opportunity.amount).label("revenue"),
                func.sum(Opportunity.amount * OpportunitySplit.percent / 100).label("commission"),
            )
            .join(
                OpportunitySplit,
                and_(
                    OpportunitySplit.organization_id == Opportunity.organization_id,
                    OpportunitySplit.opportunity_id == Opportunity.id,
                    OpportunitySplit.split_type == "commission",
                    OpportunitySplit.partner_id == partner_id,
                ),
            )
            .join(
                PipelineStage,
                and_(
                    PipelineStage.organization_id == Opportunity.organization_id,
                    PipelineStage.id == Opportunity.stage_id,
                ),
            )
            .where(
                PipelineStage.kind == "won",
                Opportunity.closed_at >= start,
                Opportunity.closed_at < end,
            )
            .group_by(Opportunity.currency)
            .order_by(Opportunity.currency)
        )
    ).all()
    return {
        "partner_id": partner_id,
        "period": period,
        "start": start,
        "end": end - timedelta(days=1),
        "currency_totals": [
            {
                "currency": r.currency,
                "won_revenue": format(Decimal(r.revenue or 0), "f"),
                "commission": format(Decimal(r.commission or 0).quantize(Decimal("0.01")), "f"),
            }
            for r in rows
        ],
        "deals": sum(r.deals for r in rows),
    }


def snapshot(registration: DealRegistration) -> dict[str, Any]:
    return {
        "id": registration.id,
        "partner_id": registration.partner_id,
        "company_name": registration.company_name,
        "status": registration.status,
        "protected_until": registration.protected_until,
        "opportunity_id": registration.opportunity_id,
        "conflicts": len(registration.conflicts),
    }
