"""The route class every /v1 endpoint uses: the request's single commit point.

Around each handler it (1) authenticates the caller and refuses query parameters the
endpoint does not declare (400), (2) claims the Idempotency-Key of a POST or replays its
stored response, and (3) commits the request's session once after the handler returned, or
rolls everything back (change, history, outbox and idempotency record alike) if anything
raised.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from app.core import idempotency
from app.core.deps import authenticate, request_session
from app.core.errors import BadRequest
from app.metrics import report_cache


class DealbaseRoute(APIRoute):
    # GET operations run on an autocommit read session (no BEGIN/COMMIT round trips),
    # unless their router's route class needs a transaction for its reads.
    reads_in_transaction: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if _admits_partner_keys(self.dependant):
            # Said in the document: every other operation answers partner keys 403.
            self.openapi_extra = {**(self.openapi_extra or {}), "x-partner-access": True}
        # The path up to its first parameter: every path the route's pattern matches
        # starts with it.
        self.literal_prefix = self.path.split("{", 1)[0]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # Starlette tries the routes one by one (288 of them), each with its regular
        # expression: 59 µs to reach GET /v1/opportunities/{id}, 181 µs for the metrics
        # summary. Most are ruled out by their literal prefix, without the expression.
        if scope["path"].startswith(self.literal_prefix) or scope.get("root_path"):
            return super().matches(scope)
        return Match.NONE, {}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        declared = _query_parameter_names(self.dependant)

        reads_only = (self.methods or {"POST"}) <= {"GET", "HEAD"} and not self.reads_in_transaction

        async def route(request: Request) -> Response:
            claim: idempotency.Claim | None = None
            request.state.reads_only = reads_only
            try:
                # Authenticate first: a caller without a valid key learns nothing else (401).
                await authenticate(request)
                _refuse_undeclared(request, declared)
                key = request.headers.get("idempotency-key")
                if request.method == "POST" and key is not None:
                    replay_or_claim = await _claim(request, key)
                    if isinstance(replay_or_claim, Response):
                        return replay_or_claim
                    claim = replay_or_claim
                response = await handler(request)
                if reads_only:  # an autocommit read session has nothing to commit
                    return response
                session = request_session(request)
                if claim is not None:
                    await idempotency.complete(session, claim, response)
                await report_cache.count_changes_now(session)
                await session.commit()
                return response
            except BaseException:
                failed: AsyncSession | None = getattr(request.state, "db_session", None)
                if failed is not None:
                    await failed.rollback()
                if claim is not None:
                    await idempotency.release(request.app.state.sessionmaker, claim)
                raise
            finally:
                used: AsyncSession | None = getattr(request.state, "db_session", None)
                if used is not None:
                    await used.close()
                    request.state.db_session = None

        return route


_INDEXED_ROUTE = "dealbase.indexed_route"


def _section(path: str) -> str | None:
    """A path's first two segments ("/v1/opportunities" of "/v1/opportunities/…")."""
    parts = path.split("/", 3)
    return "/".join(parts[:3]) if len(parts) >= 3 and parts[0] == "" else None


class RouteIndex(BaseRoute):
    """The app's first route: it looks a request's route up among those that can match its
    path's section ("/v1/opportunities"), in their declared order, instead of Starlette
    trying every route in turn (288: the summary was route 214). A request it does not
    resolve (a 404, a 405, a path under a root path) falls through to Starlette's loop, so
    what matches is unchanged.
    """

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.by_section: dict[str, list[DealbaseRoute]] = {}
        for route in routes:
            if not isinstance(route, DealbaseRoute):
                continue
            section = _section(route.literal_prefix)
            # A prefix that ends within its section ("/v1/acc") does not fix the section.
            if section is None or not (
                route.literal_prefix == route.path or route.literal_prefix.startswith(section + "/")
            ):
                raise ValueError(f"{route.path}: its section is a parameter")
            self.by_section.setdefault(section, []).append(route)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get("root_path"):
            return Match.NONE, {}
        for route in self.by_section.get(_section(scope["path"]) or "", ()):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                child_scope[_INDEXED_ROUTE] = route
                return match, child_scope
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope[_INDEXED_ROUTE].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)


class TransactionalReadsRoute(DealbaseRoute):
    """For operations whose reads need a transaction (``SET LOCAL`` of the KPI queries)."""

    reads_in_transaction = True


def _refuse_undeclared(request: Request, declared: set[str]) -> None:
    if not request.scope["query_string"]:
        return
    hostile = sorted(
        {name for name, value in request.query_params.multi_items() if "\x00" in name + value}
    )
    if hostile:
        raise BadRequest(
            "Query parameters must not contain NUL (%00) characters",
            code="invalid_character",
            errors=[{"field": f"query.{name}", "code": "invalid_character"} for name in hostile],
        )
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        raise BadRequest(
            f"Unknown query parameter(s): {', '.join(unknown)}",
            code="unknown_query_parameter",
            errors=[
                {"field": f"query.{name}", "code": "unknown_query_parameter"} for name in unknown
            ],
        )


def _query_parameter_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_parameter_names(sub)
    return names


def _admits_partner_keys(dependant: Dependant) -> bool:
    """Whether the authorization (``require(..., partners=True)``) admits partner keys."""
    return any(
        getattr(sub.call, "partner_access", False) or _admits_partner_keys(sub)
        for sub in dependant.dependencies
    )


async def _claim(request: Request, key: str) -> idempotency.Claim | Response:
    principal = await authenticate(request)
    settings = request.app.state.settings
    body = await request.body()
    return await idempotency.claim(
        request.app.state.sessionmaker,
        organization_id=principal.organization_id,
        api_key_id=principal.api_key_id,
        key=key,
        fingerprint=idempotency.request_fingerprint(
            request.method, request.url.path, request.url.query, body
        ),
        ttl_hours=settings.idempotency_ttl_hours,
        stale_seconds=settings.idempotency_stale_seconds,
    )
