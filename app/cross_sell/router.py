from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.core.auth import Principal
from app.core.deps import IfMatch, SessionDep, require, set_etag
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.cross_sell import service
from app.cross_sell.schemas import CrossSellRuleCreate, CrossSellRuleOut, CrossSellRuleUpdate

router = APIRouter(
    prefix="/cross-sell-rules",
    tags=["opportunities"],
    route_class=DealbaseRoute,
    responses=COMMON_ERRORS,
)
Reader = Annotated[Principal, Depends(require("opportunities:read"))]
Manager = Annotated[
    Principal, Depends(require("opportunities:write", roles=frozenset({"admin", "manager"})))
]


@router.get(
    "",
    operation_id="opportunities-list-cross-sell-rules",
    summary="Cross-sell / upsell rules",
    description=service.__doc__ or "",
)
async def list_rules(_: Reader, session: SessionDep) -> ListEnvelope[CrossSellRuleOut]:
    rules = await service.list_rules(session)
    return ListEnvelope(data=[CrossSellRuleOut.model_validate(r) for r in rules], next_cursor=None)


@router.post(
    "",
    operation_id="opportunities-create-cross-sell-rule",
    summary="Add a cross-sell rule (managers, admins)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_rule(
    body: CrossSellRuleCreate, _: Manager, session: SessionDep, response: Response
) -> CrossSellRuleOut:
    rule = await service.create_rule(session, body)
    set_etag(response, rule.version)
    return CrossSellRuleOut.model_validate(rule)


@router.patch(
    "/{rule_id}",
    operation_id="opportunities-update-cross-sell-rule",
    summary="Change a cross-sell rule",
    responses=errors(404, 409, 412, 422),
)
async def update_rule(
    rule_id: uuid.UUID,
    body: CrossSellRuleUpdate,
    _: Manager,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> CrossSellRuleOut:
    rule = await service.update_rule(session, rule_id, body, expected)
    set_etag(response, rule.version)
    return CrossSellRuleOut.model_validate(rule)


@router.delete(
    "/{rule_id}",
    operation_id="opportunities-delete-cross-sell-rule",
    summary="Retire a cross-sell rule (it stops firing)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_rule(
    rule_id: uuid.UUID, _: Manager, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_rule(session, rule_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
