from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.core.auth import Principal
from app.core.deps import PageDep, SessionDep, require, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, UtcDatetime, errors
from app.signals import service
from app.signals.schemas import SignalBatch, SignalBatchOut, SignalOut, SignalType

router = APIRouter(route_class=DealbaseRoute, responses=COMMON_ERRORS, tags=["signals"])
Reader = Annotated[Principal, Depends(require("signals:read"))]
Writer = Annotated[Principal, Depends(require("signals:write"))]


@router.post(
    "/signals",
    operation_id="signals-create",
    summary="Send a batch of engagement signals",
    description="Up to 1,000 signals about leads, contacts or accounts. The batch is all or "
    "nothing: if any item is invalid (including a lead, contact or account this "
    "organization does not have) nothing is stored and the 422 names every bad item by its "
    "index (`body.signals[3].lead_id`). An item whose `source` + `external_id` was stored "
    "before (or earlier in the batch) is counted as a duplicate, not stored again. Arriving "
    "signals re-score the leads they concern (scoring rules with field `signal_count`; the "
    "MQL threshold applies) and apply the organization's `plg_rule`.",
    status_code=200,
    responses=errors(422),
)
async def create_signals(body: SignalBatch, _: Writer, session: SessionDep) -> SignalBatchOut:
    result = await service.receive(session, body)
    return SignalBatchOut(
        accepted=result.accepted,
        duplicates=result.duplicates,
        ids=result.ids,
        duplicate_indexes=result.duplicate_indexes,
    )


@router.get("/signals", operation_id="signals-list", summary="List engagement signals")
async def list_signals(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("occurred_at, received_at", "-occurred_at")] = None,
    lead_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
    type: SignalType | None = None,
    occurred_from: Annotated[
        UtcDatetime | None, Query(alias="from", description="occurred_at at or after")
    ] = None,
    occurred_to: Annotated[
        UtcDatetime | None, Query(alias="to", description="occurred_at before")
    ] = None,
) -> ListEnvelope[SignalOut]:
    filters = service.SignalFilters(
        lead_id, contact_id, account_id, type, occurred_from, occurred_to
    )
    signals, next_cursor = await service.list_signals(
        session, filters, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(
        data=[SignalOut.model_validate(s) for s in signals], next_cursor=next_cursor
    )


@router.get(
    "/signals/{signal_id}",
    operation_id="signals-get",
    summary="Get an engagement signal",
    responses=errors(404),
)
async def get_signal(signal_id: uuid.UUID, _: Reader, session: SessionDep) -> SignalOut:
    return SignalOut.model_validate(await service.get_signal(session, signal_id))
