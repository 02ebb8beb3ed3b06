from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends

from app.core.auth import Principal
from app.core.deps import ADMIN, SessionDep, require
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS
from app.jobs import service
from app.opportunities.schemas import FollowUpRunOut

router = APIRouter(
    prefix="/jobs", tags=["jobs"], route_class=DealbaseRoute, responses=COMMON_ERRORS
)
Admin = Annotated[Principal, Depends(require("jobs:write", roles=ADMIN))]


@router.post(
    "/follow-ups",
    operation_id="jobs-follow-ups",
    summary="Run the follow-ups job now for your organization (admins)",
    description="Open deals untouched for longer than their stage's `rotting_days` are "
    "marked stale, get one follow-up task for their owner per stale spell, and emit "
    "`opportunity.stale`. Running it again creates nothing new. `serve` also runs it "
    "periodically.",
)
async def run_follow_ups(_: Admin, session: SessionDep) -> FollowUpRunOut:
    result = await service.follow_ups(session)
    return FollowUpRunOut.model_validate(asdict(result))
