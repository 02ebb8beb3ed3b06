from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from app.audit import service as audit_service
from app.audit.schemas import FieldChangeOut
from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors, loaded
from app.opportunities import service
from app.opportunities.schemas import (
    OpportunityCreate,
    OpportunityOut,
    OpportunityType,
    OpportunityUpdate,
    ReasonOut,
    Reopen,
    SplitOut,
    SplitsIn,
    SplitsOut,
    StageHistoryOut,
    StageMove,
)
from app.pipelines.schemas import ForecastCategory

router = APIRouter(
    prefix="/opportunities",
    tags=["opportunities"],
    route_class=DealbaseRoute,
    responses=COMMON_ERRORS,
)
Reader = Annotated[Principal, Depends(require("opportunities:read"))]
Writer = Annotated[Principal, Depends(require("opportunities:write"))]

STAGE_MOVE_DOC = """Moves are judged by the stage engine:

* forward to any later open stage (skipping allowed) when the target's entry requirements
  hold; backward to an earlier open stage only with a `reason`;
* `closed_won` needs its requirements (default: an accepted quote or an amount, and a
  `won_reason`); `closed_lost` needs a `lost_reason` (and a competitor when it is
  `lost_to_competitor`); closed deals are terminal until reopened;
* a refused move is a 409 `stage_requirements_unmet` (or `invalid_stage_move`) whose
  `errors` list **every** unmet requirement with a code and a sentence.

Every move writes stage history, field history and an `opportunity.stage_changed` event
(`opportunity.won` / `opportunity.lost` on close). Winning hands the deal over: the account
becomes a customer and onboarding tasks are created, in the same transaction."""


def out(view: service.OpportunityView) -> OpportunityOut:
    o, stage = loaded(view.opportunity), view.stage
    return OpportunityOut(
        id=o.id,
        created_at=o.created_at,
        updated_at=o.updated_at,
        version=o.version,
        account_id=o.account_id,
        name=o.name,
        owner_id=o.owner_id,
        pipeline_id=o.pipeline_id,
        stage=stage.key,
        stage_id=stage.id,
        stage_kind=stage.kind,
        probability=stage.probability,
        amount=o.amount,
        currency=o.currency,
        close_date=o.close_date,
        type=o.type,
        source=o.source,
        lead_id=o.lead_id,
        partner_id=o.partner_id,
        competitors=o.competitors,
        next_step=o.next_step,
        forecast_category=service.effective_category(view.opportunity, stage),
        forecast_category_source=service.category_source(view.opportunity, stage),
        won_reason=ReasonOut(code=o.won_reason_code, text=o.won_reason_text)
        if o.won_reason_code
        else None,
        lost_reason=ReasonOut(code=o.lost_reason_code, text=o.lost_reason_text)
        if o.lost_reason_code
        else None,
        custom_fields=o.custom_fields,
        stage_entered_at=o.stage_entered_at,
        closed_at=o.closed_at,
        last_touch_at=o.last_touch_at,
        is_stale=o.is_stale,
        stale_since=o.stale_since,
    )


# As amounts are stored (NUMERIC(20, 2)): a longer bound would overflow the comparison.
AmountBound = Annotated[Decimal | None, Query(max_digits=20, decimal_places=2)]


def _respond(view: service.OpportunityView, response: Response) -> OpportunityOut:
    set_etag(response, view.opportunity.version)
    return out(view)


def shown(fields: tuple[str, ...], row: Sequence[Any]) -> dict[str, Any]:
    """A row of ``service.read_opportunity``/``list_opportunities`` (``fields``: its column
    names) as ``OpportunityOut``'s input, the fields ``out`` gives. (``Row._asdict`` took
    ~20 % of a list page's CPU: it rebuilds the names for every row.)"""
    values = dict(zip(fields, row, strict=True))
    for reason in ("won_reason", "lost_reason"):
        code, text = values.pop(f"{reason}_code"), values.pop(f"{reason}_text")
        values[reason] = {"code": code, "text": text} if code else None
    return values


@router.get("", operation_id="opportunities-list", summary="List opportunities")
async def list_opportunities(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[
        str | None, sort_query("created_at, updated_at, amount, close_date, name", "-created_at")
    ] = None,
    pipeline_id: uuid.UUID | None = None,
    stage: Annotated[str | None, Query(description="Stage key")] = None,
    owner_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
    include_child_accounts: Annotated[
        bool, Query(description="With account_id: also deals of all its descendants")
    ] = False,
    type: OpportunityType | None = None,
    forecast_category: ForecastCategory | None = None,
    is_stale: bool | None = None,
    is_closed: bool | None = None,
    close_date_from: date | None = None,
    close_date_to: date | None = None,
    amount_min: AmountBound = None,
    amount_max: AmountBound = None,
    updated_since: datetime | None = None,
) -> ListEnvelope[OpportunityOut]:
    filters = service.OpportunityFilters(
        pipeline_id=pipeline_id,
        stage=stage,
        owner_id=owner_id,
        account_id=account_id,
        include_child_accounts=include_child_accounts,
        type=type,
        forecast_category=forecast_category,
        is_stale=is_stale,
        is_closed=is_closed,
        close_date_from=close_date_from,
        close_date_to=close_date_to,
        amount_min=amount_min,
        amount_max=amount_max,
        updated_since=updated_since,
    )
    rows, next_cursor = await service.list_opportunities(
        session, filters, sort=sort, limit=page.limit, cursor=page.cursor
    )
    fields = rows[0]._fields if rows else ()
    data = [shown(fields, row) for row in rows]
    return ListEnvelope[OpportunityOut](data=data, next_cursor=next_cursor)


