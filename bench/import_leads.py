"""Benchmark the bulk lead import (app/leads/imports.py).

Creates a fresh database (on an embedded PostgreSQL by default, as the app does, or on the
server of DATABASE_URL), migrates it, generates N realistic leads as a CSV file (Turkish and
international names, companies, industries, countries; about 2% invalid rows), and imports
them twice, each time into a new organization set up alike (scoring rules, territories with
members, an MQL threshold):

1. directly: ``imports.run_import`` on the parsed rows (what the background task runs);
2. through HTTP: ``POST /v1/leads/import`` on ``create_app()`` via httpx's ASGITransport (no
   server process), then ``GET /v1/import-jobs/{id}`` until the job is finished.

It prints rows/s and seconds for each, with the phases (parse, validate, write).

    .venv/bin/python bench/import_leads.py                 # 100,000 rows
    .venv/bin/python bench/import_leads.py -n 20000 --profile
    DATABASE_URL=postgresql://user:pw@host/postgres .venv/bin/python bench/import_leads.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import csv
import io
import os
import platform
import pstats
import random
import resource
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from httpx import ASGITransport, AsyncClient
from sqlalchemy import Update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.database import start_embedded_postgres
from app.core.migrate import upgrade
from app.core.tenancy import Actor, bind_tenant
from app.leads import imports
from app.main import create_app
from app.users.service import create_organization

# --- realistic data -------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


TR_FIRST = _words(
    "Ayşe Fatma Zeynep Elif Emine Hatice Merve Büşra Özge Şule Gökçe Çağla Derya Ebru Gül "
    "Selin İpek Ece Tuğba Yasemin Mehmet Ahmet Mustafa Ali Hüseyin Hasan İbrahim Emre Burak "
    "Murat Ömer Serkan Gökhan Çağrı Oğuz Uğur Tolga Kerem Barış Onur Umut Ümit Doğan Can"
)
TR_LAST = _words(
    "Yılmaz Kaya Demir Şahin Çelik Yıldız Yıldırım Öztürk Aydın Özdemir Arslan Doğan Kılıç "
    "Aslan Çetin Kara Koç Kurt Özkan Şimşek Polat Özcan Korkmaz Erdoğan Aksoy Güneş Bulut "
    "Tekin Ünal Çakır Güler Acar Uçar Kalkan Ateş Karaca Başaran Sönmez Taş Bozkurt"
)
INTL_FIRST = _words(
    "Hans Anna Lukas Sophie Thomas Julia James Emma Oliver Charlotte Pierre Camille Luca "
    "Giulia Javier Lucía Pedro Ana Jan Eva Piotr Agnieszka Ahmed Fatima Yuki Hiroshi Omar "
    "Layla Sven Ingrid Daan Sanne Mikael Nora Pablo Chiara"
)
INTL_LAST = _words(
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Smith Jones Taylor Brown "
    "Williams Martin Bernard Dubois Rossi Russo Ferrari Bianchi García Fernández López "
    "Martínez Silva Santos Novak Kowalski Nowak Al-Sayed Haddad Tanaka Suzuki Andersson "
    "Johansson Visser Jansen Nielsen Hansen O'Brien"
)
INDUSTRIES = _words(
    "textile automotive food chemicals construction logistics software retail energy "
    "healthcare finance machinery furniture tourism agriculture plastics electronics"
)
SECTOR_WORDS = {
    "textile": ("Tekstil", "İplik", "Konfeksiyon", "Textiles"),
    "automotive": ("Otomotiv", "Yedek Parça", "Automotive", "Fahrzeugteile"),
    "food": ("Gıda", "Süt Ürünleri", "Foods", "Lebensmittel"),
    "chemicals": ("Kimya", "Boya", "Chemicals", "Chemie"),
    "construction": ("İnşaat", "Yapı", "Construction", "Bau"),
    "logistics": ("Lojistik", "Nakliyat", "Logistics", "Spedition"),
    "software": ("Yazılım", "Bilişim", "Software", "Digital"),
    "retail": ("Mağazacılık", "Ticaret", "Retail", "Handel"),
    "energy": ("Enerji", "Elektrik", "Energy", "Solar"),
    "healthcare": ("Sağlık", "Medikal", "Health", "Pharma"),
    "finance": ("Finans", "Faktoring", "Capital", "Finanz"),
    "machinery": ("Makine", "Döküm", "Machinery", "Maschinenbau"),
    "furniture": ("Mobilya", "Ahşap", "Furniture", "Möbel"),
    "tourism": ("Turizm", "Otelcilik", "Travel", "Reisen"),
    "agriculture": ("Tarım", "Tohum", "Agro", "Farms"),
    "plastics": ("Plastik", "Ambalaj", "Plastics", "Kunststoff"),
    "electronics": ("Elektronik", "Kablo", "Electronics", "Elektrotechnik"),
}
TR_PLACES = ("Anadolu", "Ege", "Marmara", "Karadeniz", "Akdeniz", "Trakya", "Başkent", "Doğu")
TR_LEGAL = ("A.Ş.", "Ltd. Şti.", "San. ve Tic. A.Ş.", "San. Tic. Ltd. Şti.")
INTL_LEGAL = ("GmbH", "Ltd", "B.V.", "S.A.", "S.p.A.", "Inc.", "AB", "Sp. z o.o.")
COUNTRIES = {
    # code: (weight, cities, ccTLD)
    "TR": (
        60,
        (
            "İstanbul",
            "Ankara",
            "İzmir",
            "Bursa",
            "Kocaeli",
            "Gaziantep",
            "Denizli",
            "Kayseri",
            "Konya",
            "Adana",
            "Antalya",
            "Eskişehir",
        ),
        "com.tr",
    ),
    "DE": (10, ("Berlin", "München", "Hamburg", "Köln", "Frankfurt", "Stuttgart"), "de"),
    "GB": (5, ("London", "Manchester", "Birmingham", "Leeds"), "co.uk"),
    "NL": (4, ("Amsterdam", "Rotterdam", "Eindhoven"), "nl"),
    "FR": (4, ("Paris", "Lyon", "Marseille"), "fr"),
    "IT": (4, ("Milano", "Torino", "Bologna"), "it"),
    "ES": (3, ("Madrid", "Barcelona", "Valencia"), "es"),
    "US": (3, ("New York", "Chicago", "Houston"), "com"),
    "AE": (3, ("Dubai", "Abu Dhabi"), "ae"),
    "AZ": (2, ("Bakı", "Gəncə"), "az"),
    "PL": (2, ("Warszawa", "Kraków", "Łódź"), "pl"),
}
TITLES = (
    ("Genel Müdür", "c_level"),
    ("CEO", "c_level"),
    ("CFO", "c_level"),
    ("Satın Alma Direktörü", "director"),
    ("Head of Procurement", "director"),
    ("Operasyon Müdürü", "manager"),
    ("IT Manager", "manager"),
    ("Satış Müdürü", "manager"),
    ("VP Sales", "vp"),
    ("Uzman", "individual_contributor"),
    ("Engineer", "individual_contributor"),
    (None, None),
)
SOURCES = ("web_form", "event", "outbound", "partner", "referral", "paid", "other")
COLUMNS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "title",
    "seniority",
    "company_name",
    "domain",
    "industry",
    "employee_count",
    "annual_revenue",
    "country",
    "city",
    "source",
    "campaign",
)
ASCII = str.maketrans("ıİşŞğĞçÇöÖüÜəƏłŁ", "iIsSgGcCoOuUeElL")


def slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.translate(ASCII))
    plain = "".join(c for c in plain if c.isascii() and (c.isalnum() or c in " -"))
    return "-".join(plain.lower().split())


def generate(n: int, seed: int = 7) -> tuple[bytes, int]:
    """A CSV of ``n`` leads and how many of them are invalid on purpose."""
    rng = random.Random(seed)
    codes = list(COUNTRIES)
    weights = [COUNTRIES[c][0] for c in codes]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    emails: list[str] = []
    invalid = 0
    for i in range(n):
        country = rng.choices(codes, weights)[0]
        _, cities, tld = COUNTRIES[country]
        turkish = country in ("TR", "AZ") or rng.random() < 0.1
        first = rng.choice(TR_FIRST if turkish else INTL_FIRST)
        last = rng.choice(TR_LAST if turkish else INTL_LAST)
        industry = rng.choice(INDUSTRIES)
        words = SECTOR_WORDS[industry]
        if country == "TR":
            name = f"{rng.choice((*TR_PLACES, rng.choice(TR_LAST)))} {words[rng.randrange(2)]}"
            company = f"{name} {rng.choice(TR_LEGAL)}"
        else:
            company = f"{rng.choice(INTL_LAST)} {words[2 + rng.randrange(2)]} "
            company += rng.choice(INTL_LEGAL)
            name = company.rsplit(" ", 1)[0]
        domain = f"{slug(name)}.{tld}"
        email = f"{slug(first)}.{slug(last)}{i}@{domain}".replace("-", "")
        employees = int(min(200_000, rng.lognormvariate(4.2, 1.6)))
        revenue = f"{employees * rng.randint(50_000, 400_000)}.00" if rng.random() < 0.6 else ""
        title, seniority = rng.choice(TITLES)
        row: dict[str, Any] = {
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": f"+90 5{rng.randint(30, 59)} {rng.randint(100, 999)} {rng.randint(10, 99)}"
            f" {rng.randint(10, 99)}"
            if country == "TR"
            else "",
            "title": title or "",
            "seniority": seniority or "",
            "company_name": company,
            "domain": f"https://www.{domain}/" if rng.random() < 0.2 else domain,
            "industry": industry,
            "employee_count": employees,
            "annual_revenue": revenue,
            "country": country,
            "city": rng.choice(cities),
            "source": rng.choice(SOURCES),
            "campaign": rng.choice(("", "", "fuar-2026", "webinar-q3", "linkedin-abm")),
        }
        roll = rng.random()
        if roll < 0.02:  # about 2% invalid, of five kinds
            invalid += 1
            kind = i % 5
            if kind == 0:
                row["email"] = email.replace("@", " at ")
            elif kind == 1:
                row["last_name"] = ""
            elif kind == 2:
                row["country"] = country.lower()
            elif kind == 3:
                row["employee_count"] = "-12"
            elif emails:
                row["email"] = rng.choice(emails).upper()  # a duplicate within the file
        else:
            emails.append(email)
        writer.writerow([row[c] for c in COLUMNS])
    return out.getvalue().encode(), invalid


# --- database and organizations -------------------------------------------------------------


async def _admin_sql(url: str, statement: str) -> None:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password or None,
        host=parsed.host or parsed.query.get("host"),
        port=parsed.port,
        database=parsed.database or "postgres",
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def fresh_database() -> tuple[str, Callable[[], None]]:
    """A new, migrated database and how to drop it."""
    if os.environ.get("DATABASE_URL"):
        server = os.environ["DATABASE_URL"]
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="dealbase-bench-"))
        server = start_embedded_postgres(data_dir, database="postgres", delete_on_exit=True)
    name = f"dealbase_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin_sql(server, f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    upgrade(url)

    def drop() -> None:
        asyncio.run(_admin_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return url, drop


@dataclass
class Org:
    organization_id: uuid.UUID
    admin_id: uuid.UUID
    headers: dict[str, str]


async def new_org(app: Any, client: AsyncClient, name: str) -> Org:
    """An organization set up like a real one: scoring rules, an MQL threshold, territories
    (some with members, so round-robin runs) and reps."""
    async with app.state.sessionmaker() as session, session.begin():
        org, admin, token = await create_organization(
            session, name=name, admin_email=f"admin@{uuid.uuid4().hex[:8]}.example.com"
        )
    headers = {"Authorization": f"Bearer {token}"}

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    reps = [
        (await post("/v1/users", {"email": f"rep{i}@bench.example.com", "name": f"Rep {i}"}))["id"]
        for i in range(6)
    ]
    for rule in (
        {"field": "industry", "operator": "in", "value": ["textile", "automotive"], "points": 40},
        {"field": "segment", "operator": "equals", "value": "enterprise", "points": 25},
        {"field": "seniority", "operator": "in", "value": ["c_level", "vp"], "points": 20},
        {"field": "country", "operator": "equals", "value": "TR", "points": 10},
        {"field": "employee_count", "operator": "range", "value": {"min": 200}, "points": 10},
    ):
        name = f"{rule['field']} {rule['operator']} {rule['value']}"
        await post("/v1/lead-scoring-rules", {"name": name, "category": "fit", **rule})
    response = await client.patch(
        "/v1/organization", json={"mql_score_threshold": 60}, headers=headers
    )
    assert response.status_code == 200, response.text
    for territory in (
        {
            "name": "Marmara",
            "priority": 10,
            "countries": ["TR"],
            "cities": ["İstanbul", "Kocaeli", "Bursa"],
            "member_ids": reps[:3],
        },
        {"name": "Türkiye", "priority": 20, "countries": ["TR"], "member_ids": reps[3:5]},
        {"name": "DACH", "priority": 20, "countries": ["DE"], "member_ids": reps[5:]},
        {"name": "Enterprise EU", "priority": 30, "segments": ["enterprise"]},
    ):
        await post("/v1/territories", territory)
    return Org(org.id, admin.id, headers)


# --- the two runs ---------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    rows: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def report(self) -> str:
        phases = ", ".join(f"{k} {v:.2f} s" for k, v in self.phases.items())
        return (
            f"{self.label:<8} {self.rows:>7} rows in {self.seconds:6.2f} s = "
            f"{self.rows / self.seconds:>8,.0f} rows/s   ({phases}); "
            f"created {self.job.get('created_count')}, errors {self.job.get('error_count')}, "
            f"status {self.job.get('status')}" + (f"\n{'':9}{self.detail}" if self.detail else "")
        )


@contextlib.contextmanager
def phase_timer(
    phases: dict[str, float], thread_profile: cProfile.Profile | None = None
) -> Iterator[None]:
    """Time spent in the worker thread's steps (validating rows, building them: scoring,
    territory matching, the row dicts), and awaiting ``AsyncSession.execute`` by kind of
    statement and the COPY of each table. The import overlaps the thread's steps with the
    COPYs, so these add up to more than the import's time. ``thread_profile`` profiles
    the worker thread's steps (they never run two at a time)."""
    original = AsyncSession.execute
    original_copy = imports.copy_rows
    builder = imports._RowBuilder
    original_steps: dict[str, Callable[..., Any]] = {
        "validate": builder.validate,
        "build rows": builder.build,
    }

    def timed_step(kind: str) -> Any:
        step = original_steps[kind]

        def timed(*args: Any) -> Any:
            began = time.perf_counter()
            try:
                return thread_profile.runcall(step, *args) if thread_profile else step(*args)
            finally:
                phases[kind] = phases.get(kind, 0.0) + time.perf_counter() - began

        return timed

    async def timed_copy(session: AsyncSession, table: Any, rows: Any) -> None:
        began = time.perf_counter()
        try:
            await original_copy(session, table, rows)
        finally:
            kind = f"COPY {table.name}"
            phases[kind] = phases.get(kind, 0.0) + time.perf_counter() - began

    async def timed(self: AsyncSession, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(statement, Update) and statement.table.name == "import_jobs":
            kind = "job progress updates"
        else:
            kind = "other statements"
        began = time.perf_counter()
        try:
            return await original(self, statement, *args, **kwargs)
        finally:
            phases[kind] = phases.get(kind, 0.0) + time.perf_counter() - began

    replacements = {
        (AsyncSession, "execute"): timed,
        (imports, "copy_rows"): timed_copy,
        (builder, "validate"): timed_step("validate"),
        (builder, "build"): timed_step("build rows"),
    }
    originals = {(owner, name): getattr(owner, name) for owner, name in replacements}
    for (owner, name), replacement in replacements.items():
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for (owner, name), original_value in originals.items():
            setattr(owner, name, original_value)


async def run_direct(
    app: Any, org: Org, body: bytes, profiles: tuple[cProfile.Profile, cProfile.Profile] | None
) -> Run:
    phases: dict[str, float] = {}
    statements: dict[str, float] = {}
    start = time.perf_counter()
    rows = imports.parse_rows(body, "text/csv")
    phases["parse"] = time.perf_counter() - start
    async with app.state.sessionmaker() as session, session.begin():
        bind_tenant(session, org.organization_id, Actor(user_id=org.admin_id))
        job = await imports.create_job(session, len(rows), org.admin_id)
    begun = time.perf_counter()
    loop_profile, thread_profile = profiles or (None, None)
    if loop_profile:
        loop_profile.enable()
    with phase_timer(statements, thread_profile):
        await imports.run_import(
            app.state.sessionmaker,
            organization_id=org.organization_id,
            job_id=job.id,
            rows=rows,
            actor=Actor(user_id=org.admin_id),
        )
    if loop_profile:
        loop_profile.disable()
    seconds = time.perf_counter() - start
    phases["import"] = time.perf_counter() - begun
    async with app.state.sessionmaker() as session:
        bind_tenant(session, org.organization_id, Actor())
        done = await imports.get_job(session, job.id)
        summary = {
            "status": done.status,
            "created_count": done.created_count,
            "error_count": done.error_count,
            "failure": done.failure,
        }
    return Run("direct", len(rows), seconds, phases, summary, _overlapping(statements))


async def run_http(client: AsyncClient, org: Org, body: bytes, rows: int) -> Run:
    steps: dict[str, float] = {}
    start = time.perf_counter()
    with phase_timer(steps):
        response = await client.post(
            "/v1/leads/import", content=body, headers={**org.headers, "Content-Type": "text/csv"}
        )
    assert response.status_code == 202, response.text
    accepted = time.perf_counter() - start
    job_id = response.json()["id"]
    while True:
        job = (await client.get(f"/v1/import-jobs/{job_id}", headers=org.headers)).json()
        if job["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - start
    # The test transport runs the background task before it returns the 202.
    return Run(
        "http", rows, seconds, {"POST (incl. background task)": accepted}, job, _overlapping(steps)
    )


def _overlapping(steps: dict[str, float]) -> str:
    return "overlapping steps: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in sorted(steps.items(), key=lambda kv: -kv[1])
    )


async def main_async(args: argparse.Namespace, url: str, body: bytes) -> list[Run]:
    # The HTTP body limit (10 MiB by default) is raised to fit the file; see the README.
    settings = Settings(
        database_url=url,
        log_level="WARNING",
        log_json=False,
        jobs_interval_seconds=0,
        rate_limit_per_minute=0,
        max_import_bytes=max(Settings().max_import_bytes, len(body) + 1),
    )
    app = create_app(settings)
    profiles = (cProfile.Profile(), cProfile.Profile()) if args.profile else None
    runs = []
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as c:
            direct_org = await new_org(app, c, "Bench direct")
            http_org = await new_org(app, c, "Bench HTTP")
            runs.append(await run_direct(app, direct_org, body, profiles))
            print(runs[-1].report(), flush=True)
            runs.append(await run_http(c, http_org, body, args.rows))
            print(runs[-1].report(), flush=True)
    finally:
        await app.state.engine.dispose()
    for where, profile in zip(("event loop", "worker thread"), profiles or (), strict=False):
        stats = pstats.Stats(profile).strip_dirs().sort_stats("cumulative")
        print(f"\n--- cProfile of the direct run_import, {where} (cumulative, top 35) ---")
        stats.print_stats(35)
        print("--- by own time (top 20) ---")
        stats.sort_stats("tottime").print_stats(20)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--rows", type=int, default=100_000, help="default 100000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile the direct run")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    started = time.perf_counter()
    body, invalid = generate(args.rows, args.seed)
    print(
        f"generated {args.rows} rows ({invalid} invalid on purpose), CSV {len(body) / 2**20:.1f}"
        f" MiB in {time.perf_counter() - started:.1f} s"
    )
    if len(body) > Settings().max_import_bytes:
        print(
            f"note: the file exceeds the default import limit ({Settings().max_import_bytes} bytes,"
            " DEALBASE_MAX_IMPORT_BYTES); a server with defaults would answer 413"
        )
    url, drop = fresh_database()
    print(f"database {make_url(url).render_as_string(hide_password=True)}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    try:
        asyncio.run(main_async(args, url, body))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak:.0f} MiB")
    finally:
        if not args.keep:
            drop()


if __name__ == "__main__":
    main()
