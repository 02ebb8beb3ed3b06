"""Bulk lead import: CSV and JSON through HTTP (202 + job), per-row errors, duplicates,
scoring, auto-MQL, territory assignment with round-robin owners, limits, tenant isolation,
and the all-or-nothing write of ``run_import``."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.tenancy import Actor, bind_tenant
from app.leads import imports
from app.models import ImportJob, Lead, LeadStatusHistory, Territory
from tests.factories import Tenant, assert_problem, create, create_user, key_for

CSV = {"Content-Type": "text/csv"}
JSON = {"Content-Type": "application/json"}


async def _post_import(
    client: AsyncClient, tenant: Tenant, body: str | bytes, content_type: dict[str, str]
) -> Response:
    return await client.post(
        "/v1/leads/import",
        content=body.encode() if isinstance(body, str) else body,
        headers={**tenant.headers, **content_type},
    )


async def _job(client: AsyncClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    """The job once finished (the test transport runs background tasks before it answers,
    so this rarely has to wait)."""
    for _ in range(100):
        response = await client.get(f"/v1/import-jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        job = dict(response.json())
        if job["status"] in ("completed", "failed"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"import job {job_id} did not finish: {job}")


async def _import(
    client: AsyncClient, tenant: Tenant, body: str | bytes, content_type: dict[str, str]
) -> dict[str, Any]:
    response = await _post_import(client, tenant, body, content_type)
    assert response.status_code == 202, response.text
    return await _job(client, tenant.headers, response.json()["id"])


async def _imported(
    client: AsyncClient, headers: dict[str, str], job_id: str
) -> dict[str, dict[str, Any]]:
    """The leads an import created, by e-mail (or last name when there is none)."""
    leads: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"import_job_id": job_id, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = await client.get("/v1/leads", params=params, headers=headers)
        assert response.status_code == 200, response.text
        leads += response.json()["data"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            return {lead["email"] or lead["last_name"]: lead for lead in leads}


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False)


# --- CSV and JSON, valid and invalid rows ---------------------------------------------------


async def test_csv_import_reports_invalid_rows_and_inserts_the_rest(
    app: FastAPI, client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    existing = await create(
        client,
        "/v1/leads",
        tenant.headers,
        {"last_name": "Demir", "email": "zeynep.demir@anadolu.com.tr"},
    )
    closed = await create(
        client, "/v1/leads", tenant.headers, {"last_name": "Eski", "email": "eski@ornek.com.tr"}
    )
    disqualified = await client.post(
        f"/v1/leads/{closed['id']}/status",
        json={"status": "disqualified", "reason_code": "bad_timing"},
        headers=tenant.headers,
    )
    assert disqualified.status_code == 200, disqualified.text
    stranger = await create_user(client, other_tenant.headers)
    unknown = uuid.uuid4()
    csv_body = (
        "\ufeffFirst_Name,Last_Name,Email,Company_Name,Domain,Industry,Employee_Count,"
        "Annual_Revenue,Country,City,Source,Owner_Id\n"
        # 1 valid
        "Ayşe,Kaya,Ayse.Kaya@Marmara-Tekstil.com.tr,Marmara Tekstil A.Ş.,"
        "https://www.marmara-tekstil.com.tr/,textile,1200,,TR,İstanbul,event,\n"
        # 2 bad e-mail
        "Mehmet,Öztürk,mehmet.ozturk-at-example.com,,,,,,TR,Ankara,,\n"
        # 3 missing last name (an empty cell is no value)
        "Elif,,elif@example.com,,,,,,,,,\n"
        # 4 valid, quoted cell with a comma
        'Hans,Müller,hans.mueller@beispiel.de,"Müller, Schmidt & Co",,food,40,"1500000.50",'
        "DE,München,partner,\n"
        # 5 duplicate of row 1 (case-insensitive)
        "Ayşe,Kaya,ayse.kaya@marmara-tekstil.com.tr,,,,,,,,,\n"
        # 6 duplicate of an existing open lead
        "Zeynep,Demir,ZEYNEP.DEMIR@anadolu.com.tr,,,,,,,,,\n"
        # 7 unknown owner
        f"Can,Yıldız,can@example.com,,,,,,,,,{unknown}\n"
        # 8 a user of another organization is unknown here too
        f"Deniz,Arslan,deniz@example.com,,,,,,,,,{stranger['id']}\n"
        # 9 several problems in one row, each reported
        "Ali,Veli,ali@example.com,,,,many,,tr,,,\n"
        # 10 valid: same e-mail as a disqualified (closed) lead, no e-mail at all is fine
        "Eski,Müşteri,eski@ornek.com.tr,,,,,,,,,\n"
        ",Şahin,,,,,,,,,web_form,\n"
        # 12 valid with an explicit owner of this organization
        f"Burak,Çelik,burak@example.com,,,,,,,,referral,{tenant.admin_id}\n"
    )
    response = await _post_import(client, tenant, csv_body, CSV)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["Location"] == f"/v1/import-jobs/{accepted['id']}"
    assert accepted["kind"] == "leads"
    assert accepted["total_rows"] == 12
    assert accepted["created_leads"] == f"/v1/leads?import_job_id={accepted['id']}"

    job = await _job(client, tenant.headers, accepted["id"])
    assert job["status"] == "completed", job
    assert job["total_rows"] == 12
    assert job["processed_rows"] == 12
    assert job["created_count"] == 5
    assert job["error_count"] == 8
    assert job["failure"] is None
    assert job["started_at"] is not None
    assert job["finished_at"] is not None
    assert job["errors"] == [
        {
            "row": 2,
            "field": "email",
            "message": "value is not a valid email address: An email address must have an @-sign.",
        },
        {"row": 3, "field": "last_name", "message": "Field required"},
        {
            "row": 5,
            "field": "email",
            "message": "an open lead with ayse.kaya@marmara-tekstil.com.tr exists (or is "
            "earlier in the file)",
        },
        {
            "row": 6,
            "field": "email",
            "message": "an open lead with zeynep.demir@anadolu.com.tr exists (or is earlier in "
            "the file)",
        },
        {"row": 7, "field": "owner_id", "message": "not an active user of this organization"},
        {"row": 8, "field": "owner_id", "message": "not an active user of this organization"},
        {"row": 9, "field": "country", "message": "String should match pattern '^[A-Z]{2}$'"},
        {
            "row": 9,
            "field": "employee_count",
            "message": "Input should be a valid integer, unable to parse string as an integer",
        },
    ]

    leads = await _imported(client, tenant.headers, accepted["id"])
    assert set(leads) == {
        "ayse.kaya@marmara-tekstil.com.tr",
        "hans.mueller@beispiel.de",
        "eski@ornek.com.tr",
        "Şahin",
        "burak@example.com",
    }
    ayse = leads["ayse.kaya@marmara-tekstil.com.tr"]
    assert ayse["first_name"] == "Ayşe"
    assert ayse["company_name"] == "Marmara Tekstil A.Ş."
    assert ayse["domain"] == "marmara-tekstil.com.tr"
    assert ayse["employee_count"] == 1200
    assert ayse["segment"] == "enterprise"
    assert ayse["city"] == "İstanbul"
    assert ayse["source"] == "event"
    assert ayse["status"] == "new"
    assert ayse["owner_id"] == str(tenant.admin_id)
    assert ayse["territory_id"] is None
    assert ayse["import_job_id"] == accepted["id"]
    assert ayse["version"] == 1
    hans = leads["hans.mueller@beispiel.de"]
    assert hans["company_name"] == "Müller, Schmidt & Co"
    assert hans["annual_revenue"] == "1500000.50"
    assert hans["segment"] == "smb"
    assert hans["source"] == "partner"
    assert leads["Şahin"]["email"] is None
    assert leads["Şahin"]["first_name"] is None
    assert leads["Şahin"]["source"] == "web_form"
    assert leads["burak@example.com"]["owner_id"] == str(tenant.admin_id)

    # Imported leads are ordinary leads: readable, with their creation in the history.
    history = await client.get(f"/v1/leads/{ayse['id']}/history", headers=tenant.headers)
    assert [
        (h["from_status"], h["to_status"], h["actor_type"], h["actor_user_id"])
        for h in history.json()["data"]
    ] == [(None, "new", "user", str(tenant.admin_id))]
    # The existing lead is untouched.
    assert (await client.get(f"/v1/leads/{existing['id']}", headers=tenant.headers)).json()[
        "version"
    ] == existing["version"]
    # Only the import's leads are listed by import_job_id.
    everything = await client.get("/v1/leads", params={"limit": 200}, headers=tenant.headers)
    assert len(everything.json()["data"]) == 7


async def test_json_import(client: AsyncClient, tenant: Tenant) -> None:
    rows = [
        {
            "first_name": "Selin",
            "last_name": "Aydın",
            "email": "selin@kocaeli-kimya.com.tr",
            "company_name": "Kocaeli Kimya",
            "industry": "chemicals",
            "employee_count": 300,
            "annual_revenue": "25000000",
            "country": "TR",
            "city": "Kocaeli",
            "title": "Satın Alma Müdürü",
            "seniority": "manager",
            "campaign": "fuar-2026",
            "bant": {"budget": {"value": "2M TRY", "confirmed": True}},
        },
        {"last_name": "Smith", "email": "john.smith@example.co.uk", "country": "GB"},
        {"first_name": "No", "email": "nolast@example.com"},
        {"last_name": "Wrong", "seniority": "intern", "source": "tv"},
        {"last_name": "Extra", "favourite_colour": "blue"},
        {"last_name": "Typed", "employee_count": -5, "email": None},
        {"last_name": "Dup", "email": "SELIN@kocaeli-kimya.com.tr"},
    ]
    job = await _import(client, tenant, _json(rows), JSON)
    assert job["status"] == "completed", job
    assert (job["total_rows"], job["created_count"], job["error_count"]) == (7, 2, 6)
    assert [(e["row"], e["field"]) for e in job["errors"]] == [
        (3, "last_name"),
        (4, "seniority"),
        (4, "source"),
        (5, "favourite_colour"),
        (6, "employee_count"),
        (7, "email"),
    ]
    assert job["errors"][2]["message"].startswith("Input should be ")
    assert job["errors"][3]["message"] == "Extra inputs are not permitted"
    assert job["errors"][4]["message"] == "Input should be greater than or equal to 0"
    leads = await _imported(client, tenant.headers, job["id"])
    assert set(leads) == {"selin@kocaeli-kimya.com.tr", "john.smith@example.co.uk"}
    selin = leads["selin@kocaeli-kimya.com.tr"]
    assert selin["annual_revenue"] == "25000000.00"
    assert selin["segment"] == "mid_market"
    assert selin["seniority"] == "manager"
    assert selin["campaign"] == "fuar-2026"
    assert selin["title"] == "Satın Alma Müdürü"
    assert selin["bant"] == {"budget": {"value": "2M TRY", "confirmed": True}}
    assert leads["john.smith@example.co.uk"]["bant"] == {}


async def test_an_import_of_only_invalid_rows_completes_with_nothing_created(
    client: AsyncClient, tenant: Tenant
) -> None:
    job = await _import(client, tenant, _json([{"email": "x@example.com"}, {}]), JSON)
    assert job["status"] == "completed"
    assert (job["created_count"], job["error_count"]) == (0, 2)
    assert await _imported(client, tenant.headers, job["id"]) == {}
    empty = await _import(client, tenant, "[]", JSON)
    assert (empty["status"], empty["total_rows"], empty["created_count"]) == ("completed", 0, 0)
    header_only = await _import(client, tenant, "last_name,email\n", CSV)
    assert (header_only["status"], header_only["total_rows"]) == ("completed", 0)


async def test_duplicates_among_e_mails_differing_only_in_case_in_json(
    client: AsyncClient, tenant: Tenant
) -> None:
    rows = [
        {"last_name": "A", "email": "Same@Example.com"},
        {"last_name": "B", "email": "same@example.com"},
        {"last_name": "C", "email": "SAME@EXAMPLE.COM"},
    ]
    job = await _import(client, tenant, _json(rows), JSON)
    assert job["created_count"] == 1
    assert [(e["row"], e["field"]) for e in job["errors"]] == [(2, "email"), (3, "email")]
    # The first one won, stored lower-cased.
    leads = await _imported(client, tenant.headers, job["id"])
    assert leads["same@example.com"]["last_name"] == "A"
    # A second import of the same file finds them all taken.
    again = await _import(client, tenant, _json(rows), JSON)
    assert (again["created_count"], again["error_count"]) == (0, 3)


async def test_e_mail_checks_across_batches_and_address_forms(
    client: AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of two: duplicates within the file are found across batches, open leads
    before the import are found whatever form the file gives their address in (a display
    name, mixed case: looked up after validation), and rows keep their numbers."""
    monkeypatch.setattr(imports, "BATCH", 2)
    for email in ("open@example.com", "named@example.com"):
        await create(client, "/v1/leads", tenant.headers, {"last_name": "Var", "email": email})
    rows = [
        {"last_name": "A", "email": "first@example.com"},
        {"last_name": "B", "email": "Open@Example.com"},
        {"last_name": "C", "email": "Ayşe <Named@Example.COM>"},
        {"last_name": "D", "email": "FIRST@example.com"},
        {"last_name": "E", "email": "Zeynep <new@example.com>"},
        {"last_name": "F", "email": "new@example.com"},
        {"last_name": "G", "email": "not-an-address"},
    ]
    job = await _import(client, tenant, _json(rows), JSON)
    assert [(e["row"], e["field"]) for e in job["errors"]] == [
        (2, "email"),
        (3, "email"),
        (4, "email"),
        (6, "email"),
        (7, "email"),
    ]
    assert (job["created_count"], job["processed_rows"]) == (2, 7)
    leads = await _imported(client, tenant.headers, job["id"])
    assert {e: lead["last_name"] for e, lead in leads.items()} == {
        "first@example.com": "A",
        "new@example.com": "E",
    }


