"""The isolation matrix, generated from the OpenAPI document: every operation that takes a
resource id is called by another organization's admin with the first organization's real
ids, and must answer exactly as it does for ids that do not exist at all — a 404 for reads,
and never a success or a different error for writes. Partner keys (of either organization)
get 403 ``partner_not_allowed`` from every operation the document does not mark
``x-partner-access``, and the same not-found answer from the ones it does. A new endpoint
is covered by being in the document; a new kind of id must be added to ``TABLE_OF`` (the
test says so)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

from app.demo import seed_demo
from tests.factories import Tenant, create

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
# Path parameter → the table its ids live in.
TABLE_OF = {
    "account_id": "accounts",
    "activity_id": "activities",
    "book_id": "price_books",
    "campaign_id": "campaigns",
    "contact_id": "contacts",
    "contract_id": "contracts",
    "delegation_id": "approval_delegations",
    "endpoint_id": "webhook_endpoints",
    "enrollment_id": "nurture_enrollments",
    "entry_id": "price_book_entries",
    "event_id": "outbox_events",
    "field_id": "custom_field_definitions",
    "job_id": "import_jobs",
    "key_id": "api_keys",
    "lead_id": "leads",
    "line_id": "quote_line_items",
    "member_id": "campaign_members",
    "opportunity_id": "opportunities",
    "partner_id": "partners",
    "pipeline_id": "pipelines",
    "policy_id": "approval_policies",
    "product_id": "products",
    "program_id": "nurture_programs",
    "quota_id": "quotas",
    "quote_id": "quotes",
    "rate_id": "exchange_rates",
    "registration_id": "deal_registrations",
    "relationship_id": "contact_relationships",
    "request_id": "approval_requests",
    "rule_id": "lead_scoring_rules",
    "signal_id": "signals",
    "spend_id": "spend",
    "stakeholder_id": "opportunity_stakeholders",
    "submission_id": "forecast_submissions",
    "task_id": "tasks",
    "team_id": "teams",
    "territory_id": "territories",
    "user_id": "users",
}
# Ids the demo organization has none of: those operations are still called (with unknown
# ids) but prove less; everything else must be tried with a real id.
NOT_IN_DEMO = {
    "contract_id",
    "delegation_id",
    "endpoint_id",
    "enrollment_id",
    "field_id",
    "job_id",
    "member_id",
    "policy_id",
    "relationship_id",
    "request_id",
    "rule_id",
    "signal_id",
}
SUBJECT_TABLE = {
    "accounts": "accounts",
    "opportunities": "opportunities",
    "contacts": "contacts",
    "leads": "leads",
}


def _operations() -> list[tuple[str, str, bool]]:
    """(method, path, admits partner keys) of every operation that takes an id."""
    document = json.loads(DOCUMENT.read_text())
    return [
        (method.upper(), path, bool(operation.get("x-partner-access")))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete") and "{" in path
    ]


async def _real_ids(app: FastAPI, organization_id: uuid.UUID) -> dict[str, str]:
    ids: dict[str, str] = {}
    async with app.state.engine.connect() as conn:
        for param, table in TABLE_OF.items():
            row = await conn.scalar(
                text(f"SELECT id FROM {table} WHERE organization_id = :org LIMIT 1"),
                {"org": organization_id},
            )
            if row is not None:
                ids[param] = str(row)
    return ids


def _fill(path: str, ids: dict[str, str], fallback: bool) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "number":
            return "1"
        if name == "subject_id":
            table = SUBJECT_TABLE[path.split("/")[2]]
            name = next(p for p, t in TABLE_OF.items() if t == table)
        return str(uuid.uuid4()) if fallback else ids.get(name, str(uuid.uuid4()))

    return re.sub(r"\{(\w+)\}", value, path)


def _signature(response: Any) -> tuple[int, str | None]:
    code = None
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        code = response.json().get("code")
    return response.status_code, code


async def _call(client: AsyncClient, method: str, path: str, headers: dict[str, str]) -> Any:
    return await client.request(
        method,
        path,
        json={} if method in ("POST", "PUT", "PATCH") else None,
        headers={**headers, "If-Match": '"1"', "Idempotency-Key": uuid.uuid4().hex},
    )


async def _partner_key(client: AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    partner = await create(client, "/v1/partners", admin, {"name": "Anadolu Bilişim"})
    key = await create(client, f"/v1/partners/{partner['id']}/api-keys", admin, {})
    return {"Authorization": f"Bearer {key['token']}"}


async def test_another_organization_cannot_tell_our_ids_from_missing_ones(
    app: FastAPI, client: AsyncClient, other_tenant: Tenant
) -> None:
    demo = await seed_demo(app.state.sessionmaker, seed=11)
    ids = await _real_ids(app, uuid.UUID(demo.organization_id))
    missing = sorted(set(TABLE_OF) - set(ids) - NOT_IN_DEMO)
    assert not missing, f"the demo organization has no rows for {missing}"

    operations = _operations()
    params = {p for _, path, _ in operations for p in re.findall(r"\{(\w+)\}", path)}
    unknown = sorted(params - set(TABLE_OF) - {"number", "subject_id"})
    assert not unknown, f"add the table of these path parameters to TABLE_OF: {unknown}"

    callers = {
        "other organization's admin": other_tenant.headers,
        "other organization's partner": await _partner_key(client, other_tenant.headers),
        "a partner of the same organization": await _partner_key(
            client, {"Authorization": f"Bearer {demo.api_key}"}
        ),
    }
    leaks = []
    statuses: set[int] = set()
    reads_404 = 0
    for caller, headers in callers.items():
        is_partner = caller != "other organization's admin"
        for method, path, partner_access in operations:
            theirs = await _call(client, method, _fill(path, ids, fallback=False), headers)
            if is_partner and not partner_access:
                if _signature(theirs) != (403, "partner_not_allowed"):
                    leaks.append((caller, method, path, _signature(theirs)))
                continue
            unknown_ids = await _call(client, method, _fill(path, ids, fallback=True), headers)
            if theirs.status_code < 400 or _signature(theirs) != _signature(unknown_ids):
                leaks.append((caller, method, path, _signature(theirs), _signature(unknown_ids)))
            statuses.add(theirs.status_code)
            if not is_partner and method == "GET" and theirs.status_code == 404:
                reads_404 += 1
    assert leaks == [], leaks
    # The document really was walked; reads are 404 (a few answer 400/403 first, for a
    # missing query parameter or a partner-only route, the same for any id).
    assert len(operations) > 100
    assert sum(partner_access for _, _, partner_access in operations) >= 5
    reads = sum(1 for method, _, _ in operations if method == "GET")
    assert reads_404 >= reads - 5, (reads_404, reads)
    assert 404 in statuses
