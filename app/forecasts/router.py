from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.core.auth import Principal
from app.core.deps import ADMIN, PageDep, SessionDep, require, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.forecasts import service
from app.forecasts.schemas import (
    AdjustmentCategory,
    AdjustmentCreate,
    AdjustmentOut,
    ForecastOut,
    SnapshotOut,
    SnapshotRowOut,
    SubmissionCreate,
    SubmissionOut,
    TrendGroup,
    TrendOut,
)

router = APIRouter(
    prefix="/forecasts", tags=["forecasts"], route_class=DealbaseRoute, responses=COMMON_ERRORS
)
Reader = Annotated[Principal, Depends(require("forecasts:read"))]
Writer = Annotated[Principal, Depends(require("forecasts:write"))]
Manager = Annotated[
    Principal, Depends(require("forecasts:write", roles=frozenset({"admin", "manager"})))
]
Admin = Annotated[Principal, Depends(require("forecasts:write", roles=ADMIN))]
PeriodQuery = Annotated[
    str | None,
    Query(
        max_length=16,
        examples=["2026-Q3"],
        description="`YYYY` (fiscal year), `YYYY-Qn` (fiscal quarter) or `YYYY-MM` (month)",
    ),
]
UserQuery = Annotated[
    uuid.UUID | None,
    Query(description="Default: you. Yourself or someone under you (admins: anyone)"),
]
FromQuery = Annotated[date | None, Query(alias="from", description="First day (inclusive)")]
ToQuery = Annotated[date | None, Query(alias="to", description="Last day (inclusive)")]

ROLLUP_DESCRIPTION = """The user's node (default: you) and, nested in `children`, everyone under
them in the management hierarchy (`users.manager_id`). Give `period` (`2026-Q3`, `2026-07`,
`2026`) or `from` and `to` (both inclusive). You may read your own forecast and those of
the people under you; admins anyone's.

A deal counts when its `close_date` lies in the period. Its forecast category is the
owner's override on an open deal, else its stage's category; won/lost/open comes from the
stage's kind. Soft-deleted deals never count.

- `closed_won`: Σ amount of won deals;
- `commit`: Σ amount of open deals in the `commit` category;
- `best_case`: commit + Σ amount of open `best_case` deals;
- `pipeline`: Σ amount of open deals in every category but `omitted`;
- `weighted_pipeline`: Σ amount × stage probability / 100 over the same open deals;
- `own`: the user's deals; `total`: the user's and everyone's under them;
- `quota`: the user's own quotas whose dates lie within the period, else the sum of their
  direct reports' (rolled) quotas; `gap` = quota − (total.closed_won + total.commit).

Amounts are in the corporate currency: won deals converted at the rate of their close
date, open deals at today's (UTC), quotas at their start day's. Deals in a currency
without a known rate are left out and counted in `unconverted_count`. Managers'
adjustments are listed beside the figures (`adjustments`) and never change them."""


@router.get(
    "",
    operation_id="forecasts-get",
    summary="A user's forecast, rolled up over everyone under them",
    description=ROLLUP_DESCRIPTION,
    responses=errors(404, 422),
)
async def get_forecast(
    principal: Reader,
    session: SessionDep,
    period: PeriodQuery = None,
    from_date: FromQuery = None,
    to_date: ToQuery = None,
    user_id: UserQuery = None,
) -> ForecastOut:
    resolved = await service.query_period(session, period, from_date, to_date)
    return ForecastOut.model_validate(await service.rollup(session, principal, user_id, resolved))


# --- adjustments ----------------------------------------------------------------------


@router.post(
    "/adjustments",
    operation_id="forecasts-create-adjustment",
    summary="Adjust someone's commit or best case (managers above them, admins)",
    description="Kept beside the computed figures, never instead of them; earlier "
    "adjustments stay in the history. The latest one per category and adjusting manager "
    "is shown in the roll-up.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def create_adjustment(
    body: AdjustmentCreate, principal: Manager, session: SessionDep
) -> AdjustmentOut:
    return AdjustmentOut.model_validate(await service.create_adjustment(session, principal, body))


