from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from app.core.schemas import Resource, Schema, UtcDatetime


class ApiKeyCreate(Schema):
    name: str = Field(min_length=1, max_length=200, examples=["CRM frontend"])
    scopes: list[str] = Field(
        min_length=1,
        examples=[["accounts:read", "accounts:write"]],
        description="`*` for everything the user may do, or `resource:read|write`.",
    )
    user_id: uuid.UUID | None = Field(
        default=None, description="Whose key (admins only; default: yourself)."
    )
    expires_at: UtcDatetime | None = None


class ApiKeyOut(Resource):
    name: str
    user_id: uuid.UUID | None
    partner_id: uuid.UUID | None = Field(description="Set for partner keys")
    prefix: str = Field(description="The token's first characters, to tell keys apart.")
    scopes: list[str]
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by_id: uuid.UUID | None


class ApiKeyCreated(ApiKeyOut):
    token: str = Field(description="The secret bearer token. Shown only in this response.")
