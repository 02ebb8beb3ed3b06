from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Principal
from app.core.deps import IfMatch, PageDep, SessionDep, require, set_etag, sort_query
from app.core.pagination import ListEnvelope
from app.core.routing import TransactionalReadsRoute
from app.core.schemas import COMMON_ERRORS, errors
from app.metrics import report_cache, reports, service
from app.metrics.facts import FAMILY_FILTERS, FILTER_NAMES, MetricFilters
from app.metrics.kpis import KPIS, Kpi
from app.metrics.schemas import (
    ExchangeRateOut,
    ExchangeRateUpsert,
    MetricCatalogue,
    MetricDefinition,
    MetricGroupReport,
    MetricReport,
    MetricSeries,
    MetricsSummary,
    QuotaCreate,
    QuotaOut,
    QuotaUpdate,
    SpendCategory,
    SpendCreate,
    SpendOut,
    SpendUpdate,
)

# The KPI queries raise work_mem with SET LOCAL, so their reads run in a transaction.
router = APIRouter(tags=["metrics"], route_class=TransactionalReadsRoute, responses=COMMON_ERRORS)
Reader = Annotated[Principal, Depends(require("metrics:read"))]
Manager = Annotated[
    Principal, Depends(require("metrics:write", roles=frozenset({"admin", "manager"})))
]
Currency = Annotated[str | None, Query(pattern=r"^[A-Z]{3}$", examples=["EUR"])]

_REPLACED: dict[int | str, dict[str, Any]] = {
    200: {"description": "A rate of that pair and day existed; it was replaced"}
}


# --- exchange rates -------------------------------------------------------------------


