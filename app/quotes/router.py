from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from app.approvals import policy
from app.approvals import service as approvals
from app.approvals.schemas import PlannedStepOut, PlanOut
from app.contracts.schemas import AcceptIn
from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, INT32_MAX, errors
from app.models import Quote, QuoteLineItem, QuoteVersion
from app.quotes import pricing, service
from app.quotes.schemas import (
    DeclineIn,
    LineItemIn,
    LineItemOut,
    LineItemUpdate,
    QuoteCreate,
    QuoteOut,
    QuoteStatus,
    QuoteUpdate,
    VersionOut,
)

router = APIRouter(
    prefix="/quotes", tags=["quotes"], route_class=DealbaseRoute, responses=COMMON_ERRORS
)
Reader = Annotated[Principal, Depends(require("quotes:read"))]
Writer = Annotated[Principal, Depends(require("quotes:write"))]
VersionNumber = Annotated[int, Path(ge=1, le=INT32_MAX, description="1 for the first version")]
EDIT_NOTE = (
    "Editing a quote that is pending approval, approved or sent creates a new draft "
    "version (the old one stays readable; its approval no longer applies)."
)


def version_out(version: QuoteVersion, lines: list[QuoteLineItem]) -> VersionOut:
    return VersionOut.model_validate(
        {
            **{f: getattr(version, f) for f in VersionOut.model_fields if f != "line_items"},
            "line_items": [LineItemOut.model_validate(line) for line in lines],
        }
    )


def out(view: service.QuoteView) -> QuoteOut:
    q = view.quote
    return QuoteOut.model_validate(
        {
            **{f: getattr(q, f) for f in QuoteOut.model_fields if f != "current"},
            "current": version_out(view.version, view.lines),
        }
    )


def _respond(view: service.QuoteView, response: Response) -> QuoteOut:
    set_etag(response, view.quote.version)
    return out(view)


async def _respond_quote(session: SessionDep, quote: Quote, response: Response) -> QuoteOut:
    return _respond(service.QuoteView(quote, *await service.get_version(session, quote)), response)


