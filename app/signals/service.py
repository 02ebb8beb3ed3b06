"""Engagement signals: batches of product and marketing events about leads, contacts and
accounts, stored once per (source, external_id).

A batch is all or nothing: any item naming a lead, contact or account that this
organization does not have refuses the whole batch (422, every bad item named by its
index), so a sender never has to work out which half of a batch was stored. Resent items
are not errors: they are counted as duplicates.

Arriving signals re-score the leads they concern (the lead itself; the leads converted into
the contact or account; the open leads with the account's domain) in the same transaction,
so a ``signal_count`` scoring rule and the MQL threshold act at once; then the org's PLG rule
(setting ``plg_rule``) promotes the lead or creates a follow-up task, once per lead and rule.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import outbox
from app.core.errors import ValidationFailed
from app.core.ids import new_id, utcnow
from app.core.org_settings import org_settings
from app.core.pagination import paginate, parse_sort
from app.core.repository import get_or_404
from app.core.tenancy import tenant_id
from app.leads import lifecycle
from app.leads import service as leads
from app.models import Account, Contact, Lead, Signal, Task
from app.nurture import service as nurture
from app.signals.schemas import SignalBatch, SignalIn
from app.tasks.service import add_system_task

RESOURCE = "signal"
SORTABLE = {"occurred_at": Signal.occurred_at, "received_at": Signal.received_at}
SUBJECTS: tuple[tuple[str, Any, str], ...] = (
    ("lead_id", Lead, "a lead"),
    ("contact_id", Contact, "a contact"),
    ("account_id", Account, "an account"),
)


@dataclass(frozen=True, slots=True)
class BatchResult:
    accepted: int
    duplicates: int
    ids: list[uuid.UUID]
    duplicate_indexes: list[int]


@dataclass(frozen=True, slots=True)
class SignalFilters:
    lead_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    type: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None


async def list_signals(
    session: AsyncSession,
    filters: SignalFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Signal], str | None]:
    stmt = select(Signal)
    for column, value in (
        (Signal.lead_id, filters.lead_id),
        (Signal.contact_id, filters.contact_id),
        (Signal.account_id, filters.account_id),
        (Signal.type, filters.type),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if filters.occurred_from is not None:
        stmt = stmt.where(Signal.occurred_at >= filters.occurred_from)
    if filters.occurred_to is not None:
        stmt = stmt.where(Signal.occurred_at < filters.occurred_to)
    keys = parse_sort(sort, SORTABLE, default="-occurred_at", id_column=Signal.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_signal(session: AsyncSession, signal_id: uuid.UUID) -> Signal:
    return await get_or_404(session, Signal, signal_id, RESOURCE)


async def _unknown_references(session: AsyncSession, items: list[SignalIn]) -> list[dict[str, Any]]:
    """Every item naming a lead, contact or account this organization does not have (one
    query per kind of reference)."""
    errors: list[dict[str, Any]] = []
    for field, model, what in SUBJECTS:
        wanted = {getattr(i, field) for i in items} - {None}
        if not wanted:
            continue
        found = set(await session.scalars(select(model.id).where(model.id.in_(wanted))))
        errors += [
            {
                "field": f"body.signals[{index}].{field}",
                "code": "not_found",
                "detail": f"{getattr(item, field)} is not {what} of this organization",
            }
            for index, item in enumerate(items)
            if getattr(item, field) is not None and getattr(item, field) not in found
        ]
    return sorted(errors, key=lambda e: int(e["field"].split("[")[1].split("]")[0]))


async def receive(session: AsyncSession, batch: SignalBatch) -> BatchResult:
    """Validate and store a batch (all or nothing), re-score and apply the PLG rule."""
    items = batch.signals
    errors = await _unknown_references(session, items)
    if errors:
        raise ValidationFailed(
            f"{len(errors)} signal(s) name records this organization does not have; "
            "nothing was stored",
            errors=errors,
        )
    # Lock the leads first: the inserts below take key-share locks on them, and a second
    # batch about the same lead then waits here instead of deadlocking at the re-score.
    concerned, domains = await _leads_concerned(session, items)
    now = utcnow()
    organization_id = tenant_id(session)
    rows = [
        {
            "organization_id": organization_id,
            "id": new_id(),
            "type": item.type,
            "lead_id": item.lead_id,
            "contact_id": item.contact_id,
            "account_id": item.account_id,
            "occurred_at": item.occurred_at,
            "value": item.value,
            "properties": item.properties,
            "source": item.source,
            "external_id": item.external_id,
            "received_at": now,
        }
        for item in items
    ]
    inserted = {
        (source, external_id): signal_id
        for signal_id, source, external_id in await session.execute(
            insert(Signal)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["organization_id", "source", "external_id"])
            .returning(Signal.id, Signal.source, Signal.external_id)
        )
    }
    keys = [(item.source, item.external_id) for item in items]
    stored = dict(inserted)
    earlier = set(keys) - set(inserted)
    if earlier:
        stored |= {
            (source, external_id): signal_id
            for signal_id, source, external_id in await session.execute(
                select(Signal.id, Signal.source, Signal.external_id).where(
                    tuple_(Signal.source, Signal.external_id).in_(earlier)
                )
            )
        }
    accepted: list[tuple[uuid.UUID, SignalIn]] = []
    duplicate_indexes: list[int] = []
    taken: set[tuple[str, str]] = set()
    for index, (item, key) in enumerate(zip(items, keys, strict=True)):
        if key in inserted and key not in taken:
            taken.add(key)
            accepted.append((inserted[key], item))
        else:
            duplicate_indexes.append(index)
    if accepted:
        await _react(session, [item for _, item in accepted], concerned, domains, now)
        outbox.emit(
            session,
            "signal.received",
            resource_type=RESOURCE,
            resource_id=None,
            data={
                "ids": [signal_id for signal_id, _ in accepted],
                "count": len(accepted),
                "types": sorted({item.type for _, item in accepted}),
            },
        )
    return BatchResult(
        accepted=len(accepted),
        duplicates=len(duplicate_indexes),
        ids=[stored[key] for key in keys],
        duplicate_indexes=duplicate_indexes,
    )


def _concerns(signal: SignalIn, lead: Lead, domains: dict[uuid.UUID, str | None]) -> bool:
    """Whether a signal counts for a lead (mirrors ``leads.lead_signals``)."""
    if signal.lead_id is not None and signal.lead_id == lead.id:
        return True
    if signal.contact_id is not None and signal.contact_id == lead.converted_contact_id:
        return True
    if signal.account_id is None:
        return False
    if signal.account_id == lead.converted_account_id:
        return True
    domain = domains.get(signal.account_id)
    return bool(domain) and lead.status in lifecycle.OPEN_STATUSES and lead.domain == domain


async def _leads_concerned(
    session: AsyncSession, signals: list[SignalIn]
) -> tuple[list[Lead], dict[uuid.UUID, str | None]]:
    """The leads the signals count for, locked, and the domains of the signals' accounts."""
    lead_ids = {s.lead_id for s in signals} - {None}
    contact_ids = {s.contact_id for s in signals} - {None}
    account_ids = {s.account_id for s in signals} - {None}
    domains: dict[uuid.UUID, str | None] = {}
    conditions: list[ColumnElement[bool]] = []
    if lead_ids:
        conditions.append(Lead.id.in_(lead_ids))
    if contact_ids:
        conditions.append(Lead.converted_contact_id.in_(contact_ids))
    if account_ids:
        domains = {
            account_id: domain
            for account_id, domain in await session.execute(
                select(Account.id, Account.domain).where(Account.id.in_(account_ids))
            )
        }
        conditions.append(Lead.converted_account_id.in_(account_ids))
        if known := {d for d in domains.values() if d}:
            conditions.append(Lead.domain.in_(known) & Lead.status.in_(lifecycle.OPEN_STATUSES))
    if not conditions:
        return [], domains
    found = await session.scalars(
        select(Lead).where(or_(*conditions)).order_by(Lead.id).with_for_update()
    )
    return list(found), domains


