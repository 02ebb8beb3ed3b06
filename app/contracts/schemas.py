from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from app.core.schemas import (
    INT32_MAX,
    DecimalString,
    PatchSchema,
    Resource,
    Schema,
    UtcDatetime,
    VersionedResource,
)

ContractType = Literal["msa", "order_form"]
ContractStatus = Literal["draft", "sent_for_signature", "signed", "declined", "terminated"]


class ContractTerms(Schema):
    contract_type: ContractType = "order_form"
    start_date: date
    end_date: date | None = Field(
        default=None, description="Default: start + the quote's term (order forms)"
    )
    renewal_term_months: int | None = Field(default=None, ge=1, le=120)
    auto_renew: bool = False
    renewal_notice_days: int = Field(
        default=90, ge=0, le=730, description="A renewal deal is opened this long before end"
    )
    sla: dict[str, Any] = Field(
        default_factory=dict, examples=[{"uptime_pct": "99.9", "response_hours": 4}]
    )

    @model_validator(mode="after")
    def _period(self) -> ContractTerms:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class ContractCreate(ContractTerms):
    account_id: uuid.UUID
    opportunity_id: uuid.UUID | None = None


class ContractUpdate(PatchSchema):
    nullable = frozenset({"end_date", "renewal_term_months"})

    end_date: date | None = None
    renewal_term_months: int | None = Field(default=None, ge=1, le=120)
    auto_renew: bool | None = None
    renewal_notice_days: int | None = Field(default=None, ge=0, le=730)
    sla: dict[str, Any] | None = None


class AcceptIn(Schema):
    contract: ContractTerms | None = Field(
        default=None, description="Also create the contract for the accepted version"
    )


class DocumentIn(Schema):
    filename: str = Field(min_length=1, max_length=300, examples=["siparis-formu-v2.pdf"])
    content_type: str = Field(default="application/pdf", max_length=100)
    content_base64: str | None = Field(
        default=None, description="The bytes (optional: metadata and checksum are enough)"
    )
    checksum_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    size_bytes: int | None = Field(default=None, ge=0, le=INT32_MAX)

    @model_validator(mode="after")
    def _content_or_checksum(self) -> DocumentIn:
        if (self.content_base64 is None) == (self.checksum_sha256 is None):
            raise ValueError("send content_base64 or checksum_sha256 (exactly one)")
        return self


class DocumentOut(Resource):
    number: int
    filename: str
    content_type: str
    size_bytes: int | None
    checksum_sha256: str
    e_signature_status: Literal["none", "sent", "signed", "declined"]


class SignatureEvent(Schema):
    provider_event_id: str = Field(
        min_length=1, max_length=200, description="Retried callbacks apply once"
    )
    event: Literal["sent", "viewed", "signed", "declined"]
    occurred_at: UtcDatetime | None = None
    document_number: int | None = Field(default=None, description="Default: the latest")


class ContractOut(VersionedResource):
    account_id: uuid.UUID
    opportunity_id: uuid.UUID | None
    quote_id: uuid.UUID | None
    quote_version: int | None
    contract_type: ContractType
    status: ContractStatus
    start_date: date
    end_date: date | None
    renewal_term_months: int | None
    auto_renew: bool
    renewal_notice_days: int
    annual_value: DecimalString | None
    currency: str | None
    sla: dict[str, Any]
    signed_at: datetime | None
    renewal_opportunity_id: uuid.UUID | None
    documents: list[DocumentOut]