@router.get(
    "/adjustments",
    operation_id="forecasts-list-adjustments",
    summary="History of forecast adjustments",
    responses=errors(404, 422),
)
async def list_adjustments(
    principal: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("created_at", "-created_at")] = None,
    user_id: Annotated[uuid.UUID | None, Query(description="Whose number was adjusted")] = None,
    period: PeriodQuery = None,
    category: AdjustmentCategory | None = None,
) -> ListEnvelope[AdjustmentOut]:
    rows, next_cursor = await service.list_adjustments(
        session,
        principal,
        user_id=user_id,
        period=period,
        category=category,
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(
        data=[AdjustmentOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


# --- submissions ----------------------------------------------------------------------


@router.post(
    "/submissions",
    operation_id="forecasts-create-submission",
    summary="Submit a forecast call for a period",
    description="Every call is kept; the latest per user and period is the forecast that "
    "forecast accuracy compares with what was won. Managers submit for people under them, "
    "admins for anyone.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(422),
)
async def create_submission(
    body: SubmissionCreate, principal: Writer, session: SessionDep, response: Response
) -> SubmissionOut:
    submission = await service.create_submission(session, principal, body)
    response.headers["Location"] = f"/v1/forecasts/submissions/{submission.id}"
    return SubmissionOut.model_validate(submission)


@router.get(
    "/submissions",
    operation_id="forecasts-list-submissions",
    summary="List forecast submissions (newest first)",
    responses=errors(404, 422),
)
async def list_submissions(
    principal: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("submitted_at, period_start", "-submitted_at")] = None,
    user_id: Annotated[uuid.UUID | None, Query(description="Whose forecast")] = None,
    period: PeriodQuery = None,
) -> ListEnvelope[SubmissionOut]:
    rows, next_cursor = await service.list_submissions(
        session,
        principal,
        user_id=user_id,
        period=period,
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(
        data=[SubmissionOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/submissions/{submission_id}",
    operation_id="forecasts-get-submission",
    summary="Get a forecast submission",
    responses=errors(404),
)
async def get_submission(
    submission_id: uuid.UUID, principal: Reader, session: SessionDep
) -> SubmissionOut:
    return SubmissionOut.model_validate(
        await service.get_submission(session, principal, submission_id)
    )


# --- pipeline snapshots ---------------------------------------------------------------


@router.post(
    "/snapshots",
    operation_id="forecasts-take-snapshot",
    summary="Take today's pipeline snapshot now (admins)",
    description="Stores the open pipeline per pipeline, stage, forecast category and owner, "
    "converted to the corporate currency at today's rates (UTC), replacing today's "
    "snapshot if one was taken: one snapshot per day. The follow-ups job takes it daily.",
)
async def take_snapshot(_: Admin, session: SessionDep) -> SnapshotOut:
    snapshot = await service.take_pipeline_snapshot(session, service.today())
    return SnapshotOut(
        snapshot_date=snapshot.snapshot_date,
        currency=snapshot.currency,
        rows=[SnapshotRowOut.model_validate(r) for r in snapshot.rows],
        **snapshot.totals,
    )


@router.get(
    "/trend",
    operation_id="forecasts-trend",
    summary="Pipeline trend from the daily snapshots, per stage, category or owner",
    description="For each day with a snapshot in the range: Σ amount, Σ weighted amount and "
    "the number of open deals per group, zeros included, and the total. Deals in the "
    "`omitted` category are left out unless `include_omitted`. Non-admins see the deals "
    "of the people under them and their own.",
    responses=errors(404, 422),
)
async def get_trend(
    principal: Reader,
    session: SessionDep,
    from_date: Annotated[
        date | None, Query(alias="from", description="First day (default: 89 days before to)")
    ] = None,
    to_date: Annotated[
        date | None, Query(alias="to", description="Last day (default: today)")
    ] = None,
    group_by: TrendGroup = "stage",
    pipeline_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    include_omitted: bool = False,
) -> TrendOut:
    return TrendOut.model_validate(
        await service.trend(
            session,
            principal,
            from_date=from_date,
            to_date=to_date,
            group_by=group_by,
            pipeline_id=pipeline_id,
            owner_id=owner_id,
            include_omitted=include_omitted,
        )
    )
