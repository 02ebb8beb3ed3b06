"""Render every error as RFC 9457 application/problem+json."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import DomainError, problem

log = logging.getLogger("dealbase.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"

# HTTP statuses raised by Starlette itself (unknown route, wrong method, …).
_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_response(
    request: Request, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(request, exc.to_problem(_request_id(request)), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        body = problem(
            400,
            "malformed_json",
            "Malformed JSON",
            "The request body is not valid JSON",
            request_id=_request_id(request),
        )
        return problem_response(request, body)
    errors = [
        {
            "field": _field_path(tuple(e.get("loc", ()))),
            "code": e.get("type", "invalid"),
            "detail": e.get("msg", ""),
        }
        for e in raw
    ]
    in_body = all(tuple(e.get("loc", ("body",)))[:1] == ("body",) for e in raw)
    if in_body:
        status, code, title = 422, "validation_failed", "Validation failed"
        detail = f"The request body has {len(errors)} invalid field(s)"
    else:
        status, code, title = 400, "invalid_parameter", "Invalid parameter"
        detail = f"{len(errors)} invalid parameter(s)"
    body = problem(status, code, title, detail, errors=errors, request_id=_request_id(request))
    return problem_response(request, body)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    if exc.status_code == 404:
        detail = "No such resource or route"
    body = problem(exc.status_code, code, title, detail, request_id=_request_id(request))
    return problem_response(request, body, getattr(exc, "headers", None))


# SQLSTATEs meaning "the database cannot serve right now" rather than "this request is
# wrong": class 08 (connection exception), class 53 (insufficient resources: too many
# connections, out of memory, disk full) and 57P01-57P05 (shutting down, starting up, …).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


def _causes(exc: BaseException) -> list[BaseException]:
    """The error, the driver error SQLAlchemy wrapped (``orig``) and their causes."""
    found: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        error = todo.pop()
        if any(error is seen for seen in found):
            continue
        found.append(error)
        for inner in (getattr(error, "orig", None), error.__cause__):
            if isinstance(inner, BaseException):
                todo.append(inner)
    return found


def _is_unavailable(exc: BaseException) -> bool:
    """The database is unreachable, restarting or overloaded (→ 503, retry), as opposed to
    a bug (→ 500)."""
    for error in _causes(exc):
        if isinstance(
            error,
            OperationalError
            | OSError
            | SQLAlchemyTimeoutError  # no pooled connection free within the pool's timeout
            | asyncpg.PostgresConnectionError,
        ):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if "connection" in type(error).__name__.lower():
            return True
    return False


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    rid = _request_id(request)
    if isinstance(exc, IntegrityError):
        # A race slipped past a service check (e.g. two creates of one unique value).
        log.warning("integrity error", extra={"request_id": rid, "error": str(exc.orig)})
        body = problem(
            409,
            "conflict",
            "Conflict",
            "The change conflicts with existing data (a concurrent request won)",
            request_id=rid,
        )
        return problem_response(request, body)
    if _is_unavailable(exc):
        log.error("database unavailable", extra={"request_id": rid}, exc_info=exc)
        body = problem(
            503,
            "service_unavailable",
            "Service unavailable",
            "The database is unreachable; retry shortly",
            request_id=rid,
        )
        return problem_response(request, body, {"Retry-After": "2"})
    return await _unhandled(request, exc)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    rid = _request_id(request)
    log.exception("unhandled error", extra={"request_id": rid}, exc_info=exc)
    body = problem(
        500,
        "internal_error",
        "Internal server error",
        "An unexpected error occurred; it has been logged with this request id",
        request_id=rid,
    )
    # Starlette answers unhandled errors outside RequestContextMiddleware, which therefore
    # cannot add the X-Request-ID header to this response itself.
    return problem_response(request, body, {"X-Request-ID": rid} if rid else None)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Registered by class so that ExceptionMiddleware answers them (no re-raise).
    for db_error in (
        DBAPIError,
        SQLAlchemyTimeoutError,
        OSError,
        asyncpg.PostgresConnectionError,
    ):
        app.add_exception_handler(db_error, _database_error)
    app.add_exception_handler(Exception, _unhandled)
