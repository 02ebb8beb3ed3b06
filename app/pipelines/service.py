"""Pipelines (ordered stages with probabilities, categories and entry requirements) and
custom field definitions. Editing a pipeline never breaks existing deals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.concurrency import check_version
from app.core.errors import Conflict, RuleViolation, ValidationFailed
from app.core.ids import new_id, utcnow
from app.core.repository import get_or_404
from app.models import (
    CustomFieldDefinition,
    Opportunity,
    Pipeline,
    PipelineStage,
    StageHistory,
)
from app.opportunities import stages as rules
from app.opportunities.templates import DEFAULT_TEMPLATE, TEMPLATES, StageTemplate
from app.pipelines.schemas import (
    CustomFieldCreate,
    CustomFieldUpdate,
    PipelineCreate,
    PipelineUpdate,
    StageIn,
)

RESOURCE = "pipeline"
KIND_ORDER = {"open": 0, "won": 1, "lost": 2}
# Number custom fields: the largest decimal exponent, either way, of a value as written
# ("1e100" and "1e-100" pass, "1e101" does not).
MAX_NUMBER_EXPONENT = 100


@dataclass(frozen=True, slots=True)
class PipelineView:
    pipeline: Pipeline
    stages: list[PipelineStage]

    def stage(self, key: str) -> PipelineStage | None:
        return next((s for s in self.stages if s.key == key), None)

    @property
    def first_open(self) -> PipelineStage:
        return next(s for s in self.stages if s.kind == "open")

    def rules(self) -> list[rules.Stage]:
        return [to_rule(s) for s in self.stages]


def to_rule(stage: PipelineStage) -> rules.Stage:
    return rules.Stage(
        key=stage.key,
        position=stage.position,
        kind=rules.StageKind(stage.kind),
        probability=stage.probability,
        forecast_category=stage.forecast_category,
        requirements=tuple(stage.requirements),
    )


def _ordered(stages: list[StageIn]) -> list[StageIn]:
    """Open stages in the order given, then the won stage, then the lost stage."""
    return sorted(stages, key=lambda s: KIND_ORDER[s.kind])  # sort is stable


def _validate(stages: list[StageIn]) -> list[StageIn]:
    ordered = _ordered(stages)
    problems = rules.pipeline_problems(
        [
            rules.Stage(
                s.key,
                i,
                rules.StageKind(s.kind),
                s.probability,
                s.forecast_category,
                tuple(s.requirements),
            )
            for i, s in enumerate(ordered, start=1)
        ]
    )
    if problems:
        raise ValidationFailed(
            f"The stage list is not a valid pipeline: {problems[0].detail}",
            errors=[{"field": "body.stages", **p.as_dict()} for p in problems],
        )
    return ordered


async def _load_stages(
    session: AsyncSession, pipeline_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[PipelineStage]]:
    rows = await session.scalars(
        select(PipelineStage)
        .where(PipelineStage.pipeline_id.in_(pipeline_ids))
        .order_by(PipelineStage.pipeline_id, PipelineStage.position)
    )
    grouped: dict[uuid.UUID, list[PipelineStage]] = {pid: [] for pid in pipeline_ids}
    for stage in rows:
        grouped[stage.pipeline_id].append(stage)
    return grouped


async def list_pipelines(session: AsyncSession) -> list[PipelineView]:
    pipelines = list(
        await session.scalars(
            select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.name, Pipeline.id)
        )
    )
    stages = await _load_stages(session, [p.id for p in pipelines])
    return [PipelineView(p, stages[p.id]) for p in pipelines]


async def get_pipeline(
    session: AsyncSession, pipeline_id: uuid.UUID, *, for_update: bool = False
) -> PipelineView:
    pipeline = await get_or_404(session, Pipeline, pipeline_id, RESOURCE, for_update=for_update)
    stages = await _load_stages(session, [pipeline.id])
    return PipelineView(pipeline, stages[pipeline.id])


async def default_pipeline(session: AsyncSession) -> PipelineView:
    pipeline_id = await session.scalar(select(Pipeline.id).where(Pipeline.is_default))
    if pipeline_id is None:
        raise RuleViolation(
            "The organization has no default pipeline",
            code="no_default_pipeline",
            unmet=[{"code": "no_default_pipeline", "detail": "create one or pass pipeline_id"}],
        )
    return await get_pipeline(session, pipeline_id)


async def _check_name_free(
    session: AsyncSession, name: str, except_id: uuid.UUID | None = None
) -> None:
    stmt = select(Pipeline.id).where(Pipeline.name == name)
    if except_id is not None:
        stmt = stmt.where(Pipeline.id != except_id)
    if (existing := await session.scalar(stmt)) is not None:
        raise Conflict(
            f"A pipeline named {name!r} already exists",
            code="duplicate_pipeline",
            extra={"existing_id": str(existing)},
        )


async def _make_default(session: AsyncSession, pipeline: Pipeline) -> None:
    await session.execute(
        update(Pipeline)
        .where(Pipeline.is_default, Pipeline.id != pipeline.id)
        .values(is_default=False, version=Pipeline.version + 1)
        .execution_options(synchronize_session=False)
    )
    pipeline.is_default = True


def _template_stages(key: str) -> list[StageIn]:
    _, _, stages = TEMPLATES[key]
    return [_stage_in(t) for t in stages]


def _stage_in(t: StageTemplate) -> StageIn:
    return StageIn(
        key=t.key,
        name=t.name,
        kind=t.kind,
        probability=Decimal(t.probability),
        forecast_category=t.forecast_category,
        expected_days=t.expected_days,
        rotting_days=t.rotting_days,
        requirements=list(t.requirements),
    )


async def create_pipeline(
    session: AsyncSession, data: PipelineCreate, *, template: str | None = None
) -> PipelineView:
    description: str | None
    if template is not None:
        if template not in TEMPLATES:
            raise ValidationFailed(
                f"Unknown template {template!r}",
                errors=[
                    {
                        "field": "query.template",
                        "code": "unknown_template",
                        "detail": ", ".join(TEMPLATES),
                    }
                ],
            )
        if data.stages is not None:
            raise ValidationFailed(
                "Give either a template or stages, not both",
                errors=[{"field": "body.stages", "code": "template_and_stages"}],
            )
        template_name, template_description, _ = TEMPLATES[template]
        name = data.name or template_name
        description = data.description or template_description
        stage_list = _template_stages(template)
    else:
        if data.name is None or data.stages is None:
            raise ValidationFailed(
                "A pipeline needs a name and stages (or use ?template=)",
                errors=[
                    {"field": f"body.{f}", "code": "missing"}
                    for f in ("name", "stages")
                    if getattr(data, f) is None
                ],
            )
        name, stage_list = data.name, data.stages
        description = data.description
    ordered = _validate(stage_list)
    await _check_name_free(session, name)
    pipeline = Pipeline(
        id=new_id(), name=name, description=description, is_default=False, template=template
    )
    session.add(pipeline)
    has_default = await session.scalar(select(Pipeline.id).where(Pipeline.is_default))
    if data.is_default or has_default is None:
        await _make_default(session, pipeline)
    stages = [_new_stage(pipeline.id, s, position) for position, s in enumerate(ordered, start=1)]
    session.add_all(stages)
    await session.flush()
    return PipelineView(pipeline, stages)


def _new_stage(pipeline_id: uuid.UUID, data: StageIn, position: int) -> PipelineStage:
    return PipelineStage(
        id=new_id(),
        pipeline_id=pipeline_id,
        key=data.key,
        name=data.name,
        position=position,
        kind=data.kind,
        probability=data.probability,
        forecast_category=data.forecast_category,
        expected_days=data.expected_days,
        rotting_days=data.rotting_days,
        requirements=list(data.requirements),
    )


async def create_default_pipeline(session: AsyncSession) -> PipelineView:
    """The pipeline every new organization starts with."""
    return await create_pipeline(
        session, PipelineCreate(is_default=True), template=DEFAULT_TEMPLATE
    )


async def _stages_in_use(session: AsyncSession, stage_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    if not stage_ids:
        return set()
    deals = select(Opportunity.stage_id).where(Opportunity.stage_id.in_(stage_ids))
    moves = select(StageHistory.to_stage_id).where(
        or_(StageHistory.to_stage_id.in_(stage_ids), StageHistory.from_stage_id.in_(stage_ids))
    )
    used = set(await session.scalars(deals.execution_options(include_deleted=True)))
    used |= set(await session.scalars(moves))
    return used & set(stage_ids)


async def update_pipeline(
    session: AsyncSession,
    pipeline_id: uuid.UUID,
    data: PipelineUpdate,
    expected_version: int | None,
) -> PipelineView:
    view = await get_pipeline(session, pipeline_id, for_update=True)
    pipeline = view.pipeline
    check_version(RESOURCE, pipeline.version, expected_version)
    sent = data.model_fields_set
    if "name" in sent and data.name is not None and data.name != pipeline.name:
        await _check_name_free(session, data.name, pipeline.id)
        pipeline.name = data.name
    if "description" in sent:
        pipeline.description = data.description
    if data.is_default and not pipeline.is_default:
        await _make_default(session, pipeline)
    stages = view.stages
    if data.stages is not None:
        stages = await _replace_stages(session, view, _validate(data.stages))
        # The stage list is part of the pipeline: touching it bumps version and ETag.
        pipeline.updated_at = utcnow()
    await session.flush()
    return PipelineView(pipeline, stages)


async def _replace_stages(
    session: AsyncSession, view: PipelineView, ordered: list[StageIn]
) -> list[PipelineStage]:
    current = {s.key: s for s in view.stages}
    wanted = {s.key for s in ordered}
    removed = [s for key, s in current.items() if key not in wanted]
    in_use = await _stages_in_use(session, [s.id for s in view.stages])
    blocked = [s.key for s in removed if s.id in in_use]
    blocked += [
        s.key
        for s in ordered
        if s.key in current and current[s.key].id in in_use and current[s.key].kind != s.kind
    ]
    if blocked:
        raise RuleViolation(
            "Stages with deals or history cannot be removed or change kind",
            code="stage_in_use",
            unmet=[{"code": "stage_in_use", "detail": key} for key in blocked],
        )
    for gone in removed:
        await session.delete(gone)
    result: list[PipelineStage] = []
    for position, data in enumerate(ordered, start=1):
        existing = current.get(data.key)
        if existing is None:
            stage = _new_stage(view.pipeline.id, data, position)
            session.add(stage)
        else:
            stage = existing
            stage.name, stage.kind, stage.position = data.name, data.kind, position
            stage.probability, stage.forecast_category = data.probability, data.forecast_category
            stage.expected_days, stage.rotting_days = data.expected_days, data.rotting_days
            stage.requirements = list(data.requirements)
        result.append(stage)
    return result


async def delete_pipeline(
    session: AsyncSession, pipeline_id: uuid.UUID, expected_version: int | None
) -> None:
    view = await get_pipeline(session, pipeline_id, for_update=True)
    check_version(RESOURCE, view.pipeline.version, expected_version)
    if view.pipeline.is_default:
        raise RuleViolation(
            "The default pipeline cannot be deleted; make another the default first",
            code="default_pipeline",
            unmet=[{"code": "default_pipeline", "detail": "set is_default on another"}],
        )
    deals = await session.scalar(
        select(func.count())
        .select_from(Opportunity)
        .where(Opportunity.pipeline_id == pipeline_id)
        .execution_options(include_deleted=True)
    )
    if deals:
        raise RuleViolation(
            "The pipeline has deals",
            code="pipeline_in_use",
            unmet=[{"code": "pipeline_in_use", "detail": f"{deals} deal(s)"}],
        )
    for stage in view.stages:
        await session.delete(stage)
    await session.flush()
    await session.delete(view.pipeline)
    await session.flush()


# --- custom fields ------------------------------------------------------------------------


async def list_custom_fields(session: AsyncSession) -> list[CustomFieldDefinition]:
    return list(
        await session.scalars(select(CustomFieldDefinition).order_by(CustomFieldDefinition.key))
    )


async def get_custom_field(
    session: AsyncSession, field_id: uuid.UUID, *, for_update: bool = False
) -> CustomFieldDefinition:
    return await get_or_404(
        session, CustomFieldDefinition, field_id, "custom field", for_update=for_update
    )


async def _check_stage_key(session: AsyncSession, key: str | None) -> None:
    if (
        key is not None
        and await session.scalar(select(PipelineStage.id).where(PipelineStage.key == key).limit(1))
        is None
    ):
        raise ValidationFailed(
            f"No pipeline has a stage {key!r}",
            errors=[{"field": "body.required_from_stage", "code": "not_found", "detail": key}],
        )


def _check_allowed_values(field_type: str, allowed: list[str] | None) -> None:
    if (field_type == "select") != (allowed is not None):
        raise ValidationFailed(
            "allowed_values is required for select fields and only for them",
            errors=[{"field": "body.allowed_values", "code": "select_only"}],
        )


async def create_custom_field(
    session: AsyncSession, data: CustomFieldCreate
) -> CustomFieldDefinition:
    _check_allowed_values(data.field_type, data.allowed_values)
    await _check_stage_key(session, data.required_from_stage)
    existing = await session.scalar(
        select(CustomFieldDefinition.id).where(CustomFieldDefinition.key == data.key)
    )
    if existing is not None:
        raise Conflict(
            f"A custom field {data.key!r} already exists",
            code="duplicate_custom_field",
            extra={"existing_id": str(existing)},
        )
    definition = CustomFieldDefinition(
        id=new_id(),
        entity="opportunity",
        key=data.key,
        label=data.label,
        field_type=data.field_type,
        allowed_values=data.allowed_values,
        required_from_stage=data.required_from_stage,
    )
    session.add(definition)
    await session.flush()
    return definition


async def update_custom_field(
    session: AsyncSession,
    field_id: uuid.UUID,
    data: CustomFieldUpdate,
    expected_version: int | None,
) -> CustomFieldDefinition:
    definition = await get_custom_field(session, field_id, for_update=True)
    check_version("custom field", definition.version, expected_version)
    sent = data.model_fields_set
    allowed = data.allowed_values if "allowed_values" in sent else definition.allowed_values
    _check_allowed_values(definition.field_type, allowed)
    if "required_from_stage" in sent:
        await _check_stage_key(session, data.required_from_stage)
        definition.required_from_stage = data.required_from_stage
    if "label" in sent and data.label is not None:
        definition.label = data.label
    definition.allowed_values = allowed
    await session.flush()
    return definition


async def delete_custom_field(
    session: AsyncSession, field_id: uuid.UUID, expected_version: int | None
) -> None:
    definition = await get_custom_field(session, field_id, for_update=True)
    check_version("custom field", definition.version, expected_version)
    await session.delete(definition)
    await session.flush()


def validate_custom_values(
    definitions: list[CustomFieldDefinition], values: dict[str, Any]
) -> dict[str, Any]:
    """Check values against the definitions; return them in their JSON form."""
    by_key = {d.key: d for d in definitions}
    errors: list[dict[str, Any]] = []
    clean: dict[str, Any] = {}
    for key, value in values.items():
        definition = by_key.get(key)
        field = f"body.custom_fields.{key}"
        if value is None:  # removing a value is always allowed, even of a deleted field
            clean[key] = None
            continue
        if definition is None:
            errors.append({"field": field, "code": "unknown_custom_field"})
            continue
        normalised = _coerce(definition, value)
        if normalised is None:
            errors.append(
                {
                    "field": field,
                    "code": f"expected_{definition.field_type}",
                    "detail": str(value)[:100],
                }
            )
        else:
            clean[key] = normalised
    if errors:
        raise ValidationFailed("Invalid custom field values", errors=errors)
    return clean


def _coerce(definition: CustomFieldDefinition, value: Any) -> Any:
    kind = definition.field_type
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "number" and not isinstance(value, bool) and isinstance(value, int | float | str):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        # NaN and infinities are no numbers; a huge exponent ("1e999999999") would make
        # the plain form stored gigabytes long.
        if not number.is_finite() or abs(int(number.as_tuple().exponent)) > MAX_NUMBER_EXPONENT:
            return None
        return format(number, "f")
    if kind == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            return None
    if kind == "select" and value in (definition.allowed_values or []):
        return value
    return None
