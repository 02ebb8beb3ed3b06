"""Time-ordered UUIDv7 identifiers and UTC time."""

import uuid
from datetime import UTC, datetime

import uuid_utils.compat


def new_id() -> uuid.UUID:
    return uuid_utils.compat.uuid7()


def utcnow() -> datetime:
    return datetime.now(UTC)
