from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status

from app.audit import service as audit_service
from app.audit.schemas import FieldChangeOut
from app.core.auth import Principal
from app.core.deps import ADMIN, IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, INT32_MAX, errors
from app.core.tenancy import actor_of
from app.leads import imports, scoring, service
from app.leads.schemas import (
    AccountCandidate,
    ContactCandidate,
    ConversionOut,
    ConvertIn,
    ImportJobOut,
    LeadCreate,
    LeadOut,
    LeadSource,
    LeadStatus,
    LeadUpdate,
    ScoringRuleCreate,
    ScoringRuleOut,
    ScoringRuleUpdate,
    StatusChange,
    StatusHistoryOut,
)
from app.models import ImportJob

router = APIRouter(route_class=DealbaseRoute, responses=COMMON_ERRORS)
Reader = Annotated[Principal, Depends(require("leads:read"))]
Writer = Annotated[Principal, Depends(require("leads:write"))]
Admin = Annotated[Principal, Depends(require("leads:write", roles=ADMIN))]
LEAD_SORT = "created_at, updated_at, score, last_name"


def _respond(lead: Any, response: Response) -> LeadOut:
    set_etag(response, lead.version)
    return LeadOut.model_validate(lead)


@router.get("/leads", tags=["leads"], operation_id="leads-list", summary="List leads")
async def list_leads(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query(LEAD_SORT, "-created_at")] = None,
    status: LeadStatus | None = None,
    source: LeadSource | None = None,
    owner_id: uuid.UUID | None = None,
    territory_id: uuid.UUID | None = None,
    email: Annotated[str | None, Query(description="Exact, case-insensitive")] = None,
    campaign: str | None = None,
    import_job_id: uuid.UUID | None = None,
    score_min: Annotated[int | None, Query(ge=-INT32_MAX, le=INT32_MAX)] = None,
    score_max: Annotated[int | None, Query(ge=-INT32_MAX, le=INT32_MAX)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> ListEnvelope[LeadOut]:
    filters = service.LeadFilters(
        status,
        source,
        owner_id,
        territory_id,
        email,
        campaign,
        import_job_id,
        score_min,
        score_max,
        created_after,
        created_before,
    )
    rows, next_cursor = await service.list_leads(
        session, filters, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[LeadOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/accounts/{account_id}/leads",
    tags=["accounts"],
    operation_id="accounts-leads",
    summary="Leads converted into the account, and open leads from its domain",
    responses=errors(404),
)
async def account_leads(
    account_id: uuid.UUID,
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query(LEAD_SORT, "-created_at")] = None,
    status: LeadStatus | None = None,
) -> ListEnvelope[LeadOut]:
    filters = service.LeadFilters(status=status, account_id=account_id)
    rows, next_cursor = await service.list_leads(
        session, filters, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[LeadOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/leads",
    tags=["leads"],
    operation_id="leads-create",
    summary="Create a lead",
    description="Assigned to a territory (and a member, round-robin, unless `owner_id` is "
    "given) and scored on creation. An open lead with the same e-mail is a 409 unless "
    "`allow_duplicate=true`.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_lead(
    body: LeadCreate,
    principal: Writer,
    session: SessionDep,
    response: Response,
    allow_duplicate: bool = False,
) -> LeadOut:
    lead = await service.create_lead(session, principal, body, allow_duplicate=allow_duplicate)
    response.headers["Location"] = f"/v1/leads/{lead['id']}"
    set_etag(response, lead["version"])
    return LeadOut.model_validate(lead)


@router.post(
    "/leads/import",
    tags=["leads"],
    operation_id="leads-import",
    summary="Import up to 100,000 leads (CSV with a header row, or a JSON array)",
    description="Send `Content-Type: text/csv` or `application/json`. Answers 202 with the "
    "job; follow it at `GET /v1/import-jobs/{id}`. Invalid rows are reported per row; the "
    "valid ones land together (all or nothing).",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    },
)
async def import_leads(
    request: Request,
    principal: Writer,
    session: SessionDep,
    background: BackgroundTasks,
    response: Response,
) -> ImportJobOut:
    rows = imports.parse_rows(await request.body(), request.headers.get("content-type", ""))
    job = await imports.create_job(session, len(rows), principal.user_id)
    background.add_task(
        imports.run_import,
        request.app.state.sessionmaker,
        organization_id=principal.organization_id,
        job_id=job.id,
        rows=rows,
        actor=actor_of(session),
    )
    response.headers["Location"] = f"/v1/import-jobs/{job.id}"
    return _job_out(job)


def _job_out(job: ImportJob) -> ImportJobOut:
    return ImportJobOut.model_validate(
        {
            **{c: getattr(job, c) for c in ImportJobOut.model_fields if c != "created_leads"},
            "created_leads": f"/v1/leads?import_job_id={job.id}",
        }
    )


@router.get(
    "/import-jobs/{job_id}",
    tags=["leads"],
    operation_id="leads-import-job",
    summary="Progress and per-row errors of an import",
    responses=errors(404),
)
async def get_import_job(job_id: uuid.UUID, _: Reader, session: SessionDep) -> ImportJobOut:
    return _job_out(await imports.get_job(session, job_id))


@router.get(
    "/leads/{lead_id}",
    tags=["leads"],
    operation_id="leads-get",
    summary="Get a lead",
    responses=errors(404),
)
async def get_lead(
    lead_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> LeadOut:
    return _respond(await service.get_lead(session, lead_id), response)


@router.patch(
    "/leads/{lead_id}",
    tags=["leads"],
    operation_id="leads-update",
    summary="Update a lead",
    description="Re-scores the lead. The status changes only through /status and /convert.",
    responses=errors(404, 409, 412, 422),
)
async def update_lead(
    lead_id: uuid.UUID,
    body: LeadUpdate,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> LeadOut:
    return _respond(await service.update_lead(session, lead_id, body, expected), response)


@router.delete(
    "/leads/{lead_id}",
    tags=["leads"],
    operation_id="leads-delete",
    summary="Delete a lead (soft)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_lead(
    lead_id: uuid.UUID, _: Writer, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_lead(session, lead_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/leads/{lead_id}/status",
    tags=["leads"],
    operation_id="leads-change-status",
    summary="Move a lead through its lifecycle",
    description="new → mql → sal → sql (BANT confirmed, unless the org turns that off); "
    "disqualified (with a reason code) from any open status; recycled from sal or sql. A "
    "refused move is a 409 naming every unmet requirement.",
    responses=errors(404, 409, 412, 422),
)
async def change_status(
    lead_id: uuid.UUID,
    body: StatusChange,
    _: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> LeadOut:
    return _respond(await service.change_status(session, lead_id, body, expected), response)


@router.get(
    "/leads/{lead_id}/history",
    tags=["leads"],
    operation_id="leads-history",
    summary="Status changes of a lead, newest first",
    responses=errors(404),
)
async def lead_history(
    lead_id: uuid.UUID, _: Reader, session: SessionDep, page: PageDep
) -> ListEnvelope[StatusHistoryOut]:
    rows, next_cursor = await service.status_history(
        session, lead_id, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(
        data=[StatusHistoryOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/leads/{lead_id}/field-history",
    tags=["leads"],
    operation_id="leads-field-history",
    summary="Field changes of a lead, newest first",
    responses=errors(404),
)
async def lead_field_history(
    lead_id: uuid.UUID, _: Reader, session: SessionDep, page: PageDep
) -> ListEnvelope[FieldChangeOut]:
    await service.get_lead(session, lead_id)
    rows, next_cursor = await audit_service.field_history(
        session, service.RESOURCE, lead_id, field=None, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(
        data=[FieldChangeOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/leads/{lead_id}/convert",
    tags=["leads"],
    operation_id="leads-convert",
    summary="Convert a qualified lead into account, contact and optionally a deal",
    description="Atomic. The account is matched by domain, then by normalised name (never "
    "duplicated); the contact by e-mail within it. `dry_run=true` shows the matches and what "
    "would be created, writing nothing.",
    responses=errors(404, 409, 412, 422),
)
async def convert(
    lead_id: uuid.UUID,
    body: ConvertIn,
    principal: Writer,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
    dry_run: bool = False,
) -> ConversionOut:
    lead, plan, will_create = await service.convert(
        session, principal, lead_id, body, dry_run=dry_run, expected_version=expected
    )
    set_etag(response, lead.version)
    account = plan.account
    contact = plan.contact
    return ConversionOut(
        dry_run=dry_run,
        lead_id=lead.id,
        account=AccountCandidate(
            id=account.id,
            name=account.name,
            domain=account.domain,
            matched_by=plan.account_matched_by,
        )
        if account is not None and plan.account_matched_by
        else None,
        contact=ContactCandidate(
            id=contact.id,
            name=f"{contact.first_name} {contact.last_name}",
            email=contact.email,
            matched_by="email",
        )
        if contact is not None and (dry_run or "contact" not in will_create)
        else None,
        will_create=will_create,
        account_id=lead.converted_account_id,
        contact_id=lead.converted_contact_id,
        opportunity_id=lead.converted_opportunity_id,
    )


# --- scoring rules ------------------------------------------------------------------------


@router.get(
    "/lead-scoring-rules",
    tags=["leads"],
    operation_id="leads-list-scoring-rules",
    summary="Lead scoring rules",
)
async def list_rules(_: Reader, session: SessionDep) -> ListEnvelope[ScoringRuleOut]:
    rules = await service.list_rules(session)
    return ListEnvelope(data=[ScoringRuleOut.model_validate(r) for r in rules], next_cursor=None)


@router.post(
    "/lead-scoring-rules",
    tags=["leads"],
    operation_id="leads-create-scoring-rule",
    summary="Add a scoring rule (admins)",
    description=scoring.__doc__ or "",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_rule(
    body: ScoringRuleCreate, _: Admin, session: SessionDep, response: Response
) -> ScoringRuleOut:
    rule = await service.create_rule(session, body)
    set_etag(response, rule.version)
    return ScoringRuleOut.model_validate(rule)


@router.patch(
    "/lead-scoring-rules/{rule_id}",
    tags=["leads"],
    operation_id="leads-update-scoring-rule",
    summary="Change a scoring rule (admins)",
    responses=errors(404, 409, 412, 422),
)
async def update_rule(
    rule_id: uuid.UUID,
    body: ScoringRuleUpdate,
    _: Admin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> ScoringRuleOut:
    rule = await service.update_rule(session, rule_id, body, expected)
    set_etag(response, rule.version)
    return ScoringRuleOut.model_validate(rule)


@router.delete(
    "/lead-scoring-rules/{rule_id}",
    tags=["leads"],
    operation_id="leads-delete-scoring-rule",
    summary="Delete a scoring rule (admins)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_rule(
    rule_id: uuid.UUID, _: Admin, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_rule(session, rule_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/leads/rescore",
    tags=["leads"],
    operation_id="leads-rescore",
    summary="Re-score every open lead with the current rules (admins)",
)
async def rescore(_: Admin, session: SessionDep) -> dict[str, int]:
    return {"rescored": await service.rescore_open_leads(session)}