async def _react(
    session: AsyncSession,
    accepted: list[SignalIn],
    locked: list[Lead],
    domains: dict[uuid.UUID, str | None],
    now: datetime,
) -> None:
    """Re-score the leads the new signals concern, then apply the PLG rule."""
    concerned = [lead for lead in locked if any(_concerns(s, lead, domains) for s in accepted)]
    if not concerned:
        return
    settings = await org_settings(session)
    lead_settings = leads.LeadSettings.of(settings)
    for lead in concerned:
        await leads.rescore(session, lead, lead_settings)
    rule = settings.get("plg_rule")
    if rule:
        await _apply_plg(session, rule, accepted, concerned, domains, now)
    await session.flush()
    for lead in concerned:  # a new score or status may start (or end) a nurture program
        await nurture.on_change(session, "lead", lead.id)


def plg_matches(rule: dict[str, Any], signal: SignalIn, now: datetime) -> bool:
    return (
        signal.type == rule["signal_type"]
        and signal.value is not None
        and signal.value >= rule["min_value"]
        and now - timedelta(days=rule["within_days"]) <= signal.occurred_at <= now
    )


async def _apply_plg(
    session: AsyncSession,
    rule: dict[str, Any],
    signals: list[SignalIn],
    concerned: list[Lead],
    domains: dict[uuid.UUID, str | None],
    now: datetime,
) -> None:
    hits = [s for s in signals if plg_matches(rule, s, now)]
    rule_key = f"{rule['signal_type']}:{rule['min_value']}:{rule['within_days']}"
    for lead in concerned:
        signal = next((s for s in hits if _concerns(s, lead, domains)), None)
        if signal is None:
            continue
        what = f"{signal.type} reached {signal.value} (PLG rule: at least {rule['min_value']})"
        if rule["action"] == "promote_to_mql":
            leads.auto_promote(session, lead, what)
            continue
        dedupe_key = f"plg:{rule_key}:{lead.id}"
        if await session.scalar(select(Task.id).where(Task.dedupe_key == dedupe_key)):
            continue
        name = f"{lead.first_name or ''} {lead.last_name}".strip()
        task = add_system_task(
            session,
            title=f"Follow up with {name}: {what}"[:300],
            source="follow_up",
            assignee_id=lead.owner_id,
            due_at=now + timedelta(days=1),
            dedupe_key=dedupe_key,
            account_id=lead.converted_account_id,
            description=f"Signal from {signal.source} ({signal.external_id})",
        )
        task.lead_id = lead.id