@router.post(
    "",
    operation_id="opportunities-create",
    summary="Create an opportunity",
    description="Starts in the first stage of the pipeline (default pipeline unless given), "
    "or in `stage` if that stage's entry requirements hold.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_opportunity(
    body: OpportunityCreate, principal: Writer, session: SessionDep, response: Response
) -> OpportunityOut:
    view = await service.create_opportunity(session, principal, body)
    response.headers["Location"] = f"/v1/opportunities/{view.opportunity.id}"
    return _respond(view, response)


@router.get(
    "/{opportunity_id}",
    operation_id="opportunities-get",
    summary="Get an opportunity",
    responses=errors(404),
)
async def get_opportunity(
    opportunity_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> OpportunityOut:
    row = await service.read_opportunity(session, opportunity_id)
    set_etag(response, row.version)
    return OpportunityOut.model_validate(shown(row._fields, row))


@router.patch(
    "/{opportunity_id}",
    operation_id="opportunities-update",
    summary="Update an opportunity",
    description="Plain fields only: the stage and won/lost reasons change through "
    "`POST /v1/opportunities/{id}/stage`. `custom_fields` merges (null removes a key).",
    responses=errors(404, 412, 422),
)
async def update_opportunity(
    opportunity_id: uuid.UUID,
    body: OpportunityUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> OpportunityOut:
    view = await service.update_opportunity(session, opportunity_id, body, expected)
    return _respond(view, response)


@router.delete(
    "/{opportunity_id}",
    operation_id="opportunities-delete",
    summary="Delete an opportunity (soft)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_opportunity(
    opportunity_id: uuid.UUID, _: Writer, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_opportunity(session, opportunity_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{opportunity_id}/stage",
    operation_id="opportunities-move-stage",
    summary="Move a deal to another stage",
    description=STAGE_MOVE_DOC,
    responses=errors(404, 409, 412, 422),
)
async def move_stage(
    opportunity_id: uuid.UUID,
    body: StageMove,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> OpportunityOut:
    view = await service.move_stage(session, opportunity_id, body, expected)
    return _respond(view, response)


@router.post(
    "/{opportunity_id}/reopen",
    operation_id="opportunities-reopen",
    summary="Reopen a closed deal (managers and admins, with a reason)",
    responses=errors(404, 409, 412, 422),
)
async def reopen(
    opportunity_id: uuid.UUID,
    body: Reopen,
    principal: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> OpportunityOut:
    view = await service.reopen(session, principal, opportunity_id, body, expected)
    return _respond(view, response)


@router.get(
    "/{opportunity_id}/stage-history",
    operation_id="opportunities-stage-history",
    summary="Every stage move of a deal, newest first",
    responses=errors(404),
)
async def stage_history(
    opportunity_id: uuid.UUID, _: Reader, session: SessionDep, page: PageDep
) -> ListEnvelope[StageHistoryOut]:
    rows, next_cursor = await service.stage_history(
        session, opportunity_id, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(
        data=[StageHistoryOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/{opportunity_id}/history",
    operation_id="opportunities-history",
    summary="Field history of a deal, newest first",
    responses=errors(404),
)
async def field_history(
    opportunity_id: uuid.UUID,
    _: Reader,
    session: SessionDep,
    page: PageDep,
    field: Annotated[str | None, Query(description="Only changes of this field")] = None,
) -> ListEnvelope[FieldChangeOut]:
    await service.get_opportunity(session, opportunity_id)
    rows, next_cursor = await audit_service.field_history(
        session,
        service.RESOURCE,
        opportunity_id,
        field=field,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(
        data=[FieldChangeOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/{opportunity_id}/splits",
    operation_id="opportunities-splits",
    summary="Revenue and commission splits of a deal",
    responses=errors(404),
)
async def get_splits(opportunity_id: uuid.UUID, _: Reader, session: SessionDep) -> SplitsOut:
    splits = await service.list_splits(session, opportunity_id)
    return SplitsOut(
        opportunity_id=opportunity_id, splits=[SplitOut.model_validate(s) for s in splits]
    )


@router.put(
    "/{opportunity_id}/splits",
    operation_id="opportunities-replace-splits",
    summary="Replace the splits of a deal (each type sums to exactly 100)",
    responses=errors(404, 412, 422),
)
async def replace_splits(
    opportunity_id: uuid.UUID,
    body: SplitsIn,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
) -> SplitsOut:
    splits = await service.replace_splits(session, opportunity_id, body, expected)
    return SplitsOut(
        opportunity_id=opportunity_id, splits=[SplitOut.model_validate(s) for s in splits]
    )
