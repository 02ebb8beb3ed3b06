"""Contracts: from an accepted quote (or by hand), document versions with checksums,
e-signature status from provider callbacks, and renewal deals opened ahead of the end."""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.contracts.schemas import (
    ContractCreate,
    ContractTerms,
    ContractUpdate,
    DocumentIn,
    SignatureEvent,
)
from app.core import outbox
from app.core.auth import Principal
from app.core.concurrency import check_version
from app.core.errors import ValidationFailed, invalid_reference, refused
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import get_or_404
from app.models import Contract, ContractDocument, Opportunity, Quote, QuoteVersion
from app.opportunities import service as opportunities
from app.opportunities.schemas import OpportunityCreate

RESOURCE = "contract"


@dataclass(frozen=True, slots=True)
class ContractView:
    contract: Contract
    documents: list[ContractDocument]


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    last = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return date(year, month, min(day.day, last))


async def _documents(
    session: AsyncSession, contract_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[ContractDocument]]:
    found: dict[uuid.UUID, list[ContractDocument]] = {c: [] for c in contract_ids}
    for document in await session.scalars(
        select(ContractDocument)
        .where(ContractDocument.contract_id.in_(contract_ids))
        .order_by(ContractDocument.number)
    ):
        found[document.contract_id].append(document)
    return found


async def get_contract(
    session: AsyncSession, contract_id: uuid.UUID, *, for_update: bool = False
) -> ContractView:
    contract = await get_or_404(session, Contract, contract_id, RESOURCE, for_update=for_update)
    return ContractView(contract, (await _documents(session, [contract.id]))[contract.id])


async def list_contracts(
    session: AsyncSession,
    *,
    account_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[ContractView], str | None]:
    stmt = select(Contract)
    if account_id is not None:
        stmt = stmt.where(Contract.account_id == account_id)
    if status is not None:
        stmt = stmt.where(Contract.status == status)
    keys = parse_sort(
        None, {"created_at": Contract.created_at}, default="-created_at", id_column=Contract.id
    )
    rows, next_cursor = await paginate(session, stmt, keys, limit=limit, cursor=cursor)
    documents = await _documents(session, [c.id for c in rows])
    return [ContractView(c, documents[c.id]) for c in rows], next_cursor


def _new(terms: ContractTerms, **links: Any) -> Contract:
    return Contract(
        id=new_id(),
        status="draft",
        signature_events=[],
        **links,
        **terms.model_dump(
            include={
                "contract_type",
                "start_date",
                "end_date",
                "renewal_term_months",
                "auto_renew",
                "renewal_notice_days",
                "sla",
            }
        ),
    )


async def create_contract(session: AsyncSession, data: ContractCreate) -> ContractView:
    await accounts.get_account_or_invalid(session, data.account_id)
    if data.opportunity_id is not None:
        deal_account = await session.scalar(
            select(Opportunity.account_id).where(Opportunity.id == data.opportunity_id)
        )
        if deal_account != data.account_id:
            raise invalid_reference("opportunity_id", data.opportunity_id, "a deal of this account")
    contract = _new(data, account_id=data.account_id, opportunity_id=data.opportunity_id)
    session.add(contract)
    await session.flush()
    outbox.emit(
        session,
        "contract.created",
        resource_type=RESOURCE,
        resource_id=contract.id,
        data=snapshot(contract),
    )
    return ContractView(contract, [])


async def create_from_quote(
    session: AsyncSession, quote: Quote, version: QuoteVersion, terms: ContractTerms
) -> Contract:
    """The contract of an accepted quote version; an order form without an end date runs
    for the quote's term."""
    deal = await session.scalar(select(Opportunity).where(Opportunity.id == quote.opportunity_id))
    assert deal is not None
    contract = _new(
        terms,
        account_id=deal.account_id,
        opportunity_id=deal.id,
        quote_id=quote.id,
        quote_version=version.number,
        annual_value=version.acv,
        currency=quote.currency,
    )
    if contract.end_date is None and version.term_months:
        contract.end_date = _add_months(contract.start_date, version.term_months) - timedelta(
            days=1
        )
    session.add(contract)
    await session.flush()
    outbox.emit(
        session,
        "contract.created",
        resource_type=RESOURCE,
        resource_id=contract.id,
        data=snapshot(contract),
    )
    return contract


async def update_contract(
    session: AsyncSession,
    contract_id: uuid.UUID,
    data: ContractUpdate,
    expected_version: int | None,
) -> ContractView:
    view = await get_contract(session, contract_id, for_update=True)
    contract = view.contract
    check_version(RESOURCE, contract.version, expected_version)
    for field in data.model_fields_set:
        value = getattr(data, field)
        if value is not None or field in ContractUpdate.nullable:
            setattr(contract, field, value)
    if contract.end_date is not None and contract.end_date < contract.start_date:
        raise ValidationFailed(
            "end_date is before start_date",
            errors=[{"field": "body.end_date", "code": "before_start"}],
        )
    await session.flush()
    return view