# --- refused requests -----------------------------------------------------------------------


async def _job_count(app: FastAPI, tenant: Tenant) -> int:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        return int(await session.scalar(select(func.count()).select_from(ImportJob)) or 0)


async def test_malformed_bodies_are_422_and_create_no_job(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    malformed = await _post_import(client, tenant, '[{"last_name": "A"', JSON)
    assert_problem(malformed, 422, "malformed_json")
    for body in ('{"last_name": "A"}', '["A", "B"]', "42"):
        response = await _post_import(client, tenant, body, JSON)
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["code"] == "expected_array", body
    no_header = await _post_import(client, tenant, "", CSV)
    assert_problem(no_header, 422)
    latin1 = await _post_import(client, tenant, "last_name\nMüller\n".encode("latin-1"), CSV)
    assert_problem(latin1, 422)
    assert await _job_count(app, tenant) == 0


async def test_more_than_100000_rows_is_413(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    too_many = "last_name\n" + "X\n" * (imports.MAX_ROWS + 1)
    response = await _post_import(client, tenant, too_many, CSV)
    problem = assert_problem(response, 413, "payload_too_large")
    assert "100000" in problem["detail"]
    as_json = _json([{"last_name": "X"}] * (imports.MAX_ROWS + 1))
    assert_problem(await _post_import(client, tenant, as_json, JSON), 413)
    assert await _job_count(app, tenant) == 0
    # Exactly the limit is accepted by the parser.
    assert len(imports.parse_rows(("last_name\n" + "X\n" * imports.MAX_ROWS).encode(), "")) == (
        imports.MAX_ROWS
    )


async def test_who_may_import(app: FastAPI, client: AsyncClient, tenant: Tenant) -> None:
    viewer = await key_for(app, tenant, scopes=["*"], role="viewer")
    refused = await client.post(
        "/v1/leads/import", content=b"last_name\nX\n", headers={**viewer, **CSV}
    )
    assert_problem(refused, 403)
    reader = await key_for(app, tenant, scopes=["leads:read"])
    refused = await client.post(
        "/v1/leads/import", content=b"last_name\nX\n", headers={**reader, **CSV}
    )
    assert_problem(refused, 403)
    # A rep imports, and owns what no territory hands out.
    rep = await key_for(app, tenant, scopes=["*"], role="rep")
    response = await client.post(
        "/v1/leads/import", content=b"last_name\nX\n", headers={**rep, **CSV}
    )
    assert response.status_code == 202, response.text
    job = await _job(client, rep, response.json()["id"])
    assert job["created_count"] == 1
    (lead,) = (await _imported(client, rep, job["id"])).values()
    assert lead["owner_id"] != str(tenant.admin_id)


# --- scoring, auto-MQL, territories ---------------------------------------------------------


async def test_imported_leads_are_scored_and_promoted_to_mql(
    client: AsyncClient, tenant: Tenant
) -> None:
    rule = await create(
        client,
        "/v1/lead-scoring-rules",
        tenant.headers,
        {
            "name": "Textile fit",
            "category": "fit",
            "field": "industry",
            "operator": "equals",
            "value": "textile",
            "points": 40,
        },
    )
    await create(
        client,
        "/v1/lead-scoring-rules",
        tenant.headers,
        {
            "name": "Enterprise fit",
            "category": "fit",
            "field": "segment",
            "operator": "equals",
            "value": "enterprise",
            "points": 10,
        },
    )
    patched = await client.patch(
        "/v1/organization", json={"mql_score_threshold": 30}, headers=tenant.headers
    )
    assert patched.status_code == 200, patched.text
    rows = [
        {"last_name": "Kaya", "email": "kaya@bursa-iplik.com.tr", "industry": "Textile"},
        {"last_name": "Koç", "email": "koc@holding.com.tr", "employee_count": 20000},
        {
            "last_name": "Big",
            "email": "big@tekstil.com.tr",
            "industry": "textile",
            "employee_count": 5000,
        },
        {"last_name": "Other", "email": "other@gida.com.tr", "industry": "food"},
    ]
    job = await _import(client, tenant, _json(rows), JSON)
    assert (job["created_count"], job["error_count"]) == (4, 0)
    leads = await _imported(client, tenant.headers, job["id"])
    kaya = leads["kaya@bursa-iplik.com.tr"]
    assert kaya["score"] == 40
    assert kaya["score_breakdown"] == [
        {"rule_id": rule["id"], "rule": "Textile fit", "category": "fit", "points": 40}
    ]
    assert kaya["status"] == "mql"
    assert kaya["mql_at"] is not None
    assert leads["big@tekstil.com.tr"]["score"] == 50
    assert leads["big@tekstil.com.tr"]["status"] == "mql"
    # Below the threshold: scored, not promoted.
    assert leads["koc@holding.com.tr"]["score"] == 10
    assert leads["koc@holding.com.tr"]["status"] == "new"
    assert leads["koc@holding.com.tr"]["mql_at"] is None
    assert leads["other@gida.com.tr"]["score"] == 0
    assert leads["other@gida.com.tr"]["score_breakdown"] == []

    history = await client.get(f"/v1/leads/{kaya['id']}/history", headers=tenant.headers)
    entries = {(h["from_status"], h["to_status"]): h for h in history.json()["data"]}
    assert set(entries) == {(None, "new"), ("new", "mql")}
    assert entries[(None, "new")]["actor_type"] == "user"
    assert entries[(None, "new")]["actor_user_id"] == str(tenant.admin_id)
    assert entries[("new", "mql")]["actor_type"] == "system"
    assert entries[("new", "mql")]["actor_user_id"] is None
    assert entries[("new", "mql")]["reason"]
    new_only = await client.get(
        f"/v1/leads/{leads['koc@holding.com.tr']['id']}/history", headers=tenant.headers
    )
    assert [h["to_status"] for h in new_only.json()["data"]] == ["new"]
    # Filtering the import by status works like for any lead.
    mqls = await client.get(
        "/v1/leads", params={"import_job_id": job["id"], "status": "mql"}, headers=tenant.headers
    )
    assert {lead["email"] for lead in mqls.json()["data"]} == {
        "kaya@bursa-iplik.com.tr",
        "big@tekstil.com.tr",
    }


async def test_imported_leads_get_territories_and_round_robin_owners(
    client: AsyncClient, tenant: Tenant
) -> None:
    members = [(await create_user(client, tenant.headers))["id"] for _ in range(2)]
    turkey = await create(
        client,
        "/v1/territories",
        tenant.headers,
        {"name": "Turkey", "priority": 10, "countries": ["TR"], "member_ids": members},
    )
    germany = await create(
        client,
        "/v1/territories",
        tenant.headers,
        {"name": "Germany", "priority": 10, "countries": ["DE"]},
    )
    marmara = await create(
        client,
        "/v1/territories",
        tenant.headers,
        {"name": "Marmara", "priority": 5, "cities": ["İstanbul", "Kocaeli"]},
    )
    # A single lead takes the first turn …
    first = await create(
        client, "/v1/leads", tenant.headers, {"last_name": "Önce", "country": "TR"}
    )
    assert first["owner_id"] == members[0]
    csv_body = (
        "last_name,email,country,city,owner_id\n"
        "Bir,bir@example.com,TR,Ankara,\n"
        "İki,iki@example.com,TR,İzmir,\n"
        f"Üç,uc@example.com,TR,Adana,{tenant.admin_id}\n"
        "Dört,dort@example.com,TR,,\n"
        "Beş,bes@example.com,TR,İstanbul,\n"
        "Fünf,funf@example.com,DE,Berlin,\n"
        "Six,six@example.com,FR,Paris,\n"
        "Yedi,yedi@example.com,TR,Konya,\n"
        "Sekiz,sekiz@example.com,TR,Sivas,\n"
    )
    job = await _import(client, tenant, csv_body, CSV)
    assert (job["created_count"], job["error_count"]) == (9, 0), job
    leads = await _imported(client, tenant.headers, job["id"])

    def placed(email: str) -> tuple[str | None, str | None]:
        return leads[email]["territory_id"], leads[email]["owner_id"]

    # … the import carries on the cycle, row by row; an explicit owner takes no turn.
    assert placed("bir@example.com") == (turkey["id"], members[1])
    assert placed("iki@example.com") == (turkey["id"], members[0])
    assert placed("uc@example.com") == (turkey["id"], str(tenant.admin_id))
    assert placed("dort@example.com") == (turkey["id"], members[1])
    assert placed("yedi@example.com") == (turkey["id"], members[0])
    assert placed("sekiz@example.com") == (turkey["id"], members[1])
    # Marmara wins by priority and has no members: the importer owns the lead.
    assert placed("bes@example.com") == (marmara["id"], str(tenant.admin_id))
    assert placed("funf@example.com") == (germany["id"], str(tenant.admin_id))
    assert placed("six@example.com") == (None, str(tenant.admin_id))
    # … and single creation continues after the import.
    after = await create(
        client, "/v1/leads", tenant.headers, {"last_name": "Sonra", "country": "TR"}
    )
    assert after["owner_id"] == members[0]
    # Handing out leads is no edit of the territory.
    territory = await client.get(f"/v1/territories/{turkey['id']}", headers=tenant.headers)
    assert territory.json()["version"] == 1
    # Nothing to realign: import and realignment agree on the territory of every lead.
    preview = await client.post("/v1/territories/realign", headers=tenant.headers)
    assert preview.json()["total_moves"] == 0, preview.json()


# --- tenant isolation -----------------------------------------------------------------------


async def test_import_jobs_are_private_to_their_organization(
    client: AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    job = await _import(client, tenant, "last_name,email\nGizli,gizli@example.com\n", CSV)
    assert job["created_count"] == 1
    url = f"/v1/import-jobs/{job['id']}"
    assert_problem(await client.get(url, headers=other_tenant.headers), 404, "not_found")
    assert_problem(await client.get(f"/v1/import-jobs/{uuid.uuid4()}", headers=tenant.headers), 404)
    theirs = await client.get(
        "/v1/leads", params={"import_job_id": job["id"]}, headers=other_tenant.headers
    )
    assert theirs.json()["data"] == []
    # The same e-mail is no duplicate in another organization.
    other = await _import(client, other_tenant, "last_name,email\nGizli,gizli@example.com\n", CSV)
    assert (other["created_count"], other["error_count"]) == (1, 0)


# --- run_import directly: all or nothing ----------------------------------------------------


async def _start(app: FastAPI, tenant: Tenant, total: int) -> uuid.UUID:
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor(user_id=tenant.admin_id))
        job = await imports.create_job(session, total, tenant.admin_id)
        return job.id


async def _state(app: FastAPI, tenant: Tenant, job_id: uuid.UUID) -> tuple[ImportJob, int, int]:
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        job = await session.scalar(select(ImportJob).where(ImportJob.id == job_id))
        assert job is not None
        leads = await session.scalar(select(func.count()).select_from(Lead))
        history = await session.scalar(select(func.count()).select_from(LeadStatusHistory))
        return job, int(leads or 0), int(history or 0)


async def _run(
    app: FastAPI,
    tenant: Tenant,
    job_id: uuid.UUID,
    rows: list[dict[str, Any]],
    progress: imports.Progress | None = None,
) -> None:
    await imports.run_import(
        app.state.sessionmaker,
        organization_id=tenant.organization_id,
        job_id=job_id,
        rows=rows,
        actor=Actor(user_id=tenant.admin_id),
        progress=progress,
    )


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {"last_name": f"Soyad{i}", "email": f"kisi{i}@example.com", "country": "TR"}
        for i in range(count)
    ]


async def test_run_import_commits_and_reports_progress(app: FastAPI, tenant: Tenant) -> None:
    rows = [*_rows(7), {"email": "no-last-name@example.com"}]
    job_id = await _start(app, tenant, len(rows))
    seen: list[tuple[int, int]] = []
    await _run(app, tenant, job_id, rows, progress=lambda done, total: seen.append((done, total)))
    job, leads, history = await _state(app, tenant, job_id)
    assert (job.status, job.created_count, job.error_count, leads, history) == (
        "completed",
        7,
        1,
        7,
        7,
    )
    assert seen[-1] == (8, 8)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


async def test_run_import_runs_with_the_collector_paused(
    app: FastAPI, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Full collections cost a quarter of a large import (bench/README.md): validating and
    building run with the cyclic collector off, and it is on again afterwards."""
    collector_on: list[bool] = []
    build = imports._RowBuilder.build

    def noting_build(builder: Any, valid: Any) -> Any:
        collector_on.append(gc.isenabled())
        return build(builder, valid)

    monkeypatch.setattr(imports._RowBuilder, "build", noting_build)
    assert gc.isenabled()
    job_id = await _start(app, tenant, 3)
    await _run(app, tenant, job_id, _rows(3))
    job, leads, _ = await _state(app, tenant, job_id)
    assert (job.status, leads, collector_on) == ("completed", 3, [False])
    assert gc.isenabled()


async def test_run_import_is_all_or_nothing_when_a_later_batch_fails(
    app: FastAPI, client: AsyncClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [(await create_user(client, tenant.headers))["id"] for _ in range(2)]
    territory = await create(
        client,
        "/v1/territories",
        tenant.headers,
        {"name": "Turkey", "priority": 1, "countries": ["TR"], "member_ids": members},
    )
    monkeypatch.setattr(imports, "BATCH", 2)
    lead_inserts = 0
    copy_rows = imports.copy_rows

    async def failing_copy(session: AsyncSession, table: Table, rows: Any) -> None:
        nonlocal lead_inserts
        if table.name == "leads":
            lead_inserts += 1
            if lead_inserts == 2:
                raise RuntimeError("the database went away")
        await copy_rows(session, table, rows)

    monkeypatch.setattr(imports, "copy_rows", failing_copy)
    job_id = await _start(app, tenant, 5)
    await _run(app, tenant, job_id, _rows(5))
    monkeypatch.undo()
    assert lead_inserts == 2  # the first batch was written, the second one failed
    job, leads, history = await _state(app, tenant, job_id)
    assert job.status == "failed"
    assert job.failure == "RuntimeError: nothing was imported"
    assert job.finished_at is not None
    assert job.created_count == 0
    assert (leads, history) == (0, 0)
    # The round-robin position did not move either: the next lead goes to the first member.
    async with app.state.sessionmaker() as session:
        bind_tenant(session, tenant.organization_id, Actor())
        position = await session.scalar(
            select(Territory.last_assigned_index).where(Territory.id == uuid.UUID(territory["id"]))
        )
    assert position == -1
    # Through HTTP the failure is visible on the job.
    failed = await _job(client, tenant.headers, str(job_id))
    assert (failed["status"], failed["created_count"], failed["failure"]) == (
        "failed",
        0,
        "RuntimeError: nothing was imported",
    )
    assert (await _imported(client, tenant.headers, str(job_id))) == {}


async def test_run_import_is_all_or_nothing_when_the_database_refuses_a_row(
    app: FastAPI, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row PostgreSQL refuses (a NUL character) in the second batch undoes the first.
    The schema refuses NUL itself now, so the row is slipped past validation here to make
    the database be the one that says no."""
    monkeypatch.setattr(imports, "BATCH", 2)
    rows = _rows(5)
    rows[3]["last_name"] = "Nul\x00Karakter"
    validate = imports._RowBuilder.validate

    def slip_nul_past(builder: Any, chunk: list[dict[str, Any]], first: int) -> Any:
        cleaned = [{**r, "last_name": r["last_name"].replace("\x00", "")} for r in chunk]
        return [
            (n, lead.model_copy(update={"last_name": chunk[n - first]["last_name"]}))
            for n, lead in validate(builder, cleaned, first)
        ]

    monkeypatch.setattr(imports._RowBuilder, "validate", slip_nul_past)
    job_id = await _start(app, tenant, len(rows))
    await _run(app, tenant, job_id, rows)
    job, leads, history = await _state(app, tenant, job_id)
    assert job.status == "failed"
    assert job.failure is not None
    assert job.failure.endswith("nothing was imported")
    assert (leads, history) == (0, 0)


async def test_run_import_is_all_or_nothing_when_building_a_batch_fails_mid_write(
    app: FastAPI, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker thread fails on the third batch while the second is being written: the
    write in flight is waited for (or cancelled), and nothing of the import lands."""
    monkeypatch.setattr(imports, "BATCH", 2)
    build = imports._RowBuilder.build
    builds = 0

    def failing_build(builder: Any, valid: Any) -> Any:
        nonlocal builds
        builds += 1
        if builds == 3:
            raise RuntimeError("a bug in the row builder")
        return build(builder, valid)

    monkeypatch.setattr(imports._RowBuilder, "build", failing_build)
    job_id = await _start(app, tenant, 6)
    await _run(app, tenant, job_id, _rows(6))
    job, leads, history = await _state(app, tenant, job_id)
    assert (builds, job.status, job.failure) == (
        3,
        "failed",
        "RuntimeError: nothing was imported",
    )
    assert (leads, history) == (0, 0)


# --- interrupted jobs -----------------------------------------------------------------------


async def test_follow_ups_fail_the_jobs_a_dead_process_left_and_only_those(
    app: FastAPI, client: AsyncClient, tenant: Tenant
) -> None:
    """A running import holds an advisory lock on its job: a ``running`` job whose lock
    nobody holds was interrupted (its process died, its transaction rolled back); a job
    still ``queued`` long after it was accepted was never started."""
    dead, alive, abandoned, fresh = [await _start(app, tenant, 1) for _ in range(4)]
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, tenant.organization_id, Actor())
        for job in await session.scalars(select(ImportJob)):
            if job.id in (dead, alive):
                job.status = "running"
            if job.id == abandoned:
                job.created_at -= imports.ABANDONED_QUEUED_AFTER + timedelta(minutes=1)
    async with app.state.engine.connect() as running_import:
        await running_import.execute(
            select(func.pg_advisory_xact_lock(imports.JOB_LOCK_CLASS, imports.job_lock_key(alive)))
        )
        ran = await client.post("/v1/jobs/follow-ups", headers=tenant.headers)
        assert ran.status_code == 200, ran.text
        await running_import.rollback()
    states = {
        job_id: (await _state(app, tenant, job_id))[0] for job_id in (dead, alive, abandoned, fresh)
    }
    assert {job_id: job.status for job_id, job in states.items()} == {
        dead: "failed",
        alive: "running",
        abandoned: "failed",
        fresh: "queued",
    }
    assert states[dead].failure == states[abandoned].failure == imports.INTERRUPTED
    # A job given up is never run afterwards (its process may only have been slow).
    await _run(app, tenant, abandoned, _rows(3))
    job, leads, _ = await _state(app, tenant, abandoned)
    assert (job.status, job.failure, leads) == ("failed", imports.INTERRUPTED, 0)


def test_copy_records_keep_column_order_and_encode_json_columns_as_text() -> None:
    rows = [
        {"id": 1, "bant": {"need": "Şirket içi CRM"}, "score_breakdown": [{"points": 10}]},
        {"id": 2, "bant": None, "score_breakdown": []},
    ]
    columns = ["score_breakdown", "id", "bant"]
    records = imports._records(rows, columns, [0, 2])
    assert [(json.loads(r[0]), r[1], r[2] and json.loads(r[2])) for r in records] == [
        ([{"points": 10}], 1, {"need": "Şirket içi CRM"}),
        ([], 2, None),
    ]
    assert imports._records(rows, ["id"], []) == [(1,), (2,)]
    assert imports._records(rows, ["id", "bant"], []) == [(1, rows[0]["bant"]), (2, None)]
