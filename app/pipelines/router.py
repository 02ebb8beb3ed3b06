from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.core.auth import Principal
from app.core.deps import ADMIN, IfMatch, SessionDep, require, set_etag
from app.core.pagination import ListEnvelope
from app.core.routing import DealbaseRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.opportunities import stages as rules
from app.opportunities.templates import TEMPLATES
from app.pipelines import service
from app.pipelines.schemas import (
    CustomFieldCreate,
    CustomFieldOut,
    CustomFieldUpdate,
    PipelineCreate,
    PipelineOut,
    PipelineUpdate,
    RequirementOut,
    StageOut,
    TemplateOut,
)

router = APIRouter(route_class=DealbaseRoute, responses=COMMON_ERRORS)
Reader = Annotated[Principal, Depends(require("pipelines:read"))]
Admin = Annotated[Principal, Depends(require("pipelines:write", roles=ADMIN))]


def _out(view: service.PipelineView) -> PipelineOut:
    pipeline = view.pipeline
    return PipelineOut(
        id=pipeline.id,
        created_at=pipeline.created_at,
        updated_at=pipeline.updated_at,
        version=pipeline.version,
        name=pipeline.name,
        description=pipeline.description,
        is_default=pipeline.is_default,
        template=pipeline.template,
        stages=[StageOut.model_validate(s) for s in view.stages],
    )


@router.get(
    "/pipelines",
    tags=["pipelines"],
    operation_id="pipelines-list",
    summary="List pipelines with their stages (the default first)",
)
async def list_pipelines(_: Reader, session: SessionDep) -> ListEnvelope[PipelineOut]:
    return ListEnvelope(
        data=[_out(v) for v in await service.list_pipelines(session)], next_cursor=None
    )


@router.get(
    "/pipelines/requirements",
    tags=["pipelines"],
    operation_id="pipelines-requirements",
    summary="The entry requirements a stage can have",
)
async def list_requirements(_: Reader) -> ListEnvelope[RequirementOut]:
    documented = [RequirementOut(code=c, description=d) for c, d in rules.REQUIREMENTS.items()]
    documented += [
        RequirementOut(
            code=f"{rules.ROLE_PRESENT}{role}", description=f"a {role} is on the buying committee"
        )
        for role in rules.COMMITTEE_ROLES
    ]
    documented.append(
        RequirementOut(
            code=f"{rules.FIELD_SET}<custom field key>", description="the custom field is set"
        )
    )
    return ListEnvelope(data=documented, next_cursor=None)


@router.get(
    "/pipelines/templates",
    tags=["pipelines"],
    operation_id="pipelines-templates",
    summary="Pipeline templates for POST /v1/pipelines?template=",
)
async def list_templates(_: Reader) -> ListEnvelope[TemplateOut]:
    templates = [
        TemplateOut(key=key, name=name, description=description, stages=[s.key for s in stages])
        for key, (name, description, stages) in TEMPLATES.items()
    ]
    return ListEnvelope(data=templates, next_cursor=None)


@router.post(
    "/pipelines",
    tags=["pipelines"],
    operation_id="pipelines-create",
    summary="Create a pipeline (from stages or a template; admins)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_pipeline(
    body: PipelineCreate,
    _: Admin,
    session: SessionDep,
    response: Response,
    template: Annotated[str | None, Query(description=f"One of: {', '.join(TEMPLATES)}")] = None,
) -> PipelineOut:
    view = await service.create_pipeline(session, body, template=template)
    set_etag(response, view.pipeline.version)
    response.headers["Location"] = f"/v1/pipelines/{view.pipeline.id}"
    return _out(view)


@router.get(
    "/pipelines/{pipeline_id}",
    tags=["pipelines"],
    operation_id="pipelines-get",
    summary="Get a pipeline",
    responses=errors(404),
)
async def get_pipeline(
    pipeline_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> PipelineOut:
    view = await service.get_pipeline(session, pipeline_id)
    set_etag(response, view.pipeline.version)
    return _out(view)


@router.patch(
    "/pipelines/{pipeline_id}",
    tags=["pipelines"],
    operation_id="pipelines-update",
    summary="Change a pipeline and its stages (admins)",
    description="`stages` replaces the whole list, matched by key: stages with deals or "
    "history cannot be removed (409); order is list order.",
    responses=errors(404, 409, 412, 422),
)
async def update_pipeline(
    pipeline_id: uuid.UUID,
    body: PipelineUpdate,
    _: Admin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> PipelineOut:
    view = await service.update_pipeline(session, pipeline_id, body, expected)
    set_etag(response, view.pipeline.version)
    return _out(view)


@router.delete(
    "/pipelines/{pipeline_id}",
    tags=["pipelines"],
    operation_id="pipelines-delete",
    summary="Delete a pipeline without deals (admins)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 409, 412),
)
async def delete_pipeline(
    pipeline_id: uuid.UUID, _: Admin, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_pipeline(session, pipeline_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- custom fields ------------------------------------------------------------------------


@router.get(
    "/custom-fields",
    tags=["custom-fields"],
    operation_id="custom-fields-list",
    summary="Custom field definitions for opportunities",
)
async def list_custom_fields(_: Reader, session: SessionDep) -> ListEnvelope[CustomFieldOut]:
    definitions = await service.list_custom_fields(session)
    return ListEnvelope(
        data=[CustomFieldOut.model_validate(d) for d in definitions], next_cursor=None
    )


@router.post(
    "/custom-fields",
    tags=["custom-fields"],
    operation_id="custom-fields-create",
    summary="Define a custom field (admins)",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_custom_field(
    body: CustomFieldCreate, _: Admin, session: SessionDep, response: Response
) -> CustomFieldOut:
    definition = await service.create_custom_field(session, body)
    set_etag(response, definition.version)
    response.headers["Location"] = f"/v1/custom-fields/{definition.id}"
    return CustomFieldOut.model_validate(definition)


@router.get(
    "/custom-fields/{field_id}",
    tags=["custom-fields"],
    operation_id="custom-fields-get",
    summary="Get a custom field definition",
    responses=errors(404),
)
async def get_custom_field(
    field_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> CustomFieldOut:
    definition = await service.get_custom_field(session, field_id)
    set_etag(response, definition.version)
    return CustomFieldOut.model_validate(definition)


@router.patch(
    "/custom-fields/{field_id}",
    tags=["custom-fields"],
    operation_id="custom-fields-update",
    summary="Change a custom field definition (admins)",
    responses=errors(404, 412, 422),
)
async def update_custom_field(
    field_id: uuid.UUID,
    body: CustomFieldUpdate,
    _: Admin,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> CustomFieldOut:
    definition = await service.update_custom_field(session, field_id, body, expected)
    set_etag(response, definition.version)
    return CustomFieldOut.model_validate(definition)


@router.delete(
    "/custom-fields/{field_id}",
    tags=["custom-fields"],
    operation_id="custom-fields-delete",
    summary="Delete a custom field definition (admins)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_custom_field(
    field_id: uuid.UUID, _: Admin, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_custom_field(session, field_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