async def add_document(
    session: AsyncSession, contract_id: uuid.UUID, data: DocumentIn
) -> ContractDocument:
    view = await get_contract(session, contract_id, for_update=True)
    if view.contract.status in ("signed", "terminated"):
        raise refused("contract_signed", "a signed contract's documents do not change")
    size: int | None
    if data.content_base64 is not None:
        try:
            content = base64.b64decode(data.content_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationFailed(
                "content_base64 is not base64",
                errors=[{"field": "body.content_base64", "code": "invalid_base64"}],
            ) from exc
        checksum, size = hashlib.sha256(content).hexdigest(), len(content)
    else:
        checksum, size = str(data.checksum_sha256), data.size_bytes
    number = (
        await session.scalar(
            select(func.max(ContractDocument.number)).where(
                ContractDocument.contract_id == contract_id
            )
        )
        or 0
    ) + 1
    document = ContractDocument(
        id=new_id(),
        contract_id=contract_id,
        number=number,
        filename=data.filename,
        content_type=data.content_type,
        size_bytes=size,
        checksum_sha256=checksum,
    )
    session.add(document)
    await session.flush()
    return document


async def send_for_signature(
    session: AsyncSession, contract_id: uuid.UUID, expected_version: int | None
) -> ContractView:
    view = await get_contract(session, contract_id, for_update=True)
    contract = view.contract
    check_version(RESOURCE, contract.version, expected_version)
    if contract.status not in ("draft", "declined"):
        raise refused("not_draft", f"a {contract.status} contract is not sent for signature")
    if not view.documents:
        raise refused("no_document", "add the document to be signed first")
    contract.status = "sent_for_signature"
    view.documents[-1].e_signature_status = "sent"
    await session.flush()
    outbox.emit(
        session,
        "contract.sent_for_signature",
        resource_type=RESOURCE,
        resource_id=contract.id,
        data=snapshot(contract),
    )
    return view


async def signature_event(
    session: AsyncSession, contract_id: uuid.UUID, event: SignatureEvent
) -> ContractView:
    """An e-signature provider's callback; a retried event is applied once."""
    view = await get_contract(session, contract_id, for_update=True)
    contract = view.contract
    if any(e["provider_event_id"] == event.provider_event_id for e in contract.signature_events):
        return view
    if not view.documents:
        raise refused("no_document", "the contract has no document to sign")
    document = (
        next((d for d in view.documents if d.number == event.document_number), view.documents[-1])
        if event.document_number
        else view.documents[-1]
    )
    at = event.occurred_at or utcnow()
    contract.signature_events = [
        *contract.signature_events,
        {
            "provider_event_id": event.provider_event_id,
            "event": event.event,
            "occurred_at": at.isoformat(),
            "document_number": document.number,
        },
    ]
    if event.event == "signed":
        document.e_signature_status, contract.status, contract.signed_at = "signed", "signed", at
    elif event.event == "declined":
        document.e_signature_status, contract.status = "declined", "declined"
    await session.flush()
    if event.event in ("signed", "declined"):
        outbox.emit(
            session,
            f"contract.{event.event}",
            resource_type=RESOURCE,
            resource_id=contract.id,
            data=snapshot(contract),
        )
    return view


async def open_renewals(
    session: AsyncSession, principal: Principal | None = None, today: date | None = None
) -> int:
    """Signed contracts reaching their notice period get a renewal deal, once (a job)."""
    day = today or utcnow().date()
    due = list(
        await session.scalars(
            select(Contract)
            .where(
                Contract.status == "signed",
                Contract.end_date.is_not(None),
                Contract.renewal_opportunity_id.is_(None),
                Contract.end_date - Contract.renewal_notice_days <= day,
            )
            .with_for_update(skip_locked=True)
        )
    )
    for contract in due:
        original = (
            await session.scalar(
                select(Opportunity).where(Opportunity.id == contract.opportunity_id)
            )
            if contract.opportunity_id
            else None
        )
        owner = original.owner_id if original else None
        acting = principal or Principal(
            organization_id=contract.organization_id,
            api_key_id=contract.organization_id,
            user_id=owner,
            partner_id=None,
            role="manager",
            scopes=frozenset({"*"}),
        )
        view = await opportunities.create_opportunity(
            session,
            acting,
            OpportunityCreate(
                account_id=contract.account_id,
                name=f"Renewal: {original.name if original else 'contract'} "
                f"(ends {contract.end_date})"[:300],
                owner_id=owner,
                type="renewal",
                amount=contract.annual_value,
                currency=contract.currency,
                close_date=contract.end_date,
                source="other",
            ),
        )
        contract.renewal_opportunity_id = view.opportunity.id
        outbox.emit(
            session,
            "contract.renewal_due",
            resource_type=RESOURCE,
            resource_id=contract.id,
            data={**snapshot(contract), "renewal_opportunity_id": view.opportunity.id},
        )
    await session.flush()
    return len(due)


def snapshot(contract: Contract) -> dict[str, Any]:
    return {
        "id": contract.id,
        "account_id": contract.account_id,
        "opportunity_id": contract.opportunity_id,
        "quote_id": contract.quote_id,
        "status": contract.status,
        "start_date": contract.start_date,
        "end_date": contract.end_date,
        "contract_type": contract.contract_type,
    }
