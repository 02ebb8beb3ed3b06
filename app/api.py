"""The /v1 router: every domain's router, included once."""

from fastapi import APIRouter

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

api_router = APIRouter(prefix="/v1")
for domain_router in (
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
):
    api_router.include_router(domain_router)