@router.get(
    "/exchange-rates",
    operation_id="metrics-list-exchange-rates",
    summary="List exchange rates",
    description=service.__doc__ or "",
)
async def list_exchange_rates(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("date, from_currency, to_currency", "-date")] = None,
    from_currency: Currency = None,
    to_currency: Currency = None,
    date_from: Annotated[date | None, Query(description="Rates on or after this day")] = None,
    date_to: Annotated[date | None, Query(description="Rates on or before this day")] = None,
) -> ListEnvelope[ExchangeRateOut]:
    rows, next_cursor = await service.list_rates(
        session,
        service.RateFilters(from_currency, to_currency, date_from, date_to),
        sort=sort,
        limit=page.limit,
        cursor=page.cursor,
    )
    return ListEnvelope(
        data=[ExchangeRateOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.post(
    "/exchange-rates",
    operation_id="metrics-upsert-exchange-rate",
    summary="Record an exchange rate (managers, admins)",
    description="Upsert by (date, from_currency, to_currency): 201 when the rate is new, "
    "200 when it replaces the rate recorded for that pair and day. The rate applies from "
    "its date until the pair's next rate; the reverse pair is derived as 1 / rate when it "
    "is not recorded itself.",
    status_code=status.HTTP_201_CREATED,
    responses={**_REPLACED, **errors(422)},
)
async def upsert_exchange_rate(
    body: ExchangeRateUpsert, _: Manager, session: SessionDep, response: Response
) -> ExchangeRateOut:
    rate, created = await service.upsert_rate(session, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    set_etag(response, rate.version)
    return ExchangeRateOut.model_validate(rate)


@router.delete(
    "/exchange-rates/{rate_id}",
    operation_id="metrics-delete-exchange-rate",
    summary="Delete an exchange rate",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_exchange_rate(
    rate_id: uuid.UUID, _: Manager, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_rate(session, rate_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- quotas ---------------------------------------------------------------------------


@router.get(
    "/quotas",
    operation_id="metrics-list-quotas",
    summary="List quotas",
    description="Quotas per rep and period, the input of quota attainment and coverage.",
)
async def list_quotas(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("start, period, created_at", "start")] = None,
    user_id: uuid.UUID | None = None,
    period: Annotated[str | None, Query(max_length=16, examples=["2026-Q3"])] = None,
) -> ListEnvelope[QuotaOut]:
    rows, next_cursor = await service.list_quotas(
        session, user_id=user_id, period=period, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[QuotaOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/quotas",
    operation_id="metrics-create-quota",
    summary="Set a rep's quota for a period (managers, admins)",
    description="One quota per user and period (a second is a 409; PATCH its amount). The "
    "period is resolved with the organization's fiscal year start when it is recorded.",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_quota(
    body: QuotaCreate, _: Manager, session: SessionDep, response: Response
) -> QuotaOut:
    quota = await service.create_quota(session, body)
    set_etag(response, quota.version)
    return QuotaOut.model_validate(quota)


@router.get(
    "/quotas/{quota_id}",
    operation_id="metrics-get-quota",
    summary="Get a quota",
    responses=errors(404),
)
async def get_quota(
    quota_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> QuotaOut:
    quota = await service.get_quota(session, quota_id)
    set_etag(response, quota.version)
    return QuotaOut.model_validate(quota)


@router.patch(
    "/quotas/{quota_id}",
    operation_id="metrics-update-quota",
    summary="Change a quota's amount",
    responses=errors(404, 412, 422),
)
async def update_quota(
    quota_id: uuid.UUID,
    body: QuotaUpdate,
    _: Manager,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> QuotaOut:
    quota = await service.update_quota(session, quota_id, body, expected)
    set_etag(response, quota.version)
    return QuotaOut.model_validate(quota)


@router.delete(
    "/quotas/{quota_id}",
    operation_id="metrics-delete-quota",
    summary="Delete a quota",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_quota(
    quota_id: uuid.UUID, _: Manager, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_quota(session, quota_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- spend ----------------------------------------------------------------------------


@router.get(
    "/spend",
    operation_id="metrics-list-spend",
    summary="List sales & marketing spend",
    description="Spend per period and category, the numerator of CAC.",
)
async def list_spend(
    _: Reader,
    session: SessionDep,
    page: PageDep,
    sort: Annotated[str | None, sort_query("start, period, created_at", "start")] = None,
    period: Annotated[str | None, Query(max_length=16, examples=["2026-Q3"])] = None,
    category: SpendCategory | None = None,
) -> ListEnvelope[SpendOut]:
    rows, next_cursor = await service.list_spend(
        session, period=period, category=category, sort=sort, limit=page.limit, cursor=page.cursor
    )
    return ListEnvelope(data=[SpendOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/spend",
    operation_id="metrics-create-spend",
    summary="Record spend for a period (managers, admins)",
    description="One row per period and category (a second is a 409; PATCH its amount).",
    status_code=status.HTTP_201_CREATED,
    responses=errors(409, 422),
)
async def create_spend(
    body: SpendCreate, _: Manager, session: SessionDep, response: Response
) -> SpendOut:
    spend = await service.create_spend(session, body)
    set_etag(response, spend.version)
    return SpendOut.model_validate(spend)


@router.get(
    "/spend/{spend_id}",
    operation_id="metrics-get-spend",
    summary="Get a spend record",
    responses=errors(404),
)
async def get_spend(
    spend_id: uuid.UUID, _: Reader, session: SessionDep, response: Response
) -> SpendOut:
    spend = await service.get_spend(session, spend_id)
    set_etag(response, spend.version)
    return SpendOut.model_validate(spend)


@router.patch(
    "/spend/{spend_id}",
    operation_id="metrics-update-spend",
    summary="Change a spend record's amount",
    responses=errors(404, 412, 422),
)
async def update_spend(
    spend_id: uuid.UUID,
    body: SpendUpdate,
    _: Manager,
    session: SessionDep,
    expected: IfMatch,
    response: Response,
) -> SpendOut:
    spend = await service.update_spend(session, spend_id, body, expected)
    set_etag(response, spend.version)
    return SpendOut.model_validate(spend)


@router.delete(
    "/spend/{spend_id}",
    operation_id="metrics-delete-spend",
    summary="Delete a spend record",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(404, 412),
)
async def delete_spend(
    spend_id: uuid.UUID, _: Manager, session: SessionDep, expected: IfMatch
) -> Response:
    await service.delete_spend(session, spend_id, expected)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- KPIs -----------------------------------------------------------------------------


async def period_query(
    period: Annotated[
        str | None,
        Query(
            max_length=16,
            examples=["2026-Q3"],
            description="`YYYY` (fiscal year), `YYYY-Qn` (fiscal quarter) or `YYYY-MM`; "
            "default: the current fiscal quarter",
        ),
    ] = None,
    from_date: Annotated[
        date | None, Query(alias="from", description="First day (instead of period)")
    ] = None,
    to_date: Annotated[
        date | None, Query(alias="to", description="Last day, inclusive (with from)")
    ] = None,
) -> reports.PeriodQuery:
    return reports.PeriodQuery(period, from_date, to_date)


async def metric_filters(
    owner_id: uuid.UUID | None = None,
    team_id: Annotated[uuid.UUID | None, Query(description="The owners' team")] = None,
    territory_id: uuid.UUID | None = None,
    segment: Annotated[str | None, Query(max_length=32, examples=["enterprise"])] = None,
    pipeline_id: uuid.UUID | None = None,
    type: Annotated[Literal["new_business", "expansion", "renewal"] | None, Query()] = None,
    source: Annotated[str | None, Query(max_length=32, examples=["partner"])] = None,
) -> MetricFilters:
    return MetricFilters(owner_id, team_id, territory_id, segment, pipeline_id, type, source)


_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the `If-None-Match` validator is the report's ETag"}
}
_CACHING_NOTE = (
    " Reports are cached until the organization's data changes, so a cached report is never "
    "stale; each carries an `ETag` that changes with the data (send it back in "
    "`If-None-Match` for a 304), and `Cache-Control: no-cache` on the request recomputes it."
)


async def _cached_report(
    request: Request,
    session: AsyncSession,
    key_parts: tuple[Any, ...],
    build: Callable[[], Awaitable[BaseModel]],
) -> Response:
    """The report of ``key_parts`` from the cache, or built and cached; a 304 when the
    caller's validator is still current."""
    key = report_cache.report_key(key_parts)
    generation, body = await report_cache.lookup(session, key)
    headers = {"ETag": report_cache.etag(key, generation), "Cache-Control": "private, no-cache"}
    if headers["ETag"] in _validators(request.headers.get("if-none-match")):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if body is None or "no-cache" in request.headers.get("cache-control", ""):
        body = (await build()).model_dump_json(by_alias=True).encode()
        await report_cache.store(session, key, generation, body)
    return Response(body, media_type="application/json", headers=headers)


def _validators(if_none_match: str | None) -> set[str]:
    """The entity tags of an If-None-Match header (weak ones compared as strong)."""
    if not if_none_match:
        return set()
    return {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}


PeriodDep = Annotated[reports.PeriodQuery, Depends(period_query)]
FiltersDep = Annotated[MetricFilters, Depends(metric_filters)]
_PERCENT_NOTE = (
    " Filters: owner_id, team_id, territory_id, segment, pipeline_id, type, source; a "
    "filter an input cannot be narrowed by is listed in `ignored_filters`."
)


@router.get(
    "/metrics",
    operation_id="metrics-list-metrics",
    summary="The KPI catalogue",
    description="Every KPI with its path, unit, definition, honoured filters and groupings.",
)
async def list_metrics(_: Reader) -> MetricCatalogue:
    def honoured(kpi: Kpi) -> list[str]:
        return [f for f in FILTER_NAMES if all(f in FAMILY_FILTERS[x] for x in kpi.families)]

    return MetricCatalogue(
        data=[
            MetricDefinition(
                name=kpi.name,
                path=f"/v1/metrics/{kpi.path}",
                title=kpi.title,
                unit=kpi.unit,
                definition=kpi.definition,
                filters=honoured(kpi),
                group_by=sorted(kpi.groupable_by()),
            )
            for kpi in KPIS
        ]
    )


@router.get(
    "/metrics/summary",
    operation_id="metrics-get-summary",
    response_model=MetricsSummary,
    summary="Every KPI for a period at once",
    description="All KPIs of the catalogue for one period and set of filters, each fact "
    "aggregated once." + _PERCENT_NOTE + _CACHING_NOTE,
    responses={**errors(400), **_NOT_MODIFIED},
)
async def metrics_summary(
    _: Reader, request: Request, session: SessionDep, period: PeriodDep, filters: FiltersDep
) -> Response:
    async def build() -> BaseModel:
        return MetricsSummary.model_validate(await reports.summary_report(session, period, filters))

    return await _cached_report(request, session, ("summary", period, filters), build)


def _kpi_endpoint(kpi: Kpi) -> Callable[..., Awaitable[Response]]:
    async def endpoint(
        _: Reader,
        request: Request,
        session: SessionDep,
        period: PeriodDep,
        filters: FiltersDep,
        group_by: Annotated[
            reports.ReportGroupBy | None,
            Query(description="One row per owner, team, segment or month of the period"),
        ] = None,
    ) -> Response:
        async def build() -> BaseModel:
            body = await reports.kpi_report(session, kpi, period, filters, group_by)
            if group_by is None:
                return MetricReport.model_validate(body)
            return MetricGroupReport.model_validate(body)

        key = ("kpi", kpi.name, period, filters, group_by)
        return await _cached_report(request, session, key, build)

    return endpoint


def _series_endpoint(kpi: Kpi) -> Callable[..., Awaitable[Response]]:
    async def endpoint(
        _: Reader,
        request: Request,
        session: SessionDep,
        filters: FiltersDep,
        from_date: Annotated[date, Query(alias="from", description="First day of the chart")],
        to_date: Annotated[date, Query(alias="to", description="Last day of the chart")],
        interval: Annotated[Literal["month", "quarter"], Query()] = "month",
    ) -> Response:
        async def build() -> BaseModel:
            body = await reports.series_report(session, kpi, from_date, to_date, interval, filters)
            return MetricSeries.model_validate(body)

        key = ("series", kpi.name, from_date, to_date, interval, filters)
        return await _cached_report(request, session, key, build)

    return endpoint


for _kpi in KPIS:
    router.add_api_route(
        f"/metrics/{_kpi.path}",
        _kpi_endpoint(_kpi),
        methods=["GET"],
        operation_id=f"metrics-get-{_kpi.path}",
        summary=_kpi.title,
        description=_kpi.definition + _PERCENT_NOTE + _CACHING_NOTE,
        response_model=MetricReport | MetricGroupReport,
        responses={**errors(400), **_NOT_MODIFIED},
    )
    router.add_api_route(
        f"/metrics/{_kpi.path}/series",
        _series_endpoint(_kpi),
        methods=["GET"],
        operation_id=f"metrics-series-{_kpi.path}",
        summary=f"{_kpi.title}: chart series",
        description="The KPI for every whole month or fiscal quarter overlapping from … to "
        "(at most 120 points)." + _CACHING_NOTE,
        response_model=MetricSeries,
        responses={**errors(400), **_NOT_MODIFIED},
    )
