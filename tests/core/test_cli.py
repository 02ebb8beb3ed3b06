"""The `dealbase` command against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date, timedelta
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

from app.metrics.periods import period_containing
from tests.factories import Tenant
from tests.metrics.test_kpis_api import _simple_deals
from tests.metrics.test_rollups import rebuilt, rollup_rows


def _dealbase(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DEALBASE_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_orgs_create_prints_one_json_line_with_a_working_key(
    app: FastAPI, client: AsyncClient, database_url: str
) -> None:
    result = _dealbase(
        database_url, "orgs", "create", "--name", "CLI Org", "--admin-email", "Boss@CLI.example"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    created = json.loads(lines[0])
    assert set(created) == {"organization_id", "user_id", "api_key"}
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    me = await client.get("/v1/users/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["id"] == created["user_id"]
    assert me.json()["email"] == "boss@cli.example"
    assert me.json()["role"] == "admin"
    org = await client.get("/v1/organization", headers=headers)
    assert org.json()["id"] == created["organization_id"]


async def test_seed_demo_creates_a_usable_organization(
    app: FastAPI, client: AsyncClient, database_url: str
) -> None:
    result = _dealbase(database_url, "seed-demo", "--seed", "3")
    assert result.returncode == 0, result.stderr
    demo = json.loads(result.stdout.strip().splitlines()[-1])
    # Deals and moves made through the services, then two years loaded by COPY and summed
    # by a rebuild, all in one transaction: each is counted once.
    organization_id = uuid.UUID(demo["organization_id"])
    counted = await rollup_rows(app, organization_id)
    assert counted["closes"] and counted == await rebuilt(app, organization_id)
    headers = {"Authorization": f"Bearer {demo['api_key']}"}
    users = (await client.get("/v1/users", params={"limit": 200}, headers=headers)).json()
    roles = sorted(u["role"] for u in users["data"])
    assert roles.count("manager") == 3 and roles.count("rep") == 4
    accounts = (await client.get("/v1/accounts", params={"limit": 200}, headers=headers)).json()[
        "data"
    ]
    assert len(accounts) == 200  # the first page of 20 hand-made and 2,500 historical ones
    assert any(a["parent_account_id"] for a in accounts)
    assert {a["segment"] for a in accounts} >= {"smb", "enterprise"}
    deals = (await client.get("/v1/opportunities", params={"limit": 200}, headers=headers)).json()[
        "data"
    ]
    stages = {d["stage"] for d in deals}
    assert len(deals) >= 10
    assert {"closed_won", "closed_lost"} <= stages
    assert stages & {"needs_analysis", "proposal"}
    quotes = (await client.get("/v1/quotes", params={"limit": 200}, headers=headers)).json()
    assert quotes["data"] and {q["status"] for q in quotes["data"]} == {"approved"}
    registrations = (await client.get("/v1/deal-registrations", headers=headers)).json()
    assert [r["company_name"] for r in registrations["data"]] == ["Karadeniz Fındık A.Ş."]

    # Two years of history: every KPI of the last full quarter has a meaningful value.
    today = date.today()
    last_quarter = period_containing(
        period_containing(today, "quarter").start - timedelta(days=1), "quarter"
    )
    summary = await client.get(
        "/v1/metrics/summary", params={"period": last_quarter.label}, headers=headers
    )
    assert summary.status_code == 200, summary.text
    values = {name: m["value"] for name, m in summary.json()["metrics"].items()}
    assert all(v is not None for v in values.values()), values
    assert values["revenue"] != "0.00" and values["qualified_leads"] > 0
    current = await client.get("/v1/metrics/pipeline-coverage", headers=headers)
    assert current.json()["value"] is not None
    trend = await client.get("/v1/forecasts/trend", headers=headers)
    assert trend.status_code == 200 and trend.json()["series"]

    # Deterministic with --seed: a second organization from the same seed has the same KPIs.
    again = _dealbase(database_url, "seed-demo", "--seed", "3")
    twin = json.loads(again.stdout.strip().splitlines()[-1])
    twin_summary = await client.get(
        "/v1/metrics/summary",
        params={"period": last_quarter.label},
        headers={"Authorization": f"Bearer {twin['api_key']}"},
    )
    twin_values = {name: m["value"] for name, m in twin_summary.json()["metrics"].items()}
    assert twin_values == values


def test_openapi_check_passes_on_the_committed_document() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "openapi", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


async def test_import_leads_command(client: AsyncClient, database_url: str, tmp_path: Any) -> None:
    created = json.loads(
        _dealbase(
            database_url, "orgs", "create", "--name", "Importer", "--admin-email", "imp@cli.example"
        ).stdout
    )
    csv_file = tmp_path / "leads.csv"
    csv_file.write_text(
        "first_name,last_name,email,company_name,country\n"
        "Ayşe,Yılmaz,ayse@example.com,Anadolu Tekstil,TR\n"
        "Bad,,bad@example.com,Nowhere,TR\n"
        "Can,Demir,can@example.com,Ege Makina,TR\n",
        encoding="utf-8",
    )
    result = _dealbase(
        database_url,
        "import",
        "leads",
        str(csv_file),
        "--organization-id",
        created["organization_id"],
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "completed"
    assert (outcome["created"], outcome["errors"]) == (2, 1)
    assert outcome["first_errors"] == [
        {"row": 2, "field": "last_name", "message": "Field required"}
    ]
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    leads = (await client.get("/v1/leads", params={"sort": "last_name"}, headers=headers)).json()[
        "data"
    ]
    assert [lead["last_name"] for lead in leads] == ["Demir", "Yılmaz"]


async def test_rebuild_rollups_restores_the_kpi_rollups(
    app: FastAPI, client: AsyncClient, database_url: str, tenant: Tenant
) -> None:
    [deal] = await _simple_deals(client, tenant, 1, amount="500")
    moved = await client.post(
        f"/v1/opportunities/{deal['id']}/stage", json={"stage": "qualified"}, headers=tenant.headers
    )
    assert moved.status_code == 200, moved.text
    period = period_containing(date.today(), "quarter").label
    before = await client.get(
        "/v1/metrics/time-in-stage", params={"period": period}, headers=tenant.headers
    )
    assert before.json()["inputs"]["exits"] == 1
    four_vs = await client.get(
        "/v1/metrics/four-vs", params={"period": period}, headers=tenant.headers
    )
    assert four_vs.json()["value"]["volume"] == 1  # the deal created, from the deal roll-ups
    async with app.state.sessionmaker() as session, session.begin():
        for table in (
            "stage_entry_rollups",
            "stage_exit_rollups",
            "activity_rollups",
            "deal_close_rollups",
            "deal_created_rollups",
        ):
            await session.execute(text(f"DELETE FROM {table}"))
    # SQL around the API changes no generation: the cached report stays until recomputed.
    cached = await client.get(
        "/v1/metrics/time-in-stage", params={"period": period}, headers=tenant.headers
    )
    assert cached.json()["inputs"]["exits"] == 1
    emptied = await client.get(
        "/v1/metrics/time-in-stage",
        params={"period": period},
        headers=tenant.headers | {"Cache-Control": "no-cache"},
    )
    assert emptied.json()["inputs"]["exits"] == 0
    no_deals = await client.get(
        "/v1/metrics/four-vs",
        params={"period": period},
        headers=tenant.headers | {"Cache-Control": "no-cache"},
    )
    assert no_deals.json()["value"]["volume"] == 0

    result = _dealbase(database_url, "rebuild-rollups")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["organizations"] >= 1
    after = await client.get(
        "/v1/metrics/time-in-stage", params={"period": period}, headers=tenant.headers
    )
    assert after.json() == before.json()
    four_vs_after = await client.get(
        "/v1/metrics/four-vs", params={"period": period}, headers=tenant.headers
    )
    assert four_vs_after.json() == four_vs.json()
