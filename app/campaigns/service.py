"""Campaigns, their members (leads or contacts) and campaign attribution."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Date,
    Select,
    and_,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.campaigns.schemas import (
    BulkAddIn,
    CampaignCreate,
    CampaignUpdate,
    MemberCreate,
    MemberUpdate,
)
from app.core.concurrency import check_version
from app.core.errors import (
    Conflict,
    NotFound,
    RuleViolation,
    ValidationFailed,
    invalid_reference,
)
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import get_or_404
from app.core.tenancy import INCLUDE_DELETED, tenant_id
from app.metrics.fx import Converter
from app.metrics.service import org_money_context
from app.models import (
    Account,
    Campaign,
    CampaignMember,
    Contact,
    Lead,
    Opportunity,
    OpportunityStakeholder,
)
from app.models.campaign import RESPONDED_STATUSES

RESOURCE = "campaign"
MEMBER = "campaign member"
CENT = Decimal("0.01")

# A time-ordered UUID (v7) computed by PostgreSQL 15 (which has no uuidv7()): the
# millisecond clock over the first 48 bits of a random UUID, version nibble set to 7.
_UUID7 = text(
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) "
    "from 3) from 1 for 6), 52, 1), 53, 1), 'hex')::uuid"
)


# --- campaigns ------------------------------------------------------------------------


async def get_campaign(
    session: AsyncSession, campaign_id: uuid.UUID, *, for_update: bool = False
) -> Campaign:
    return await get_or_404(session, Campaign, campaign_id, RESOURCE, for_update=for_update)


async def get_campaign_or_invalid(
    session: AsyncSession, campaign_id: uuid.UUID, field: str = "campaign_id"
) -> None:
    """A body field naming a campaign must name one of this tenant (else 422)."""
    if await session.scalar(select(Campaign.id).where(Campaign.id == campaign_id)) is None:
        raise invalid_reference(field, campaign_id, "a campaign")


async def _check_name(session: AsyncSession, name: str, own: uuid.UUID | None = None) -> None:
    stmt = select(Campaign.id).where(Campaign.name == name)
    if own is not None:
        stmt = stmt.where(Campaign.id != own)
    if await session.scalar(stmt) is not None:
        raise Conflict(f"A campaign named {name!r} exists", code="duplicate_campaign")


async def list_campaigns(
    session: AsyncSession,
    *,
    type: str | None,
    status: str | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Campaign], str | None]:
    stmt = select(Campaign)
    if type is not None:
        stmt = stmt.where(Campaign.type == type)
    if status is not None:
        stmt = stmt.where(Campaign.status == status)
    keys = parse_sort(
        sort,
        {
            "created_at": Campaign.created_at,
            "name": Campaign.name,
            "start_date": Campaign.start_date,
            "actual_cost": Campaign.actual_cost,
        },
        default="-created_at",
        id_column=Campaign.id,
    )
    rows, next_cursor = await paginate(session, stmt, keys, limit=limit, cursor=cursor)
    return rows, next_cursor


async def create_campaign(session: AsyncSession, data: CampaignCreate) -> Campaign:
    await _check_name(session, data.name)
    currency = data.currency or (await org_money_context(session))[0]
    campaign = Campaign(
        id=new_id(),
        currency=currency,
        **data.model_dump(exclude={"currency"}),
    )
    session.add(campaign)
    await session.flush()
    return campaign


async def update_campaign(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    data: CampaignUpdate,
    expected_version: int | None,
) -> Campaign:
    campaign = await get_campaign(session, campaign_id, for_update=True)
    check_version(RESOURCE, campaign.version, expected_version)
    if data.name is not None and data.name != campaign.name:
        await _check_name(session, data.name, campaign.id)
    for field in data.model_fields_set:
        value = getattr(data, field)
        if value is not None or field in CampaignUpdate.nullable:
            setattr(campaign, field, value)
    if campaign.start_date and campaign.end_date and campaign.end_date < campaign.start_date:
        raise ValidationFailed(
            "end_date is before start_date",
            errors=[{"field": "body.end_date", "code": "before_start"}],
        )
    await session.flush()
    return campaign


async def delete_campaign(
    session: AsyncSession, campaign_id: uuid.UUID, expected_version: int | None
) -> None:
    """Only an unused campaign is deleted: members and sourced leads are attribution
    history (409 ``campaign_in_use`` names what keeps it)."""
    campaign = await get_campaign(session, campaign_id, for_update=True)
    check_version(RESOURCE, campaign.version, expected_version)
    members = await session.scalar(
        select(func.count()).where(CampaignMember.campaign_id == campaign.id)
    )
    # Deleted leads count too: they still reference the campaign.
    leads = await session.scalar(
        select(func.count())
        .where(Lead.campaign_id == campaign.id)
        .execution_options(**{INCLUDE_DELETED: True})
    )
    unmet = []
    if members:
        unmet.append({"code": "campaign_in_use", "detail": f"{members} member(s)"})
    if leads:
        unmet.append({"code": "campaign_in_use", "detail": f"{leads} sourced lead(s)"})
    if unmet:
        raise RuleViolation(
            "The campaign has members or sourced leads", code="campaign_in_use", unmet=unmet
        )
    await session.delete(campaign)
    await session.flush()


# --- members --------------------------------------------------------------------------


async def get_member(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    member_id: uuid.UUID,
    expected_version: int | None = None,
) -> CampaignMember:
    member = await get_or_404(session, CampaignMember, member_id, MEMBER, for_update=True)
    if member.campaign_id != campaign_id:
        raise NotFound(MEMBER)
    check_version(MEMBER, member.version, expected_version)
    return member


async def list_members(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[CampaignMember], str | None]:
    await get_campaign(session, campaign_id)
    stmt = select(CampaignMember).where(CampaignMember.campaign_id == campaign_id)
    if status is not None:
        stmt = stmt.where(CampaignMember.status == status)
    keys = parse_sort(
        None,
        {"created_at": CampaignMember.created_at},
        default="created_at",
        id_column=CampaignMember.id,
    )
    rows, next_cursor = await paginate(session, stmt, keys, limit=limit, cursor=cursor)
    return rows, next_cursor


async def add_member(
    session: AsyncSession, campaign_id: uuid.UUID, data: MemberCreate
) -> CampaignMember:
    await get_campaign(session, campaign_id)
    if data.lead_id is not None:
        if await session.scalar(select(Lead.id).where(Lead.id == data.lead_id)) is None:
            raise invalid_reference("lead_id", data.lead_id, "a lead")
        same = CampaignMember.lead_id == data.lead_id
    else:
        if await session.scalar(select(Contact.id).where(Contact.id == data.contact_id)) is None:
            raise invalid_reference("contact_id", data.contact_id, "a contact")
        same = CampaignMember.contact_id == data.contact_id
    if await session.scalar(
        select(CampaignMember.id).where(CampaignMember.campaign_id == campaign_id, same)
    ):
        raise Conflict("Already a member of this campaign", code="already_member")
    member = CampaignMember(
        id=new_id(),
        campaign_id=campaign_id,
        lead_id=data.lead_id,
        contact_id=data.contact_id,
        status=data.status,
        responded_at=utcnow() if data.status in RESPONDED_STATUSES else None,
    )
    session.add(member)
    await session.flush()
    return member


async def update_member(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    member_id: uuid.UUID,
    data: MemberUpdate,
    expected_version: int | None,
) -> CampaignMember:
    await get_campaign(session, campaign_id)
    member = await get_member(session, campaign_id, member_id, expected_version)
    member.status = data.status
    # The first response is the attribution touch: later moves keep it.
    if data.status in RESPONDED_STATUSES and member.responded_at is None:
        member.responded_at = utcnow()
    await session.flush()
    return member


async def remove_member(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    member_id: uuid.UUID,
    expected_version: int | None,
) -> None:
    await get_campaign(session, campaign_id)
    member = await get_member(session, campaign_id, member_id, expected_version)
    await session.delete(member)
    await session.flush()


async def bulk_add(
    session: AsyncSession, campaign_id: uuid.UUID, data: BulkAddIn
) -> tuple[int, int]:
    """Adds every matching lead/contact not yet a member in one INSERT … SELECT … ON
    CONFLICT DO NOTHING; returns (added, already members).

    An INSERT … FROM SELECT is not scoped by the tenancy layer: every SELECT here filters
    by the tenant explicitly."""
    await get_campaign(session, campaign_id, for_update=True)
    org = tenant_id(session)
    now = func.now()
    responded = now if data.status in RESPONDED_STATUSES else null()
    sources: list[Select[Any]] = []
    if data.leads is not None:
        f = data.leads
        conditions: list[ColumnElement[bool]] = [
            Lead.organization_id == org,
            Lead.deleted_at.is_(None),
        ]
        for column, value in (
            (Lead.status, f.status),
            (Lead.segment, f.segment),
            (Lead.source, f.source),
            (Lead.owner_id, f.owner_id),
            (Lead.territory_id, f.territory_id),
            (Lead.country, f.country),
        ):
            if value is not None:
                conditions.append(column == value)
        if f.min_score is not None:
            conditions.append(Lead.score >= f.min_score)
        sources.append(
            select(Lead.id.label("lead_id"), cast(null(), Lead.id.type).label("contact_id")).where(
                *conditions
            )
        )
    if data.contacts is not None:
        c = data.contacts
        stmt = select(
            cast(null(), Contact.id.type).label("lead_id"), Contact.id.label("contact_id")
        ).where(Contact.organization_id == org, Contact.deleted_at.is_(None))
        if c.account_id is not None:
            stmt = stmt.where(Contact.account_id == c.account_id)
        if c.account_segment is not None:
            stmt = stmt.join(
                Account,
                and_(
                    Account.organization_id == Contact.organization_id,
                    Account.id == Contact.account_id,
                ),
            ).where(Account.organization_id == org, Account.segment == c.account_segment)
        sources.append(stmt)
    matching = (
        sources[0].subquery("matching")
        if len(sources) == 1
        else union_all(*sources).subquery("matching")
    )
    matched = int(await session.scalar(select(func.count()).select_from(matching)) or 0)
    rows = select(
        literal(org, CampaignMember.organization_id.type),
        _UUID7,
        literal(campaign_id, CampaignMember.campaign_id.type),
        matching.c.lead_id,
        matching.c.contact_id,
        literal(data.status),
        responded,
        now,
        now,
        literal(1),
    )
    statement = (
        insert(CampaignMember)
        .from_select(
            [
                "organization_id",
                "id",
                "campaign_id",
                "lead_id",
                "contact_id",
                "status",
                "responded_at",
                "created_at",
                "updated_at",
                "version",
            ],
            rows,
        )
        .on_conflict_do_nothing()
        .returning(CampaignMember.id)
    )
    added = len((await session.execute(statement)).all())
    return added, matched - added


# --- attribution ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Influence:
    campaign_id: uuid.UUID
    currency: str
    leads_created: int
    opportunities_sourced: int
    opportunities_influenced: int
    won_revenue_sourced: Decimal
    won_revenue_influenced: Decimal
    won_revenue_first_touch: Decimal
    won_revenue_last_touch: Decimal
    cost: Decimal | None
    roi: Decimal | None
    roi_reason: str | None
    unconverted_deals: int


def _window(column: Any, start: date | None, end: date | None) -> ColumnElement[bool]:
    """``start <= column <= end`` by day (either bound optional)."""
    day = cast(column, Date) if not isinstance(column.type, Date) else column
    conditions: list[ColumnElement[bool]] = [true()]
    if start is not None:
        conditions.append(day >= start)
    if end is not None:
        conditions.append(day <= end)
    return and_(*conditions)


def _touches(org: uuid.UUID) -> Any:
    """Every campaign touch of every deal of the tenant, before the deal closed:
    (deal_id, campaign_id, at).

    A deal's lead is ``opportunities.lead_id`` or the lead converted into it. Its touches:
    the campaign responses of that lead (membership ``responded_at``), the lead's source
    campaign (``leads.campaign_id``, at the lead's creation), and the campaign responses of
    the contacts on the deal's buying committee. A touch counts when it precedes the
    close (``closed_at``), or the deal is still open."""
    deal_leads = union(
        select(Opportunity.id.label("deal_id"), Opportunity.lead_id.label("lead_id")).where(
            Opportunity.organization_id == org, Opportunity.lead_id.is_not(None)
        ),
        select(Lead.converted_opportunity_id.label("deal_id"), Lead.id.label("lead_id")).where(
            Lead.organization_id == org, Lead.converted_opportunity_id.is_not(None)
        ),
    ).cte("deal_leads")
    lead_responses = select(
        deal_leads.c.deal_id,
        CampaignMember.campaign_id,
        CampaignMember.responded_at.label("at"),
    ).join(
        CampaignMember,
        and_(
            CampaignMember.organization_id == org,
            CampaignMember.lead_id == deal_leads.c.lead_id,
            CampaignMember.responded_at.is_not(None),
        ),
    )
    lead_sources = select(deal_leads.c.deal_id, Lead.campaign_id, Lead.created_at.label("at")).join(
        Lead,
        and_(
            Lead.organization_id == org,
            Lead.id == deal_leads.c.lead_id,
            Lead.campaign_id.is_not(None),
            Lead.deleted_at.is_(None),
        ),
    )
    committee = (
        select(
            OpportunityStakeholder.opportunity_id.label("deal_id"),
            CampaignMember.campaign_id,
            CampaignMember.responded_at.label("at"),
        )
        .join(
            CampaignMember,
            and_(
                CampaignMember.organization_id == org,
                CampaignMember.contact_id == OpportunityStakeholder.contact_id,
                CampaignMember.responded_at.is_not(None),
            ),
        )
        .where(OpportunityStakeholder.organization_id == org)
    )
    raw = union_all(lead_responses, lead_sources, committee).subquery("raw_touches")
    return (
        select(raw.c.deal_id, raw.c.campaign_id, raw.c.at)
        .join(
            Opportunity,
            and_(
                Opportunity.organization_id == org,
                Opportunity.id == raw.c.deal_id,
                Opportunity.deleted_at.is_(None),
            ),
        )
        .where(or_(Opportunity.closed_at.is_(None), raw.c.at < Opportunity.closed_at))
        .cte("touches")
    )


async def influence(
    session: AsyncSession, campaign_id: uuid.UUID, start: date | None, end: date | None
) -> Influence:
    campaign = await get_campaign(session, campaign_id)
    org = tenant_id(session)
    corporate, _ = await org_money_context(session)
    converter = Converter(corporate)

    leads_created = int(
        await session.scalar(
            select(func.count()).where(
                Lead.organization_id == org,
                Lead.campaign_id == campaign.id,
                Lead.deleted_at.is_(None),
                _window(Lead.created_at, start, end),
            )
        )
        or 0
    )

    touches = _touches(org)
    # First / last touch of each won deal: the campaign with the earliest / latest touch
    # (ties: the smaller campaign id).
    ranked = select(
        touches.c.deal_id,
        touches.c.campaign_id,
        func.row_number()
        .over(partition_by=touches.c.deal_id, order_by=(touches.c.at.asc(), touches.c.campaign_id))
        .label("first_rank"),
        func.row_number()
        .over(partition_by=touches.c.deal_id, order_by=(touches.c.at.desc(), touches.c.campaign_id))
        .label("last_rank"),
    ).cte("ranked")
    sourced = exists().where(
        Lead.organization_id == org,
        Lead.campaign_id == campaign.id,
        Lead.deleted_at.is_(None),
        or_(Lead.id == Opportunity.lead_id, Lead.converted_opportunity_id == Opportunity.id),
    )
    touched = exists().where(
        touches.c.deal_id == Opportunity.id, touches.c.campaign_id == campaign.id
    )
    influenced = or_(sourced, touched)

    def credited(rank: Any) -> ColumnElement[bool]:
        return exists().where(
            ranked.c.deal_id == Opportunity.id,
            ranked.c.campaign_id == campaign.id,
            rank == 1,
        )

    first = credited(ranked.c.first_rank)
    last = credited(ranked.c.last_rank)
    won = and_(Opportunity.stage_kind == "won", _window(Opportunity.close_date, start, end))
    created = _window(Opportunity.created_at, start, end)
    stmt = (
        select()
        .select_from(Opportunity)
        .where(Opportunity.organization_id == org, Opportunity.deleted_at.is_(None))
    )
    stmt, rate = converter.join_rate(stmt, Opportunity.currency, Opportunity.close_date)
    value = func.coalesce(Opportunity.amount * rate, 0)
    converted = or_(Opportunity.amount.is_(None), rate.is_not(None))

    def revenue(condition: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(value).filter(won, converted, condition), 0)

    stmt = stmt.add_columns(
        func.count().filter(created, sourced).label("sourced"),
        func.count().filter(created, influenced).label("influenced"),
        revenue(sourced).label("won_sourced"),
        revenue(influenced).label("won_influenced"),
        revenue(first).label("won_first"),
        revenue(last).label("won_last"),
        func.count().filter(won, influenced, ~converted).label("unconverted"),
    )
    row = (await session.execute(stmt)).one()

    # The cost in the corporate currency, at the rate of the campaign's last day.
    cost_day = func.coalesce(
        literal(campaign.end_date, Date),
        literal(campaign.start_date, Date),
        func.current_date(),
    )
    cost_stmt = (
        select()
        .select_from(Campaign)
        .where(Campaign.organization_id == org, Campaign.id == campaign.id)
    )
    cost_stmt, cost_rate = converter.join_rate(cost_stmt, Campaign.currency, cost_day)
    cost_raw = await session.scalar(cost_stmt.add_columns(Campaign.actual_cost * cost_rate))
    cost = None if cost_raw is None else Decimal(cost_raw).quantize(CENT)

    won_sourced = Decimal(row.won_sourced).quantize(CENT)
    roi: Decimal | None = None
    roi_reason: str | None = None
    if cost is None:
        roi_reason = "no_exchange_rate"
    elif cost == 0:
        roi_reason = "no_cost"
    else:
        roi = (won_sourced / cost).quantize(CENT)
    return Influence(
        campaign_id=campaign.id,
        currency=corporate,
        leads_created=leads_created,
        opportunities_sourced=int(row.sourced),
        opportunities_influenced=int(row.influenced),
        won_revenue_sourced=won_sourced,
        won_revenue_influenced=Decimal(row.won_influenced).quantize(CENT),
        won_revenue_first_touch=Decimal(row.won_first).quantize(CENT),
        won_revenue_last_touch=Decimal(row.won_last).quantize(CENT),
        cost=cost,
        roi=roi,
        roi_reason=roi_reason,
        unconverted_deals=int(row.unconverted),
    )
