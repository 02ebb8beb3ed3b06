"""Quotes: versioned, priced by ``pricing.py``; states draft → pending_approval → approved →
sent → accepted | rejected | expired, plus recalled.

A submitted version is immutable: changing the terms or lines of a quote that is pending,
approved or sent creates a new draft version (and voids the pending approval). An approval
holds for exactly the version it approved; a quote that needs one is never sent or accepted
without it. Accepting sets the deal's amount to the quote's TCV.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.contracts import service as contracts
from app.contracts.schemas import ContractTerms
from app.core import outbox
from app.core.auth import Principal
from app.core.concurrency import check_version, lock_tenant_topic
from app.core.errors import NotFound, ValidationFailed, invalid_reference, refused
from app.core.ids import new_id, utcnow
from app.core.pagination import paginate, parse_sort
from app.core.repository import get_or_404
from app.core.tenancy import INCLUDE_DELETED, tenant_id
from app.models import (
    Account,
    ApprovalRequest,
    ApprovalStep,
    Opportunity,
    Organization,
    PriceBook,
    Product,
    Quote,
    QuoteLineItem,
    QuoteVersion,
)
from app.products import service as products
from app.quotes import pdf, pricing
from app.quotes.schemas import LineItemIn, LineItemUpdate, QuoteCreate, QuoteUpdate

RESOURCE = "quote"
SORTABLE = {"created_at": Quote.created_at, "updated_at": Quote.updated_at}
CLOSED = ("accepted", "rejected", "expired")
TERM_FIELDS = ("valid_until", "payment_terms_days", "term_months", "annual_uplift_pct", "notes")


@dataclass(frozen=True, slots=True)
class QuoteView:
    quote: Quote
    version: QuoteVersion
    lines: list[QuoteLineItem]


# --- reading ------------------------------------------------------------------------------


async def get_quote(
    session: AsyncSession, quote_id: uuid.UUID, *, for_update: bool = False
) -> Quote:
    return await get_or_404(session, Quote, quote_id, RESOURCE, for_update=for_update)


async def get_version(
    session: AsyncSession, quote: Quote, number: int | None = None
) -> tuple[QuoteVersion, list[QuoteLineItem]]:
    version = await session.scalar(
        select(QuoteVersion).where(
            QuoteVersion.quote_id == quote.id,
            QuoteVersion.number == (number or quote.current_version),
        )
    )
    if version is None:
        raise NotFound("quote version")
    lines = list(
        await session.scalars(
            select(QuoteLineItem)
            .where(QuoteLineItem.quote_version_id == version.id)
            .order_by(QuoteLineItem.position)
        )
    )
    return version, lines


async def view(session: AsyncSession, quote_id: uuid.UUID) -> QuoteView:
    quote = await get_quote(session, quote_id)
    return QuoteView(quote, *await get_version(session, quote))


async def versions(
    session: AsyncSession, quote_id: uuid.UUID
) -> list[tuple[QuoteVersion, list[QuoteLineItem]]]:
    quote = await get_quote(session, quote_id)
    rows = list(
        await session.scalars(
            select(QuoteVersion)
            .where(QuoteVersion.quote_id == quote.id)
            .order_by(QuoteVersion.number.desc())
        )
    )
    lines = await session.scalars(
        select(QuoteLineItem)
        .where(QuoteLineItem.quote_version_id.in_([v.id for v in rows]))
        .order_by(QuoteLineItem.position)
    )
    by_version: dict[uuid.UUID, list[QuoteLineItem]] = {v.id: [] for v in rows}
    for line in lines:
        by_version[line.quote_version_id].append(line)
    return [(v, by_version[v.id]) for v in rows]


async def list_quotes(
    session: AsyncSession,
    *,
    opportunity_id: uuid.UUID | None,
    status: str | None,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[QuoteView], str | None]:
    stmt = select(Quote)
    if opportunity_id is not None:
        stmt = stmt.where(Quote.opportunity_id == opportunity_id)
    if status is not None:
        stmt = stmt.where(Quote.status == status)
    keys = parse_sort(sort, SORTABLE, default="-created_at", id_column=Quote.id)
    quotes, next_cursor = await paginate(session, stmt, keys, limit=limit, cursor=cursor)
    # Current versions and their lines for the whole page in two queries.
    current = {(q.id, q.current_version) for q in quotes}
    version_rows = [
        v
        for v in await session.scalars(
            select(QuoteVersion).where(QuoteVersion.quote_id.in_([q.id for q in quotes]))
        )
        if (v.quote_id, v.number) in current
    ]
    lines: dict[uuid.UUID, list[QuoteLineItem]] = {v.id: [] for v in version_rows}
    for line in await session.scalars(
        select(QuoteLineItem)
        .where(QuoteLineItem.quote_version_id.in_(list(lines)))
        .order_by(QuoteLineItem.position)
    ):
        lines[line.quote_version_id].append(line)
    by_quote = {v.quote_id: v for v in version_rows}
    return [QuoteView(q, by_quote[q.id], lines[by_quote[q.id].id]) for q in quotes], next_cursor


# --- pricing ------------------------------------------------------------------------------


def _snapshot(entry: Any, product: Product) -> dict[str, Any]:
    return {
        # The book the price came from: a customer book falls back to the standard one.
        "price_book_id": str(entry.price_book_id),
        "product_sku": product.sku,
        "product_name": product.name,
        "unit": product.unit,
        "family": product.family,
        "pricing_model": entry.pricing_model,
        "unit_price": None if entry.unit_price is None else str(entry.unit_price),
        "tiers": entry.tiers,
        "min_quantity": None if entry.min_quantity is None else str(entry.min_quantity),
    }


def _entry_of(snapshot: dict[str, Any]) -> pricing.PriceEntry:
    return pricing.PriceEntry(
        model=snapshot["pricing_model"],
        unit_price=None if snapshot["unit_price"] is None else Decimal(snapshot["unit_price"]),
        tiers=tuple(
            pricing.Tier(
                None if t["up_to"] is None else Decimal(t["up_to"]),
                Decimal(t["unit_price"]),
                Decimal(t.get("flat_fee", "0")),
            )
            for t in snapshot["tiers"]
        ),
        min_quantity=None
        if snapshot["min_quantity"] is None
        else Decimal(snapshot["min_quantity"]),
    )


def _terms(quote: Quote, version: QuoteVersion) -> pricing.Terms:
    return pricing.Terms(quote.currency, version.term_months, version.annual_uplift_pct)


def _price(line: QuoteLineItem, terms: pricing.Terms, index: int) -> None:
    try:
        priced = pricing.price_line(
            pricing.Line(
                _entry_of(line.price_snapshot),
                line.quantity,
                line.discount_pct,
                line.discount_amount,
                tuple(Decimal(q) for q in line.year_quantities),
            ),
            terms,
        )
    except pricing.PricingError as exc:
        raise ValidationFailed(
            f"Line {index + 1} cannot be priced: {exc}",
            errors=[
                {"field": f"body.line_items.{index}", "code": "unpriceable", "detail": str(exc)}
            ],
        ) from exc
    line.list_amount, line.discount, line.net_amount = (
        priced.list_amount,
        priced.discount,
        priced.net_amount,
    )
    line.years = [
        {
            "year": y.year,
            "months": y.months,
            "quantity": str(y.quantity),
            "list_amount": str(y.list_amount),
            "discount": str(y.discount),
            "net_amount": str(y.net_amount),
        }
        for y in priced.years
    ]


def _reprice(quote: Quote, version: QuoteVersion, lines: list[QuoteLineItem]) -> None:
    terms = _terms(quote, version)
    for index, line in enumerate(lines):
        _price(line, terms, index)
    result = pricing.totals(
        [pricing.PricedLine(line.list_amount, line.discount, line.net_amount) for line in lines],
        terms,
    )
    version.subtotal, version.discount_total = result.subtotal, result.discount_total
    version.net_total, version.effective_discount_pct = (
        result.net_total,
        result.effective_discount_pct,
    )
    version.acv, version.tcv = result.acv, result.tcv


async def _new_line(
    session: AsyncSession, quote: Quote, version: QuoteVersion, data: LineItemIn, position: int
) -> QuoteLineItem:
    book = await products.get_price_book(session, quote.price_book_id)
    product = await session.scalar(select(Product).where(Product.id == data.product_id))
    if product is None or not product.active:
        raise invalid_reference("product_id", data.product_id, "an active product")
    entry = await products.entry_for(session, book, product.id)
    if data.discount_pct is not None and data.discount_amount is not None:
        raise ValidationFailed(
            "A line has a discount percentage or an amount, not both",
            errors=[{"field": "body.discount_amount", "code": "one_discount"}],
        )
    line = QuoteLineItem(
        id=new_id(),
        quote_version_id=version.id,
        position=position,
        product_id=product.id,
        description=data.description or product.name,
        quantity=data.quantity,
        year_quantities=[str(q) for q in data.year_quantities],
        discount_pct=data.discount_pct,
        discount_amount=data.discount_amount,
        price_snapshot=_snapshot(entry, product),
        list_amount=Decimal(0),
        discount=Decimal(0),
        net_amount=Decimal(0),
        years=[],
    )
    session.add(line)
    return line


# --- writing ------------------------------------------------------------------------------


async def create_quote(session: AsyncSession, principal: Principal, data: QuoteCreate) -> QuoteView:
    opportunity = await session.scalar(
        select(Opportunity).where(Opportunity.id == data.opportunity_id)
    )
    if opportunity is None:
        raise invalid_reference("opportunity_id", data.opportunity_id, "an opportunity")
    currency = data.currency or opportunity.currency
    if data.price_book_id is not None:
        book = await session.scalar(select(PriceBook).where(PriceBook.id == data.price_book_id))
        if book is None or not book.active or book.currency != currency:
            raise invalid_reference(
                "price_book_id", data.price_book_id, f"an active {currency} price book"
            )
    else:
        book = await products.book_for(session, opportunity.account_id, currency)
    await lock_tenant_topic(session, tenant_id(session), "quotes.number")
    count = await session.scalar(select(func.count()).select_from(Quote)) or 0
    quote = Quote(
        id=new_id(),
        opportunity_id=opportunity.id,
        number=f"Q-{utcnow().year}-{count + 1:05d}",
        status="draft",
        current_version=1,
        currency=currency,
        price_book_id=book.id,
        created_by_id=principal.user_id,
    )
    version = QuoteVersion(
        id=new_id(), quote_id=quote.id, number=1, **data.model_dump(include=set(TERM_FIELDS))
    )
    session.add_all([quote, version])
    await session.flush()  # the version exists before its lines reference it
    lines = [
        await _new_line(session, quote, version, item, position)
        for position, item in enumerate(data.line_items, start=1)
    ]
    _reprice(quote, version, lines)
    await session.flush()
    outbox.emit(
        session,
        "quote.created",
        resource_type=RESOURCE,
        resource_id=quote.id,
        data=snapshot(quote, version),
    )
    return QuoteView(quote, version, lines)


async def _draft(session: AsyncSession, quote: Quote) -> tuple[QuoteVersion, list[QuoteLineItem]]:
    """The version edits go to: the current one while it is an unsubmitted draft, else a
    new draft version copied from it (voiding a pending approval)."""
    if quote.status in CLOSED:
        raise refused("quote_closed", f"a {quote.status} quote cannot change")
    version, lines = await get_version(session, quote)
    if quote.status == "draft" and version.submitted_at is None:
        return version, lines
    if quote.status == "pending_approval":
        await close_pending_requests(session, quote, "superseded")
    copy = QuoteVersion(
        id=new_id(),
        quote_id=quote.id,
        number=version.number + 1,
        **{f: getattr(version, f) for f in TERM_FIELDS},
    )
    session.add(copy)
    await session.flush()  # the version exists before its lines reference it
    copies = []
    for line in lines:
        clone = QuoteLineItem(
            id=new_id(),
            quote_version_id=copy.id,
            position=line.position,
            product_id=line.product_id,
            description=line.description,
            quantity=line.quantity,
            year_quantities=list(line.year_quantities),
            discount_pct=line.discount_pct,
            discount_amount=line.discount_amount,
            price_snapshot=dict(line.price_snapshot),
            list_amount=line.list_amount,
            discount=line.discount,
            net_amount=line.net_amount,
            years=list(line.years),
        )
        session.add(clone)
        copies.append(clone)
    await session.flush()  # the copies are persisted: an edit may delete one of them
    quote.current_version, quote.status = copy.number, "draft"
    outbox.emit(
        session,
        "quote.version_created",
        resource_type=RESOURCE,
        resource_id=quote.id,
        data={"id": quote.id, "version": copy.number, "previous": version.number},
    )
    return copy, copies


async def close_pending_requests(session: AsyncSession, quote: Quote, status: str) -> None:
    for request in await session.scalars(
        select(ApprovalRequest)
        .where(ApprovalRequest.quote_id == quote.id, ApprovalRequest.status == "pending")
        .with_for_update()
    ):
        request.status, request.decided_at = status, utcnow()
        for step in await session.scalars(
            select(ApprovalStep).where(
                ApprovalStep.request_id == request.id,
                ApprovalStep.status.in_(("pending", "waiting")),
            )
        ):
            step.status = "cancelled"


async def _edit(
    session: AsyncSession, quote_id: uuid.UUID, expected_version: int | None
) -> tuple[Quote, QuoteVersion, list[QuoteLineItem]]:
    quote = await get_quote(session, quote_id, for_update=True)
    check_version(RESOURCE, quote.version, expected_version)
    version, lines = await _draft(session, quote)
    return quote, version, lines


async def _finish_edit(
    session: AsyncSession, quote: Quote, version: QuoteVersion, lines: list[QuoteLineItem]
) -> QuoteView:
    _reprice(quote, version, lines)
    quote.updated_at = utcnow()
    await session.flush()
    return QuoteView(quote, version, sorted(lines, key=lambda line: line.position))


async def update_terms(
    session: AsyncSession, quote_id: uuid.UUID, data: QuoteUpdate, expected_version: int | None
) -> QuoteView:
    quote, version, lines = await _edit(session, quote_id, expected_version)
    for field in data.model_fields_set:
        value = getattr(data, field)
        if value is not None or field in QuoteUpdate.nullable:
            setattr(version, field, value)
    return await _finish_edit(session, quote, version, lines)


async def add_line(
    session: AsyncSession, quote_id: uuid.UUID, data: LineItemIn, expected_version: int | None
) -> QuoteView:
    quote, version, lines = await _edit(session, quote_id, expected_version)
    # Positions are never reused across versions: a line id of an older version maps to
    # its copy by position (``_find_line``), never to a line added later.
    used = await session.scalar(
        select(func.max(QuoteLineItem.position))
        .join(QuoteVersion, QuoteVersion.id == QuoteLineItem.quote_version_id)
        .where(QuoteVersion.quote_id == quote.id)
    )
    position = max([used or 0, *(line.position for line in lines)]) + 1
    lines.append(await _new_line(session, quote, version, data, position))
    return await _finish_edit(session, quote, version, lines)


def _find_line(
    lines: list[QuoteLineItem], line_id: uuid.UUID, position: int | None
) -> QuoteLineItem:
    """A line by id, or (after a new version copied the lines) by its position."""
    for line in lines:
        if line.id == line_id or (position is not None and line.position == position):
            return line
    raise NotFound("line item")


async def _line_position(session: AsyncSession, quote_id: uuid.UUID, line_id: uuid.UUID) -> int:
    position = await session.scalar(
        select(QuoteLineItem.position)
        .join(QuoteVersion, QuoteVersion.id == QuoteLineItem.quote_version_id)
        .where(QuoteLineItem.id == line_id, QuoteVersion.quote_id == quote_id)
    )
    if position is None:
        raise NotFound("line item")
    return position


async def update_line(
    session: AsyncSession,
    quote_id: uuid.UUID,
    line_id: uuid.UUID,
    data: LineItemUpdate,
    expected_version: int | None,
) -> QuoteView:
    position = await _line_position(session, quote_id, line_id)
    quote, version, lines = await _edit(session, quote_id, expected_version)
    line = _find_line(lines, line_id, position)
    sent = data.model_fields_set
    if "quantity" in sent and data.quantity is not None:
        line.quantity = data.quantity
    if "year_quantities" in sent and data.year_quantities is not None:
        line.year_quantities = [str(q) for q in data.year_quantities]
    for field in ("description", "discount_pct", "discount_amount"):
        if field in sent:
            setattr(line, field, getattr(data, field))
    if line.discount_pct is not None and line.discount_amount is not None:
        raise ValidationFailed(
            "A line has a discount percentage or an amount, not both",
            errors=[{"field": "body.discount_amount", "code": "one_discount"}],
        )
    return await _finish_edit(session, quote, version, lines)


async def remove_line(
    session: AsyncSession, quote_id: uuid.UUID, line_id: uuid.UUID, expected_version: int | None
) -> QuoteView:
    position = await _line_position(session, quote_id, line_id)
    quote, version, lines = await _edit(session, quote_id, expected_version)
    line = _find_line(lines, line_id, position)
    lines.remove(line)
    await session.delete(line)
    return await _finish_edit(session, quote, version, lines)


async def _transition(
    session: AsyncSession, quote_id: uuid.UUID, expected_version: int | None
) -> tuple[Quote, QuoteVersion]:
    quote = await get_quote(session, quote_id, for_update=True)
    check_version(RESOURCE, quote.version, expected_version)
    version, _ = await get_version(session, quote)
    return quote, version


def _approved(version: QuoteVersion) -> bool:
    return version.approval in ("none_needed", "approved")


async def send(session: AsyncSession, quote_id: uuid.UUID, expected_version: int | None) -> Quote:
    quote, version = await _transition(session, quote_id, expected_version)
    if quote.status != "approved" or not _approved(version):
        raise refused(
            "approval_required",
            f"version {version.number} is {quote.status}: only an approved version "
            "(or one needing no approval) is sent",
        )
    quote.status, quote.sent_at = "sent", utcnow()
    await session.flush()
    outbox.emit(
        session,
        "quote.sent",
        resource_type=RESOURCE,
        resource_id=quote.id,
        data=snapshot(quote, version),
    )
    return quote


async def accept(
    session: AsyncSession,
    quote_id: uuid.UUID,
    expected_version: int | None,
    contract_terms: ContractTerms | None = None,
) -> Quote:
    """The customer accepted: one accepted quote per deal; the deal's amount becomes TCV;
    with ``contract_terms`` the contract of the accepted version is created too."""
    quote, version = await _transition(session, quote_id, expected_version)
    if quote.status not in ("approved", "sent") or not _approved(version):
        raise refused(
            "approval_required",
            f"version {version.number} is {quote.status}: only an approved or sent "
            "version is accepted",
        )
    deal = await session.scalar(
        select(Opportunity).where(Opportunity.id == quote.opportunity_id).with_for_update()
    )
    if deal is None:
        raise refused("deal_deleted", "the quote's deal was deleted: it cannot be won any more")
    other = await session.scalar(
        select(Quote.number).where(
            Quote.opportunity_id == deal.id, Quote.status == "accepted", Quote.id != quote.id
        )
    )
    if other is not None:
        raise refused("already_accepted", f"the deal already has the accepted quote {other}")
    quote.status, quote.accepted_at, quote.accepted_version = "accepted", utcnow(), version.number
    if deal.amount != version.tcv or deal.currency != quote.currency:
        deal.amount, deal.currency = version.tcv, quote.currency
    await session.flush()
    outbox.emit(
        session,
        "quote.accepted",
        resource_type=RESOURCE,
        resource_id=quote.id,
        data={**snapshot(quote, version), "opportunity_amount": version.tcv},
    )
    if contract_terms is not None:
        await contracts.create_from_quote(session, quote, version, contract_terms)
    return quote


async def decline(
    session: AsyncSession, quote_id: uuid.UUID, reason: str | None, expected_version: int | None
) -> Quote:
    quote, version = await _transition(session, quote_id, expected_version)
    if quote.status != "sent":
        raise refused("not_sent", "only a sent quote is declined by the customer")
    quote.status = "rejected"
    await session.flush()
    outbox.emit(
        session,
        "quote.declined",
        resource_type=RESOURCE,
        resource_id=quote.id,
        data={**snapshot(quote, version), "reason": reason},
    )
    return quote


async def expire_quotes(session: AsyncSession, today: datetime | None = None) -> int:
    """Sent quotes past their validity expire (a job)."""
    day = (today or utcnow()).date()
    expired = 0
    rows = await session.execute(
        select(Quote, QuoteVersion)
        .join(
            QuoteVersion,
            (QuoteVersion.quote_id == Quote.id) & (QuoteVersion.number == Quote.current_version),
        )
        .where(Quote.status.in_(("sent", "approved")), QuoteVersion.valid_until < day)
        .with_for_update(of=Quote, skip_locked=True)
    )
    for quote, version in rows:
        quote.status = "expired"
        expired += 1
        outbox.emit(
            session,
            "quote.expired",
            resource_type=RESOURCE,
            resource_id=quote.id,
            data=snapshot(quote, version),
        )
    await session.flush()
    return expired


async def render_pdf(session: AsyncSession, quote_id: uuid.UUID, number: int) -> tuple[str, bytes]:
    """The file name and PDF bytes of one version of a quote."""
    quote = await get_quote(session, quote_id)
    version, lines = await get_version(session, quote, number)
    # A version stays printable after its deal (or the account) was deleted.
    deal = await session.scalar(
        select(Opportunity)
        .where(Opportunity.id == quote.opportunity_id)
        .execution_options(**{INCLUDE_DELETED: True})
    )
    assert deal is not None  # a foreign key, and deals are only ever soft-deleted
    account = await session.scalar(
        select(Account)
        .where(Account.id == deal.account_id)
        .execution_options(**{INCLUDE_DELETED: True})
    )
    seller = await session.scalar(
        select(Organization.name).where(Organization.id == tenant_id(session))
    )
    columns = [c.key for c in QuoteVersion.__table__.columns]
    content = pdf.render(
        seller=seller or "",
        buyer={
            "name": account.name if account else "",
            "city": account and account.city,
            "country": account and account.country,
        },
        deal_name=deal.name,
        quote={"number": quote.number, "currency": quote.currency, "status": quote.status},
        version={c: getattr(version, c) for c in columns},
        lines=[
            {c.key: getattr(line, c.key) for c in QuoteLineItem.__table__.columns} for line in lines
        ],
    )
    return f"{quote.number}-v{version.number}.pdf", content


def snapshot(quote: Quote, version: QuoteVersion) -> dict[str, Any]:
    return {
        "id": quote.id,
        "number": quote.number,
        "opportunity_id": quote.opportunity_id,
        "status": quote.status,
        "version": version.number,
        "currency": quote.currency,
        "net_total": version.net_total,
        "tcv": version.tcv,
        "acv": version.acv,
        "effective_discount_pct": version.effective_discount_pct,
    }
