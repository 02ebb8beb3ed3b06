"""Accounts: firmographics, segment derivation, hierarchy (acyclic), lifecycle, soft delete."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.accounts.rules import SegmentRules, company_key, derive_segment, normalize_domain
from app.accounts.schemas import AccountCreate, AccountUpdate
from app.core import outbox
from app.core.audit import changed_fields
from app.core.auth import Principal
from app.core.concurrency import check_version, lock_tenant_topic
from app.core.errors import (
    Conflict,
    NotFound,
    RuleViolation,
    invalid_reference,
)
from app.core.ids import new_id, utcnow
from app.core.org_settings import org_settings
from app.core.pagination import paginate, parse_sort
from app.core.repository import ensure_active_user, get_or_404
from app.core.tenancy import tenant_id
from app.models import Account, Opportunity, PipelineStage
from app.nurture import service as nurture
from app.territories import service as territories

RESOURCE = "account"
SORTABLE = {
    "created_at": Account.created_at,
    "updated_at": Account.updated_at,
    "name": Account.name,
    "annual_revenue": Account.annual_revenue,
    "employee_count": Account.employee_count,
}
# Deep enough for any real corporate tree; bounds the recursive queries regardless.
MAX_HIERARCHY_DEPTH = 64

# Allowed lifecycle moves: win (prospect → customer), churn, win back.
LIFECYCLE_MOVES = {
    ("prospect", "customer"),
    ("customer", "former_customer"),
    ("former_customer", "customer"),
}


@dataclass(frozen=True, slots=True)
class AccountFilters:
    name: str | None = None
    domain: str | None = None
    industry: str | None = None
    segment: str | None = None
    lifecycle: str | None = None
    country: str | None = None
    owner_id: uuid.UUID | None = None
    parent_account_id: uuid.UUID | None = None
    territory_id: uuid.UUID | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_since: datetime | None = None


def _filtered(filters: AccountFilters) -> Select[Any]:
    stmt = select(Account)
    if filters.name:
        stmt = stmt.where(Account.name.ilike(f"%{_escape_like(filters.name)}%", escape="\\"))
    if filters.domain:
        stmt = stmt.where(Account.domain == normalize_domain(filters.domain))
    for column, value in (
        (Account.industry, filters.industry),
        (Account.segment, filters.segment),
        (Account.lifecycle, filters.lifecycle),
        (Account.country, filters.country),
        (Account.owner_id, filters.owner_id),
        (Account.parent_account_id, filters.parent_account_id),
        (Account.territory_id, filters.territory_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.created_after:
        stmt = stmt.where(Account.created_at >= filters.created_after)
    if filters.created_before:
        stmt = stmt.where(Account.created_at < filters.created_before)
    if filters.updated_since:
        stmt = stmt.where(Account.updated_at >= filters.updated_since)
    return stmt


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_accounts(
    session: AsyncSession,
    filters: AccountFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Account], str | None]:
    keys = parse_sort(sort, SORTABLE, default="-created_at", id_column=Account.id)
    return await paginate(session, _filtered(filters), keys, limit=limit, cursor=cursor)


async def get_account(
    session: AsyncSession, account_id: uuid.UUID, *, for_update: bool = False
) -> Account:
    return await get_or_404(session, Account, account_id, RESOURCE, for_update=for_update)


async def get_account_or_invalid(
    session: AsyncSession, account_id: uuid.UUID, field: str = "account_id"
) -> Account:
    """The account a request body names, or a 422 naming the field."""
    account = await session.scalar(select(Account).where(Account.id == account_id))
    if account is None:
        raise invalid_reference(field, account_id, "an account")
    return account


async def same_tree(session: AsyncSession, first: uuid.UUID, second: uuid.UUID) -> bool:
    """Whether two accounts belong to one hierarchy (share their root)."""
    if first == second:
        return True
    first_chain = await _ancestor_ids(session, first)
    second_chain = await _ancestor_ids(session, second)
    return bool(first_chain and second_chain) and first_chain[-1] == second_chain[-1]


async def segment_rules(session: AsyncSession) -> SegmentRules:
    return SegmentRules.from_settings(await org_settings(session))


async def _check_domain_free(
    session: AsyncSession, domain: str | None, *, except_id: uuid.UUID | None = None
) -> None:
    if domain is None:
        return
    stmt = select(Account.id).where(Account.domain == domain)
    if except_id is not None:
        stmt = stmt.where(Account.id != except_id)
    existing = await session.scalar(stmt.limit(1))
    if existing is not None:
        raise Conflict(
            f"An account with the domain {domain!r} already exists",
            code="duplicate_account",
            extra={"existing_id": str(existing)},
        )


async def _ancestor_ids(session: AsyncSession, account_id: uuid.UUID) -> list[uuid.UUID]:
    """The account and every ancestor up to its root (nearest first)."""
    org = tenant_id(session)
    start = select(Account.id, Account.parent_account_id, literal(0).label("depth")).where(
        Account.id == account_id, Account.organization_id == org
    )
    chain = start.cte("ancestors", recursive=True)
    parent = aliased(Account)
    chain = chain.union_all(
        select(parent.id, parent.parent_account_id, chain.c.depth + 1).where(
            parent.organization_id == org,
            parent.id == chain.c.parent_account_id,
            chain.c.depth < MAX_HIERARCHY_DEPTH,
        )
    )
    rows = await session.execute(select(chain.c.id).order_by(chain.c.depth))
    return [row[0] for row in rows]


async def _set_parent(
    session: AsyncSession, account_id: uuid.UUID, parent_id: uuid.UUID | None
) -> None:
    """Validate a new parent: it exists and the move creates no cycle.

    Hierarchy changes of one tenant are serialised so that two concurrent moves cannot
    together form a cycle that each alone would not.
    """
    if parent_id is None:
        return
    await lock_tenant_topic(session, tenant_id(session), "accounts.hierarchy")
    if parent_id == account_id:
        raise RuleViolation(
            "An account cannot be its own parent",
            code="hierarchy_cycle",
            unmet=[{"code": "hierarchy_cycle", "detail": "parent_account_id is the account"}],
        )
    ancestors = await _ancestor_ids(session, parent_id)
    if not ancestors:
        raise invalid_reference("parent_account_id", parent_id, "an account")
    if account_id in ancestors:
        raise RuleViolation(
            "The new parent is a descendant of this account; the hierarchy would loop",
            code="hierarchy_cycle",
            unmet=[
                {
                    "code": "hierarchy_cycle",
                    "detail": "parent path: " + " → ".join(str(a) for a in ancestors),
                }
            ],
        )


async def create_account(
    session: AsyncSession, principal: Principal, data: AccountCreate
) -> Account:
    domain = normalize_domain(data.domain)
    await _check_domain_free(session, domain)
    owner_id = data.owner_id if data.owner_id is not None else principal.user_id
    await ensure_active_user(session, "owner_id", owner_id)
    account = Account(
        id=new_id(),
        name=data.name.strip(),
        name_key=company_key(data.name),
        domain=domain,
        industry=data.industry,
        employee_count=data.employee_count,
        annual_revenue=data.annual_revenue,
        country=data.country,
        city=data.city,
        owner_id=owner_id,
        lifecycle=data.lifecycle,
        became_customer_at=utcnow() if data.lifecycle == "customer" else None,
    )
    await _set_parent(session, account.id, data.parent_account_id)
    account.parent_account_id = data.parent_account_id
    rules = await segment_rules(session)
    _apply_segment(account, rules, data.segment, manual=data.segment is not None)
    assignment = await territories.assign(
        session,
        {
            "country": account.country,
            "city": account.city,
            "industry": account.industry,
            "segment": account.segment,
        },
        pick_owner=False,
    )
    account.territory_id = assignment.territory_id
    session.add(account)
    territories.record_assignment(session, RESOURCE, account.id, account.territory_id)
    await session.flush()
    outbox.emit(
        session,
        "account.created",
        resource_type=RESOURCE,
        resource_id=account.id,
        data=snapshot(account),
    )
    await nurture.on_change(session, "account", account.id)
    return account


def _apply_segment(
    account: Account, rules: SegmentRules, segment: str | None, *, manual: bool
) -> None:
    if manual and segment is not None:
        account.segment, account.segment_is_manual = segment, True
    else:
        account.segment = derive_segment(rules, account.employee_count, account.annual_revenue)
        account.segment_is_manual = False


async def update_account(
    session: AsyncSession,
    account_id: uuid.UUID,
    data: AccountUpdate,
    expected_version: int | None,
) -> Account:
    account = await get_account(session, account_id, for_update=True)
    check_version(RESOURCE, account.version, expected_version)
    sent = data.model_fields_set
    if "name" in sent and data.name is not None:
        account.name = data.name.strip()
        account.name_key = company_key(data.name)
    if "domain" in sent:
        domain = normalize_domain(data.domain)
        await _check_domain_free(session, domain, except_id=account.id)
        account.domain = domain
    if "owner_id" in sent:
        await ensure_active_user(session, "owner_id", data.owner_id)
        account.owner_id = data.owner_id
    if "parent_account_id" in sent and data.parent_account_id != account.parent_account_id:
        await _set_parent(session, account.id, data.parent_account_id)
        account.parent_account_id = data.parent_account_id
    for field in ("industry", "employee_count", "annual_revenue", "country", "city"):
        if field in sent:
            setattr(account, field, getattr(data, field))
    if "segment" in sent:
        _apply_segment(
            account, await segment_rules(session), data.segment, manual=data.segment is not None
        )
    elif not account.segment_is_manual and sent & {"employee_count", "annual_revenue"}:
        _apply_segment(account, await segment_rules(session), None, manual=False)
    changed = changed_fields(account)
    if changed:
        await session.flush()
        outbox.emit(
            session,
            "account.updated",
            resource_type=RESOURCE,
            resource_id=account.id,
            data={**snapshot(account), "changed_fields": changed},
        )
    await nurture.on_change(session, "account", account.id)
    return account


async def change_lifecycle(
    session: AsyncSession,
    account_id: uuid.UUID,
    lifecycle: str,
    at: datetime | None,
    expected_version: int | None,
) -> Account:
    account = await get_account(session, account_id, for_update=True)
    check_version(RESOURCE, account.version, expected_version)
    if (account.lifecycle, lifecycle) not in LIFECYCLE_MOVES:
        raise RuleViolation(
            f"An account cannot go from {account.lifecycle} to {lifecycle}",
            code="invalid_lifecycle_transition",
            unmet=[
                {
                    "code": "invalid_lifecycle_transition",
                    "detail": f"allowed from {account.lifecycle}: "
                    + ", ".join(sorted(t for f, t in LIFECYCLE_MOVES if f == account.lifecycle)),
                }
            ],
        )
    await _set_lifecycle(session, account, lifecycle, at or utcnow())
    await nurture.on_change(session, "account", account.id)
    return account


async def ensure_customer(session: AsyncSession, account_id: uuid.UUID, at: datetime) -> None:
    """A won deal makes its account a customer (a system change: no If-Match)."""
    account = await get_account(session, account_id, for_update=True)
    if account.lifecycle != "customer":
        await _set_lifecycle(session, account, "customer", at)
        await nurture.on_change(session, "account", account.id)


async def _set_lifecycle(
    session: AsyncSession, account: Account, lifecycle: str, when: datetime
) -> None:
    previous = account.lifecycle
    account.lifecycle = lifecycle
    if lifecycle == "customer":
        account.became_customer_at = account.became_customer_at or when
        account.churned_at = None
    else:
        account.churned_at = when
    await session.flush()
    outbox.emit(
        session,
        "account.lifecycle_changed",
        resource_type=RESOURCE,
        resource_id=account.id,
        data={"id": account.id, "from": previous, "to": lifecycle, "at": when},
    )


async def delete_account(
    session: AsyncSession, account_id: uuid.UUID, expected_version: int | None
) -> None:
    account = await get_account(session, account_id, for_update=True)
    check_version(RESOURCE, account.version, expected_version)
    children = await session.scalar(
        select(func.count()).select_from(Account).where(Account.parent_account_id == account.id)
    )
    if children:
        raise RuleViolation(
            "The account has child accounts; move or delete them first",
            code="account_has_children",
            unmet=[{"code": "account_has_children", "detail": f"{children} child account(s)"}],
        )
    account.deleted_at = utcnow()
    await session.flush()
    outbox.emit(
        session,
        "account.deleted",
        resource_type=RESOURCE,
        resource_id=account.id,
        data={"id": account.id, "name": account.name},
    )


def subtree(root_id: uuid.UUID, org: uuid.UUID) -> Any:
    """Recursive CTE of (id, depth) for an account and all its descendants."""
    start = select(Account.id, literal(0).label("depth")).where(
        Account.id == root_id, Account.organization_id == org
    )
    tree = start.cte("subtree", recursive=True)
    child = aliased(Account)
    return tree.union_all(
        select(child.id, tree.c.depth + 1).where(
            child.organization_id == org,
            child.parent_account_id == tree.c.id,
            tree.c.depth < MAX_HIERARCHY_DEPTH,
        )
    )


async def hierarchy(session: AsyncSession, account_id: uuid.UUID) -> dict[str, Any]:
    """The whole tree the account belongs to, from its root, nested, in one query each."""
    ancestors = await _ancestor_ids(session, account_id)
    if not ancestors:
        raise NotFound(RESOURCE)
    root_id = ancestors[-1]
    tree = subtree(root_id, tenant_id(session))
    rows = (
        await session.execute(
            select(
                Account.id,
                Account.name,
                Account.segment,
                Account.lifecycle,
                Account.parent_account_id,
                tree.c.depth,
            )
            .join(tree, tree.c.id == Account.id)
            .order_by(tree.c.depth, Account.name, Account.id)
        )
    ).all()
    nodes: dict[uuid.UUID, dict[str, Any]] = {}
    for row in rows:
        node = {**row._asdict(), "children": []}
        nodes[row.id] = node
        parent = nodes.get(row.parent_account_id) if row.depth else None
        if parent is not None:
            parent["children"].append(node)
    return {
        "account_id": account_id,
        "root_id": root_id,
        "total_accounts": len(nodes),
        "tree": nodes[root_id],
    }


async def rollup(session: AsyncSession, account_id: uuid.UUID) -> dict[str, Any]:
    """Counts and sums over the account and all its descendants, aggregated in SQL.

    Deal amounts are summed per currency (conversion to the corporate currency comes with
    exchange rates)."""
    await get_account(session, account_id)
    tree = subtree(account_id, tenant_id(session))
    row = (
        await session.execute(
            select(
                func.count().label("accounts"),
                func.coalesce(func.max(tree.c.depth), 0).label("max_depth"),
                func.count().filter(Account.lifecycle == "customer").label("customers"),
                func.count().filter(Account.lifecycle == "prospect").label("prospects"),
                func.count()
                .filter(Account.lifecycle == "former_customer")
                .label("former_customers"),
                func.coalesce(func.sum(Account.employee_count), 0).label("employee_count"),
                func.coalesce(func.sum(Account.annual_revenue), Decimal(0)).label("annual_revenue"),
            ).join(tree, tree.c.id == Account.id)
        )
    ).one()
    deals = (
        await session.execute(
            select(
                PipelineStage.kind,
                Opportunity.currency,
                func.count().label("deals"),
                func.coalesce(func.sum(Opportunity.amount), Decimal(0)).label("amount"),
            )
            .join(tree, tree.c.id == Opportunity.account_id)
            .join(
                PipelineStage,
                and_(
                    PipelineStage.organization_id == Opportunity.organization_id,
                    PipelineStage.id == Opportunity.stage_id,
                ),
            )
            .where(PipelineStage.kind.in_(("open", "won")))
            .group_by(PipelineStage.kind, Opportunity.currency)
            .order_by(PipelineStage.kind, Opportunity.currency)
        )
    ).all()

    def totals(kind: str) -> list[dict[str, Any]]:
        return [{"currency": d.currency, "amount": d.amount} for d in deals if d.kind == kind]

    return {
        "account_id": account_id,
        "descendants": row.accounts - 1,
        **row._asdict(),
        "open_opportunities": sum(d.deals for d in deals if d.kind == "open"),
        "won_opportunities": sum(d.deals for d in deals if d.kind == "won"),
        "open_pipeline": totals("open"),
        "won_revenue": totals("won"),
    }


def snapshot(account: Account) -> dict[str, Any]:
    """The event payload for an account."""
    return {
        "id": account.id,
        "name": account.name,
        "domain": account.domain,
        "segment": account.segment,
        "lifecycle": account.lifecycle,
        "owner_id": account.owner_id,
        "parent_account_id": account.parent_account_id,
        "version": account.version,
    }
