from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.ids import utcnow
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.models import NurtureEnrollment
from app.nurture import service
from app.nurture.schemas import (
    EnrollmentOut,
    EnrollmentStatus,
    ProgramCreate,
    ProgramOut,
    ProgramUpdate,
    RunResult,
    Target,
)

router = APIRouter(tags=["nurture"], route_class=DealbaseRoute, responses=COMMON_ERRORS)
Reader = Annotated[Principal, Depends(require("nurture:read"))]
Manager = Annotated[
    Principal, Depends(require("nurture:write", roles=frozenset({"admin", "manager"})))
]


def _program(program: object, response: Response | None = None) -> ProgramOut:
    out = ProgramOut.model_validate(program)
    if response is not None:
        set_etag(response, out.version)
    return out


@router.get(
    "/nurture-programs",
    operation_id="nurture-list-programs",
    summary="List nurture programs",
    description=service.__doc__ or "",
)
async def list_programs(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("name, created_at", "name")] = None,
    target: Target | None = None,
    is_active: bool | None = None,
) -> ListEnvelope[ProgramOut]:
    rows, next_cursor = await service.list_programs(
        session, target=target, is_active=is_active, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[_program(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/nurture-programs",
    operation_id="nurture-create-program",
    summary="Create a nurture program (managers, admins)",
    description="An entry rule over leads, deals or accounts and ordered steps (content key, "
    "days to wait after the previous step). Active programs enroll matching records at "
    "once on their next change and on every jobs run.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_program(
    body: ProgramCreate, _: Manager, session: SessionDep, response: Response
) -> ProgramOut:
    program = await service.create_program(session, body)
    response.headers["Location"] = f"/v1/nurture-programs/{program.id}"
    return _program(program, response)


@router.get(
    "/nurture-programs/{program_id}",
    operation_id="nurture-get-program",
    summary="Get a nurture program",
    responses=errors(404),
)
async def get_program(
    program_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> ProgramOut:
    return _program(await service.get_program(session, program_id), response)


@router.patch(
    "/nurture-programs/{program_id}",
    operation_id="nurture-update-program",
    summary="Change a nurture program",
    description="Enrolled records keep their position; changed steps apply from the next one.",
    responses=errors(404, 409, 412, 422),
)
async def update_program(
    program_id: uuid.UUID,
    body: ProgramUpdate,
    _: Manager,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> ProgramOut:
    program = await service.update_program(session, program_id, body, expected)
    return _program(program, response)


@router.delete(
    "/nurture-programs/{program_id}",
    operation_id="nurture-delete-program",
    summary="Delete a nurture program that never enrolled anyone",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409, 412),
)
async def delete_program(
    program_id: uuid.UUID, _: Manager, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_program(session, program_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/nurture-programs/{program_id}/run",
    operation_id="nurture-run-program",
    summary="Evaluate a program now (managers, admins)",
    description="What the jobs runner does on every run, for one program: exits, "
    "enrollments, due steps (events `nurture.exited`, `nurture.enrolled`, "
    "`nurture.step_due`).",
    responses=errors(404),
)
async def run_program(program_id: uuid.UUID, _: Manager, session: SessionDep) -> RunResult:
    program = await service.get_program(session, program_id)
    now = utcnow()
    totals = await service.run(session, now, program_id=program.id)
    return RunResult(
        at=now,
        enrolled=totals.enrolled,
        exited=totals.exited,
        steps_due=totals.steps_due,
        completed=totals.completed,
    )


async def _enrollments_out(
    session: SessionDep, rows: list[NurtureEnrollment]
) -> list[EnrollmentOut]:
    steps = await service.steps_of(session, {r.program_id for r in rows})

    def next_content(row: NurtureEnrollment) -> str | None:
        program_steps = steps.get(row.program_id) or []
        if row.status != "active" or row.current_step >= len(program_steps):
            return None
        return str(program_steps[row.current_step]["content_key"])

    return [
        EnrollmentOut.model_validate(
            {
                **{f: getattr(r, f) for f in EnrollmentOut.model_fields if f != "next_content_key"},
                "next_content_key": next_content(r),
            }
        )
        for r in rows
    ]


@router.get(
    "/nurture-enrollments",
    operation_id="nurture-list-enrollments",
    summary="List nurture enrollments",
    description="Who is in which program, at which step, and when the next one falls due.",
)
async def list_enrollments(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("enrolled_at, next_due_at", "-enrolled_at")] = None,
    program_id: uuid.UUID | None = None,
    status: EnrollmentStatus | None = None,
    lead_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
) -> ListEnvelope[EnrollmentOut]:
    rows, next_cursor = await service.list_enrollments(
        session,
        service.EnrollmentFilters(program_id, status, lead_id, opportunity_id, account_id),
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(data=await _enrollments_out(session, rows), next_cursor=next_cursor)


@router.get(
    "/nurture-enrollments/{enrollment_id}",
    operation_id="nurture-get-enrollment",
    summary="Get a nurture enrollment",
    responses=errors(404),
)
async def get_enrollment(enrollment_id: uuid.UUID, _: Reader, session: SessionDep) -> EnrollmentOut:
    [out] = await _enrollments_out(session, [await service.get_enrollment(session, enrollment_id)])
    return out
