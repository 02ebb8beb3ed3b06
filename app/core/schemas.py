"""Shared Pydantic pieces: resource base, problem document, documented error responses."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.core import emails  # noqa: F401  (caches e-mail domain checks for EmailStr)

# Money and percentages travel as decimal strings ("12500.00"), never floats.
DecimalString = Annotated[
    Decimal,
    PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "format": "decimal"}),
]

TWO_PLACES = Decimal("0.01")
# The largest value of a PostgreSQL INTEGER column: bound every integer input stored in or
# compared with one (a larger value would fail in the driver, a 500, instead of a 4xx).
INT32_MAX = 2_147_483_647
# An input amount or percentage with at most two decimals, normalised to exactly two, as
# NUMERIC(…, 2) stores it: what a write returns is what later reads return. At most 20
# digits, as NUMERIC(20, 2) holds (checked before normalising: quantizing a longer number
# overflows the decimal context).
Decimal2 = Annotated[
    DecimalString,
    Field(decimal_places=2, max_digits=20),
    AfterValidator(lambda v: v.quantize(TWO_PLACES)),
]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# An input instant normalised to UTC (one without an offset is taken as UTC), as reads
# return it ("…Z"): what a write returns is what later reads return.
UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


# Set while a model validates a dict already searched for NUL as a whole.
_NUL_CHECKED: ContextVar[bool] = ContextVar("nul_checked", default=False)


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_nul(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        # PostgreSQL text cannot hold NUL: refuse it here (422), not at the INSERT (500).
        # The outermost model searches its whole input once; the models nested in it
        # validate parts of that input and skip the search (a KPI summary's nested
        # results searched their parts again: ~19,000 calls a summary).
        if _NUL_CHECKED.get() or not isinstance(data, dict):
            return handler(data)
        if _has_nul(data):
            raise ValueError("text must not contain NUL (\\u0000) characters")
        token = _NUL_CHECKED.set(True)
        try:
            return handler(data)
        finally:
            _NUL_CHECKED.reset(token)


class PatchSchema(Schema):
    """A PATCH body: omitted fields stay as they are; ``null`` clears a field and is only
    accepted for the fields listed in ``nullable`` (a 422 names any other)."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _reject_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise ValueError("cannot be null")
        return value


class LoadedAttributes:
    """An ORM instance read as plain attributes: the values it has loaded (its instance
    dict) are copied, anything else (a property, a column not loaded) is read through the
    instance, as before.

    Each read through SQLAlchemy's attribute descriptor costs ~0.4 µs, and a response
    model reads 10–40 of them per row: ~12 % of a list page's CPU.
    """

    def __init__(self, instance: object) -> None:
        self.__dict__.update(vars(instance))
        self.__dict__["_loaded_from"] = instance

    def __getattr__(self, name: str) -> Any:
        # Only called for names the copy lacks.
        return getattr(self.__dict__["_loaded_from"], name)


_T = TypeVar("_T")


def loaded(instance: _T) -> _T:
    """``instance``'s attributes at plain-attribute cost (``LoadedAttributes``), typed as
    the instance itself."""
    return cast(_T, LoadedAttributes(instance))


class Resource(Schema):
    """A stored record as the API returns it."""

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _refuse_nul(cls, data: Any) -> Any:
        # Built from stored rows, which cannot hold NUL: the input check (Schema's, replaced
        # here by name) cost a list page ~12 % of its CPU. ORM instances are read through
        # their loaded values instead (LoadedAttributes).
        if hasattr(data, "_sa_instance_state"):
            return LoadedAttributes(data)
        return data


class VersionedResource(Resource):
    version: int = Field(description="Increments on every change; sent back as the ETag.")


class ProblemError(BaseModel):
    field: str | None = None
    code: str
    detail: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "type": "https://dealbase.dev/problems/not-found",
                "title": "Not found",
                "status": 404,
                "detail": "account not found",
                "code": "not_found",
            }
        },
    )

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[ProblemError] | None = None
    request_id: str | None = None


_DESCRIPTIONS = {
    400: "Malformed request: bad JSON, unknown query parameter, invalid sort or cursor",
    401: "Missing, invalid, revoked or expired API key",
    403: "The key lacks the scope, or the user the role",
    404: "Not found, or belongs to another organization",
    409: "A domain rule refused the change, or it conflicts with existing data",
    412: "If-Match does not match the current version",
    413: "Request body too large",
    422: "The body failed validation; `errors` names each field",
    429: "Rate limited; see Retry-After",
    500: "A bug; reported with the request id",
    503: "The database is unreachable; retry",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses (problem+json)."""
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for status in statuses
    }


# Every authenticated operation can answer these.
COMMON_ERRORS = errors(400, 401, 403, 429, 500, 503)
