"""Cross-sell / upsell rules: "N months after winning a deal with product (or family) X,
suggest Y". The follow-ups job fires each rule once per won deal: a task for the deal's
owner, or a draft expansion opportunity in the default pipeline."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import outbox
from app.core.auth import Principal
from app.core.concurrency import check_version
from app.core.errors import Conflict, invalid_reference
from app.core.ids import new_id, utcnow
from app.core.repository import get_or_404
from app.cross_sell.schemas import CrossSellRuleCreate, CrossSellRuleUpdate
from app.models import (
    CrossSellRule,
    CrossSellTrigger,
    Opportunity,
    PipelineStage,
    Product,
    Quote,
    QuoteLineItem,
    QuoteVersion,
)
from app.opportunities import service as opportunities
from app.opportunities.schemas import OpportunityCreate
from app.tasks.service import add_system_task

RESOURCE = "cross_sell_rule"


async def list_rules(session: AsyncSession) -> list[CrossSellRule]:
    return list(await session.scalars(select(CrossSellRule).order_by(CrossSellRule.name)))


async def get_rule(
    session: AsyncSession, rule_id: uuid.UUID, *, for_update: bool = False
) -> CrossSellRule:
    return await get_or_404(
        session, CrossSellRule, rule_id, "cross-sell rule", for_update=for_update
    )


async def _check_product(session: AsyncSession, field: str, product_id: uuid.UUID | None) -> None:
    if (
        product_id is not None
        and await session.scalar(select(Product.id).where(Product.id == product_id)) is None
    ):
        raise invalid_reference(field, product_id, "a product")


async def create_rule(session: AsyncSession, data: CrossSellRuleCreate) -> CrossSellRule:
    await _check_product(session, "trigger_product_id", data.trigger_product_id)
    await _check_product(session, "suggest_product_id", data.suggest_product_id)
    if await session.scalar(select(CrossSellRule.id).where(CrossSellRule.name == data.name)):
        raise Conflict(
            f"A cross-sell rule named {data.name!r} exists", code="duplicate_cross_sell_rule"
        )
    rule = CrossSellRule(id=new_id(), **data.model_dump())
    session.add(rule)
    await session.flush()
    return rule


async def update_rule(
    session: AsyncSession,
    rule_id: uuid.UUID,
    data: CrossSellRuleUpdate,
    expected_version: int | None,
) -> CrossSellRule:
    rule = await get_rule(session, rule_id, for_update=True)
    check_version("cross-sell rule", rule.version, expected_version)
    if (
        data.name is not None
        and data.name != rule.name
        and await session.scalar(select(CrossSellRule.id).where(CrossSellRule.name == data.name))
    ):
        raise Conflict(
            f"A cross-sell rule named {data.name!r} exists", code="duplicate_cross_sell_rule"
        )
    for field in data.model_fields_set:
        if getattr(data, field) is not None:
            setattr(rule, field, getattr(data, field))
    await session.flush()
    return rule


async def delete_rule(
    session: AsyncSession, rule_id: uuid.UUID, expected_version: int | None
) -> None:
    rule = await get_rule(session, rule_id, for_update=True)
    check_version("cross-sell rule", rule.version, expected_version)
    rule.active = False  # fired triggers keep pointing at it; an inactive rule never fires
    await session.flush()


def _bought(rule: CrossSellRule) -> Any:
    """EXISTS: the deal's accepted quote version has the trigger product or family."""
    matches = (
        QuoteLineItem.product_id == rule.trigger_product_id
        if rule.trigger_product_id is not None
        else Product.family == rule.trigger_family
    )
    return exists(
        select(literal(1))
        .select_from(Quote)
        .join(
            QuoteVersion,
            and_(
                QuoteVersion.organization_id == Quote.organization_id,
                QuoteVersion.quote_id == Quote.id,
                QuoteVersion.number == Quote.accepted_version,
            ),
        )
        .join(
            QuoteLineItem,
            and_(
                QuoteLineItem.organization_id == QuoteVersion.organization_id,
                QuoteLineItem.quote_version_id == QuoteVersion.id,
            ),
        )
        .join(
            Product,
            and_(
                Product.organization_id == QuoteLineItem.organization_id,
                Product.id == QuoteLineItem.product_id,
            ),
        )
        .where(Quote.opportunity_id == Opportunity.id, Quote.status == "accepted", matches)
    )


async def fire_due(
    session: AsyncSession, principal: Principal | None = None, now: datetime | None = None
) -> int:
    """Fire every active rule for the won deals it is due for, once each."""
    now = now or utcnow()
    fired = 0
    for rule in await session.scalars(select(CrossSellRule).where(CrossSellRule.active)):
        due = (
            select(Opportunity)
            .join(
                PipelineStage,
                and_(
                    PipelineStage.organization_id == Opportunity.organization_id,
                    PipelineStage.id == Opportunity.stage_id,
                ),
            )
            .where(
                PipelineStage.kind == "won",
                Opportunity.closed_at <= literal(now) - func.make_interval(0, rule.months_after),
                _bought(rule),
                ~exists(
                    select(literal(1)).where(
                        CrossSellTrigger.rule_id == rule.id,
                        CrossSellTrigger.opportunity_id == Opportunity.id,
                    )
                ),
            )
        )
        product = await session.scalar(select(Product).where(Product.id == rule.suggest_product_id))
        for deal in await session.scalars(due):
            trigger = CrossSellTrigger(
                id=new_id(), rule_id=rule.id, opportunity_id=deal.id, fired_at=now
            )
            title = (
                f"Offer {product.name if product else 'the next product'} to the customer "
                f"of {deal.name} (rule {rule.name!r})"
            )
            if rule.action == "task":
                task = add_system_task(
                    session,
                    title=title,
                    source="cross_sell",
                    assignee_id=deal.owner_id,
                    due_at=now + timedelta(days=7),
                    dedupe_key=f"cross_sell:{rule.id}:{deal.id}",
                    account_id=deal.account_id,
                    opportunity_id=deal.id,
                )
                trigger.task_id = task.id
            else:
                acting = principal or _system_principal(deal)
                view = await opportunities.create_opportunity(
                    session,
                    acting,
                    OpportunityCreate(
                        account_id=deal.account_id,
                        name=f"Cross-sell: {product.name if product else ''} — {deal.name}"[:300],
                        owner_id=deal.owner_id,
                        type="expansion",
                        currency=deal.currency,
                        source="other",
                    ),
                )
                trigger.created_opportunity_id = view.opportunity.id
            session.add(trigger)
            outbox.emit(
                session,
                "opportunity.cross_sell_suggested",
                resource_type="opportunity",
                resource_id=deal.id,
                data={
                    "rule_id": rule.id,
                    "opportunity_id": deal.id,
                    "suggest_product_id": rule.suggest_product_id,
                    "action": rule.action,
                    "task_id": trigger.task_id,
                    "created_opportunity_id": trigger.created_opportunity_id,
                },
            )
            fired += 1
    await session.flush()
    return fired


def _system_principal(deal: Opportunity) -> Principal:
    """Jobs act as the deal's owner when they create deals."""
    return Principal(
        organization_id=deal.organization_id,
        api_key_id=deal.organization_id,
        user_id=deal.owner_id,
        partner_id=None,
        role="manager",
        scopes=frozenset({"*"}),
    )
