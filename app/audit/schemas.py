from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.core.schemas import Schema


class FieldChangeOut(Schema):
    id: uuid.UUID
    field: str
    old_value: Any
    new_value: Any
    changed_at: datetime
    actor_user_id: uuid.UUID | None
    actor_partner_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    request_id: str | None


class AuditLogOut(Schema):
    id: uuid.UUID
    at: datetime
    action: str
    resource_type: str
    resource_id: uuid.UUID | None
    changed_fields: list[str]
    actor_user_id: uuid.UUID | None
    actor_partner_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    request_id: str | None
