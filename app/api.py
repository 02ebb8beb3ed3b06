"""The /v1 operations: every domain's router, registered flat on the app's router."""

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app.accounts.router import router as accounts_router
from app.activities.router import router as activities_router
from app.api_keys.router import router as api_keys_router
from app.approvals.router import router as approvals_router
from app.audit.router import router as audit_router
from app.campaigns.router import router as campaigns_router
from app.contracts.router import router as contracts_router
from app.cross_sell.router import router as cross_sell_router
from app.forecasts.router import router as forecasts_router
from app.jobs.router import router as jobs_router
from app.leads.router import router as leads_router
from app.metrics.router import router as metrics_router
from app.nurture.router import router as nurture_router
from app.opportunities.router import router as opportunities_router
from app.partners.router import router as partners_router
from app.pipelines.router import router as pipelines_router
from app.privacy.router import router as privacy_router
from app.products.router import router as products_router
from app.quotes.router import router as quotes_router
from app.signals.router import router as signals_router
from app.stakeholders.router import router as stakeholders_router
from app.tasks.router import router as tasks_router
from app.territories.router import router as territories_router
from app.users.router import router as users_router
from app.webhooks.router import router as webhooks_router

PREFIX = "/v1"
DOMAIN_ROUTERS: tuple[APIRouter, ...] = (
    accounts_router,
    leads_router,
    campaigns_router,
    signals_router,
    territories_router,
    opportunities_router,
    cross_sell_router,
    stakeholders_router,
    activities_router,
    pipelines_router,
    products_router,
    quotes_router,
    approvals_router,
    contracts_router,
    partners_router,
    tasks_router,
    jobs_router,
    users_router,
    api_keys_router,
    audit_router,
    webhooks_router,
    metrics_router,
    forecasts_router,
    nurture_router,
    privacy_router,
)
# What add_api_route takes, read back from each route: its router's own settings (tags,
# responses, route class) were merged into the route when it was declared.
ROUTE_SETTINGS = (
    "response_model",
    "status_code",
    "tags",
    "dependencies",
    "summary",
    "description",
    "response_description",
    "responses",
    "deprecated",
    "methods",
    "operation_id",
    "response_model_include",
    "response_model_exclude",
    "response_model_by_alias",
    "response_model_exclude_unset",
    "response_model_exclude_defaults",
    "response_model_exclude_none",
    "include_in_schema",
    "response_class",
    "name",
    "callbacks",
    "openapi_extra",
    "generate_unique_id_function",
    "strict_content_type",
    "max_body_size",
    "form_limits",
)


def add_api_routes(app: FastAPI) -> None:
    """Register every domain's operations under /v1 on the app's own router.

    ``include_router`` keeps an included router nested, and FastAPI matches each request by
    walking the nested routers, checking their route versions and routes again as it
    descends: about 30 % of the CPU of a simple GET (bench/README.md). A flat table of routes
    is matched by one loop over compiled path patterns. Each route is created again in the
    app's router from its own settings, as ``include_router`` itself did before FastAPI 0.16x.
    """
    for router in DOMAIN_ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"{route!r}: only API routes are registered under {PREFIX}")
            app.router.add_api_route(
                PREFIX + route.path,
                route.endpoint,
                route_class_override=type(route),
                **{name: getattr(route, name) for name in ROUTE_SETTINGS},
            )
