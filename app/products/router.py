from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.products import service
from app.products.schemas import (
    EntryIn,
    EntryOut,
    PriceBookCreate,
    PriceBookOut,
    PriceBookUpdate,
    ProductCreate,
    ProductOut,
    ProductUpdate,
)

router = APIRouter(route_class=DealbaseRoute, responses=COMMON_ERRORS)
Reader = Annotated[Principal, Depends(require("products:read"))]
Writer = Annotated[
    Principal, Depends(require("products:write", roles=frozenset({"admin", "manager"})))
]


@router.get("/products", tags=["products"], operation_id="products-list", summary="List products")
async def list_products(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("created_at, name, sku", "sku")] = None,
    family: str | None = None,
    active: bool | None = None,
    sku: str | None = None,
) -> ListEnvelope[ProductOut]:
    rows, next_cursor = await service.list_products(
        session,
        service.ProductFilters(family, active, sku),
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(data=[ProductOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/products",
    tags=["products"],
    operation_id="products-create",
    summary="Create a product (managers, admins)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_product(
    body: ProductCreate, _: Writer, session: SessionDep, response: Response
) -> ProductOut:
    product = await service.create_product(session, body)
    set_etag(response, product.version)
    response.headers["Location"] = f"/v1/products/{product.id}"
    return ProductOut.model_validate(product)


@router.get(
    "/products/{product_id}",
    tags=["products"],
    operation_id="products-get",
    summary="Get a product",
    responses=errors(404),
)
async def get_product(
    product_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> ProductOut:
    product = await service.get_product(session, product_id)
    set_etag(response, product.version)
    return ProductOut.model_validate(product)


@router.patch(
    "/products/{product_id}",
    tags=["products"],
    operation_id="products-update",
    summary="Update a product (deactivate instead of deleting)",
    responses=errors(404, 412, 422),
)
async def update_product(
    product_id: uuid.UUID,
    body: ProductUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> ProductOut:
    product = await service.update_product(session, product_id, body, expected)
    set_etag(response, product.version)
    return ProductOut.model_validate(product)


@router.get(
    "/price-books",
    tags=["products"],
    operation_id="products-list-price-books",
    summary="List price books",
)
async def list_price_books(_: Reader, session: SessionDep) -> ListEnvelope[PriceBookOut]:
    books = await service.list_price_books(session)
    return ListEnvelope(data=[PriceBookOut.model_validate(b) for b in books], next_cursor=None)


@router.post(
    "/price-books",
    tags=["products"],
    operation_id="products-create-price-book",
    summary="Create a price book (standard, or customer-specific with account_id)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_price_book(
    body: PriceBookCreate, _: Writer, session: SessionDep, response: Response
) -> PriceBookOut:
    book = await service.create_price_book(session, body)
    set_etag(response, book.version)
    response.headers["Location"] = f"/v1/price-books/{book.id}"
    return PriceBookOut.model_validate(book)


@router.get(
    "/price-books/{book_id}",
    tags=["products"],
    operation_id="products-get-price-book",
    summary="Get a price book",
    responses=errors(404),
)
async def get_price_book(
    book_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> PriceBookOut:
    book = await service.get_price_book(session, book_id)
    set_etag(response, book.version)
    return PriceBookOut.model_validate(book)


@router.patch(
    "/price-books/{book_id}",
    tags=["products"],
    operation_id="products-update-price-book",
    summary="Rename or (de)activate",
    responses=errors(404, 409, 412, 422),
)
async def update_price_book(
    book_id: uuid.UUID,
    body: PriceBookUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> PriceBookOut:
    book = await service.update_price_book(session, book_id, body, expected)
    set_etag(response, book.version)
    return PriceBookOut.model_validate(book)


@router.get(
    "/price-books/{book_id}/entries",
    tags=["products"],
    operation_id="products-list-entries",
    summary="Prices in a book",
    responses=errors(404),
)
async def list_entries(
    book_id: uuid.UUID, _: Reader, session: SessionDep
) -> ListEnvelope[EntryOut]:
    entries = await service.list_entries(session, book_id)
    return ListEnvelope(data=[EntryOut.model_validate(e) for e in entries], next_cursor=None)


@router.put(
    "/price-books/{book_id}/entries",
    tags=["products"],
    operation_id="products-set-entry",
    summary="Set a product's price in the book (flat, volume or graduated tiers)",
    responses=errors(404, 422),
)
async def set_entry(
    book_id: uuid.UUID, body: EntryIn, _: Writer, session: SessionDep, response: Response
) -> EntryOut:
    entry = await service.upsert_entry(session, book_id, body)
    set_etag(response, entry.version)
    return EntryOut.model_validate(entry)


@router.delete(
    "/price-books/{book_id}/entries/{entry_id}",
    tags=["products"],
    operation_id="products-delete-entry",
    summary="Remove a price",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404),
)
async def delete_entry(
    book_id: uuid.UUID, entry_id: uuid.UUID, _: Writer, session: SessionDep
) -> Response:
    await service.delete_entry(session, book_id, entry_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
