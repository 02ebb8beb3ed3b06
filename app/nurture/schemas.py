from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from app.core.schemas import PatchSchema, Resource, Schema, UtcDatetime, VersionedResource

Target = Literal["lead", "opportunity", "account"]
LeadStatus = Literal["new", "mql", "sal", "sql", "recycled"]
Segment = Literal["smb", "mid_market", "enterprise"]
Lifecycle = Literal["prospect", "customer", "former_customer"]
EnrollmentStatus = Literal["active", "completed", "exited"]

# Which entry-rule fields apply to which target.
RULE_FIELDS: dict[str, frozenset[str]] = {
    "lead": frozenset({"statuses", "min_score", "max_score", "segments", "min_days_since_touch"}),
    "opportunity": frozenset({"pipeline_id", "stages", "segments", "min_days_since_touch"}),
    "account": frozenset({"lifecycles", "segments"}),
}


class EntryRule(Schema):
    """Every given condition must hold (AND). Leads that converted or were disqualified
    and deals that closed never match; a record that stops matching leaves the program."""

    statuses: list[LeadStatus] | None = Field(default=None, min_length=1)
    min_score: int | None = Field(default=None, ge=0, le=1000)
    max_score: int | None = Field(default=None, ge=0, le=1000)
    segments: list[Segment] | None = Field(
        default=None, min_length=1, description="The lead's, or the deal's/account's account"
    )
    pipeline_id: uuid.UUID | None = None
    stages: list[str] | None = Field(
        default=None, min_length=1, description="Stage keys of pipeline_id (open stages)"
    )
    lifecycles: list[Lifecycle] | None = Field(default=None, min_length=1)
    min_days_since_touch: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="No activity for at least this many days (lead: last activity or "
        "creation; deal: last touch or creation)",
    )

    @model_validator(mode="after")
    def _score_range(self) -> EntryRule:
        low, high = self.min_score, self.max_score
        if low is not None and high is not None and low > high:
            raise ValueError("min_score is above max_score")
        if self.stages is not None and self.pipeline_id is None:
            raise ValueError("stages need pipeline_id")
        return self


class Step(Schema):
    content_key: str = Field(min_length=1, max_length=200, examples=["case-study-textile"])
    wait_days: int = Field(ge=0, le=365, description="Days after the previous step")


class ProgramCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    target: Target
    entry_rule: EntryRule
    steps: list[Step] = Field(min_length=1, max_length=50)
    is_active: bool = False


class ProgramUpdate(PatchSchema):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    entry_rule: EntryRule | None = None
    steps: list[Step] | None = Field(default=None, min_length=1, max_length=50)
    is_active: bool | None = None


class ProgramOut(VersionedResource):
    name: str
    description: str | None
    target: Target
    entry_rule: EntryRule
    steps: list[Step]
    is_active: bool


class EnrollmentOut(Resource):
    program_id: uuid.UUID
    lead_id: uuid.UUID | None
    opportunity_id: uuid.UUID | None
    account_id: uuid.UUID | None
    status: EnrollmentStatus
    current_step: int = Field(description="Index of the next step to fall due")
    next_content_key: str | None = Field(description="The next step's content, if any")
    next_due_at: datetime | None
    enrolled_at: datetime
    ended_at: datetime | None
    exit_reason: str | None


class RunResult(Schema):
    at: UtcDatetime
    enrolled: int
    exited: int
    steps_due: int
    completed: int
