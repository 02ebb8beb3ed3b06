"""The DomainError hierarchy and RFC 9457 problem documents.

No FastAPI here: services raise these; ``app/core/problems.py`` renders them over HTTP.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE_URL = "https://dealbase.dev/problems/"


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        if title:
            self.title = title
        self.errors = errors
        self.extra = extra or {}
        self.headers = headers or {}

    def to_problem(self, request_id: str | None = None) -> dict[str, Any]:
        return problem(
            self.status,
            self.code,
            self.title,
            self.detail,
            errors=self.errors,
            extra=self.extra,
            request_id=request_id,
        )


class BadRequest(DomainError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"

    def __init__(self, resource: str, *, detail: str | None = None) -> None:
        super().__init__(detail or f"{resource} not found")


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class RuleViolation(Conflict):
    """A domain rule refused the change; ``unmet`` names every unmet requirement."""

    code, title = "rule_violation", "Rule violation"

    def __init__(
        self,
        detail: str,
        *,
        unmet: list[dict[str, Any]],
        code: str | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail, code=code, title=title, errors=unmet)


def refused(code: str, detail: str) -> RuleViolation:
    """A rule refusal with a single unmet condition named like the problem itself."""
    return RuleViolation(detail, code=code, unmet=[{"code": code, "detail": detail}])


class PreconditionFailed(DomainError):
    status, code, title = 412, "precondition_failed", "Precondition failed"


class PayloadTooLarge(DomainError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class ValidationFailed(DomainError):
    status, code, title = 422, "validation_failed", "Validation failed"


class RateLimited(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Rate limit exceeded; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE_URL + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    if request_id:
        body["request_id"] = request_id
    return body


def invalid_reference(field: str, value: object, what: str) -> ValidationFailed:
    """A body field names a row that does not exist in this organization."""
    return ValidationFailed(
        f"{field} does not name {what} of this organization",
        errors=[{"field": f"body.{field}", "code": "not_found", "detail": str(value)}],
    )
