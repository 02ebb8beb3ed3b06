"""Products, price books (standard or customer-specific) and their entries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import service as accounts
from app.core.concurrency import check_version
from app.core.errors import Conflict, NotFound, RuleViolation, ValidationFailed, invalid_reference
from app.core.ids import new_id
from app.core.pagination import paginate, parse_sort
from app.core.repository import get_or_404
from app.models import PriceBook, PriceBookEntry, Product
from app.products.schemas import (
    EntryIn,
    PriceBookCreate,
    PriceBookUpdate,
    ProductCreate,
    ProductUpdate,
)
from app.quotes import pricing

PRODUCT_SORT = {"created_at": Product.created_at, "name": Product.name, "sku": Product.sku}


# --- products -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductFilters:
    family: str | None = None
    active: bool | None = None
    sku: str | None = None


async def list_products(
    session: AsyncSession,
    filters: ProductFilters,
    *,
    sort: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Product], str | None]:
    stmt = select(Product)
    for column, value in (
        (Product.family, filters.family),
        (Product.active, filters.active),
        (Product.sku, filters.sku),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    keys = parse_sort(sort, PRODUCT_SORT, default="sku", id_column=Product.id)
    return await paginate(session, stmt, keys, limit=limit, cursor=cursor)


async def get_product(
    session: AsyncSession, product_id: uuid.UUID, *, for_update: bool = False
) -> Product:
    return await get_or_404(session, Product, product_id, "product", for_update=for_update)


async def create_product(session: AsyncSession, data: ProductCreate) -> Product:
    existing = await session.scalar(select(Product.id).where(Product.sku == data.sku))
    if existing is not None:
        raise Conflict(
            f"A product with SKU {data.sku!r} exists",
            code="duplicate_sku",
            extra={"existing_id": str(existing)},
        )
    product = Product(id=new_id(), **data.model_dump())
    session.add(product)
    await session.flush()
    return product


async def update_product(
    session: AsyncSession, product_id: uuid.UUID, data: ProductUpdate, expected_version: int | None
) -> Product:
    product = await get_product(session, product_id, for_update=True)
    check_version("product", product.version, expected_version)
    for field in data.model_fields_set:
        value = getattr(data, field)
        if value is not None or field in ProductUpdate.nullable:
            setattr(product, field, value)
    await session.flush()
    return product


# --- price books --------------------------------------------------------------------------


async def list_price_books(session: AsyncSession) -> list[PriceBook]:
    return list(
        await session.scalars(
            select(PriceBook).order_by(PriceBook.currency, PriceBook.name, PriceBook.id)
        )
    )


async def get_price_book(
    session: AsyncSession, book_id: uuid.UUID, *, for_update: bool = False
) -> PriceBook:
    return await get_or_404(session, PriceBook, book_id, "price book", for_update=for_update)


async def _check_unique(session: AsyncSession, book: PriceBook) -> None:
    clash = select(PriceBook.id).where(PriceBook.id != book.id)
    if await session.scalar(clash.where(PriceBook.name == book.name)) is not None:
        raise Conflict(f"A price book named {book.name!r} exists", code="duplicate_price_book")
    if book.active:
        same_scope = clash.where(
            PriceBook.active,
            PriceBook.currency == book.currency,
            PriceBook.account_id.is_(None)
            if book.account_id is None
            else PriceBook.account_id == book.account_id,
        )
        if (existing := await session.scalar(same_scope)) is not None:
            raise Conflict(
                "Another active price book already covers this currency"
                + (" for this account" if book.account_id else ""),
                code="price_book_conflict",
                extra={"existing_id": str(existing)},
            )


async def create_price_book(session: AsyncSession, data: PriceBookCreate) -> PriceBook:
    if data.account_id is not None:
        await accounts.get_account_or_invalid(session, data.account_id)
    book = PriceBook(
        id=new_id(),
        name=data.name,
        currency=data.currency,
        account_id=data.account_id,
        active=data.active,
    )
    await _check_unique(session, book)
    session.add(book)
    await session.flush()
    return book


async def update_price_book(
    session: AsyncSession, book_id: uuid.UUID, data: PriceBookUpdate, expected_version: int | None
) -> PriceBook:
    book = await get_price_book(session, book_id, for_update=True)
    check_version("price book", book.version, expected_version)
    if data.name is not None:
        book.name = data.name
    if data.active is not None:
        book.active = data.active
    await _check_unique(session, book)
    await session.flush()
    return book


def _tiers(data: EntryIn) -> list[dict[str, Any]]:
    return [
        {
            "up_to": None if t.up_to is None else str(t.up_to),
            "unit_price": str(t.unit_price),
            "flat_fee": str(t.flat_fee),
        }
        for t in data.tiers
    ]


def price_entry(entry: PriceBookEntry) -> pricing.PriceEntry:
    return pricing.PriceEntry(
        model=entry.pricing_model,
        unit_price=entry.unit_price,
        tiers=tuple(
            pricing.Tier(
                None if t["up_to"] is None else Decimal(t["up_to"]),
                Decimal(t["unit_price"]),
                Decimal(t.get("flat_fee", "0")),
            )
            for t in entry.tiers
        ),
        min_quantity=entry.min_quantity,
    )


async def list_entries(session: AsyncSession, book_id: uuid.UUID) -> list[PriceBookEntry]:
    await get_price_book(session, book_id)
    return list(
        await session.scalars(
            select(PriceBookEntry)
            .where(PriceBookEntry.price_book_id == book_id)
            .order_by(PriceBookEntry.created_at, PriceBookEntry.id)
        )
    )


async def upsert_entry(session: AsyncSession, book_id: uuid.UUID, data: EntryIn) -> PriceBookEntry:
    """Set the price of a product in a book (creates or replaces the entry)."""
    await get_price_book(session, book_id, for_update=True)
    if await session.scalar(select(Product.id).where(Product.id == data.product_id)) is None:
        raise invalid_reference("product_id", data.product_id, "a product")
    entry = await session.scalar(
        select(PriceBookEntry)
        .where(
            PriceBookEntry.price_book_id == book_id, PriceBookEntry.product_id == data.product_id
        )
        .with_for_update()
    )
    if entry is None:
        entry = PriceBookEntry(id=new_id(), price_book_id=book_id, product_id=data.product_id)
        session.add(entry)
    entry.pricing_model = data.pricing_model
    entry.unit_price = data.unit_price
    entry.tiers = _tiers(data)
    entry.min_quantity = data.min_quantity
    problems = pricing.entry_problems(price_entry(entry))
    if problems:
        raise ValidationFailed(
            f"Invalid price entry: {problems[0]}",
            errors=[{"field": "body", "code": "invalid_price", "detail": p} for p in problems],
        )
    await session.flush()
    return entry


async def delete_entry(session: AsyncSession, book_id: uuid.UUID, entry_id: uuid.UUID) -> None:
    entry = await session.scalar(
        select(PriceBookEntry).where(
            PriceBookEntry.id == entry_id, PriceBookEntry.price_book_id == book_id
        )
    )
    if entry is None:
        raise NotFound("price book entry")
    await session.delete(entry)
    await session.flush()


async def book_for(session: AsyncSession, account_id: uuid.UUID, currency: str) -> PriceBook:
    """The account's own active book in the currency, else the standard one."""
    for scope in (PriceBook.account_id == account_id, PriceBook.account_id.is_(None)):
        book = await session.scalar(
            select(PriceBook).where(PriceBook.active, PriceBook.currency == currency, scope)
        )
        if book is not None:
            return book
    raise RuleViolation(
        f"No active price book in {currency}",
        code="no_price_book",
        unmet=[{"code": "no_price_book", "detail": f"create a {currency} price book"}],
    )


async def entry_for(
    session: AsyncSession, book: PriceBook, product_id: uuid.UUID
) -> PriceBookEntry:
    """The product's entry in the book, falling back from a customer book to the
    standard book of the currency."""
    entry = await session.scalar(
        select(PriceBookEntry).where(
            PriceBookEntry.price_book_id == book.id, PriceBookEntry.product_id == product_id
        )
    )
    if entry is None and book.account_id is not None:
        standard = await session.scalar(
            select(PriceBook).where(
                PriceBook.active,
                PriceBook.currency == book.currency,
                PriceBook.account_id.is_(None),
            )
        )
        if standard is not None:
            entry = await session.scalar(
                select(PriceBookEntry).where(
                    PriceBookEntry.price_book_id == standard.id,
                    PriceBookEntry.product_id == product_id,
                )
            )
    if entry is None:
        raise invalid_reference("product_id", product_id, f"a product priced in {book.currency}")
    return entry