@router.get("", operation_id="quotes-list", summary="List quotes")
async def list_quotes(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("created_at, updated_at", "-created_at")] = None,
    opportunity_id: uuid.UUID | None = None,
    status: QuoteStatus | None = None,
) -> ListEnvelope[QuoteOut]:
    views, next_cursor = await service.list_quotes(
        session,
        opportunity_id=opportunity_id,
        status=status,
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(data=[out(v) for v in views], next_cursor=next_cursor)


@router.post(
    "",
    operation_id="quotes-create",
    summary="Create a quote on a deal",
    description="Prices every line from the account's own price book in the quote's "
    "currency, else the standard one. " + (pricing.__doc__ or ""),
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_quote(
    body: QuoteCreate, principal: Writer, session: SessionDep, response: Response
) -> QuoteOut:
    view = await service.create_quote(session, principal, body)
    response.headers["Location"] = f"/v1/quotes/{view.quote.id}"
    return _respond(view, response)


@router.get(
    "/{quote_id}",
    operation_id="quotes-get",
    summary="Get a quote (current version)",
    responses=errors(404),
)
async def get_quote(
    quote_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> QuoteOut:
    return _respond(await service.view(session, quote_id), response)


@router.patch(
    "/{quote_id}",
    operation_id="quotes-update",
    summary="Change a quote's terms",
    description=EDIT_NOTE,
    responses=errors(404, 409, 412, 422),
)
async def update_quote(
    quote_id: uuid.UUID,
    body: QuoteUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> QuoteOut:
    return _respond(await service.update_terms(session, quote_id, body, expected), response)


@router.get(
    "/{quote_id}/versions",
    operation_id="quotes-versions",
    summary="Every version, newest first",
    responses=errors(404),
)
async def list_versions(
    quote_id: uuid.UUID, _: Reader, session: SessionDep
) -> ListEnvelope[VersionOut]:
    rows = await service.versions(session, quote_id)
    return ListEnvelope(data=[version_out(v, lines) for v, lines in rows], next_cursor=None)


@router.get(
    "/{quote_id}/versions/{number}",
    operation_id="quotes-version",
    summary="One version",
    responses=errors(404),
)
async def get_version(
    quote_id: uuid.UUID, number: VersionNumber, _: Reader, session: SessionDep
) -> VersionOut:
    quote = await service.get_quote(session, quote_id)
    return version_out(*await service.get_version(session, quote, number))


@router.get(
    "/{quote_id}/versions/{number}/pdf",
    operation_id="quotes-version-pdf",
    summary="One version as a PDF",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The PDF"}, **errors(404)},
)
async def version_pdf(
    quote_id: uuid.UUID, number: VersionNumber, _: Reader, session: SessionDep
) -> Response:
    filename, content = await service.render_pdf(session, quote_id, number)
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


@router.post(
    "/{quote_id}/line-items",
    operation_id="quotes-add-line",
    summary="Add a line item",
    description=EDIT_NOTE,
    status_code=status.HTTP_201_CREATED,
    responses=errors(404, 409, 412, 422),
)
async def add_line(
    quote_id: uuid.UUID,
    body: LineItemIn,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> QuoteOut:
    return _respond(await service.add_line(session, quote_id, body, expected), response)


@router.patch(
    "/{quote_id}/line-items/{line_id}",
    operation_id="quotes-update-line",
    summary="Change a line item",
    description=EDIT_NOTE,
    responses=errors(404, 409, 412, 422),
)
async def update_line(
    quote_id: uuid.UUID,
    line_id: uuid.UUID,
    body: LineItemUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> QuoteOut:
    view = await service.update_line(session, quote_id, line_id, body, expected)
    return _respond(view, response)


@router.delete(
    "/{quote_id}/line-items/{line_id}",
    operation_id="quotes-remove-line",
    summary="Remove a line item",
    description=EDIT_NOTE,
    responses=errors(404, 409, 412),
)
async def remove_line(
    quote_id: uuid.UUID,
    line_id: uuid.UUID,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> QuoteOut:
    return _respond(await service.remove_line(session, quote_id, line_id, expected), response)


@router.get(
    "/{quote_id}/approval-plan",
    operation_id="quotes-approval-plan",
    summary="Which approvals the current version needs, why, and who would approve",
    description=policy.__doc__ or "",
    responses=errors(404),
)
async def approval_plan(quote_id: uuid.UUID, principal: Reader, session: SessionDep) -> PlanOut:
    quote, version, plan = await approvals.preview(session, principal, quote_id)
    return PlanOut(
        quote_id=quote.id,
        version=version.number,
        effective_discount_pct=format(version.effective_discount_pct, "f"),
        needs_approval=plan.needs_approval,
        resolvable=plan.resolvable,
        steps=[
            PlannedStepOut(
                position=s.position,
                kind=s.kind,
                rule=s.rule,
                label=s.label,
                approver_ids=[uuid.UUID(a) for a in s.approver_ids],
                group=s.group,
                resolvable=s.resolvable,
            )
            for s in plan.steps
        ],
    )


@router.post(
    "/{quote_id}/submit",
    operation_id="quotes-submit",
    summary="Submit the current version for approval",
    description="Computes the steps for exactly this version; with none needed the "
    "quote is approved at once. The version is immutable from now on.",
    responses=errors(404, 409, 412),
)
async def submit(
    quote_id: uuid.UUID,
    principal: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> QuoteOut:
    quote, _ = await approvals.submit(session, principal, quote_id, expected)
    return await _respond_quote(session, quote, response)


@router.post(
    "/{quote_id}/recall",
    operation_id="quotes-recall",
    summary="Recall a pending approval request (the requester)",
    responses=errors(404, 409, 412),
)
async def recall(
    quote_id: uuid.UUID,
    principal: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> QuoteOut:
    quote = await approvals.recall(session, principal, quote_id, expected)
    return await _respond_quote(session, quote, response)


@router.post(
    "/{quote_id}/send",
    operation_id="quotes-send",
    summary="Send an approved quote to the customer",
    responses=errors(404, 409, 412),
)
async def send(
    quote_id: uuid.UUID, _: Writer, session: SessionDep, expected: IfMatch, response: Response
) -> QuoteOut:
    quote = await service.send(session, quote_id, expected)
    return await _respond_quote(session, quote, response)


@router.post(
    "/{quote_id}/accept",
    operation_id="quotes-accept",
    summary="Record the customer's acceptance",
    description="Only an approved (or approval-free) version; one accepted quote per "
    "deal; the deal's amount becomes the quote's TCV.",
    responses=errors(404, 409, 412),
)
async def accept(
    quote_id: uuid.UUID,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
    body: AcceptIn | None = None,
) -> QuoteOut:
    terms = body.contract if body is not None else None
    quote = await service.accept(session, quote_id, expected, terms)
    return await _respond_quote(session, quote, response)


@router.post(
    "/{quote_id}/decline",
    operation_id="quotes-decline",
    summary="Record that the customer declined a sent quote",
    responses=errors(404, 409, 412, 422),
)
async def decline(
    quote_id: uuid.UUID,
    body: DeclineIn,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> QuoteOut:
    quote = await service.decline(session, quote_id, body.reason, expected)
    return await _respond_quote(session, quote, response)
