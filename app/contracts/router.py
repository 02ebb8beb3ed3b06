from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.contracts import service
from app.contracts.schemas import (
    ContractCreate,
    ContractOut,
    ContractStatus,
    ContractUpdate,
    DocumentIn,
    DocumentOut,
    SignatureEvent,
)
from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors

router = APIRouter(
    prefix="/contracts", tags=["contracts"], route_class=DealbaseRoute, responses=COMMON_ERRORS
)
Reader = Annotated[Principal, Depends(require("contracts:read"))]
Writer = Annotated[Principal, Depends(require("contracts:write"))]


def out(view: service.ContractView) -> ContractOut:
    c = view.contract
    return ContractOut.model_validate(
        {
            **{f: getattr(c, f) for f in ContractOut.model_fields if f != "documents"},
            "documents": [DocumentOut.model_validate(d) for d in view.documents],
        }
    )


def _respond(view: service.ContractView, response: Response) -> ContractOut:
    set_etag(response, view.contract.version)
    return out(view)


@router.get("", operation_id="contracts-list", summary="List contracts")
async def list_contracts(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    account_id: uuid.UUID | None = None,
    status: ContractStatus | None = None,
) -> ListEnvelope[ContractOut]:
    views, next_cursor = await service.list_contracts(
        session, account_id=account_id, status=status, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[out(v) for v in views], next_cursor=next_cursor)


@router.post(
    "",
    operation_id="contracts-create",
    summary="Create a contract (usually created by accepting a quote)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def create_contract(
    body: ContractCreate, _: Writer, session: SessionDep, response: Response
) -> ContractOut:
    view = await service.create_contract(session, body)
    response.headers["Location"] = f"/v1/contracts/{view.contract.id}"
    return _respond(view, response)


@router.get(
    "/{contract_id}", operation_id="contracts-get", summary="Get a contract", responses=errors(404)
)
async def get_contract(
    contract_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> ContractOut:
    return _respond(await service.get_contract(session, contract_id), response)


@router.patch(
    "/{contract_id}",
    operation_id="contracts-update",
    summary="Change dates, renewal terms or SLA",
    responses=errors(404, 412, 422),
)
async def update_contract(
    contract_id: uuid.UUID,
    body: ContractUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> ContractOut:
    view = await service.update_contract(session, contract_id, body, expected)
    return _respond(view, response)


@router.post(
    "/{contract_id}/documents",
    operation_id="contracts-add-document",
    summary="Add a document version (bytes or just its checksum)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(404, 409, 422),
)
async def add_document(
    contract_id: uuid.UUID, body: DocumentIn, _: Writer, session: SessionDep
) -> DocumentOut:
    return DocumentOut.model_validate(await service.add_document(session, contract_id, body))


@router.post(
    "/{contract_id}/send-for-signature",
    operation_id="contracts-send",
    summary="Send the latest document for e-signature",
    responses=errors(404, 409, 412),
)
async def send_for_signature(
    contract_id: uuid.UUID, _: Writer, session: SessionDep, expected: IfMatch, response: Response
) -> ContractOut:
    return _respond(await service.send_for_signature(session, contract_id, expected), response)


@router.post(
    "/{contract_id}/signature-events",
    operation_id="contracts-signature-event",
    summary="An e-signature provider's callback (sent, viewed, signed, declined)",
    description="Idempotent per `provider_event_id`: a retried callback changes nothing.",
    responses=errors(404, 409, 422),
)
async def signature_event(
    contract_id: uuid.UUID, body: SignatureEvent, _: Writer, session: SessionDep, response: Response
) -> ContractOut:
    return _respond(await service.signature_event(session, contract_id, body), response)
